import { describe, expect, it } from 'vitest';
import {
  EnvelopeError,
  decodeEnvelopeJson,
  encodeEnvelopeJson,
  envelopeToJson,
  isTextualType,
  mediaType,
  utf8Bytes,
  type Envelope,
} from './envelope';

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

describe('envelope JSON wire form', () => {
  it.each([
    ['text/plain', true],
    ['Text/Plain; charset=UTF-8', true],
    ['application/json', true],
    ['application/senml+json', true],
    ['application/vnd.api+json', true],
    ['application/xml', true],
    ['image/svg+xml', true],
    ['text/plain; charset=iso-8859-1', false],
    ['application/octet-stream', false],
    ['application/senml+cbor', false],
    ['image/png', false],
  ])('%s textual=%s', (ct, textual) => {
    expect(isTextualType(ct)).toBe(textual);
  });

  it('puts text payloads inline and binary ones in base64 with a marker', () => {
    const text = envelopeToJson(base('application/json', utf8Bytes('{"t":21.5,"ü":"ok"}')));
    expect(text.payload).toBe('{"t":21.5,"ü":"ok"}');
    expect(text.encoding).toBeUndefined();
    const bin = envelopeToJson(base('application/octet-stream', new Uint8Array([0, 255, 1])));
    expect(bin).toMatchObject({ payload: 'AP8B', encoding: 'base64' });
    // Declared text, but not UTF-8: kept lossless as base64.
    const bad = envelopeToJson(base('text/plain', new Uint8Array([0xff, 0xfe])));
    expect(bad.encoding).toBe('base64');
  });

  it.each([
    ['text', base('text/plain', utf8Bytes('hello'))],
    ['json', base('application/json', utf8Bytes('[1,2]'))],
    ['binary', base('application/octet-stream', new Uint8Array(Array.from({ length: 70_000 }, (_, i) => i % 256)))],
    ['empty', base('application/octet-stream', new Uint8Array())],
    ['invalid utf-8 text', base('text/plain', new Uint8Array([0xc3, 0x28]))],
  ])('round-trips %s', (_name, env) => {
    expect(decodeEnvelopeJson(encodeEnvelopeJson(env))).toEqual(env);
  });

  it.each([
    ['not json', 'nope'],
    ['array', '[]'],
    ['missing seq', JSON.stringify({ ...envelopeToJson(base('text/plain', utf8Bytes('x'))), seq: undefined })],
    ['bad protocol', JSON.stringify({ ...envelopeToJson(base('text/plain', utf8Bytes('x'))), protocol: 'amqp' })],
    ['bad encoding', JSON.stringify({ ...envelopeToJson(base('text/plain', utf8Bytes('x'))), encoding: 'hex' })],
    ['bad base64', JSON.stringify({ ...envelopeToJson(base('image/png', utf8Bytes('x'))), payload: '***' })],
  ])('refuses %s', (_name, text) => {
    expect(() => decodeEnvelopeJson(text)).toThrow(EnvelopeError);
  });

  it('normalises media types', () => {
    expect(mediaType(' Application/JSON ; charset=utf-8')).toBe('application/json');
  });
});
