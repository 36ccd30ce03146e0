/**
 * Types, constants and the one error type of the SenML codec (RFC 8428).
 * See docs/senml.md for what the codec accepts and why.
 */

/** Media types, RFC 8428 §12.3.1 and §12.3.3. */
export const SENML_JSON = 'application/senml+json';
export const SENML_CBOR = 'application/senml+cbor';

/** The SenML version this codec implements; packs asking for more are refused (RFC 8428 §4.4). */
export const SENML_VERSION = 10;

/** Times below 2**28 s are relative to "now" (RFC 8428 §4.5.3). */
export const RELATIVE_TIME_LIMIT = 2 ** 28;

/** Default cap on records per pack: a bound on work per message, not an RFC rule. */
export const DEFAULT_MAX_RECORDS = 10_000;

/** One resolved (normalized) record, RFC 8428 §4.6. */
export interface SenmlRecord {
  /** bn + n, checked against RFC 8428 §4.5.1; never empty. */
  name: string;
  /** Absolute seconds since the Unix epoch: bt + t, plus "now" when that sum is below 2**28. */
  time: number;
  /** u ?? bu; absent when neither is set (an empty string counts as no unit). */
  unit?: string;
  /** bv + v. */
  value?: number;
  /** vs. */
  stringValue?: string;
  /** vb. */
  boolValue?: boolean;
  /** vd as base64url without padding, as in SenML JSON (RFC 8428 §4.3 note). */
  dataValue?: string;
  /** bs + s. */
  sum?: number;
  /** ut, seconds. */
  updateTime?: number;
}

export interface SenmlDecodeOptions {
  /** Largest number of records (array elements) accepted in one pack. Default 10 000. */
  maxRecords?: number;
}

/**
 * Every decoding or encoding failure. `index` is the 0-based record (array element) at fault,
 * or -1 when the pack as a whole is at fault; `field` is the SenML label involved, if any.
 */
export class SenmlError extends Error {
  readonly index: number;
  readonly field: string | null;

  constructor(index: number, field: string | null, problem: string) {
    const where = index < 0 ? 'pack' : `record ${index}`;
    super(field === null ? `${where}: ${problem}` : `${where}: field '${field}' ${problem}`);
    this.name = 'SenmlError';
    this.index = index;
    this.field = field;
  }
}

/** CBOR map keys for the RFC 8428 labels, Table 4 in §6 (the table is conclusive). */
export const CBOR_LABEL = {
  bver: -1,
  bn: -2,
  bt: -3,
  bu: -4,
  bv: -5,
  bs: -6,
  n: 0,
  u: 1,
  v: 2,
  vs: 3,
  vb: 4,
  s: 5,
  t: 6,
  ut: 7,
  vd: 8,
} as const;

/** Every label RFC 8428 defines (Table 1, §4.3). */
export const SENML_LABELS: ReadonlySet<string> = new Set(Object.keys(CBOR_LABEL));

/** Quote a value for an error message without letting a huge input make a huge message. */
export function preview(value: unknown): string {
  let text: string;
  if (typeof value === 'string') text = JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  else if (value instanceof Uint8Array) text = `a byte string`;
  else if (value === null) text = 'null';
  else if (Array.isArray(value)) text = 'an array';
  else if (value instanceof Map) text = 'a map'; // CBOR decodes maps as Map
  else if (typeof value === 'object') text = 'an object'; // JSON's word for it
  else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') text = String(value);
  else text = typeof value;
  return text;
}
