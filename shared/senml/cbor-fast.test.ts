import { describe, expect, it } from 'vitest';
import { fastDecode, generalDecode } from './cbor';
import { scanSenmlCbor } from './cbor-scan';
import { mulberry32 } from '../testing/prng';
import { SenmlError } from './types';

// cbor-fast.ts reads common packs without cbor-x; whenever it answers, it must answer exactly what
// the general way (cbor-x + the same resolver) does. Random packs written with every encoding a
// number, string or label may have — minimal and not, half/single/double floats, big and negative
// integers, non-ASCII and repeated text — plus wrong types, unknown and text labels, tags and
// indefinite lengths (which it must give up on), then mutated byte by byte.

const NOW = 1_800_000_000;

class Writer {
  readonly out: number[] = [];
  head(major: number, n: number, width?: 0 | 1 | 2 | 4 | 8): void {
    const w = width ?? (n < 24 ? 0 : n < 256 ? 1 : n < 65536 ? 2 : n < 2 ** 32 ? 4 : 8);
    if (w === 0 && n < 24) return void this.out.push((major << 5) | n);
    const ai = w === 1 ? 24 : w === 2 ? 25 : w === 4 ? 26 : 27;
    this.out.push((major << 5) | ai);
    const big = BigInt(n);
    for (let k = w - 1; k >= 0; k--) this.out.push(Number((big >> BigInt(8 * k)) & 0xffn));
  }
  float(x: number, width: 2 | 4 | 8): void {
    const dv = new DataView(new ArrayBuffer(8));
    if (width === 8) {
      dv.setFloat64(0, x);
      this.out.push(0xfb, ...new Uint8Array(dv.buffer));
    } else if (width === 4) {
      dv.setFloat32(0, x);
      this.out.push(0xfa, ...new Uint8Array(dv.buffer, 0, 4));
    } else {
      // A random half: any 16 bits (normal, subnormal, zero, infinity, NaN).
      const h = Math.floor(Math.abs(x * 65535)) & 0xffff;
      this.out.push(0xf9, h >> 8, h & 0xff);
    }
  }
  text(s: string): void {
    const b = new TextEncoder().encode(s);
    this.head(3, b.length);
    this.out.push(...b);
  }
}

// Names and units alike (a unit may be anything; a name with % or non-ASCII is refused by the resolver).
const NAMES = ['temperature', 'humidity', 'Cel', 'urn:dev:ow:10e2073a01080063:', 'a', 'x'.repeat(70), 'temp-1.5', '%RH', 'höhe', '温度', '\uFEFFtemp', '\uFEFF', '𝄞', 'ü'.repeat(40), '\uFEFF' + 'ä'.repeat(40)];
const ODD_NAMES = ['', 'bad name!', 'n_'];
/** Labels besides the value: each present with some chance (bver seldom: most versions are refused). */
const OTHER_LABELS = [-2, -3, -4, -5, -6, 0, 1, 5, 6, 7];
const VALUE_LABELS = [2, 3, 4, 8];
const NUMERIC = new Set([-1, -3, -5, -6, 2, 5, 6, 7]);
const TEXT = new Set([-2, -4, 0, 1, 3]);

function writeNumber(w: Writer, r: () => number): void {
  const k = Math.floor(r() * 9);
  const widths = [undefined, 1, 2, 4, 8] as const;
  if (k === 0) w.head(0, Math.floor(r() * 30));
  else if (k === 1) w.head(0, Math.floor(r() * 2 ** 32), widths[Math.floor(r() * 5)]);
  else if (k === 2) {
    // Any 64-bit integer, past 2**53 included (rounding to a double must match cbor-x's BigInt path).
    w.out.push(r() < 0.5 ? 0x1b : 0x3b);
    for (let b = 0; b < 8; b++) w.out.push(b === 0 && r() < 0.5 ? 0 : Math.floor(r() * 256));
  }
  else if (k === 3) w.head(1, Math.floor(r() * 2 ** 40));
  else if (k === 4) w.head(1, Math.floor(r() * 2 ** 53) * 2 ** 11, 8);
  else if (k === 5) w.float(r(), 2);
  else if (k === 6) w.float((r() - 0.5) * 1e6, 4);
  else if (k === 7) w.float(r() < 0.1 ? [-0, Infinity, NaN][Math.floor(r() * 3)]! : (r() - 0.5) * 1e12, 8);
  else w.head(0, 1_800_000_000 + Math.floor(r() * 1000));
}

