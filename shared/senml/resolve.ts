/**
 * Turning the records of a pack into resolved records (RFC 8428 §4.6), shared by the JSON and CBOR
 * decoders. Each decoder reads one record's fields into a reused `RawRecord` (types already checked),
 * then hands it to `Resolver.add`, which applies and updates the base fields.
 */
import { describeNameFault, nameFault } from './chars';
import { DEFAULT_MAX_RECORDS, RELATIVE_TIME_LIMIT, SENML_VERSION, SenmlError, preview, type SenmlRecord } from './types';

/** One input record's fields; `undefined` means absent. */
export interface RawRecord {
  bn: string | undefined;
  bt: number | undefined;
  bu: string | undefined;
  bv: number | undefined;
  bs: number | undefined;
  bver: number | undefined;
  n: string | undefined;
  u: string | undefined;
  v: number | undefined;
  vs: string | undefined;
  vb: boolean | undefined;
  /** Canonical base64url, already checked. */
  vd: string | undefined;
  s: number | undefined;
  t: number | undefined;
  ut: number | undefined;
}

export function emptyRawRecord(): RawRecord {
  return {
    bn: undefined, bt: undefined, bu: undefined, bv: undefined, bs: undefined, bver: undefined,
    n: undefined, u: undefined, v: undefined, vs: undefined, vb: undefined, vd: undefined,
    s: undefined, t: undefined, ut: undefined,
  };
}

export function clearRawRecord(r: RawRecord): void {
  r.bn = r.bu = r.n = r.u = r.vs = r.vd = undefined;
  r.bt = r.bv = r.bs = r.bver = r.v = r.s = r.t = r.ut = undefined;
  r.vb = undefined;
}

/**
 * A finite number, RFC 8428 §5 (IEEE double). CBOR integers beyond 2**53 arrive as bigint.
 * `+ 0` turns -0 into 0, so every number survives a JSON round trip (JSON.stringify(-0) is "0").
 */
export function readNumber(index: number, label: string, raw: unknown): number {
  if (typeof raw === 'number' && raw - raw === 0) return raw + 0;
  if (typeof raw === 'bigint') return Number(raw);
  throw new SenmlError(index, label, `must be a finite number, got ${preview(raw)}`);
}

export function readString(index: number, label: string, raw: unknown): string {
  if (typeof raw === 'string') return raw;
  throw new SenmlError(index, label, `must be a string, got ${preview(raw)}`);
}

export function readBoolean(index: number, label: string, raw: unknown): boolean {
  if (typeof raw === 'boolean') return raw;
  throw new SenmlError(index, label, `must be a boolean, got ${preview(raw)}`);
}

/** RFC 8428 §4.4 and §12.3.1: unknown labels ending in '_' must be understood, so refuse them. */
export function mustUnderstand(index: number, label: string): SenmlError {
  return new SenmlError(index, label.length > 40 ? `${label.slice(0, 40)}…` : label,
    'must be understood (its label ends with "_") but this codec does not support it (RFC 8428 §4.4)');
}

export function checkMaxRecords(count: number, maxRecords: number): void {
  if (count > maxRecords) {
    throw new SenmlError(-1, null, `has more than ${maxRecords} records (got ${count}); raise maxRecords to accept it`);
  }
}

const VALUE_LABELS = ['v', 'vs', 'vb', 'vd'] as const;

function finite(index: number, label: string, x: number): number {
  if (x - x !== 0) throw new SenmlError(index, label, `plus its base field is not a finite number`);
  return x;
}

function byTime(a: SenmlRecord, b: SenmlRecord): number {
  return a.time - b.time;
}

/** The running base fields of one pack (RFC 8428 §4.1) and the records resolved so far. */
export class Resolver {
  private bn = '';
  private bt = 0;
  private bu: string | undefined = undefined;
  private bv = 0;
  private bs: number | undefined = undefined;
  private version = SENML_VERSION;
  private lastN: string | undefined = undefined;
  private lastName = '';
  private lastTime = -Infinity;
  private chronological = true;
  private readonly out: SenmlRecord[] = [];

  constructor(private readonly now: number) {}

