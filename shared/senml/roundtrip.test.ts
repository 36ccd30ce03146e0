import { describe, expect, it } from 'vitest';
import { SenmlError, decodeSenmlCbor, decodeSenmlJson, encodeSenmlCbor, encodeSenmlJson, type SenmlRecord } from './index';
import { NOW, RFC_EXAMPLES } from './vectors/rfc8428';

const T = 1_700_000_123.25;

const packs: [string, SenmlRecord[]][] = [
  ['one numeric value', [{ name: 'urn:dev:ow:10e2073a01080063', time: T, unit: 'Cel', value: 23.1 }]],
  ['every field', [{ name: 'dev/power', time: T, unit: 'W', value: -0.5, sum: 1e9, updateTime: 60 }]],
  ['sum only', [{ name: 'meter', time: T, unit: 'J', sum: 123456.789 }]],
  ['string values, empty and unicode', [
    { name: 'a', time: T, stringValue: '' },
    { name: 'b', time: T, stringValue: 'Machine Room — 机房 🚀 "quoted" \\ \n' },
  ]],
  ['booleans', [{ name: 'open', time: T, boolValue: false }, { name: 'closed', time: T + 1, boolValue: true }]],
  ['data of every length mod 3', ['', 'AA', 'AAE', 'AAEC', 'aGkgCg', '_-_-', 'AAECAwQ'].map((dataValue, k) => ({ name: `d${k}`, time: T + k, dataValue }))],
  ['extreme numbers', [
    { name: 'frac', time: 2 ** 28 + 0.000001, value: 0.1 },
    { name: 'tiny', time: T, value: 5e-324 },
    { name: 'huge', time: T, value: -1.7976931348623157e308 },
    { name: 'int', time: T, value: 2 ** 53 },
    { name: 'neg', time: T, value: -(2 ** 31) - 1 },
    { name: 'far', time: 4_102_444_800.5, value: 1e21 },
  ]],
  ['many records in time order', Array.from({ length: 50 }, (_, k) => ({ name: `s${k % 7}`, time: T + k / 10, value: k * 1.1 }))],
];

describe('round trips: decode(encode(records)) equals records', () => {
  it.each(packs)('JSON: %s', (_title, records) => {
    expect(decodeSenmlJson(encodeSenmlJson(records), NOW)).toStrictEqual(records);
  });

  it.each(packs)('CBOR: %s', (_title, records) => {
    expect(decodeSenmlCbor(encodeSenmlCbor(records), NOW)).toStrictEqual(records);
  });

  it.each(RFC_EXAMPLES.map((ex) => [`${ex.section} ${ex.title}`, ex.expected] as const))('RFC %s, through JSON and CBOR', (_title, records) => {
    expect(decodeSenmlJson(encodeSenmlJson(records), NOW)).toStrictEqual(records);
    expect(decodeSenmlCbor(encodeSenmlCbor(records), NOW)).toStrictEqual(records);
  });
});

it('decoding puts records that were not in time order into time order', () => {
  const records: SenmlRecord[] = [{ name: 'late', time: T + 1, value: 1 }, { name: 'early', time: T, value: 2 }];
  expect(decodeSenmlJson(encodeSenmlJson(records), NOW)).toStrictEqual([records[1], records[0]]);
});

describe('encoded form', () => {
  it('JSON uses only resolved labels', () => {
    expect(encodeSenmlJson([
      { name: 'a', time: 2 ** 28, unit: 'W', value: 1.5, sum: 2, updateTime: 3 },
      { name: 'b', time: 2 ** 28, dataValue: 'aGk' },
    ])).toBe('[{"n":"a","t":268435456,"u":"W","v":1.5,"s":2,"ut":3},{"n":"b","t":268435456,"vd":"aGk"}]');
  });

  it('CBOR output is a fresh Uint8Array each call', () => {
    const first = encodeSenmlCbor([{ name: 'a', time: 2 ** 28, value: 1 }]);
    const copy = first.slice();
    encodeSenmlCbor([{ name: 'bbbbbbbbbbbbbbbbbbbb', time: 2 ** 29, value: 2 }]);
    expect(first).toStrictEqual(copy);
    expect(Object.getPrototypeOf(first)).toBe(Uint8Array.prototype);
  });
});

describe('encoding refuses records that are not resolved and valid', () => {
  const ok: SenmlRecord = { name: 'a', time: T, value: 1 };
  it.each<[string, unknown[], number, string | null, RegExp]>([
    ['an empty pack', [], -1, null, /^pack: is empty/],
    ['a bad name', [ok, { ...ok, name: 'a b' }], 1, 'n', /^record 1: field 'n' .*" " at position 1/],
    ['an empty name', [{ ...ok, name: '' }], 0, 'n', /empty name/],
    ['a relative time', [{ ...ok, time: 5 }], 0, 't', /must be an absolute time/],
    ['a non-finite time', [{ ...ok, time: Number.POSITIVE_INFINITY }], 0, 't', /finite number/],
    ['no value and no sum', [{ name: 'a', time: T }], 0, null, /has no value/],
    ['two values', [{ ...ok, stringValue: 'x' }], 0, null, /more than one of value/],
    ['a NaN value', [{ ...ok, value: Number.NaN }], 0, 'v', /finite number, got NaN/],
    ['bad data', [{ name: 'a', time: T, dataValue: 'aGk=' }], 0, 'vd', /base64url without padding/],
    ['an empty unit', [{ ...ok, unit: '' }], 0, 'u', /non-empty string/],
    ['a string sum', [{ ...ok, sum: '1' }], 0, 's', /finite number/],
    ['a non-record', [null], 0, null, /must be a record object/],
  ])('%s', (_title, records, index, field, message) => {
    for (const encode of [encodeSenmlJson, encodeSenmlCbor]) {
      let error: unknown;
      try {
        encode(records as SenmlRecord[]);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(SenmlError);
      const senml = error as SenmlError;
      expect(senml.message).toMatch(message);
      expect([senml.index, senml.field]).toStrictEqual([index, field]);
    }
  });
});
