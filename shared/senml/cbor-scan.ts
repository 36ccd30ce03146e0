/**
 * A structural pass over untrusted SenML CBOR before cbor-x builds values from it.
 *
 * cbor-x is a general decoder: it honours dozens of tags (record structures, shared references,
 * packed-CBOR tables whose prefix/suffix tags copy data, bignums built in quadratic time, Date,
 * RegExp…) and recurses until the engine's stack runs out. None of that is SenML. This pass walks
 * the bytes once, allocating nothing, and lets through only what RFC 8428 §6 and §11 (CDDL) need:
 * a top-level array (definite or indefinite) of up to `maxRecords` items; maps whose keys are
 * integers or text strings; integers, floats, booleans, null/undefined, byte strings, UTF-8 text;
 * tag 4 (decimal fraction of two integers) and tag 55799 (self-described CBOR); at most
 * MAX_DEPTH levels of nesting inside values that SenML ignores. Everything else is a SenmlError.
 */
import { checkMaxRecords } from './resolve';
import { SenmlError } from './types';

/** Pack array = 1, record map = 2, field value = 3; deeper only inside ignored extension values. */
export const MAX_DEPTH = 16;

const BREAK = 0xff;
const MAJOR_NAMES = ['an integer', 'a negative integer', 'a byte string', 'a text string', 'an array', 'a map', 'a tag', 'a simple value'];

class Scanner {
  private pos = 0;
  private record = -1;

  constructor(private readonly buf: Uint8Array) {}

  private fail(problem: string): never {
    throw new SenmlError(this.record, null, `is not valid SenML CBOR: ${problem} (at byte ${this.pos})`);
  }

  private need(n: number): void {
    if (n > this.buf.length - this.pos) this.fail('the data ends early');
  }

  private byteAt(p: number): number {
    return this.buf[p] ?? 0;
  }

  /** The argument of a head with additional information `ai` (RFC 8949 §3); lengths past 2**53 are just "huge". */
  private argument(ai: number): number {
    if (ai < 24) return ai;
    const p = this.pos;
    switch (ai) {
      case 24: this.need(1); this.pos += 1; return this.byteAt(p);
      case 25: this.need(2); this.pos += 2; return (this.byteAt(p) << 8) | this.byteAt(p + 1);
      case 26: this.need(4); this.pos += 4; return this.uint32(p);
      case 27: this.need(8); this.pos += 8; return this.uint32(p) * 2 ** 32 + this.uint32(p + 4);
      default: return this.fail(`reserved additional information ${ai}`);
    }
  }

  private uint32(p: number): number {
    return this.byteAt(p) * 2 ** 24 + ((this.byteAt(p + 1) << 16) | (this.byteAt(p + 2) << 8) | this.byteAt(p + 3));
  }

  private atBreak(): boolean {
    this.need(1);
    if (this.byteAt(this.pos) !== BREAK) return false;
    this.pos++;
    return true;
  }

  /** The whole pack. */
  scanPack(maxRecords: number): void {
    const buf = this.buf;
    // RFC 8949 §3.4.6: an optional self-described CBOR tag in front of the pack.
    if (buf.length >= 3 && buf[0] === 0xd9 && buf[1] === 0xd9 && buf[2] === 0xf7) this.pos = 3;
    this.need(1);
    const ib = this.byteAt(this.pos++);
    if (ib >> 5 !== 4) throw new SenmlError(-1, null, `must be a CBOR array of records (RFC 8428 §6), got ${MAJOR_NAMES[ib >> 5] ?? ''}`);
    let count = 0;
    if ((ib & 31) === 31) {
      // Indefinite length: RFC 8428 §6 reserves it for SensML streams, but it is harmless to accept.
      while (!this.atBreak()) {
        checkMaxRecords(++count, maxRecords);
        this.record = count - 1;
        this.item(2);
      }
    } else {
      count = this.argument(ib & 31);
      checkMaxRecords(count, maxRecords);
      if (count > buf.length - this.pos) this.fail(`the array claims ${count} records but the data is shorter`);
      for (let i = 0; i < count; i++) {
        this.record = i;
        this.item(2);
      }
    }
    this.record = -1;
    if (count === 0) throw new SenmlError(-1, null, 'is empty; a pack has one or more records (RFC 8428 §3)');
    if (this.pos !== buf.length) this.fail('extra data after the pack');
  }

