import { describe, expect, it } from 'vitest';
import { parseActorOp, parseBridgeOp, SessionFrameError, type SessionBridgeOp } from './session-link';
import { mulberry32 } from './testing/prng';

const valid: SessionBridgeOp[] = [
  { op: 'open', id: 1, clean: false, expiry: 600 },
  { op: 'open', id: 5, clean: true, expiry: 0, will: { channel: 'c', subtopic: 's', publisher: 'd', contentType: 'text/plain', payload: 'Z29uZQ==', retain: true, delay: 5, properties: [['k', 'v']], expiry: 60 } },
  { op: 'open', id: 6, clean: false, expiry: 9, will: { channel: 'c', subtopic: 's', publisher: 'd', contentType: 'text/plain; charset=utf-8', payload: 'Z29uZQ==', retain: false, delay: 0, qos: 1, format: 2, responseTopic: 'channels/c/messages/re', correlation: 'BwA=' } },
  { op: 'save', id: 2, epoch: 1_700_000_000_000, state: { subscriptions: [], inflight: [], awaitingRelease: [] } },
  { op: 'release', id: 3, epoch: 5, state: null, expiry: 0 },
  { op: 'done' },
];

describe('session socket frames', () => {
  it('round-trips every bridge op', () => {
    for (const op of valid) expect(parseBridgeOp(JSON.stringify(op))).toEqual(op);
  });

  it.each([
    ['not JSON', 'open'],
    ['not an object', '[1,2]'],
    ['unknown op', '{"op":"drop"}'],
    ['negative id', '{"op":"open","id":-1,"clean":true,"expiry":0}'],
    ['fractional epoch', '{"op":"save","id":1,"epoch":1.5,"state":{}}'],
    ['save without state', '{"op":"save","id":1,"epoch":1}'],
    ['expiry above four bytes', '{"op":"open","id":1,"clean":true,"expiry":4294967296}'],
    ['clean not boolean', '{"op":"open","id":1,"clean":1,"expiry":0}'],
    ['a will that is not base64', '{"op":"open","id":1,"clean":true,"expiry":0,"will":{"channel":"c","subtopic":"","publisher":"d","contentType":"t","payload":"!!","retain":false,"delay":0}}'],
    ['a will with both Payload Format Indicator bits', '{"op":"open","id":1,"clean":true,"expiry":0,"will":{"channel":"c","subtopic":"","publisher":"d","contentType":"t","payload":"","retain":false,"delay":0,"format":3}}'],
    ['a will whose correlation is not base64', '{"op":"open","id":1,"clean":true,"expiry":0,"will":{"channel":"c","subtopic":"","publisher":"d","contentType":"t","payload":"","retain":false,"delay":0,"correlation":"!!"}}'],
    ['a will without a channel', '{"op":"open","id":1,"clean":true,"expiry":0,"will":{"subtopic":"","publisher":"d","contentType":"t","payload":"","retain":false,"delay":0}}'],
  ])('refuses %s', (_name, text) => {
    expect(() => parseBridgeOp(text)).toThrow(SessionFrameError);
  });

  it('parses the actor replies the bridge routes', () => {
    expect(parseActorOp('{"op":"opened","id":1,"epoch":9,"state":null}')).toEqual({ op: 'opened', id: 1, epoch: 9, state: null });
    expect(parseActorOp('{"op":"takeover","clean":true}')).toEqual({ op: 'takeover', clean: true });
    expect(parseActorOp('{"op":"error","code":"bad_frame","reason":"x"}')).toEqual({ op: 'error', code: 'bad_frame', reason: 'x' });
  });

  // Untrusted text must give an op or a SessionFrameError, never anything else.
  it('never throws anything but SessionFrameError on random input', () => {
    const rand = mulberry32(0x5e55_1011);
    const texts = valid.map((op) => JSON.stringify(op));
    let parsed = 0;
    for (let i = 0; i < 20_000; i++) {
      let text: string;
      if (i % 2 === 0) text = String.fromCharCode(...Array.from({ length: Math.floor(rand() * 48) }, () => Math.floor(rand() * 128)));
      else {
        const chars = [...texts[Math.floor(rand() * texts.length)]!];
        for (let k = 0; k < 2; k++) chars[Math.floor(rand() * chars.length)] = String.fromCharCode(32 + Math.floor(rand() * 95));
        text = chars.slice(0, Math.floor(rand() * chars.length) + 1).join('');
      }
      for (const parse of [parseBridgeOp, parseActorOp]) {
        try {
          parse(text);
          parsed++;
        } catch (e) {
          if (!(e instanceof SessionFrameError)) throw new Error(`non-SessionFrameError for ${JSON.stringify(text)}: ${String(e)}`);
        }
      }
    }
    expect(parsed).toBeGreaterThan(0);
  });
});
