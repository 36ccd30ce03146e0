/**
 * The common SenML CBOR pack read straight into records, without cbor-x building Maps first: a
 * definite-length array of definite-length maps whose keys are Table 4's integer labels (RFC 8428
 * §6) and whose values have the types those labels take — integers, floats, text, booleans, byte
 * strings. It runs after scanSenmlCbor (the bytes are well-formed, UTF-8 checked, bounded) and
 * gives up — `null` — on anything else: tags, indefinite lengths, text labels, unknown labels,
 * a value of the wrong type, a record that is not a map. The caller then decodes the pack the
 * general way (cbor.ts), which gives the same records and every error message; a differential test
 * (cbor-fast.test.ts) holds the two to the same answers. At one record per pack the general way
 * spent about half its time building Maps (docs/performance.md, twelfth round).
 */
import { bytesToBase64url } from './chars';
import { clearRawRecord, type RawRecord } from './resolve';

const text = new TextDecoder('utf-8');
const scratch = new DataView(new ArrayBuffer(8));

/**
 * Short text (names, units, base names) repeats from pack to pack: the last few are kept by a hash
 * of their bytes and handed out again after a byte-for-byte comparison, so a repeated name costs
 * no new string. Others are built from the bytes (ASCII eight at a time) or by TextDecoder.
 */
const SHORT = 64;
const SLOTS = 256;
const cachedBytes: (Uint8Array | undefined)[] = new Array(SLOTS);
const cachedText: string[] = new Array(SLOTS);

function short(b: Uint8Array, start: number, end: number): string {
  let h = 0x811c9dc5;
  let ascii = true;
  for (let p = start; p < end; p++) {
    const c = b[p] as number;
    if (c >= 0x80) ascii = false;
    h = Math.imul(h ^ c, 0x01000193);
  }
  const slot = (h >>> 0) & (SLOTS - 1);
  const kept = cachedBytes[slot];
  if (kept !== undefined && kept.length === end - start) {
    let same = true;
    for (let k = 0; k < kept.length && same; k++) same = kept[k] === b[start + k];
    if (same) return cachedText[slot] as string;
  }
  let s = '';
  if (ascii) {
    let p = start;
    for (; end - p >= 8; p += 8) s += String.fromCharCode(b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!, b[p + 4]!, b[p + 5]!, b[p + 6]!, b[p + 7]!);
    for (; p < end; p++) s += String.fromCharCode(b[p]!);
  } else s = text.decode(b.subarray(start, end));
  cachedBytes[slot] = b.slice(start, end);
  cachedText[slot] = s;
  return s;
}

/** Give up on this pack: the general decoder takes it. */
class GiveUp extends Error {}
const GIVE_UP = new GiveUp();

class Reader {
  pos = 0;
  constructor(private readonly buf: Uint8Array) {}

  private byte(): number {
    const b = this.buf[this.pos++];
    if (b === undefined) throw GIVE_UP;
    return b;
  }

  /** A head's argument (RFC 8949 §3) as a double (exact below 2**53, correctly rounded above). */
  private argument(ai: number): number {
    if (ai < 24) return ai;
    if (ai === 24) return this.byte();
    if (ai === 25) return this.byte() * 256 + this.byte();
    if (ai === 26) return this.uint32();
    if (ai === 27) return this.uint32() * 2 ** 32 + this.uint32();
    throw GIVE_UP;
  }

  private uint32(): number {
    return this.byte() * 2 ** 24 + this.byte() * 2 ** 16 + this.byte() * 256 + this.byte();
  }

  /** A number (major 0, 1 or a float); anything else gives up. */
  number(): number {
    const ib = this.byte();
    const major = ib >> 5;
    const ai = ib & 31;
    if (major === 0) return this.argument(ai);
    if (major === 1) {
      const n = this.argument(ai);
      // -1 - n, rounded once: past 2**53 the double n is already rounded, so go through BigInt.
      return n < 2 ** 53 ? -1 - n : Number(-1n - this.exactUint(ai));
    }
    if (major !== 7) throw GIVE_UP;
    let x: number;
    if (ai === 25) x = this.half();
    else if (ai === 26) {
      scratch.setUint32(0, this.uint32());
      x = scratch.getFloat32(0);
    } else if (ai === 27) {
      scratch.setUint32(0, this.uint32());
      scratch.setUint32(4, this.uint32());
      x = scratch.getFloat64(0);
    } else throw GIVE_UP;
    if (x - x !== 0) throw GIVE_UP; // NaN, ±Infinity: the general way says what is wrong
    return x + 0; // -0 → 0, as readNumber does
  }

