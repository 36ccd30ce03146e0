import { describe, expect, it } from 'vitest';
import { CborError, cborEncode } from './cbor';
import { EnvelopeError, utf8Bytes, type Envelope } from './envelope';
import { FrameError, decodeClientFrame, decodeServerFrame, encodeClientFrame, encodeServerFrame, type ClientFrame, type ServerFrame } from './frames';

const base = (contentType: string, payload: Uint8Array): Envelope => ({
  channel: 'c1',
  subtopic: 'room/1',
  publisher: 'dev-1',
  protocol: 'mqtt',
  contentType,
  payload,
  created: 1_732_500_000_123,
  seq: 42,
});

describe('subscriber frames', () => {
  const env = base('application/octet-stream', new Uint8Array([1, 2, 3]));
  const frames: ServerFrame[] = [
    { type: 'subscribed', seq: 0 },
    { type: 'subscribed', seq: 42, since: 7 },
    { type: 'message', envelope: env },
    { type: 'message', envelope: base('text/plain', utf8Bytes('hi')), retained: true },
    { type: 'ack', id: 'p1', seq: 7, created: 1 },
    { type: 'ack', seq: 8, created: 2 },
    { type: 'error', id: 3, status: 413, code: 'payload_too_large', message: 'too big' },
    { type: 'gap', from: 1, to: 9 },
  ];
  it.each(frames.flatMap((f) => (['json', 'cbor'] as const).map((enc) => [f.type, enc, f] as const)))('server %s frame round-trips as %s', (_t, enc, f) => {
    const wire = encodeServerFrame(f, enc);
    expect(typeof wire === 'string').toBe(enc === 'json');
    expect(decodeServerFrame(wire)).toEqual(f);
  });

  it.each([
    ['no seq', '{"type":"subscribed"}'],
    ['negative seq', '{"type":"subscribed","seq":-1}'],
    ['fractional since', '{"type":"subscribed","seq":3,"since":1.5}'],
  ])('server subscribed frame with %s is refused with FrameError', (_n, text) => {
    expect(() => decodeServerFrame(text)).toThrow(FrameError);
  });

  // After mqtt-packet's testRandom.js: what a client decodes from the wire gives a frame or one of
  // the three decoding errors, never a crash.
  it('decoding random and mutated server and client frames throws only FrameError, CborError or EnvelopeError', () => {
    let seed = 0x51a7_3c09;
    const rand = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 2 ** 32;
    };
    const valid = frames.flatMap((f) => [encodeServerFrame(f, 'json') as string, encodeServerFrame(f, 'cbor') as Uint8Array]);
    let decoded = 0;
    for (let i = 0; i < 20_000; i++) {
      const base = valid[i % valid.length] as string | Uint8Array;
      let input: string | Uint8Array;
      if (typeof base === 'string') {
        const chars = [...base.slice(0, Math.floor(rand() * base.length) + 1)];
        for (let k = 0; k < 2; k++) chars[Math.floor(rand() * chars.length)] = String.fromCharCode(32 + Math.floor(rand() * 95));
        input = chars.join('');
      } else {
        input = base.slice(0, Math.max(1, Math.floor(rand() * base.length) + 1));
        for (let k = 0; k < 2; k++) input[Math.floor(rand() * input.length)] = Math.floor(rand() * 256);
      }
      for (const decode of [decodeServerFrame, decodeClientFrame]) {
        try {
          expect(typeof decode(input).type).toBe('string');
          decoded++;
        } catch (e) {
          if (!(e instanceof FrameError || e instanceof CborError || e instanceof EnvelopeError)) throw new Error(`${decode.name} threw ${String(e)} for ${JSON.stringify(typeof input === 'string' ? input : [...input])}`);
        }
      }
    }
    expect(decoded).toBeGreaterThan(0);
  });

  it('JSON messages are flat envelope objects a browser can read', () => {
    const wire = encodeServerFrame({ type: 'message', envelope: base('application/json', utf8Bytes('{"a":1}')) }, 'json') as string;
    const o = JSON.parse(wire);
    expect(o).toMatchObject({ type: 'message', seq: 42, subtopic: 'room/1', payload: '{"a":1}' });
    expect(JSON.parse(o.payload)).toEqual({ a: 1 });
  });

  it.each([
    ['typeless JSON text', '{"subtopic":"a","payload":"hi"}', { type: 'publish', subtopic: 'a', payload: utf8Bytes('hi'), contentType: 'text/plain; charset=utf-8' }],
    ['JSON value', '{"payload":{"t":1}}', { type: 'publish', payload: utf8Bytes('{"t":1}'), contentType: 'application/json' }],
    ['base64', '{"payload":"AQI=","encoding":"base64","retain":true,"id":"x"}', { type: 'publish', id: 'x', payload: new Uint8Array([1, 2]), retain: true, contentType: 'application/octet-stream' }],
    ['ack', '{"type":"ack","seq":5}', { type: 'ack', seq: 5 }],
  ])('client %s', (_n, text, expected) => {
    expect(decodeClientFrame(text)).toEqual(expected);
  });

  it.each([
    ['not JSON', '{'],
    ['no payload', '{"subtopic":"a"}'],
    ['bad type', '{"type":"subscribe"}'],
    ['bad retain', '{"payload":"x","retain":"yes"}'],
    ['bad id', '{"payload":"x","id":{}}'],
    ['ack without seq', '{"type":"ack"}'],
    ['array', '[]'],
  ])('client frame %s is refused with FrameError', (_n, text) => {
    expect(() => decodeClientFrame(text)).toThrow(FrameError);
  });

  it.each([
    ['a misspelt retain', '{"id":7,"payload":"x","retained":true}', 'retained', 7],
    ['a misspelt subtopic', '{"payload":"x","subTopic":"room/1"}', 'subTopic', undefined],
    ['an ack with more', '{"type":"ack","seq":3,"id":"a"}', 'id', 'a'],
  ])('a client frame with %s is refused, naming the key (and echoing a valid id)', (_n, text, key, id) => {
    let err: unknown;
    try {
      decodeClientFrame(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FrameError);
    expect((err as FrameError).message).toContain(`unknown key "${key}"`);
    expect((err as FrameError).id).toBe(id);
    // The same in CBOR.
    expect(() => decodeClientFrame(cborEncode({ ...JSON.parse(text), payload: new Uint8Array([1]) }))).toThrow(`unknown key "${key}"`);
  });

  it.each(['json', 'cbor'] as const)('client publish round-trips as %s', (enc) => {
    const f: ClientFrame = { type: 'publish', id: 1, subtopic: 's', contentType: 'image/png', payload: new Uint8Array([9, 8]), retain: false };
    expect(decodeClientFrame(encodeClientFrame(f, enc))).toEqual(f);
  });
});
