import { describe, expect, it } from 'vitest';
import { CoapFormatError, decode, decodeHeader, encode, type CoapMessage, type CoapOption } from './codec';
import { Code, Opt, Type, code, codeString } from './constants';

// Table-driven as in mqtt-packet's test.js: every message is parsed, generated and round-tripped.
const bytes = (...parts: (number | string | number[])[]): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === 'number' ? [p] : typeof p === 'string' ? [...new TextEncoder().encode(p)] : p)));
const opt = (number: number, value: Uint8Array | string | number[] = []): CoapOption => ({
  number,
  value: typeof value === 'string' ? new TextEncoder().encode(value) : Uint8Array.from(value),
});
const msg = (m: Partial<CoapMessage>): CoapMessage => ({ type: Type.CON, code: Code.GET, messageId: 0, token: new Uint8Array(), options: [], payload: new Uint8Array(), ...m });
const filled = (n: number, v = 0x61): number[] => new Array<number>(n).fill(v);

interface Case {
  name: string;
  message: CoapMessage;
  wire: Uint8Array;
}

const cases: Case[] = [
  // RFC 7252 Appendix A, Figure 16: a GET of /temperature and its piggybacked 2.05.
  { name: 'RFC 7252 A Fig. 16 request: CON GET /temperature', message: msg({ messageId: 0x7d34, options: [opt(Opt.UriPath, 'temperature')] }), wire: bytes(0x40, 0x01, 0x7d, 0x34, 0xbb, 'temperature') },
  { name: 'RFC 7252 A Fig. 16 response: ACK 2.05 "22.3 C"', message: msg({ type: Type.ACK, code: Code.Content, messageId: 0x7d34, payload: bytes('22.3 C') }), wire: bytes(0x60, 0x45, 0x7d, 0x34, 0xff, '22.3 C') },
  // RFC 7252 Appendix A, Figure 19: with a token.
  { name: 'RFC 7252 A Fig. 19: token 0x20', message: msg({ messageId: 0x7d35, token: bytes(0x20), options: [opt(Opt.UriPath, 'temperature')] }), wire: bytes(0x41, 0x01, 0x7d, 0x35, 0x20, 0xbb, 'temperature') },
  { name: 'empty CON (CoAP ping, §4.3)', message: msg({ code: Code.Empty, messageId: 0x1234 }), wire: bytes(0x40, 0x00, 0x12, 0x34) },
  { name: 'empty ACK', message: msg({ type: Type.ACK, code: Code.Empty, messageId: 0xffff }), wire: bytes(0x60, 0x00, 0xff, 0xff) },
  { name: 'RST', message: msg({ type: Type.RST, code: Code.Empty, messageId: 1 }), wire: bytes(0x70, 0x00, 0x00, 0x01) },
  { name: 'NON POST with an 8-byte token and a payload', message: msg({ type: Type.NON, code: Code.POST, messageId: 7, token: bytes(1, 2, 3, 4, 5, 6, 7, 8), payload: bytes('x') }), wire: bytes(0x58, 0x02, 0x00, 0x07, 1, 2, 3, 4, 5, 6, 7, 8, 0xff, 'x') },
  { name: 'response code 4.29 (RFC 8516)', message: msg({ type: Type.ACK, code: Code.TooManyRequests, options: [opt(Opt.MaxAge, [5])] }), wire: bytes(0x60, 0x9d, 0, 0, 0xd1, 0x01, 5) },
  // Delta and length in the nibble (0..12).
  { name: 'delta 1 (If-Match), empty value', message: msg({ options: [opt(Opt.IfMatch)] }), wire: bytes(0x40, 1, 0, 0, 0x10) },
  { name: 'delta 6: Observe register (uint 0 = empty)', message: msg({ options: [opt(Opt.Observe)] }), wire: bytes(0x40, 1, 0, 0, 0x60) },
  { name: 'delta 12: Content-Format 50', message: msg({ options: [opt(Opt.ContentFormat, [50])] }), wire: bytes(0x40, 1, 0, 0, 0xc1, 50) },
  { name: 'length 12', message: msg({ options: [opt(Opt.UriPath, 'abcdefghijkl')] }), wire: bytes(0x40, 1, 0, 0, 0xbc, 'abcdefghijkl') },
  // 13: one extension byte, value − 13.
  { name: 'delta 13 (unknown critical option 13)', message: msg({ options: [opt(13)] }), wire: bytes(0x40, 1, 0, 0, 0xd0, 0x00) },
  { name: 'delta 268 (largest one-byte extension)', message: msg({ options: [opt(268)] }), wire: bytes(0x40, 1, 0, 0, 0xd0, 0xff) },
  { name: 'length 13', message: msg({ options: [opt(Opt.UriPath, filled(13))] }), wire: bytes(0x40, 1, 0, 0, 0xbd, 0x00, filled(13)) },
  { name: 'length 255 (largest Uri-Path)', message: msg({ options: [opt(Opt.UriPath, filled(255))] }), wire: bytes(0x40, 1, 0, 0, 0xbd, 242, filled(255)) },
  { name: 'Size1 60: delta 13 + 47', message: msg({ options: [opt(Opt.Size1, [0x04, 0x00])] }), wire: bytes(0x40, 1, 0, 0, 0xd2, 47, 0x04, 0x00) },
  // 14: two extension bytes, value − 269.
  { name: 'delta 269', message: msg({ options: [opt(269)] }), wire: bytes(0x40, 1, 0, 0, 0xe0, 0x00, 0x00) },
  { name: 'delta 65535 (largest option number)', message: msg({ options: [opt(65535)] }), wire: bytes(0x40, 1, 0, 0, 0xe0, 0xfe, 0xf2) },
  { name: 'length 269', message: msg({ options: [opt(Opt.ProxyUri, filled(269))] }), wire: bytes(0x40, 1, 0, 0, 0xde, 22, 0x00, 0x00, filled(269)) },
  { name: 'length 1034 (largest Proxy-Uri)', message: msg({ options: [opt(Opt.ProxyUri, filled(1034))] }), wire: bytes(0x40, 1, 0, 0, 0xde, 22, 0x02, 0xfd, filled(1034)) },
  { name: 'delta 14-ext and length 13-ext together', message: msg({ options: [opt(300, filled(20))] }), wire: bytes(0x40, 1, 0, 0, 0xed, 0x00, 31, 7, filled(20)) },
  // Repeated options: delta 0 after the first.
  { name: 'repeated Uri-Path a/b/c', message: msg({ options: [opt(Opt.UriPath, 'a'), opt(Opt.UriPath, 'b'), opt(Opt.UriPath, 'c')] }), wire: bytes(0x40, 1, 0, 0, 0xb1, 'a', 0x01, 'b', 0x01, 'c') },
  { name: 'repeated empty Uri-Path (trailing slash)', message: msg({ options: [opt(Opt.UriPath, 'a'), opt(Opt.UriPath)] }), wire: bytes(0x40, 1, 0, 0, 0xb1, 'a', 0x00) },
  {
    name: 'a full observe registration: path, query, Observe, Accept, Block2',
    message: msg({
      messageId: 0xbeef,
      token: bytes(0xca, 0xfe),
      options: [opt(Opt.Observe), opt(Opt.UriPath, 'channels'), opt(Opt.UriPath, 'c1'), opt(Opt.UriPath, 'messages'), opt(Opt.UriQuery, 'auth=k'), opt(Opt.Accept, [50]), opt(Opt.Block2, [0x06])],
    }),
    wire: bytes(0x42, 0x01, 0xbe, 0xef, 0xca, 0xfe, 0x60, 0x58, 'channels', 0x02, 'c1', 0x08, 'messages', 0x46, 'auth=k', 0x21, 50, 0x61, 0x06),
  },
];

