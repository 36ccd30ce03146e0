import { describe, expect, it } from 'vitest';
import { SenmlError, decodeSenmlCbor, decodeSenmlJson } from './index';
import { cbor, hex, jsonPackToCbor } from './vectors/cbor';

const NOW = 1_700_000_000;

function caught(fn: () => unknown): SenmlError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(SenmlError);
    return error as SenmlError;
  }
  throw new Error('expected a SenmlError, but nothing was thrown');
}

// [title, pack (JSON value), record index, field, message pattern]; each is tried as JSON and,
// where the pack means the same in CBOR, as CBOR with integer labels.
type Case = [string, unknown, number, string | null, RegExp];

const both: Case[] = [
  ['not an array', { n: 'a', v: 1 }, -1, null, /^pack: must be a .*array/],
  ['empty pack', [], -1, null, /^pack: is empty/],
  ['record is not a map', [{ n: 'a', v: 1 }, 5], 1, null, /^record 1: must be a/],
  ['missing value', [{ n: 'a', v: 1 }, { n: 'b', v: 2 }, { n: 'c', t: 5 }], 2, null, /^record 2: has no value \('v', 'vs', 'vb' or 'vd'\) and no sum \('s'\)/],
  ['two values', [{ n: 'a', v: 1, vs: 'x' }], 0, 'vs', /^record 0: field 'vs' cannot appear together with 'v'/],
  ['two non-numeric values', [{ n: 'a', vb: true, vd: 'aGk' }], 0, 'vd', /^record 0: field 'vd' cannot appear together with 'vb'/],
  ['space in name', [{ n: 'temp sensor', v: 1 }], 0, 'n', /^record 0: field 'n' .*" " at position 4/],
  ['name starting with -', [{ n: '-temp', v: 1 }], 0, 'n', /^record 0: field 'n' .*"-" at position 0 cannot start a name/],
  ['non-ASCII name', [{ bn: 'dev:', n: 'tempé', v: 1 }], 0, 'n', /^record 0: field 'n' .*"é" at position 8/],
  ['bad character in bn', [{ n: 'ok', v: 1 }, { bn: 'dev#1/', n: 't', v: 1 }], 1, 'bn', /^record 1: field 'bn' .*"#" at position 3/],
  ['bn starting with _', [{ bn: '_dev', n: 't', v: 1 }], 0, 'bn', /^record 0: field 'bn' .*cannot start a name/],
  ['empty resolved name', [{ v: 1 }], 0, 'n', /^record 0: field 'n' resolves to an empty name/],
  ['must-understand field', [{ n: 'a', v: 1 }, { n: 'a', v: 1, foo_: 1 }], 1, 'foo_', /^record 1: field 'foo_' must be understood/],
  ['must-understand base field', [{ bfoo_: 'x', n: 'a', v: 1 }], 0, 'bfoo_', /^record 0: field 'bfoo_' must be understood/],
  ['v not a number', [{ n: 'a', v: '1' }], 0, 'v', /^record 0: field 'v' must be a finite number, got "1"/],
  ['t not a number', [{ n: 'a', v: 1, t: '5' }], 0, 't', /field 't' must be a finite number/],
  ['bt is null', [{ bt: null, n: 'a', v: 1 }], 0, 'bt', /field 'bt' must be a finite number, got null/],
  ['bv not a number', [{ bv: true, n: 'a', v: 1 }], 0, 'bv', /field 'bv' must be a finite number, got true/],
  ['bs not a number', [{ bs: [1], n: 'a', v: 1 }], 0, 'bs', /field 'bs' must be a finite number, got an array/],
  ['s not a number', [{ n: 'a', s: 'x' }], 0, 's', /field 's' must be a finite number/],
  // JSON calls it an object, CBOR a map (the error says it in the pack's own terms).
  ['ut not a number', [{ n: 'a', v: 1, ut: {} }], 0, 'ut', /field 'ut' must be a finite number, got (an object|a map)/],
  ['n not a string', [{ n: 5, v: 1 }], 0, 'n', /field 'n' must be a string, got 5/],
  ['bn not a string', [{ bn: 5, n: 'a', v: 1 }], 0, 'bn', /field 'bn' must be a string/],
  ['u not a string', [{ n: 'a', v: 1, u: 1 }], 0, 'u', /field 'u' must be a string/],
  ['bu not a string', [{ bu: false, n: 'a', v: 1 }], 0, 'bu', /field 'bu' must be a string/],
  ['vs not a string', [{ n: 'a', vs: 1 }], 0, 'vs', /field 'vs' must be a string/],
  ['vb not a boolean', [{ n: 'a', vb: 'true' }], 0, 'vb', /field 'vb' must be a boolean, got "true"/],
  ['bver too high', [{ bver: 11, n: 'a', v: 1 }], 0, 'bver', /field 'bver' asks for SenML version 11; .* version 10/],
  ['bver of RFC 9100 secondary units', [{ bver: 26, n: 'a', v: 1 }], 0, 'bver', /version 26/],
  ['bver zero', [{ bver: 0, n: 'a', v: 1 }], 0, 'bver', /field 'bver' must be a positive integer/],
  ['bver fractional', [{ bver: 9.5, n: 'a', v: 1 }], 0, 'bver', /field 'bver' must be a positive integer, got 9.5/],
  ['bver not a number', [{ bver: '10', n: 'a', v: 1 }], 0, 'bver', /field 'bver' must be a finite number/],
  ['bver changes', [{ n: 'a', v: 1 }, { bver: 5, n: 'b', v: 1 }], 1, 'bver', /version from 10 to 5/],
  ['value overflows with bv', [{ bv: 1e308, n: 'a', v: 1e308 }], 0, 'v', /field 'v' plus its base field is not a finite number/],
  ['time overflows with bt', [{ bt: 1e308, n: 'a', v: 1, t: 1e308 }], 0, 't', /field 't' plus its base field/],
  ['sum overflows with bs', [{ bs: -1e308, n: 'a', s: -1e308 }], 0, 's', /field 's' plus its base field/],
];