function writeValue(w: Writer, label: number, r: () => number): void {
  const wrong = r() < 0.04;
  if (!wrong && NUMERIC.has(label)) return writeNumber(w, r);
  if (!wrong && TEXT.has(label)) return w.text(r() < 0.95 ? NAMES[Math.floor(r() * NAMES.length)]! : ODD_NAMES[Math.floor(r() * ODD_NAMES.length)]!);
  if (!wrong && label === 4) return void w.out.push(r() < 0.5 ? 0xf4 : 0xf5);
  if (!wrong && label === 8) {
    const n = Math.floor(r() * 20);
    w.head(2, n);
    for (let i = 0; i < n; i++) w.out.push(Math.floor(r() * 256));
    return;
  }
  // A wrong type, or an odd encoding the fast path must leave alone.
  const odd = Math.floor(r() * 5);
  if (odd === 0) w.text('21');
  else if (odd === 1) w.out.push(0xf6); // null
  else if (odd === 2) w.out.push(0xc4, 0x82, 0x20, 0x18, 0xd7); // tag 4: 21.5
  else if (odd === 3) w.out.push(0x80); // []
  else writeNumber(w, r);
}

function randomPack(r: () => number): Uint8Array {
  const w = new Writer();
  const records = 1 + Math.floor(r() * 5);
  if (r() < 0.03) w.out.push(0x9f); // indefinite pack
  else w.head(4, records);
  for (let i = 0; i < records; i++) {
    const labels = OTHER_LABELS.filter(() => r() < 0.3);
    if (!labels.includes(0) && r() < 0.8) labels.push(0);
    // One value mostly; sometimes none or two (refused: left to the general way).
    const values = r() < 0.9 ? 1 : r() < 0.5 ? 0 : 2;
    for (let v = 0; v < values; v++) labels.push(VALUE_LABELS[Math.floor(r() * VALUE_LABELS.length)]!);
    if (r() < 0.02) labels.push(-1);
    const extra = r() < 0.05 ? 1 : 0; // an unknown label or a text label
    w.head(5, labels.length + extra);
    for (const l of labels) {
      if (l < 0) w.head(1, -1 - l);
      else w.head(0, l);
      writeValue(w, l, r);
    }
    if (extra) {
      if (r() < 0.5) w.head(0, 23);
      else w.text(r() < 0.5 ? 'ext' : 'v');
      w.head(0, 1);
    }
  }
  if (w.out[0] === 0x9f) w.out.push(0xff);
  return Uint8Array.from(w.out);
}

function general(bytes: Uint8Array): unknown {
  try {
    return generalDecode(bytes, NOW);
  } catch (e) {
    expect(e).toBeInstanceOf(SenmlError);
    return 'refused';
  }
}

describe('SenML CBOR fast path (cbor-fast.ts)', () => {
  it('answers exactly what the general decoder answers, or leaves the pack to it: 40,000 random and mutated packs', () => {
    const r = mulberry32(20261202);
    let answered = 0;
    let decoded = 0;
    for (let i = 0; i < 40_000; i++) {
      const bytes = randomPack(r);
      if (i % 2 === 1) for (let k = 1 + Math.floor(r() * 3); k > 0; k--) bytes[Math.floor(r() * bytes.length)] = Math.floor(r() * 256);
      try {
        scanSenmlCbor(bytes, 10_000);
      } catch {
        continue; // the fast path only ever sees scanned packs
      }
      const expected = general(bytes);
      if (expected !== 'refused') decoded++;
      const fast = fastDecode(bytes, NOW);
      if (fast === null) continue;
      answered++;
      expect(fast, [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')).toStrictEqual(expected);
    }
    // Not vacuous: most packs the general way decodes took the fast path, and some did not.
    expect(decoded).toBeGreaterThan(1500);
    expect(answered).toBeGreaterThan(decoded * 0.6);
    expect(answered).toBeLessThan(decoded);
  });

  it('repeated names come from its cache and are still the right strings', () => {
    const w = new Writer();
    w.head(4, 2);
    for (const name of ['temperature', 'temperaturf']) {
      w.head(5, 2);
      w.head(0, 0);
      w.text(name);
      w.head(0, 2);
      w.head(0, 1);
    }
    const bytes = Uint8Array.from(w.out);
    for (let k = 0; k < 3; k++) expect(fastDecode(bytes, NOW)?.map((x) => x.name)).toEqual(['temperature', 'temperaturf']);
  });
});