  add(i: number, r: RawRecord): void {
    const bver = r.bver;
    if (bver !== undefined) this.checkVersion(i, bver);
    let base = bver !== undefined;
    if (r.bn !== undefined) {
      // The base name starts every name that follows, so check it once here (RFC 8428 §4.5.1).
      const at = nameFault(r.bn, true);
      if (at >= 0) throw new SenmlError(i, 'bn', describeNameFault(r.bn, at));
      this.bn = r.bn;
      this.lastN = undefined;
      base = true;
    }
    if (r.bt !== undefined) { this.bt = r.bt; base = true; }
    if (r.bu !== undefined) { this.bu = r.bu; base = true; }
    if (r.bv !== undefined) { this.bv = r.bv; base = true; }
    if (r.bs !== undefined) { this.bs = r.bs; base = true; }

    const values = (r.v !== undefined ? 1 : 0) + (r.vs !== undefined ? 1 : 0) + (r.vb !== undefined ? 1 : 0) +
      (r.vd !== undefined ? 1 : 0);
    const regular = values > 0 || r.n !== undefined || r.u !== undefined || r.s !== undefined ||
      r.t !== undefined || r.ut !== undefined;
    // A record of base fields only (e.g. RFC 8428 §5.1.7's first record) sets context and resolves to nothing.
    if (!regular && base) return;
    if (values > 1) throw this.twoValues(i, r);
    const hasSum = r.s !== undefined || this.bs !== undefined; // RFC 8428 §4.5.4
    if (values === 0 && !hasSum) {
      throw new SenmlError(i, null, "has no value ('v', 'vs', 'vb' or 'vd') and no sum ('s'); one is required (RFC 8428 §4.2)");
    }

    // RFC 8428 §4.5.1: name = bn + n, non-empty, restricted characters. Packs repeat a few names,
    // so the last one is kept (and cleared when bn changes) to skip re-checking and re-concatenating.
    const n = r.n ?? '';
    let name = this.lastName;
    if (n !== this.lastN) {
      const bn = this.bn;
      const at = bn.length === 0 ? (n.length === 0 ? 0 : nameFault(n, true)) : nameFault(n, false);
      if (at >= 0) throw new SenmlError(i, 'n', describeNameFault(bn + n, bn.length + at));
      name = bn.length === 0 ? n : n.length === 0 ? bn : bn + n;
      this.lastN = n;
      this.lastName = name;
    }

    // RFC 8428 §4.5.3: time = bt + t; below 2**28 it is relative to now.
    let time = this.bt + (r.t ?? 0);
    if (time < RELATIVE_TIME_LIMIT) time += this.now;
    finite(i, 't', time);
    if (time < this.lastTime) this.chronological = false;
    this.lastTime = time;

    const rec: SenmlRecord = { name, time };
    const unit = r.u ?? this.bu; // RFC 8428 §4.5.2
    if (unit !== undefined && unit.length > 0) rec.unit = unit;
    if (r.v !== undefined) rec.value = finite(i, 'v', this.bv + r.v); // RFC 8428 §4.5.4
    else if (r.vs !== undefined) rec.stringValue = r.vs;
    else if (r.vb !== undefined) rec.boolValue = r.vb;
    else if (r.vd !== undefined) rec.dataValue = r.vd;
    if (hasSum) rec.sum = finite(i, 's', (this.bs ?? 0) + (r.s ?? 0));
    if (r.ut !== undefined) rec.updateTime = r.ut;
    this.out.push(rec);
  }

  /** The resolved records, in chronological order as RFC 8428 §4.6 requires (stable for equal times). */
  finish(): SenmlRecord[] {
    if (!this.chronological) this.out.sort(byTime);
    return this.out;
  }

  private checkVersion(i: number, bver: number): void {
    // RFC 8428 §4.1: a positive integer, default 10; §4.4: refuse versions we do not understand
    // and require one version per pack.
    if (!Number.isInteger(bver) || bver < 1) {
      throw new SenmlError(i, 'bver', `must be a positive integer, got ${preview(bver)}`);
    }
    if (bver > SENML_VERSION) {
      throw new SenmlError(i, 'bver', `asks for SenML version ${bver}; this codec supports version ${SENML_VERSION} and below (RFC 8428 §4.4)`);
    }
    if (bver !== this.version && i > 0) {
      throw new SenmlError(i, 'bver', `changes the pack's version from ${this.version} to ${bver}; all records of a pack must have the same version (RFC 8428 §4.4)`);
    }
    this.version = bver;
  }

  private twoValues(i: number, r: RawRecord): SenmlError {
    const present = VALUE_LABELS.filter((label) => r[label] !== undefined);
    return new SenmlError(i, present[1] ?? null,
      `cannot appear together with '${present[0] ?? ''}': a record has exactly one value (RFC 8428 §4.2)`);
  }
}

/** "now" in seconds for relative times (RFC 8428 §4.5.3): the caller's, or the wall clock. */
export function decodeClock(now: number | undefined): number {
  if (now === undefined) return Date.now() / 1000;
  if (typeof now !== 'number' || now - now !== 0) throw new SenmlError(-1, null, `cannot be resolved: 'now' must be a finite number of seconds, got ${preview(now)}`);
  return now;
}

export function decodeLimit(maxRecords: number | undefined): number {
  if (maxRecords === undefined) return DEFAULT_MAX_RECORDS;
  if (!Number.isInteger(maxRecords) || maxRecords < 1) throw new SenmlError(-1, null, `cannot be decoded: maxRecords must be a positive integer, got ${preview(maxRecords)}`);
  return maxRecords;
}

/** Anything thrown below the codec (a JSON or CBOR library, the engine) becomes a SenmlError. */
export function asSenmlError(error: unknown, what: string): SenmlError {
  if (error instanceof SenmlError) return error;
  const detail = error instanceof Error ? error.message : String(error);
  return new SenmlError(-1, null, `${what}: ${detail.length > 120 ? `${detail.slice(0, 120)}…` : detail}`);
}