describe('CoAP codec — table (RFC 7252 §3)', () => {
  for (const c of cases) {
    it(`decodes: ${c.name}`, () => expect(decode(c.wire)).toEqual(c.message));
    it(`encodes: ${c.name}`, () => expect(encode(c.message)).toEqual(c.wire));
    it(`round-trips: ${c.name}`, () => expect(decode(encode(decode(c.wire)))).toEqual(c.message));
  }
});

describe('CoAP codec — format errors (only CoapFormatError)', () => {
  const errors: [string, Uint8Array, RegExp][] = [
    ['shorter than the header', bytes(0x40, 0x01, 0x00), /4-byte header/],
    ['version 0', bytes(0x00, 0x01, 0, 0), /version 0/],
    ['version 2', bytes(0x80, 0x01, 0, 0), /version 2/],
    ['token length 9 (reserved)', bytes(0x49, 0x01, 0, 0, filled(9)), /token length 9/],
    ['token length 15 (reserved)', bytes(0x4f, 0x01, 0, 0, filled(15)), /token length 15/],
    ['truncated token', bytes(0x44, 0x01, 0, 0, 1, 2), /truncated token/],
    ['option delta 15 that is not the payload marker', bytes(0x40, 0x01, 0, 0, 0xf0), /delta 15/],
    ['option length 15', bytes(0x40, 0x01, 0, 0, 0xbf), /length 15/],
    ['truncated delta extension (13)', bytes(0x40, 0x01, 0, 0, 0xd0), /truncated option delta/],
    ['truncated delta extension (14)', bytes(0x40, 0x01, 0, 0, 0xe0, 0x00), /truncated option delta/],
    ['truncated length extension (13)', bytes(0x40, 0x01, 0, 0, 0xbd), /truncated option length/],
    ['truncated length extension (14)', bytes(0x40, 0x01, 0, 0, 0xbe, 0x01), /truncated option length/],
    ['option value past the end', bytes(0x40, 0x01, 0, 0, 0xb5, 'ab'), /past the end/],
    ['payload marker with an empty payload', bytes(0x40, 0x02, 0, 0, 0xff), /empty payload/],
    ['option number over 65535', bytes(0x40, 0x01, 0, 0, 0xe0, 0xfe, 0xf2, 0x10), /exceeds 65535/],
    ['empty message with a token (§4.1)', bytes(0x41, 0x00, 0, 0, 0x01), /empty message/],
    ['empty message with a payload (§4.1)', bytes(0x40, 0x00, 0, 0, 0xff, 0x01), /empty message/],
  ];
  for (const [name, wire, message] of errors) {
    it(name, () => {
      expect(() => decode(wire)).toThrow(CoapFormatError);
      expect(() => decode(wire)).toThrow(message);
    });
  }

  it('encode refuses what cannot be on the wire', () => {
    expect(() => encode(msg({ token: new Uint8Array(9) }))).toThrow(CoapFormatError);
    expect(() => encode(msg({ messageId: 0x10000 }))).toThrow(CoapFormatError);
    expect(() => encode(msg({ options: [opt(0x10000)] }))).toThrow(CoapFormatError);
    expect(() => encode(msg({ code: Code.Empty, payload: bytes(1) }))).toThrow(CoapFormatError);
    expect(() => encode(msg({ code: 256 }))).toThrow(CoapFormatError);
  });

  it('decodeHeader reads the fixed header of a datagram that does not decode', () => {
    expect(decodeHeader(bytes(0x4f, 0x02, 0x12, 0x34))).toEqual({ version: 1, type: Type.CON, tokenLength: 15, code: Code.POST, messageId: 0x1234 });
    expect(decodeHeader(bytes(0x40))).toBeNull();
  });
});

describe('CoAP codec — encoding rules', () => {
  it('sorts options by number and keeps the order of repeated values (§3.1)', () => {
    const m = msg({ options: [opt(Opt.UriQuery, 'q'), opt(Opt.UriPath, 'b'), opt(Opt.Observe), opt(Opt.UriPath, 'c')] });
    expect(encode(m)).toEqual(bytes(0x40, 1, 0, 0, 0x60, 0x51, 'b', 0x01, 'c', 0x41, 'q'));
    expect(decode(encode(m)).options.map((o) => o.number)).toEqual([Opt.Observe, Opt.UriPath, Opt.UriPath, Opt.UriQuery]);
  });

  it('writes codes as class.detail', () => {
    expect(codeString(Code.Content)).toBe('2.05');
    expect(codeString(Code.Continue)).toBe('2.31');
    expect(codeString(Code.TooManyRequests)).toBe('4.29');
    expect(code(5, 3)).toBe(Code.ServiceUnavailable);
  });
});
