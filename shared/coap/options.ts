/**
 * Option values (RFC 7252 §3.2) and typed helpers for the options Edgeflux uses.
 * uint: network byte order, minimal length (0 is the empty value); string: UTF-8 (Net-Unicode);
 * opaque: bytes. Block1/Block2 values are RFC 7959 §2.2.
 */
import type { CoapMessage, CoapOption } from './codec';
import { CoapFormatError } from './codec';
import { OPTION_DEFS, Opt, isCritical } from './constants';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8');

/** §3.2: a uint in the fewest bytes (0 → empty). Up to 2^32 − 1. */
export function encodeUint(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) throw new CoapFormatError(`uint option value ${n} out of range`);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Uint8Array.from(bytes);
}

/** §3.2: leading zero bytes are allowed on receipt ("MUST be tolerated"); values over 4 bytes are refused. */
export function decodeUint(value: Uint8Array): number {
  if (value.length > 4) throw new CoapFormatError(`uint option value of ${value.length} bytes`);
  let n = 0;
  for (const b of value) n = n * 256 + b;
  return n;
}

export const encodeString = (s: string): Uint8Array => encoder.encode(s);
export const decodeString = (value: Uint8Array): string => decoder.decode(value);

export const uintOption = (number: number, n: number): CoapOption => ({ number, value: encodeUint(n) });
export const stringOption = (number: number, s: string): CoapOption => ({ number, value: encodeString(s) });

export const getAll = (m: Pick<CoapMessage, 'options'>, number: number): Uint8Array[] => m.options.filter((o) => o.number === number).map((o) => o.value);
/** The first instance (§5.4.5: extra instances of a non-repeatable option are handled by the caller). */
export const getFirst = (m: Pick<CoapMessage, 'options'>, number: number): Uint8Array | undefined => m.options.find((o) => o.number === number)?.value;
export const has = (m: Pick<CoapMessage, 'options'>, number: number): boolean => m.options.some((o) => o.number === number);

function getUint(m: Pick<CoapMessage, 'options'>, number: number): number | undefined {
  const v = getFirst(m, number);
  return v === undefined ? undefined : decodeUint(v);
}

export const uriPath = (m: Pick<CoapMessage, 'options'>): string[] => getAll(m, Opt.UriPath).map(decodeString);
export const uriQuery = (m: Pick<CoapMessage, 'options'>): string[] => getAll(m, Opt.UriQuery).map(decodeString);
export const locationPath = (m: Pick<CoapMessage, 'options'>): string[] => getAll(m, Opt.LocationPath).map(decodeString);
export const contentFormat = (m: Pick<CoapMessage, 'options'>): number | undefined => getUint(m, Opt.ContentFormat);
export const accept = (m: Pick<CoapMessage, 'options'>): number | undefined => getUint(m, Opt.Accept);
export const observe = (m: Pick<CoapMessage, 'options'>): number | undefined => getUint(m, Opt.Observe);
export const maxAge = (m: Pick<CoapMessage, 'options'>): number | undefined => getUint(m, Opt.MaxAge);
export const size1 = (m: Pick<CoapMessage, 'options'>): number | undefined => getUint(m, Opt.Size1);
export const size2 = (m: Pick<CoapMessage, 'options'>): number | undefined => getUint(m, Opt.Size2);
export const etags = (m: Pick<CoapMessage, 'options'>): Uint8Array[] => getAll(m, Opt.ETag);

export const uriPathOptions = (segments: readonly string[]): CoapOption[] => segments.map((s) => stringOption(Opt.UriPath, s));
export const uriQueryOptions = (params: readonly string[]): CoapOption[] => params.map((s) => stringOption(Opt.UriQuery, s));
export const locationPathOptions = (segments: readonly string[]): CoapOption[] => segments.map((s) => stringOption(Opt.LocationPath, s));

