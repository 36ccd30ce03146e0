/**
 * The CoAP message codec (RFC 7252 §3). `decode` turns one datagram into a `CoapMessage` or
 * throws `CoapFormatError`, and nothing else, whatever the bytes; `encode` is its inverse and
 * sorts options by number (stable, so the order of a repeated option's values is kept).
 *
 *    0                   1                   2                   3
 *   |Ver| T |  TKL  |      Code     |          Message ID           |
 *   |   Token (if any, TKL bytes) ...
 *   |   Options (if any) ...
 *   |1 1 1 1 1 1 1 1|    Payload (if any) ...
 */
import { Code, Type, type MessageType } from './constants';

export interface CoapOption {
  number: number;
  value: Uint8Array;
}

export interface CoapMessage {
  type: MessageType;
  /** class << 5 | detail; see `Code`. */
  code: number;
  messageId: number;
  token: Uint8Array;
  /** In wire order after `decode` (ascending number); any order for `encode`. */
  options: CoapOption[];
  payload: Uint8Array;
}

export class CoapFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CoapFormatError';
  }
}

const VERSION = 1;
const PAYLOAD_MARKER = 0xff;
export const MAX_TOKEN_LENGTH = 8;
export const MAX_OPTION_NUMBER = 0xffff;
const EMPTY = new Uint8Array(0);

/** The fixed header only, for answering (RST) or ignoring a datagram that does not decode. */
export interface CoapHeader {
  version: number;
  type: MessageType;
  tokenLength: number;
  code: number;
  messageId: number;
}

export function decodeHeader(buf: Uint8Array): CoapHeader | null {
  if (buf.length < 4) return null;
  const b0 = buf[0]!;
  return {
    version: b0 >> 6,
    type: ((b0 >> 4) & 0x3) as MessageType,
    tokenLength: b0 & 0xf,
    code: buf[1]!,
    messageId: (buf[2]! << 8) | buf[3]!,
  };
}

/** RFC 7252 §3.1: the 4-bit delta/length nibble and its 0–2 extension bytes. */
function readExtended(buf: Uint8Array, pos: number, nibble: number, what: string): [value: number, pos: number] {
  if (nibble < 13) return [nibble, pos];
  if (nibble === 13) {
    if (pos + 1 > buf.length) throw new CoapFormatError(`truncated option ${what} extension`);
    return [buf[pos]! + 13, pos + 1];
  }
  if (nibble === 14) {
    if (pos + 2 > buf.length) throw new CoapFormatError(`truncated option ${what} extension`);
    return [((buf[pos]! << 8) | buf[pos + 1]!) + 269, pos + 2];
  }
  // 15 is reserved; as a delta it is only valid as the whole payload marker byte (checked by the caller).
  throw new CoapFormatError(`reserved option ${what} 15`);
}

export function decode(buf: Uint8Array): CoapMessage {
  const h = decodeHeader(buf);
  if (!h) throw new CoapFormatError('message shorter than the 4-byte header');
  // §3: unknown versions are to be silently ignored; the caller tells that apart with decodeHeader.
  if (h.version !== VERSION) throw new CoapFormatError(`unsupported version ${h.version}`);
  // §3: lengths 9–15 are reserved and MUST be processed as a message format error.
  if (h.tokenLength > MAX_TOKEN_LENGTH) throw new CoapFormatError(`token length ${h.tokenLength} is reserved`);
  let pos = 4;
  if (h.code === Code.Empty) {
    // §4.1: an Empty message has TKL 0 and no bytes after the Message ID.
    if (buf.length !== 4 || h.tokenLength !== 0) throw new CoapFormatError('empty message (code 0.00) with token, options or payload');
    return { type: h.type, code: h.code, messageId: h.messageId, token: EMPTY, options: [], payload: EMPTY };
  }
  if (pos + h.tokenLength > buf.length) throw new CoapFormatError('truncated token');
  const token = buf.slice(pos, pos + h.tokenLength);
  pos += h.tokenLength;
  const options: CoapOption[] = [];
  let number = 0;
  let payload = EMPTY;
  while (pos < buf.length) {
    const b = buf[pos++]!;
    if (b === PAYLOAD_MARKER) {
      // §3: a marker followed by a zero-length payload MUST be processed as a message format error.
      if (pos === buf.length) throw new CoapFormatError('payload marker with an empty payload');
      payload = buf.slice(pos);
      break;
    }
    let delta: number;
    let length: number;
    [delta, pos] = readExtended(buf, pos, b >> 4, 'delta');
    [length, pos] = readExtended(buf, pos, b & 0xf, 'length');
    number += delta;
    if (number > MAX_OPTION_NUMBER) throw new CoapFormatError(`option number ${number} exceeds 65535`);
    if (pos + length > buf.length) throw new CoapFormatError(`option ${number} value runs past the end of the message`);
    options.push({ number, value: buf.slice(pos, pos + length) });
    pos += length;
  }
  return { type: h.type, code: h.code, messageId: h.messageId, token, options, payload };
}