const jsonOnly: Case[] = [
  ['vd with padding', [{ n: 'a', vd: 'aGk=' }], 0, 'vd', /field 'vd' must be base64url without padding .*"=".* at position 3/],
  ['vd in the standard base64 alphabet', [{ n: 'a', vd: 'a+k' }], 0, 'vd', /field 'vd' .*character "\+" at position 1/],
  ['vd of impossible length', [{ n: 'a', vd: 'aGkgC' }], 0, 'vd', /field 'vd' .*whole number of bytes/],
  ['vd not canonical', [{ n: 'a', vd: 'aGkgCh' }], 0, 'vd', /field 'vd' must be canonical base64url/],
  ['vd not a string', [{ n: 'a', vd: 12 }], 0, 'vd', /field 'vd' must be a string/],
  ['v is 1e999 (Infinity)', '[{"n":"a","v":1e999}]', 0, 'v', /field 'v' must be a finite number, got Infinity/],
];

function asJson(pack: unknown): string {
  return typeof pack === 'string' ? pack : JSON.stringify(pack);
}

describe('validation errors name the record and the field', () => {
  it.each([...both, ...jsonOnly])('JSON: %s', (_title, pack, index, field, message) => {
    const error = caught(() => decodeSenmlJson(asJson(pack), NOW));
    expect(error.message).toMatch(message);
    expect([error.index, error.field]).toStrictEqual([index, field]);
  });

  it.each(both)('CBOR: %s', (_title, pack, index, field, message) => {
    const error = caught(() => decodeSenmlCbor(jsonPackToCbor(pack), NOW));
    expect(error.message).toMatch(message);
    expect([error.index, error.field]).toStrictEqual([index, field]);
  });

  it('names a nested object in JSON terms for JSON and in CBOR terms for CBOR', () => {
    const pack = [{ n: 'a', v: 1, ut: {} }];
    expect(caught(() => decodeSenmlJson(JSON.stringify(pack), NOW)).message).toMatch(/got an object$/);
    expect(caught(() => decodeSenmlCbor(jsonPackToCbor(pack), NOW)).message).toMatch(/got a map$/);
    expect(caught(() => decodeSenmlJson('{"n":"a","v":1}', NOW)).message).toMatch(/must be a JSON array of records \(RFC 8428 §5\), got an object/);
  });
});

