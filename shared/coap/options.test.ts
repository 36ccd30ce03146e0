import { describe, expect, it } from 'vitest';
import { CoapFormatError, decode, encode, type CoapMessage, type CoapOption } from './codec';
import { Code, Opt, Type, contentFormatOf, contentTypeOf, isCritical, isNoCacheKey, isUnsafe } from './constants';
import {
  accept, block1, block2, blockOption, blockSize, contentFormat, decodeBlock, decodeUint, encodeBlock, encodeUint, etags, locationPath, locationPathOptions,
  maxAge, observe, queryParams, recognizedOptions, size1, size2, stringOption, szxFor, uintOption, unrecognizedCritical, uriPath, uriPathOptions, uriQuery, uriQueryOptions,
} from './options';

const msg = (options: CoapOption[]): CoapMessage => ({ type: Type.CON, code: Code.GET, messageId: 1, token: new Uint8Array(), options, payload: new Uint8Array() });

describe('uint option values (RFC 7252 §3.2)', () => {
  const table: [number, number[]][] = [
    [0, []],
    [1, [1]],
    [255, [0xff]],
    [256, [1, 0]],
    [65535, [0xff, 0xff]],
    [0x10000, [1, 0, 0]],
    [0xffffff, [0xff, 0xff, 0xff]],
    [0xffffffff, [0xff, 0xff, 0xff, 0xff]],
  ];
  for (const [n, wire] of table) {
    it(`${n} ⇄ [${wire.join(',')}] (minimal length)`, () => {
      expect([...encodeUint(n)]).toEqual(wire);
      expect(decodeUint(Uint8Array.from(wire))).toBe(n);
    });
  }
  it('tolerates leading zeros on receipt, refuses more than 4 bytes and out-of-range values', () => {
    expect(decodeUint(Uint8Array.of(0, 0, 5))).toBe(5);
    expect(() => decodeUint(new Uint8Array(5))).toThrow(CoapFormatError);
    expect(() => encodeUint(-1)).toThrow(CoapFormatError);
    expect(() => encodeUint(2 ** 32)).toThrow(CoapFormatError);
    expect(() => encodeUint(1.5)).toThrow(CoapFormatError);
  });
});

describe('Block options (RFC 7959 §2.2)', () => {
  const table: [string, { num: number; more: boolean; szx: number }, number[]][] = [
    ['NUM 0, M 0, 16 bytes', { num: 0, more: false, szx: 0 }, []],
    ['NUM 0, M 1, 1024 bytes', { num: 0, more: true, szx: 6 }, [0x0e]],
    ['NUM 1, M 0, 1024 bytes', { num: 1, more: false, szx: 6 }, [0x16]],
    ['NUM 15, M 1, 64 bytes', { num: 15, more: true, szx: 2 }, [0xfa]],
    ['NUM 16 (two bytes)', { num: 16, more: false, szx: 6 }, [0x01, 0x06]],
    ['NUM 4095 (largest in 2 bytes)', { num: 4095, more: true, szx: 4 }, [0xff, 0xfc]],
    ['NUM 4096 (three bytes)', { num: 4096, more: false, szx: 0 }, [0x01, 0x00, 0x00]],
    ['NUM 2^20 − 1 (largest)', { num: 0xfffff, more: true, szx: 6 }, [0xff, 0xff, 0xfe]],
  ];
  for (const [name, block, wire] of table) {
    it(name, () => {
      expect([...encodeBlock(block)]).toEqual(wire);
      expect(decodeBlock(Uint8Array.from(wire))).toEqual(block);
    });
  }
  it('SZX 7 is reserved; NUM over 20 bits and 4-byte values are refused', () => {
    expect(() => decodeBlock(Uint8Array.of(0x07))).toThrow(/SZX 7/);
    expect(() => decodeBlock(new Uint8Array(4))).toThrow(CoapFormatError);
    expect(() => encodeBlock({ num: 0x100000, more: false, szx: 0 })).toThrow(CoapFormatError);
    expect(() => encodeBlock({ num: 0, more: false, szx: 7 })).toThrow(CoapFormatError);
  });
  it('sizes: 2^(SZX+4), and the SZX for a byte budget', () => {
    expect([0, 1, 2, 3, 4, 5, 6].map(blockSize)).toEqual([16, 32, 64, 128, 256, 512, 1024]);
    expect([1, 16, 31, 32, 1000, 1024, 1152, 4096].map(szxFor)).toEqual([0, 0, 0, 1, 5, 6, 6, 6]);
  });
});

