/**
 * Random input never crashes the decoders (in the spirit of mqtt-packet's testRandom.js): random
 * bytes, mutated valid packs and random JSON values either decode to valid resolved records or
 * throw SenmlError, and nothing else. Seeded, so a failure is reproducible.
 */
import { describe, expect, it } from 'vitest';
import { nameFault } from './chars';
import {
  SenmlError, decodeSenmlCbor, decodeSenmlJson, decodeSenmlJsonValue, encodeSenmlCbor, encodeSenmlJson, type SenmlRecord,
} from './index';
import { mulberry32 } from '../testing/prng';
import { jsonPackToCbor } from './vectors/cbor';
import { NOW, RFC_EXAMPLES } from './vectors/rfc8428';


const rand = mulberry32(0x5e71);
const int = (n: number): number => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;

function checkRecords(records: SenmlRecord[]): void {
  let last = -Infinity;
  for (const r of records) {
    expect(r.name.length > 0 && nameFault(r.name, true) === -1).toBe(true);
    expect(Number.isFinite(r.time) && r.time >= last).toBe(true);
    last = r.time;
    const values = [r.value, r.stringValue, r.boolValue, r.dataValue].filter((x) => x !== undefined).length;
    expect(values === 1 || (values === 0 && r.sum !== undefined)).toBe(true);
    for (const x of [r.value, r.sum, r.updateTime]) if (x !== undefined) expect(Number.isFinite(x)).toBe(true);
  }
  // Whatever decodes also encodes and decodes back, unless a time fell below 2**28.
  if (records.length > 0 && records.every((r) => r.time >= 2 ** 28)) {
    expect(decodeSenmlJson(encodeSenmlJson(records), NOW)).toStrictEqual(records);
    expect(decodeSenmlCbor(encodeSenmlCbor(records), NOW)).toStrictEqual(records);
  }
}

const outcomes = { decoded: 0, rejected: 0 };

/** Run a decoder: it returns valid records or throws SenmlError with a well-formed message. */
function survive(decode: () => SenmlRecord[], input: unknown): void {
  let records: SenmlRecord[];
  try {
    records = decode();
  } catch (error) {
    if (!(error instanceof SenmlError)) {
      throw new Error(`non-SenmlError ${String(error)} for input ${JSON.stringify(input instanceof Uint8Array ? Array.from(input) : input)}`);
    }
    expect(error.message).toMatch(/^(pack|record \d+): /);
    outcomes.rejected++;
    return;
  }
  checkRecords(records);
  outcomes.decoded++;
}

const validCbor = RFC_EXAMPLES.map((ex) => jsonPackToCbor(JSON.parse(ex.json)));
const validJson = RFC_EXAMPLES.map((ex) => new TextEncoder().encode(ex.json));

function mutate(src: Uint8Array): Uint8Array {
  const bytes = Array.from(src);
  const rounds = 1 + int(4);
  for (let k = 0; k < rounds; k++) {
    const at = int(bytes.length + 1);
    switch (int(6)) {
      case 0: bytes[at] = int(256); break;
      case 1: bytes[at] = (bytes[at] ?? 0) ^ (1 << int(8)); break;
      case 2: bytes.splice(at, 0, int(256)); break;
      case 3: bytes.splice(at, 1 + int(3)); break;
      case 4: bytes.length = at; break;
      default: bytes.splice(at, 0, ...bytes.slice(int(bytes.length), int(bytes.length) + 8));
    }
  }
  return Uint8Array.from(bytes, (b) => b & 0xff);
}

const LABELS = ['bn', 'bt', 'bu', 'bv', 'bs', 'bver', 'n', 'u', 'v', 'vs', 'vb', 'vd', 's', 't', 'ut'];
const OTHER_KEYS = ['foo', 'ct', 'x_', 'bfoo_', '__proto__', '2', '', 'constructor'];
const STRINGS = ['', 'temp', 'urn:dev:ow:10e2073a01080063:', 'a b', '-x', 'é', 'aGkgCg', 'aGk=', 'A', '/', 'dev/1', '\u0000', '🚀'];
const NUMBERS = [0, -0, 1, -5, 0.1, 2 ** 28, 2 ** 28 - 1, 1.3e9, -1.5e9, 1e308, -1e308, 5e-324, 2 ** 53 + 1, 9.5, 10, 11];