  private item(depth: number): void {
    this.need(1);
    const ib = this.byteAt(this.pos++);
    const major = ib >> 5;
    const ai = ib & 31;
    if (ai === 31) {
      if (major === 4 || major === 5) {
        if (depth > MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`);
        while (!this.atBreak()) {
          if (major === 5) this.key();
          this.item(depth + 1);
        }
        return;
      }
      this.fail(major === 2 || major === 3 ? 'indefinite-length strings are not supported' : 'unexpected break or indefinite length');
    }
    const n = this.argument(ai);
    switch (major) {
      case 0: case 1: return;
      case 2: this.need(n); this.pos += n; return;
      case 3: this.text(n); return;
      case 4:
      case 5: {
        if (depth > MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`);
        if (n > (this.buf.length - this.pos) / (major === 5 ? 2 : 1)) this.fail(`a container claims ${n} items but the data is shorter`);
        for (let i = 0; i < n; i++) {
          if (major === 5) this.key();
          this.item(depth + 1);
        }
        return;
      }
      case 6: this.tag(n, depth); return;
      default:
        // Major 7: false, true, null, undefined and half/single/double floats (RFC 8949 §3.3).
        if (ai < 20 || ai === 24) this.fail(`simple value ${ai === 24 ? n : ai} is not allowed`);
    }
  }

  /** RFC 8428 §6: labels are integers (Table 4) or text strings (extensions). */
  private key(): void {
    this.need(1);
    const major = this.byteAt(this.pos) >> 5;
    if (major !== 0 && major !== 1 && major !== 3) this.fail('map keys must be integers or text strings (RFC 8428 §6)');
    this.item(99); // a key is never a container, so depth does not matter
  }

  private tag(tag: number, depth: number): void {
    if (depth > MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`);
    if (tag === 55799) return this.item(depth + 1);
    if (tag !== 4) this.fail(`CBOR tag ${tag} is not supported; SenML numbers may use only tag 4, decimal fractions (RFC 8428 §6)`);
    // RFC 8949 §3.4.4: [exponent, mantissa], both integers here (no bignum mantissas).
    this.need(1);
    if (this.byteAt(this.pos++) !== 0x82) this.fail('a decimal fraction must be an array of two integers');
    for (let k = 0; k < 2; k++) {
      this.need(1);
      const ib = this.byteAt(this.pos);
      if (ib >> 5 > 1 || (ib & 31) > 27) this.fail('a decimal fraction must be an array of two integers');
      this.item(depth);
    }
  }

  /** RFC 8949 §3.1 major type 3 must be UTF-8; ASCII takes the fast path. */
  private text(n: number): void {
    this.need(n);
    const buf = this.buf;
    const end = this.pos + n;
    let p = this.pos;
    while (p < end) {
      const b = buf[p] ?? 0;
      if (b < 0x80) { p++; continue; }
      let size: number;
      let lo = 0x80;
      let hi = 0xbf;
      if (b >= 0xc2 && b <= 0xdf) size = 2;
      else if (b >= 0xe0 && b <= 0xef) { size = 3; if (b === 0xe0) lo = 0xa0; else if (b === 0xed) hi = 0x9f; }
      else if (b >= 0xf0 && b <= 0xf4) { size = 4; if (b === 0xf0) lo = 0x90; else if (b === 0xf4) hi = 0x8f; }
      else { this.pos = p; return this.fail('a text string is not valid UTF-8'); }
      if (p + size > end) { this.pos = p; return this.fail('a text string is not valid UTF-8'); }
      const second = buf[p + 1] ?? 0;
      let ok = second >= lo && second <= hi;
      for (let k = 2; k < size; k++) ok = ok && ((buf[p + k] ?? 0) & 0xc0) === 0x80;
      if (!ok) { this.pos = p; return this.fail('a text string is not valid UTF-8'); }
      p += size;
    }
    this.pos = end;
  }
}

/** Throws SenmlError unless `buf` is one SenML-shaped CBOR pack that is safe to hand to cbor-x. */
export function scanSenmlCbor(buf: Uint8Array, maxRecords: number): void {
  new Scanner(buf).scanPack(maxRecords);
}
