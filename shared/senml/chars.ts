/**
 * Character-level checks with lookup tables (no regular expressions in the hot loop):
 * SenML names (RFC 8428 §4.5.1) and base64url without padding (RFC 4648 §5, RFC 8428 §4.3).
 */

// RFC 8428 §4.5.1: names use A-Z a-z 0-9 - : . / _ and start with A-Z a-z 0-9.
const ANY = 1;
const START = 2;
const NAME_CHAR = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9]/.test(ch)) NAME_CHAR[c] = ANY | START;
  else if ('-:./_'.includes(ch)) NAME_CHAR[c] = ANY;
}

/**
 * Position of the first character of `s` not allowed in a SenML name, or -1.
 * `startsName`: `s` begins the concatenated name, so its first character must be A-Z a-z 0-9.
 */
export function nameFault(s: string, startsName: boolean): number {
  const len = s.length;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    const kind = c < 128 ? (NAME_CHAR[c] ?? 0) : 0;
    if (kind === 0 || (i === 0 && startsName && (kind & START) === 0)) return i;
  }
  return -1;
}

/** The problem with a name, for an error message; `at` from nameFault. */
export function describeNameFault(name: string, at: number): string {
  if (name.length === 0) return 'resolves to an empty name (bn + n must not be empty, RFC 8428 §4.5.1)';
  const ch = JSON.stringify(name.charAt(at));
  const why = at === 0 ? 'cannot start a name' : 'is not allowed in a name';
  return `resolves to a name whose character ${ch} at position ${at} ${why} (RFC 8428 §4.5.1)`;
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64URL_CODE = new Uint8Array(64);
const B64URL_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 64; i++) {
  B64URL_CODE[i] = B64URL.charCodeAt(i);
  B64URL_VALUE[B64URL.charCodeAt(i)] = i;
}

function sextet(s: string, i: number): number {
  const c = s.charCodeAt(i);
  return c < 128 ? (B64URL_VALUE[c] ?? -1) : -1;
}

/** Why `s` is not canonical unpadded base64url, or null when it is. */
export function base64urlFault(s: string): string | null {
  const len = s.length;
  for (let i = 0; i < len; i++) {
    if (sextet(s, i) < 0) {
      const what = s.charCodeAt(i) === 61 ? 'padding "=" (SenML omits it)' : `character ${JSON.stringify(s.charAt(i))}`;
      return `must be base64url without padding (RFC 8428 §4.3): ${what} at position ${i}`;
    }
  }
  const rest = len % 4;
  if (rest === 1) return 'must be base64url without padding (RFC 8428 §4.3): its length cannot be a whole number of bytes';
  // RFC 4648 §3.5: the unused low bits of the last character must be zero, so each byte string has one spelling.
  if (rest !== 0 && (sextet(s, len - 1) & (rest === 2 ? 0x0f : 0x03)) !== 0) {
    return 'must be canonical base64url (RFC 4648 §3.5): the unused bits of its last character are not zero';
  }
  return null;
}

/** Decode base64url already checked with base64urlFault. */
export function base64urlToBytes(s: string): Uint8Array {
  const len = s.length;
  const out = new Uint8Array((len * 3) >> 2);
  let o = 0;
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const n = (sextet(s, i) << 18) | (sextet(s, i + 1) << 12) | (sextet(s, i + 2) << 6) | sextet(s, i + 3);
    out[o++] = n >> 16;
    out[o++] = (n >> 8) & 0xff;
    out[o++] = n & 0xff;
  }
  if (len - i >= 2) {
    const n = (sextet(s, i) << 18) | (sextet(s, i + 1) << 12) | (len - i === 3 ? sextet(s, i + 2) << 6 : 0);
    out[o++] = n >> 16;
    if (len - i === 3) out[o++] = (n >> 8) & 0xff;
  }
  return out;
}

function code(v: number): number {
  return B64URL_CODE[v & 63] ?? 0;
}

/** Encode bytes as base64url without padding. */
export function bytesToBase64url(bytes: Uint8Array): string {
  const len = bytes.length;
  const codes = new Uint8Array(Math.ceil((len * 4) / 3));
  let o = 0;
  let i = 0;
  for (; i + 3 <= len; i += 3) {
    const n = ((bytes[i] ?? 0) << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    codes[o++] = code(n >> 18);
    codes[o++] = code(n >> 12);
    codes[o++] = code(n >> 6);
    codes[o++] = code(n);
  }
  if (len - i > 0) {
    const n = ((bytes[i] ?? 0) << 16) | (len - i === 2 ? (bytes[i + 1] ?? 0) << 8 : 0);
    codes[o++] = code(n >> 18);
    codes[o++] = code(n >> 12);
    if (len - i === 2) codes[o++] = code(n >> 6);
  }
  let text = '';
  for (let start = 0; start < o; start += 8192) {
    text += String.fromCharCode(...codes.subarray(start, Math.min(o, start + 8192)));
  }
  return text;
}
