import { describe, expect, it } from 'vitest';
import {
  EnvelopeError,
  decodeEnvelopeJson,
  encodeEnvelopeJson,
  envelopeToJson,
  isTextualType,
  mediaType,
  mediaTypeProblem,
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

describe('mediaTypeProblem (RFC 9110 §8.3.1)', () => {
  const tchar = (c: string) => /^[!#$%&'*+.^_`|~0-9A-Za-z-]$/.test(c);
  /** A plain left-to-right reading of the grammar, to compare the regular expression with. */
  function reference(s: string): boolean {
    let i = 0;
    const token = () => {
      const start = i;
      while (i < s.length && tchar(s[i]!)) i++;
      return i > start;
    };
    const ows = () => {
      while (s[i] === ' ' || s[i] === '\t') i++;
    };
    const quoted = () => {
      if (s[i] !== '"') return false;
      for (i++; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (s[i] === '"') return (i++, true);
        if (s[i] === '\\') {
          const n = s.charCodeAt(++i);
          if (!(n === 9 || (n >= 0x20 && n <= 0x7e) || (n >= 0x80 && n <= 0xff))) return false;
        } else if (!(c === 9 || c === 0x20 || c === 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) || (c >= 0x80 && c <= 0xff))) return false;
      }
      return false;
    };
    if (!token() || s[i++] !== '/' || !token()) return false;
    for (;;) {
      ows();
      if (i === s.length) return true;
      if (s[i++] !== ';') return false;
      const mark = i;
      ows();
      if (i < s.length && tchar(s[i]!)) {
        // a parameter: token "=" ( token / quoted-string )
        if (!token() || s[i++] !== '=') return false;
        if (!token() && !quoted()) return false;
      } else i = mark; // none: the spaces are the next round's (or the end's)
    }
  }

  it('agrees with a plain reading of the grammar on random strings', () => {
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const alphabet = ['a', 'b', '/', ';', '=', ' ', '\t', '"', '\\', 'x', '\x01', 'é', '+', '-'];
    let valid = 0;
    for (let n = 0; n < 20_000; n++) {
      const s = n % 2 === 0 ? Array.from({ length: Math.floor(rand() * 24) }, () => alphabet[Math.floor(rand() * alphabet.length)]).join('') : `a/b${Array.from({ length: Math.floor(rand() * 20) }, () => alphabet[Math.floor(rand() * alphabet.length)]).join('')}`;
      const ok = mediaTypeProblem(s) === null;
      expect(ok, JSON.stringify(s)).toBe(reference(s));
      if (ok) valid++;
    }
    expect(valid).toBeGreaterThan(500);
  });

  it('refuses long runs of separators at once (no backtracking blow-up: this once took seconds at 56 characters)', () => {
    for (const s of ['a/b' + '; '.repeat(120) + '\x01', 'text/plain' + '; '.repeat(120) + 'x', 'a/b' + ' ;'.repeat(120) + '=', 'a/b;' + ' \t'.repeat(120) + '"']) expect(mediaTypeProblem(s)).not.toBeNull();
    expect(mediaTypeProblem('a/b' + '; '.repeat(120))).toBeNull();
  });
});