/** `name=value` pairs of the Uri-Query options (RFC 7252 §6.5: one option per `&`-separated argument). */
export function queryParams(m: Pick<CoapMessage, 'options'>): Map<string, string> {
  const params = new Map<string, string>();
  for (const q of uriQuery(m)) {
    const eq = q.indexOf('=');
    const [k, v] = eq < 0 ? [q, ''] : [q.slice(0, eq), q.slice(eq + 1)];
    if (!params.has(k)) params.set(k, v);
  }
  return params;
}

/** RFC 7959 §2.2: NUM (up to 20 bits), M (more), SZX (size = 2^(SZX+4); 7 is reserved). */
export interface Block {
  num: number;
  more: boolean;
  szx: number;
}

export const blockSize = (szx: number): number => 1 << (szx + 4);
/** The largest SZX whose size is ≤ bytes (16 → 0 … 1024 → 6). */
export const szxFor = (bytes: number): number => Math.max(0, Math.min(6, Math.floor(Math.log2(Math.max(16, bytes))) - 4));

export function encodeBlock({ num, more, szx }: Block): Uint8Array {
  if (!Number.isInteger(num) || num < 0 || num > 0xfffff) throw new CoapFormatError(`block number ${num} out of range`);
  if (!Number.isInteger(szx) || szx < 0 || szx > 6) throw new CoapFormatError(`block SZX ${szx} out of range`);
  return encodeUint(num * 16 + (more ? 8 : 0) + szx);
}

/** Throws CoapFormatError for a value over 3 bytes or SZX 7 (reserved, RFC 7959 §2.2). */
export function decodeBlock(value: Uint8Array): Block {
  if (value.length > 3) throw new CoapFormatError(`block option value of ${value.length} bytes`);
  const n = decodeUint(value);
  const szx = n & 0x7;
  if (szx === 7) throw new CoapFormatError('block SZX 7 is reserved');
  return { num: n >>> 4, more: (n & 0x8) !== 0, szx };
}

export const blockOption = (number: typeof Opt.Block1 | typeof Opt.Block2, b: Block): CoapOption => ({ number, value: encodeBlock(b) });

export function block1(m: Pick<CoapMessage, 'options'>): Block | undefined {
  const v = getFirst(m, Opt.Block1);
  return v === undefined ? undefined : decodeBlock(v);
}

export function block2(m: Pick<CoapMessage, 'options'>): Block | undefined {
  const v = getFirst(m, Opt.Block2);
  return v === undefined ? undefined : decodeBlock(v);
}

/**
 * The first option a recipient must treat as unrecognized (RFC 7252 §5.4.1) and that is critical,
 * or undefined. An option is unrecognized when it is not in `known`, when its value length is
 * outside the range of §5.10 (§5.4.3), or when it is a second instance of a non-repeatable option
 * (§5.4.5). Unrecognized elective options are simply ignored by the caller.
 */
export function unrecognizedCritical(m: Pick<CoapMessage, 'options'>, known: ReadonlySet<number>): number | undefined {
  const seen = new Set<number>();
  for (const o of m.options) {
    const def = OPTION_DEFS.get(o.number);
    const repeated = seen.has(o.number) && !(def?.repeatable ?? true);
    seen.add(o.number);
    const recognized = known.has(o.number) && !!def && o.value.length >= def.min && o.value.length <= def.max && !repeated;
    if (!recognized && isCritical(o.number)) return o.number;
  }
  return undefined;
}

/**
 * Options as the caller may trust them: unrecognized elective ones (unknown, bad length, extra
 * instances of non-repeatable ones) dropped (§5.4.1). Call after `unrecognizedCritical`.
 */
export function recognizedOptions(m: Pick<CoapMessage, 'options'>, known: ReadonlySet<number>): CoapOption[] {
  const seen = new Set<number>();
  return m.options.filter((o) => {
    const def = OPTION_DEFS.get(o.number);
    const first = !seen.has(o.number);
    seen.add(o.number);
    return known.has(o.number) && !!def && o.value.length >= def.min && o.value.length <= def.max && (first || def.repeatable);
  });
}