  /** The 64-bit argument just read, exactly (for negative integers past 2**53). */
  private exactUint(ai: number): bigint {
    if (ai !== 27) throw GIVE_UP;
    const p = this.pos - 8;
    let v = 0n;
    for (let k = 0; k < 8; k++) v = (v << 8n) | BigInt(this.buf[p + k] ?? 0);
    return v;
  }

  /** RFC 8949 Appendix D. */
  private half(): number {
    const h = this.byte() * 256 + this.byte();
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    let v: number;
    if (exp === 0) v = mant * 2 ** -24;
    else if (exp !== 31) v = (mant + 1024) * 2 ** (exp - 25);
    else v = mant === 0 ? Infinity : NaN;
    return h & 0x8000 ? -v : v;
  }

  string(): string {
    const ib = this.byte();
    if (ib >> 5 !== 3) throw GIVE_UP;
    const n = this.argument(ib & 31);
    const start = this.pos;
    const end = start + n;
    if (end > this.buf.length) throw GIVE_UP;
    // A leading U+FEFF: TextDecoder drops it, cbor-x keeps it in short strings — leave it to the general way.
    if (n >= 3 && this.buf[start] === 0xef && this.buf[start + 1] === 0xbb && this.buf[start + 2] === 0xbf) throw GIVE_UP;
    this.pos = end;
    return n <= SHORT ? short(this.buf, start, end) : text.decode(this.buf.subarray(start, end));
  }

  boolean(): boolean {
    const ib = this.byte();
    if (ib === 0xf4) return false;
    if (ib === 0xf5) return true;
    throw GIVE_UP;
  }

  bytes(): string {
    const ib = this.byte();
    if (ib >> 5 !== 2) throw GIVE_UP;
    const n = this.argument(ib & 31);
    const end = this.pos + n;
    if (end > this.buf.length) throw GIVE_UP;
    const s = bytesToBase64url(this.buf.subarray(this.pos, end));
    this.pos = end;
    return s;
  }

  /** A definite-length container's size (`major` 4 or 5); anything else gives up. */
  count(major: number): number {
    const ib = this.byte();
    if (ib >> 5 !== major || (ib & 31) === 31) throw GIVE_UP;
    return this.argument(ib & 31);
  }

  /** An integer label (major 0 or 1, small); anything else — a text label — gives up. */
  label(): number {
    const ib = this.byte();
    const major = ib >> 5;
    const ai = ib & 31;
    if (ai >= 24 || major > 1) throw GIVE_UP;
    return major === 0 ? ai : -1 - ai;
  }
}

/** Reads one record's Table 4 labels into `raw`; gives up on any other label or type. */
function readRecord(r: Reader, raw: RawRecord): void {
  clearRawRecord(raw);
  for (let n = r.count(5); n > 0; n--) {
    switch (r.label()) {
      case -1: raw.bver = r.number(); break;
      case -2: raw.bn = r.string(); break;
      case -3: raw.bt = r.number(); break;
      case -4: raw.bu = r.string(); break;
      case -5: raw.bv = r.number(); break;
      case -6: raw.bs = r.number(); break;
      case 0: raw.n = r.string(); break;
      case 1: raw.u = r.string(); break;
      case 2: raw.v = r.number(); break;
      case 3: raw.vs = r.string(); break;
      case 4: raw.vb = r.boolean(); break;
      case 5: raw.s = r.number(); break;
      case 6: raw.t = r.number(); break;
      case 7: raw.ut = r.number(); break;
      case 8: raw.vd = r.bytes(); break;
      default: throw GIVE_UP; // an unknown label's value may be anything: the general way skips it
    }
  }
}

/**
 * Calls `each(i, raw)` for every record of a common pack, in order, and returns true; false when
 * the pack is not a common one (nothing has been resolved from it then, or the caller discards
 * what was). `buf` must have passed scanSenmlCbor.
 */
export function readCommonPack(buf: Uint8Array, raw: RawRecord, each: (i: number, raw: RawRecord) => void): boolean {
  const r = new Reader(buf);
  try {
    const count = r.count(4);
    for (let i = 0; i < count; i++) {
      readRecord(r, raw);
      each(i, raw);
    }
    return r.pos === buf.length;
  } catch (e) {
    if (e === GIVE_UP) return false;
    throw e;
  }
}