const nibble = (n: number): number => (n < 13 ? n : n < 269 ? 13 : 14);
const extLength = (n: number): number => (n < 13 ? 0 : n < 269 ? 1 : 2);

function writeExtended(out: Uint8Array, pos: number, n: number): number {
  if (n >= 269) {
    out[pos] = (n - 269) >> 8;
    out[pos + 1] = (n - 269) & 0xff;
    return pos + 2;
  }
  if (n >= 13) {
    out[pos] = n - 13;
    return pos + 1;
  }
  return pos;
}

/** The options sorted by number; `Array.prototype.sort` is stable, so repeated values keep their order. */
export const sortOptions = (options: readonly CoapOption[]): CoapOption[] => [...options].sort((a, b) => a.number - b.number);

export function encode(msg: CoapMessage): Uint8Array {
  const { type, code, messageId, token, payload } = msg;
  if (!Number.isInteger(type) || type < 0 || type > 3) throw new CoapFormatError(`invalid message type ${type}`);
  if (!Number.isInteger(code) || code < 0 || code > 0xff) throw new CoapFormatError(`invalid code ${code}`);
  if (!Number.isInteger(messageId) || messageId < 0 || messageId > 0xffff) throw new CoapFormatError(`invalid message id ${messageId}`);
  if (token.length > MAX_TOKEN_LENGTH) throw new CoapFormatError(`token longer than ${MAX_TOKEN_LENGTH} bytes`);
  const options = sortOptions(msg.options);
  if (code === Code.Empty && (token.length > 0 || options.length > 0 || payload.length > 0)) {
    throw new CoapFormatError('empty message (code 0.00) with token, options or payload'); // §4.1
  }
  let size = 4 + token.length + (payload.length > 0 ? 1 + payload.length : 0);
  let prev = 0;
  for (const o of options) {
    if (!Number.isInteger(o.number) || o.number < 0 || o.number > MAX_OPTION_NUMBER) throw new CoapFormatError(`invalid option number ${o.number}`);
    if (o.value.length > 0xffff + 269) throw new CoapFormatError(`option ${o.number} value too long`);
    const delta = o.number - prev;
    size += 1 + extLength(delta) + extLength(o.value.length) + o.value.length;
    prev = o.number;
  }
  const out = new Uint8Array(size);
  out[0] = (VERSION << 6) | (type << 4) | token.length;
  out[1] = code;
  out[2] = messageId >> 8;
  out[3] = messageId & 0xff;
  out.set(token, 4);
  let pos = 4 + token.length;
  prev = 0;
  for (const o of options) {
    const delta = o.number - prev;
    out[pos++] = (nibble(delta) << 4) | nibble(o.value.length);
    pos = writeExtended(out, pos, delta);
    pos = writeExtended(out, pos, o.value.length);
    out.set(o.value, pos);
    pos += o.value.length;
    prev = o.number;
  }
  if (payload.length > 0) {
    out[pos++] = PAYLOAD_MARKER;
    out.set(payload, pos);
  }
  return out;
}

/** An Empty message (§4.1): an empty ACK, a RST, or a CoAP ping (empty CON). */
export const emptyMessage = (type: MessageType, messageId: number): CoapMessage => ({ type, code: Code.Empty, messageId, token: EMPTY, options: [], payload: EMPTY });

export const isEmpty = (m: CoapMessage): boolean => m.code === Code.Empty;
export { Type };