const map = (...entries: [number | string, unknown][]): Map<number | string, unknown> => new Map(entries);

describe('JSON input errors', () => {
  it.each<[string, string | Uint8Array, RegExp]>([
    ['broken JSON', '[{"n":', /^pack: is not valid JSON/],
    ['JSON that is not a pack', '"hello"', /^pack: must be a JSON array of records .*"hello"/],
    ['bytes that are not UTF-8', new Uint8Array([0x5b, 0x7b, 0x22, 0xff, 0x22, 0x7d, 0x5d]), /^pack: is not valid UTF-8/],
    ['an empty string', '', /^pack: is not valid JSON/],
  ])('%s', (_title, input, message) => {
    expect(caught(() => decodeSenmlJson(input, NOW)).message).toMatch(message);
  });

  it('refuses input that is neither a string nor bytes', () => {
    expect(caught(() => decodeSenmlJson(42 as unknown as string, NOW)).message).toMatch(/string or a Uint8Array/);
  });

  it('refuses a non-finite now', () => {
    expect(caught(() => decodeSenmlJson('[{"n":"a","v":1}]', Number.NaN)).message).toMatch(/'now' must be a finite number/);
  });
});

describe('CBOR input errors', () => {
  it.each<[string, Uint8Array, number, string | null, RegExp]>([
    ['vd as a text string', cbor([map([0, 'a'], [8, 'aGk'])]), 0, 'vd', /field 'vd' must be a byte string in CBOR/],
    ['a JSON text label in CBOR', cbor([map(['bn', 'dev:'], [0, 'a'], [2, 1])]), 0, 'bn', /text label; SenML CBOR uses the integer label -2/],
    ['a must-understand text label', cbor([map([0, 'a'], [2, 1], ['ct_', 'x'])]), 0, 'ct_', /must be understood/],
    ['text key "2" is not the value label', cbor([map([0, 'a'], ['2', 5])]), 0, null, /has no value/],
    ['bver as a fraction', cbor([map([-1, 9.5], [0, 'a'], [2, 1])]), 0, 'bver', /positive integer/],
    ['a record that is an array', cbor([map([0, 'a'], [2, 1]), [0, 'b', 2, 1]]), 1, null, /^record 1: must be a CBOR map, got an array/],
    ['not an array', hex('a2 00 61 61 02 01'), -1, null, /^pack: must be a CBOR array of records \(RFC 8428 §6\), got a map/],
    ['an empty array', hex('80'), -1, null, /^pack: is empty/],
    ['an empty indefinite array', hex('9f ff'), -1, null, /^pack: is empty/],
    ['no bytes at all', hex(''), -1, null, /ends early/],
    ['truncated', hex('81 a2 00 61 61 02'), 0, null, /^record 0: is not valid SenML CBOR: the data ends early/],
    ['trailing bytes', hex('81 a2 00 61 61 02 01 00'), -1, null, /extra data after the pack/],
    ['a date tag on t', hex('81 a3 00 61 61 02 01 06 c1 1a 5f 5e 10 00'), 0, null, /CBOR tag 1 is not supported/],
    ['a shared-reference tag', hex('81 d8 1c a2 00 61 61 02 01'), 0, null, /CBOR tag 28 is not supported/],
    ['a cbor-x record-structure tag', hex('81 d9 df ff 83 19 e0 00 82 00 02 61 61'), 0, null, /CBOR tag 57343 is not supported/],
    ['a packed-CBOR table around the pack', hex('d8 33 84 81 61 61 80 80 81 a2 00 c6 00 02 01'), -1, null, /must be a CBOR array of records .*got a tag/],
    ['a packed-CBOR reference', hex('81 a2 00 c6 00 02 01'), 0, null, /CBOR tag 6 is not supported/],
    ['a bignum', hex('81 a2 00 61 61 02 c2 41 01'), 0, null, /CBOR tag 2 is not supported/],
    ['a decimal fraction that is not two integers', hex('81 a2 00 61 61 02 c4 82 01 61 31'), 0, null, /decimal fraction must be an array of two integers/],
    ['an indefinite-length text string', hex('81 a2 00 7f 61 61 ff 02 01'), 0, null, /indefinite-length strings/],
    ['a text string that is not UTF-8', hex('81 a2 00 62 c3 28 02 01'), 0, null, /not valid UTF-8/],
    ['a float map key', hex('81 a2 00 61 61 f9 40 00 01'), 0, null, /map keys must be integers or text strings/],
    ['a byte-string map key', hex('81 a2 00 61 61 41 02 01'), 0, null, /map keys must be integers or text strings/],
    ['an unassigned simple value', hex('81 a2 00 61 61 02 f0'), 0, null, /simple value 16 is not allowed/],
    ['a stray break', hex('81 a2 00 61 61 02 ff'), 0, null, /unexpected break/],
    ['a reserved additional information', hex('81 a2 00 61 61 02 1c'), 0, null, /reserved additional information 28/],
    ['an array claiming 2**64-1 records', hex('9b ff ff ff ff ff ff ff ff'), -1, null, /has more than 10000 records/],
    ['a map claiming more entries than bytes', hex('81 bb 00 00 00 00 ff ff ff ff 00'), 0, null, /claims \d+ items but the data is shorter/],
    ['junk nested 17 deep in an ignored field', hex(`81 a3 00 61 61 02 01 63 78 74 6e ${'81 '.repeat(14)} 80`), 0, null, /nested deeper than 16 levels/],
    ['deeply nested tags', hex(`81 a2 00 61 61 02 ${'d9 d9 f7 '.repeat(20)} 01`), 0, null, /nested deeper than 16 levels/],
    ['100 000 nested arrays', new Uint8Array(100_000).fill(0x81), 0, null, /nested deeper than 16 levels/],
  ])('%s', (_title, bytes, index, field, message) => {
    const error = caught(() => decodeSenmlCbor(bytes, NOW));
    expect(error.message).toMatch(message);
    expect([error.index, error.field]).toStrictEqual([index, field]);
  });

  it('refuses input that is not a Uint8Array', () => {
    expect(caught(() => decodeSenmlCbor('[]' as unknown as Uint8Array, NOW)).message).toMatch(/must be given as a Uint8Array/);
  });
});