describe('typed option helpers', () => {
  it('reads and writes every option Edgeflux uses', () => {
    const m = msg([
      ...uriPathOptions(['channels', 'c 1', 'messages']),
      ...uriQueryOptions(['auth=k=v', 'retain']),
      ...locationPathOptions(['x']),
      uintOption(Opt.ContentFormat, 110),
      uintOption(Opt.Accept, 60),
      uintOption(Opt.Observe, 0xabcdef),
      uintOption(Opt.MaxAge, 3600),
      uintOption(Opt.Size1, 65536),
      uintOption(Opt.Size2, 2000),
      { number: Opt.ETag, value: Uint8Array.of(1, 2) },
      blockOption(Opt.Block1, { num: 3, more: true, szx: 5 }),
      blockOption(Opt.Block2, { num: 0, more: false, szx: 2 }),
    ]);
    const back = decode(encode(m));
    expect(uriPath(back)).toEqual(['channels', 'c 1', 'messages']);
    expect(uriQuery(back)).toEqual(['auth=k=v', 'retain']);
    expect(queryParams(back)).toEqual(new Map([['auth', 'k=v'], ['retain', '']]));
    expect(locationPath(back)).toEqual(['x']);
    expect([contentFormat(back), accept(back), observe(back), maxAge(back), size1(back), size2(back)]).toEqual([110, 60, 0xabcdef, 3600, 65536, 2000]);
    expect(etags(back)).toEqual([Uint8Array.of(1, 2)]);
    expect(block1(back)).toEqual({ num: 3, more: true, szx: 5 });
    expect(block2(back)).toEqual({ num: 0, more: false, szx: 2 });
    expect(observe(msg([]))).toBeUndefined();
  });

  it('Content-Format map (RFC 7252 §12.3, RFC 8428) both ways', () => {
    const table: [number, string][] = [
      [0, 'text/plain; charset=utf-8'], // RFC 7252 §12.3's string, what WebSocket and MQTT 5 text are stored as too
      [42, 'application/octet-stream'],
      [50, 'application/json'],
      [60, 'application/cbor'],
      [110, 'application/senml+json'],
      [112, 'application/senml+cbor'],
    ];
    for (const [n, t] of table) {
      expect(contentTypeOf(n)).toBe(t);
      expect(contentFormatOf(t)).toBe(n);
    }
    expect(contentFormatOf('text/plain')).toBe(0);
    expect(contentFormatOf('text/plain;charset=utf-8')).toBe(0);
    expect(contentFormatOf('Text/Plain; charset="UTF-8"')).toBe(0);
    expect(contentFormatOf('text/plain; charset=iso-8859-1')).toBeUndefined();
    expect(contentFormatOf('APPLICATION/JSON')).toBe(50);
    // JSON is UTF-8 by definition: the charset HTTP clients add says nothing (RFC 8259 §8.1, §11).
    expect(contentFormatOf('application/json; charset=utf-8')).toBe(50);
    expect(contentFormatOf('application/senml+json;charset="UTF-8"')).toBe(110);
    expect(contentFormatOf('application/json; charset=iso-8859-1')).toBeUndefined();
    expect(contentFormatOf('application/json; profile=x')).toBeUndefined();
    // RFC 9110 §5.6.6: parameter = name "=" value, nothing around the "=" (nor an unclosed quote).
    for (const t of ['text/plain; charset = utf-8', 'application/json; charset= utf-8', 'application/json; charset="utf-8'])
      expect(contentFormatOf(t), t).toBeUndefined();
    expect(contentFormatOf('application/cbor; charset=utf-8')).toBeUndefined();
    expect(contentFormatOf('text/csv')).toBeUndefined();
    expect(contentTypeOf(9999)).toBeUndefined();
  });
});

describe('option classes (RFC 7252 §5.4.1, §5.4.6)', () => {
  it('critical = odd, unsafe = bit 1, NoCacheKey = 0x1c pattern', () => {
    expect([Opt.UriPath, Opt.UriQuery, Opt.Accept, Opt.Block1, Opt.Block2, Opt.IfMatch].every(isCritical)).toBe(true);
    expect([Opt.ContentFormat, Opt.Observe, Opt.ETag, Opt.MaxAge, Opt.Size1, Opt.Size2].some(isCritical)).toBe(false);
    expect(isUnsafe(Opt.UriHost)).toBe(true);
    expect(isUnsafe(Opt.ETag)).toBe(false);
    expect(isNoCacheKey(Opt.Size1)).toBe(true);
    expect(isNoCacheKey(Opt.Size2)).toBe(true);
    expect(isNoCacheKey(Opt.UriPath)).toBe(false);
  });

  const known = new Set<number>([Opt.UriPath, Opt.UriQuery, Opt.UriHost, Opt.ContentFormat, Opt.Observe]);
  const table: [string, CoapOption[], number | undefined, number[]][] = [
    ['all known', [stringOption(Opt.UriPath, 'a'), uintOption(Opt.ContentFormat, 50)], undefined, [Opt.UriPath, Opt.ContentFormat]],
    ['unknown critical 9', [{ number: 9, value: new Uint8Array() }], 9, []],
    ['unknown critical 65001', [{ number: 65001, value: new Uint8Array() }], 65001, []],
    ['known but unsupported critical (If-Match)', [{ number: Opt.IfMatch, value: new Uint8Array() }], Opt.IfMatch, []],
    ['unknown elective 10 is ignored', [{ number: 10, value: new Uint8Array(1) }], undefined, []],
    ['unknown elective 258 (No-Response) is ignored', [uintOption(258, 2)], undefined, []],
    ['repeated non-repeatable critical (Uri-Host twice)', [stringOption(Opt.UriHost, 'a'), stringOption(Opt.UriHost, 'b')], Opt.UriHost, [Opt.UriHost]],
    ['repeated non-repeatable elective keeps the first', [uintOption(Opt.ContentFormat, 50), uintOption(Opt.ContentFormat, 0)], undefined, [Opt.ContentFormat]],
    ['critical with a length out of range (Uri-Path of 256)', [{ number: Opt.UriPath, value: new Uint8Array(256) }], Opt.UriPath, []],
    ['critical with a length out of range (empty Uri-Host)', [{ number: Opt.UriHost, value: new Uint8Array() }], Opt.UriHost, []],
    ['elective with a length out of range (Content-Format of 3 bytes) is ignored', [{ number: Opt.ContentFormat, value: new Uint8Array(3) }], undefined, []],
  ];
  for (const [name, options, bad, kept] of table) {
    it(name, () => {
      expect(unrecognizedCritical(msg(options), known)).toBe(bad);
      if (bad === undefined) expect(recognizedOptions(msg(options), known).map((o) => o.number)).toEqual(kept);
    });
  }
});
