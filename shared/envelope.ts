/**
 * The one message type (BRIEF "The message envelope"), and its JSON wire form.
 *
 * JSON wire form (what a WebSocket client that chose JSON sees; docs/channel-actor.md):
 *   { channel, subtopic, publisher, protocol, contentType, created, seq, payload: string, encoding? }
 *  - textual content types (text/*, JSON, XML and their +json/+xml suffixes, form data) whose
 *    bytes are valid UTF-8 and whose charset, if named, is UTF-8: `payload` is the text itself
 *    and `encoding` is absent — a browser reads `JSON.parse(frame.payload)` directly;
 *  - everything else: `payload` is standard base64 (RFC 4648 §4, padded) and `encoding` is
 *    `"base64"`. The marker is explicit, so no content type guessing is needed to decode.
 * Decoding is lossless both ways: a textual type with invalid UTF-8 falls back to base64.
 */

export const PROTOCOLS = ['http', 'ws', 'mqtt', 'coap'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export interface Envelope {
  channel: string;
  subtopic: string;
  publisher: string;
  protocol: Protocol;
  contentType: string;
  payload: Uint8Array;
  /** ms since the Unix epoch, set by the channel actor. */
  created: number;
  /** Per-channel, strictly increasing; the order and the resume cursor. */
  seq: number;
}

export interface WirePayload {
  payload: string;
  encoding?: 'base64';
}

export type EnvelopeJson = Omit<Envelope, 'payload'> & WirePayload;

export class EnvelopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EnvelopeError';
  }
}

export const isProtocol = (v: unknown): v is Protocol => typeof v === 'string' && (PROTOCOLS as readonly string[]).includes(v);

/** `type/subtype` in lower case, parameters dropped (RFC 9110 §8.3.1: type and subtype are case-insensitive). */
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const QUOTED = '"(?:[\\t !#-\\[\\]-~\\x80-\\xff]|\\\\[\\t -~\\x80-\\xff])*"';
/** RFC 9110 §8.3.1: type "/" subtype *( OWS ";" OWS [ token "=" ( token / quoted-string ) ] ). */
// The spaces after a `;` belong to the parameter that follows (none: the next `;` or the end takes
// them), so there is one way to match any string: linear time. (With `;[ \\t]*(param)?` both the
// round and the next one could take them, and a run of "; " made the match exponential.)
const MEDIA_TYPE = new RegExp(`^${TOKEN}/${TOKEN}(?:[ \\t]*;(?:[ \\t]*${TOKEN}=(?:${TOKEN}|${QUOTED}))?)*[ \\t]*$`);
let lastMediaType = '';

/** Why `contentType` is not a media type (RFC 9110 §8.3.1), or null when it is one. */
export function mediaTypeProblem(contentType: string): string | null {
  if (contentType === lastMediaType) return null; // consecutive publishes mostly share one
  if (!MEDIA_TYPE.test(contentType)) return `content type ${JSON.stringify(contentType.slice(0, 64))} is not a media type: type/subtype with optional ;name=value parameters (RFC 9110 §8.3.1)`;
  lastMediaType = contentType;
  return null;
}

export function mediaType(contentType: string): string {
  return (contentType.split(';')[0] ?? '').trim().toLowerCase();
}

function charsetOf(contentType: string): string | null {
  const m = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(contentType);
  return m?.[1]?.toLowerCase() ?? null;
}

const TEXT_TYPES = new Set(['application/json', 'application/xml', 'application/javascript', 'application/x-www-form-urlencoded', 'application/yaml']);

/** Is a payload of this content type meant to be text (and UTF-8 unless a charset says otherwise)? */
export function isTextualType(contentType: string): boolean {
  const t = mediaType(contentType);
  const charset = charsetOf(contentType);
  if (charset !== null && charset !== 'utf-8' && charset !== 'utf8' && charset !== 'us-ascii') return false;
  // RFC 6839 §3.1 / §4.1: +json and +xml structured syntax suffixes are JSON / XML.
  return t.startsWith('text/') || TEXT_TYPES.has(t) || t.endsWith('+json') || t.endsWith('+xml');
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

/** UTF-8 text of the bytes, or null when they are not valid UTF-8. */
export function utf8Text(bytes: Uint8Array): string | null {
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}

export const utf8Bytes = (text: string): Uint8Array => encoder.encode(text);

export function toBase64(bytes: Uint8Array): string {
  let bin = '';
  // Chunked so a large payload does not blow the argument limit of fromCharCode.
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

export function fromBase64(text: string): Uint8Array {
  let bin: string;
  try {
    bin = atob(text);
  } catch {
    throw new EnvelopeError('payload is not valid base64');
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function payloadToWire(contentType: string, payload: Uint8Array): WirePayload {
  if (isTextualType(contentType)) {
    const text = utf8Text(payload);
    if (text !== null) return { payload: text };
  }
  return { payload: toBase64(payload), encoding: 'base64' };
}

export function payloadFromWire(payload: string, encoding: unknown): Uint8Array {
  if (encoding === undefined) return utf8Bytes(payload);
  if (encoding === 'base64') return fromBase64(payload);
  throw new EnvelopeError(`unknown payload encoding ${JSON.stringify(encoding)}; only "base64" is defined`);
}

export function envelopeToJson(e: Envelope): EnvelopeJson {
  return {
    channel: e.channel,
    subtopic: e.subtopic,
    publisher: e.publisher,
    protocol: e.protocol,
    contentType: e.contentType,
    created: e.created,
    seq: e.seq,
    ...payloadToWire(e.contentType, e.payload),
  };
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function field<T>(o: Record<string, unknown>, name: string, ok: (v: unknown) => v is T, what: string): T {
  const v = o[name];
  if (!ok(v)) throw new EnvelopeError(`envelope field '${name}' must be ${what}`);
  return v;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Parses the JSON wire form (already JSON.parse'd, so untrusted) back into an Envelope. */
export function envelopeFromJson(value: unknown): Envelope {
  if (!isRecord(value)) throw new EnvelopeError('envelope must be a JSON object');
  const payload = field(value, 'payload', isString, 'a string');
  return {
    channel: field(value, 'channel', isString, 'a string'),
    subtopic: field(value, 'subtopic', isString, 'a string'),
    publisher: field(value, 'publisher', isString, 'a string'),
    protocol: field(value, 'protocol', isProtocol, `one of ${PROTOCOLS.join(', ')}`),
    contentType: field(value, 'contentType', isString, 'a string'),
    created: field(value, 'created', isCount, 'a non-negative integer (ms)'),
    seq: field(value, 'seq', isCount, 'a non-negative integer'),
    payload: payloadFromWire(payload, value.encoding),
  };
}

export const encodeEnvelopeJson = (e: Envelope): string => JSON.stringify(envelopeToJson(e));

export function decodeEnvelopeJson(text: string): Envelope {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new EnvelopeError('envelope is not valid JSON');
  }
  return envelopeFromJson(value);
}