function randomValue(depth: number): unknown {
  switch (int(depth > 2 ? 4 : 6)) {
    case 0: return pick(NUMBERS) * (rand() < 0.2 ? rand() : 1);
    case 1: return pick(STRINGS);
    case 2: return rand() < 0.5;
    case 3: return null;
    case 4: return Array.from({ length: int(3) }, () => randomValue(depth + 1));
    default: return randomRecord(depth + 1);
  }
}

function randomRecord(depth: number): Record<string, unknown> {
  const rec: Record<string, unknown> = {};
  const size = int(6);
  for (let k = 0; k < size; k++) {
    const key = rand() < 0.85 ? pick(LABELS) : pick(OTHER_KEYS);
    const typed = rand() < 0.7;
    if (!typed) rec[key] = randomValue(depth);
    else if (['bn', 'n'].includes(key)) rec[key] = pick(['temp', 'a:', 'dev/', 'x-1', 'a b', '']);
    else if (['bu', 'u', 'vs'].includes(key)) rec[key] = pick(['Cel', '%RH', '', 'hello']);
    else if (key === 'vd') rec[key] = pick(['aGkgCg', '', 'AA', 'aGk=', 'a']);
    else if (key === 'vb') rec[key] = rand() < 0.5;
    else if (key === 'bver') rec[key] = pick([5, 10, 11, 0]);
    else rec[key] = pick(NUMBERS);
  }
  return rec;
}

function randomPack(): unknown {
  if (rand() < 0.05) return randomValue(0);
  return Array.from({ length: int(6) }, () => (rand() < 0.95 ? randomRecord(1) : randomValue(2)));
}

describe('random input never throws anything but SenmlError', () => {
  it('random bytes, 3000 cases', () => {
    for (let k = 0; k < 3000; k++) {
      const bytes = Uint8Array.from({ length: int(80) }, () => int(256));
      if (k % 2 === 0 && bytes.length > 0) bytes[0] = 0x80 | int(8); // a small array header, to get further in
      survive(() => decodeSenmlCbor(bytes, NOW), bytes);
      survive(() => decodeSenmlJson(bytes, NOW), bytes);
    }
  });

  it('mutated valid packs, 3000 cases', () => {
    for (let k = 0; k < 3000; k++) {
      const cbor = mutate(pick(validCbor));
      survive(() => decodeSenmlCbor(cbor, NOW), cbor);
      const json = mutate(pick(validJson));
      survive(() => decodeSenmlJson(json, NOW), json);
    }
  });

  it('random JSON values and their CBOR forms, 3000 cases', () => {
    for (let k = 0; k < 3000; k++) {
      const pack = randomPack();
      survive(() => decodeSenmlJsonValue(pack, NOW), pack);
      survive(() => decodeSenmlJson(JSON.stringify(pack) ?? 'undefined', NOW), pack);
      survive(() => decodeSenmlCbor(jsonPackToCbor(pack), NOW), pack);
    }
  });

  it('huge and deeply nested inputs', () => {
    const deepJson = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    survive(() => decodeSenmlJson(deepJson, NOW), 'deep JSON');
    survive(() => decodeSenmlJson(`[${'['.repeat(100_000)}`, NOW), 'unterminated deep JSON');
    survive(() => decodeSenmlCbor(new Uint8Array(200_000).fill(0x9f), NOW), 'deep indefinite CBOR');
    survive(() => decodeSenmlCbor(new Uint8Array(200_000).fill(0xa1), NOW), 'deep CBOR maps');
    const longName = `[{"n":"${'a'.repeat(1_000_000)}","v":1}]`;
    survive(() => decodeSenmlJson(longName, NOW), 'long name');
  });

  it('both outcomes were exercised', () => {
    expect(outcomes.decoded).toBeGreaterThan(100);
    expect(outcomes.rejected).toBeGreaterThan(1000);
  });
});
