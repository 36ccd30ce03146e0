import { describe, expect, it } from 'vitest';
import { decodeSenmlCbor, decodeSenmlJson, type SenmlRecord } from './index';
import { jsonPackToCbor } from './vectors/cbor';

const NOW = 1_700_000_000;
const T28 = 2 ** 28;

/** Decode a JSON-labelled pack both as JSON and as CBOR; both must agree. */
function resolve(pack: unknown[], now = NOW): SenmlRecord[] {
  const fromJson = decodeSenmlJson(JSON.stringify(pack), now);
  expect(decodeSenmlCbor(jsonPackToCbor(pack), now)).toStrictEqual(fromJson);
  return fromJson;
}

describe('relative time (RFC 8428 §4.5.3)', () => {
  it.each<[string, Record<string, number>, number]>([
    ['no t and no bt is now', {}, NOW],
    ['negative t is in the past', { t: -5 }, NOW - 5],
    ['positive t below 2**28 is in the future', { t: 0.1 }, NOW + 0.1],
    ['2**28 - 1 is still relative', { t: T28 - 1 }, NOW + T28 - 1],
    ['2**28 is absolute', { t: T28 }, T28],
    ['relative bt plus t', { bt: 100, t: -50 }, NOW + 50],
    ['bt + t reaching 2**28 is absolute', { bt: T28 - 10, t: 10 }, T28],
    ['absolute bt with negative t', { bt: 1_600_000_000, t: -60 }, 1_599_999_940],
    ['a large negative t', { t: -1e9 }, NOW - 1e9],
  ])('%s', (_title, fields, time) => {
    expect(resolve([{ n: 'a', v: 1, ...fields }])[0]?.time).toBe(time);
  });

  it('uses the injected now, not the clock', () => {
    expect(resolve([{ n: 'a', v: 1 }], 1234.5)[0]?.time).toBe(1234.5);
  });

  it('defaults now to the wall clock in seconds', () => {
    const before = Date.now() / 1000;
    const [rec] = decodeSenmlJson('[{"n":"a","v":1,"t":-1}]');
    expect(rec?.time).toBeGreaterThanOrEqual(before - 1.001);
    expect(rec?.time).toBeLessThanOrEqual(Date.now() / 1000);
  });
});

