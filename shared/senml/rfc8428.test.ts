import { describe, expect, it } from 'vitest';
import { CBOR_LABEL, decodeSenmlCbor, decodeSenmlJson, encodeSenmlCbor, type SenmlRecord } from './index';
import { cbor, hex, jsonPackToCbor } from './vectors/cbor';
import { NOW, RESOLVED_5_1_4, RFC_CBOR_DUMP_HEX, RFC_EXAMPLES } from './vectors/rfc8428';

const examples = RFC_EXAMPLES.map((ex) => [`${ex.section} ${ex.title}`, ex] as const);

describe('RFC 8428 examples, JSON', () => {
  it.each(examples)('%s', (_title, ex) => {
    expect(decodeSenmlJson(ex.json, NOW)).toStrictEqual(ex.expected);
  });

  it.each(examples)('%s (as UTF-8 bytes)', (_title, ex) => {
    expect(decodeSenmlJson(new TextEncoder().encode(ex.json), NOW)).toStrictEqual(ex.expected);
  });
});

describe('RFC 8428 examples, CBOR with integer labels', () => {
  it.each(examples)('%s', (_title, ex) => {
    const bytes = jsonPackToCbor(JSON.parse(ex.json));
    expect(decodeSenmlCbor(bytes, NOW)).toStrictEqual(ex.expected);
  });
});

describe('RFC 8428 §6 CBOR dump', () => {
  const dump = hex(RFC_CBOR_DUMP_HEX);
  const json = RFC_EXAMPLES.find((ex) => ex.json.includes('"bver":5'));

  it('is the 195-byte dump of the RFC', () => {
    expect(dump.length).toBe(0xc3);
  });

  it('decodes to the same records as its JSON form', () => {
    expect(json).toBeDefined();
    expect(decodeSenmlCbor(dump, NOW)).toStrictEqual(json?.expected);
  });

  it('reads the half-precision float 1.5 (f9 3e 00)', () => {
    const records = decodeSenmlCbor(dump, NOW);
    expect(records.map((r) => r.value)).toContain(1.5);
  });
});

describe('RFC 8428 §6 Table 4 labels', () => {
  it.each([
    ['bver', -1], ['bn', -2], ['bt', -3], ['bu', -4], ['bv', -5], ['bs', -6],
    ['n', 0], ['u', 1], ['v', 2], ['vs', 3], ['vb', 4], ['s', 5], ['t', 6], ['ut', 7], ['vd', 8],
  ])('%s is %i', (label, key) => {
    expect((CBOR_LABEL as Record<string, number>)[label]).toBe(key);
  });

  it('has exactly the 15 labels of the RFC', () => {
    expect(Object.keys(CBOR_LABEL)).toHaveLength(15);
  });

  it('decodes every label from its integer key', () => {
    const pack = [
      new Map<number, unknown>([[-1, 10], [-2, 'dev:'], [-3, 1_600_000_000], [-4, 'W'], [-5, 100], [-6, 1000], [0, 'power'], [2, 5], [5, 7], [6, 30], [7, 60]]),
      new Map<number, unknown>([[0, 'label'], [1, 'x'], [3, 'hello'], [6, 31]]),
      new Map<number, unknown>([[0, 'door'], [4, true], [6, 32]]),
      new Map<number, unknown>([[0, 'blob'], [8, new Uint8Array([104, 105, 32, 10])], [6, 33]]),
    ];
    expect(decodeSenmlCbor(cbor(pack), NOW)).toStrictEqual<SenmlRecord[]>([
      { name: 'dev:power', time: 1_600_000_030, unit: 'W', value: 105, sum: 1007, updateTime: 60 },
      { name: 'dev:label', time: 1_600_000_031, unit: 'x', stringValue: 'hello', sum: 1000 },
      { name: 'dev:door', time: 1_600_000_032, unit: 'W', boolValue: true, sum: 1000 },
      { name: 'dev:blob', time: 1_600_000_033, unit: 'W', dataValue: 'aGkgCg', sum: 1000 },
    ]);
  });

  it('encodes resolved records with the integer keys in ascending order', () => {
    const bytes = encodeSenmlCbor([{ name: 'a', time: 2 ** 28, unit: 'W', value: 1.5, sum: 2, updateTime: 3 }]);
    // [{0: "a", 1: "W", 2: 1.5, 5: 2, 6: 268435456, 7: 3}]
    expect(bytes).toStrictEqual(hex('81 a6 00 61 61 01 61 57 02 fb 3f f8 00 00 00 00 00 00 05 02 06 1a 10 00 00 00 07 03'));
    const data = encodeSenmlCbor([{ name: 'b', time: 2 ** 28, dataValue: 'aGkgCg' }]);
    // [{0: "b", 6: 268435456, 8: h'6869200a'}]
    expect(data).toStrictEqual(hex('81 a3 00 61 62 06 1a 10 00 00 00 08 44 68 69 20 0a'));
  });

  it('§5.1.4: the resolved example decodes to itself', () => {
    const parsed = JSON.parse(RESOLVED_5_1_4) as { n: string; u: string; t: number; v: number }[];
    expect(decodeSenmlJson(RESOLVED_5_1_4, NOW)).toStrictEqual(parsed.map((r) => ({ name: r.n, time: r.t, unit: r.u, value: r.v })));
  });
});