describe('maxRecords', () => {
  const three = [{ n: 'a', v: 1 }, { n: 'b', v: 2 }, { n: 'c', v: 3 }];

  it('defaults to 10 000 records', () => {
    const many = Array.from({ length: 10_001 }, (_, k) => ({ n: `r${k}`, v: k }));
    expect(caught(() => decodeSenmlJson(JSON.stringify(many), NOW)).message).toBe('pack: has more than 10000 records (got 10001); raise maxRecords to accept it');
    expect(decodeSenmlJson(JSON.stringify(many.slice(1)), NOW)).toHaveLength(10_000);
  });

  it('can be lowered, for JSON, CBOR and indefinite-length CBOR', () => {
    const options = { maxRecords: 2 };
    expect(caught(() => decodeSenmlJson(JSON.stringify(three), NOW, options)).message).toMatch(/more than 2 records \(got 3\)/);
    expect(caught(() => decodeSenmlCbor(jsonPackToCbor(three), NOW, options)).message).toMatch(/more than 2 records \(got 3\)/);
    const indefinite = jsonPackToCbor(three);
    const bytes = new Uint8Array([0x9f, ...indefinite.subarray(1), 0xff]);
    expect(decodeSenmlCbor(bytes, NOW)).toHaveLength(3);
    expect(caught(() => decodeSenmlCbor(bytes, NOW, options)).message).toMatch(/more than 2 records \(got 3\)/);
  });

  it('must be a positive integer', () => {
    expect(caught(() => decodeSenmlJson(JSON.stringify(three), NOW, { maxRecords: 0 })).message).toMatch(/maxRecords must be a positive integer/);
  });
});