describe('base fields (RFC 8428 §4.1, §4.5)', () => {
  it('bn, bt and bu apply to their record and every later one until changed', () => {
    expect(resolve([
      { bn: 'a:', bt: 1_600_000_000, bu: 'W', n: 'x', v: 1 },
      { n: 'y', v: 2, t: 1 },
      { bn: 'b:', n: 'x', v: 3 },
      { bu: 'A', n: 'y', v: 4, u: 'V' },
      { n: 'z', v: 5 },
    ])).toStrictEqual<SenmlRecord[]>([
      { name: 'a:x', time: 1_600_000_000, unit: 'W', value: 1 },
      { name: 'b:x', time: 1_600_000_000, unit: 'W', value: 3 },
      { name: 'b:y', time: 1_600_000_000, unit: 'V', value: 4 },
      { name: 'b:z', time: 1_600_000_000, unit: 'A', value: 5 },
      { name: 'a:y', time: 1_600_000_001, unit: 'W', value: 2 },
    ]);
  });

  it('bv is carried forward and added to every later v, and to v only', () => {
    expect(resolve([
      { bn: 'm', bv: 10, v: 1 },
      { v: 2 },
      { vs: 'text' },
      { bv: 0.5, v: 3 },
    ]).map((r) => r.value ?? r.stringValue)).toStrictEqual([11, 12, 'text', 3.5]);
  });

  it('bs is added to s, and gives every later record a sum (RFC 8428 §4.5.4)', () => {
    expect(resolve([
      { bn: 'meter', bs: 100, s: 5, t: 1 },
      { t: 2 },
      { v: 7, t: 3 },
    ])).toStrictEqual<SenmlRecord[]>([
      { name: 'meter', time: NOW + 1, sum: 105 },
      { name: 'meter', time: NOW + 2, sum: 100 },
      { name: 'meter', time: NOW + 3, value: 7, sum: 100 },
    ]);
  });

  it('keeps both a value and a sum when a record has both (RFC 8428 §4.2, §10)', () => {
    expect(resolve([{ n: 'power', u: 'W', v: 230, s: 5000 }])).toStrictEqual([{ name: 'power', time: NOW, unit: 'W', value: 230, sum: 5000 }]);
  });

  it('an empty bn clears the base name; an empty unit means no unit', () => {
    expect(resolve([
      { bn: 'a:', n: 'x', v: 1, bu: 'W' },
      { bn: '', n: 'y', v: 2, u: '' },
    ])).toStrictEqual([{ name: 'a:x', time: NOW, unit: 'W', value: 1 }, { name: 'y', time: NOW, value: 2 }]);
  });

  it('a name may be all base name, or all name', () => {
    expect(resolve([{ bn: 'urn:dev:mac:0024befffe804ff1', v: 1 }, { bn: '', n: 'x', v: 2 }]).map((r) => r.name))
      .toStrictEqual(['urn:dev:mac:0024befffe804ff1', 'x']);
  });

  it('a record of base fields only resolves to nothing', () => {
    expect(resolve([{ bn: 'a:' }, { bt: 1_600_000_000, bu: 'W', bver: 10 }, { n: 'x', v: 1 }]))
      .toStrictEqual([{ name: 'a:x', time: 1_600_000_000, unit: 'W', value: 1 }]);
    expect(resolve([{ bn: 'a:' }])).toStrictEqual([]);
  });

  it('bver below 10 is accepted when every record agrees', () => {
    expect(resolve([{ bver: 5, n: 'a', v: 1 }, { bver: 5, n: 'b', v: 2 }, { n: 'c', v: 3 }])).toHaveLength(3);
    expect(resolve([{ n: 'a', v: 1 }, { bver: 10, n: 'b', v: 2 }])).toHaveLength(2);
  });

  it('unknown fields without a trailing "_" are ignored (RFC 8428 §4.4)', () => {
    expect(resolve([{ n: 'a', v: 1, ct: '60', l: [{ href: 'x' }], bfoo: { deep: [1, [2, [3]]] }, x_y: 1 }]))
      .toStrictEqual([{ name: 'a', time: NOW, value: 1 }]);
    expect(decodeSenmlCbor(new Uint8Array([0x81, 0xa3, 0x00, 0x61, 0x61, 0x02, 0x01, 0x18, 0x63, 0x01]), NOW))
      .toStrictEqual([{ name: 'a', time: NOW, value: 1 }]); // integer label 99
  });

  it('resolved records come out in chronological order, stable for equal times (RFC 8428 §4.6)', () => {
    expect(resolve([
      { bt: 1_600_000_000, n: 'c', v: 1, t: 20 },
      { n: 'a', v: 1, t: 10 },
      { n: 'd', v: 1, t: 20 },
      { n: 'b', v: 1, t: 10 },
    ]).map((r) => r.name)).toStrictEqual(['a', 'b', 'c', 'd']);
  });

  it('every allowed name character is accepted', () => {
    const name = 'ABCXYZabcxyz0189-:./_';
    expect(resolve([{ n: name, vb: true }])[0]?.name).toBe(name);
  });

  it('reads a decimal fraction (CBOR tag 4) as a number', () => {
    // [{0: "a", 2: 4([-2, 2345])}]
    expect(decodeSenmlCbor(new Uint8Array([0x81, 0xa2, 0x00, 0x61, 0x61, 0x02, 0xc4, 0x82, 0x21, 0x19, 0x09, 0x29]), NOW)[0]?.value).toBe(23.45);
  });

  it('accepts a self-described CBOR tag in front of the pack', () => {
    expect(decodeSenmlCbor(new Uint8Array([0xd9, 0xd9, 0xf7, 0x81, 0xa2, 0x00, 0x61, 0x61, 0x02, 0x01]), NOW)).toHaveLength(1);
  });

  it('drops a UTF-8 byte order mark in front of JSON', () => {
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode('[{"n":"a","v":1}]')]);
    expect(decodeSenmlJson(bytes, NOW)).toStrictEqual([{ name: 'a', time: NOW, value: 1 }]);
  });
});
