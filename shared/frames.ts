/**
 * WebSocket frames between a subscriber (browser, app, test) and a channel actor.
 * Text frames carry JSON, binary frames carry CBOR (RFC 8949); a socket's *outgoing* encoding is
 * chosen at upgrade time (`edgeflux.cbor` subprotocol or `?format=cbor`), incoming frames may be
 * either. Every frame is one object with a `type`. Formats are listed in docs/channel-actor.md.
 */
import { asBytes, cborDecode, cborEncode } from './cbor';
import { envelopeFromJson, envelopeToJson, payloadFromWire, payloadToWire, utf8Bytes, type Envelope } from './envelope';

export type FrameEncoding = 'json' | 'cbor';
/** A client's correlation id for a publish, echoed in its ack or error. */
export type FrameId = string | number;

export type ServerFrame =
  /**
   * The first frame of every subscription, before any retained, replayed or live message: `seq` is
   * the channel's last seq at that moment (the resume cursor for a client that has seen nothing
   * yet), `since` echoes the resume point the client asked for, if any.
   */
  | { type: 'subscribed'; seq: number; since?: number }
  | { type: 'message'; envelope: Envelope; retained?: boolean }
  | { type: 'ack'; id?: FrameId; seq: number; created: number }
  /** `closing`: the server closes the socket right after this frame (a withdrawn permission or credential); a client may act on it at once. */
  | { type: 'error'; id?: FrameId; status: number; code: string; message: string; closing?: true }
  | { type: 'gap'; from: number; to: number };

export type ClientFrame =
  | { type: 'publish'; id?: FrameId; subtopic?: string; contentType?: string; payload: Uint8Array; retain?: boolean }
  /** Cumulative flow-control ack: "I have processed every message up to and including seq". */
  | { type: 'ack'; seq: number };

export class FrameError extends Error {
  /** The `id` of the refused frame, when it had a valid one: the error frame echoes it. */
  id?: FrameId;
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

export const MAX_CONTENT_TYPE_LENGTH = 255;
const MAX_ID_LENGTH = 128;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
const isSeq = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function optional<T>(o: Obj, key: string, ok: (v: unknown) => v is T, what: string): T | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!ok(v)) throw new FrameError(`'${key}' must be ${what}`);
  return v;
}

const isId = (v: unknown): v is FrameId =>
  (typeof v === 'string' && v.length <= MAX_ID_LENGTH) || (typeof v === 'number' && Number.isSafeInteger(v));
const isContentType = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_CONTENT_TYPE_LENGTH;
const isString = (v: unknown): v is string => typeof v === 'string';
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';

function parseText(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    throw new FrameError('text frame is not valid JSON');
  }
}

const parse = (data: string | Uint8Array): { value: unknown; json: boolean } =>
  typeof data === 'string' ? { value: parseText(data), json: true } : { value: cborDecode(data), json: false };

// ---- server → client -------------------------------------------------------------------------

function serverObject(frame: ServerFrame, encoding: FrameEncoding): Obj {
  if (frame.type !== 'message') return { ...frame };
  const e = frame.envelope;
  const body: Obj =
    encoding === 'json'
      ? { type: 'message', ...envelopeToJson(e) }
      : { type: 'message', channel: e.channel, subtopic: e.subtopic, publisher: e.publisher, protocol: e.protocol, contentType: e.contentType, created: e.created, seq: e.seq, payload: e.payload };
  if (frame.retained) body.retained = true;
  return body;
}

export function encodeServerFrame(frame: ServerFrame, encoding: FrameEncoding): string | Uint8Array {
  const body = serverObject(frame, encoding);
  return encoding === 'json' ? JSON.stringify(body) : cborEncode(body);
}

/** For clients and tests: parses what the actor sends. */
export function decodeServerFrame(data: string | Uint8Array): ServerFrame {
  const { value } = parse(data);
  if (!isObj(value)) throw new FrameError('frame must be an object');
  switch (value.type) {
    case 'message': {
      let envelope: Envelope;
      const bytes = asBytes(value.payload);
      if (bytes) {
        const { payload: _p, ...rest } = value;
        envelope = { ...envelopeFromJson({ ...rest, payload: '' }), payload: bytes };
      } else {
        envelope = envelopeFromJson(value);
      }
      return value.retained === true ? { type: 'message', envelope, retained: true } : { type: 'message', envelope };
    }
    case 'subscribed': {
      const since = optional(value, 'since', isSeq, 'an integer seq');
      if (!isSeq(value.seq)) throw new FrameError('subscribed needs an integer seq');
      return { type: 'subscribed', seq: value.seq, ...(since === undefined ? {} : { since }) };
    }
    case 'ack': {
      const id = optional(value, 'id', isId, 'a string or an integer');
      if (!isSeq(value.seq) || !isSeq(value.created)) throw new FrameError('ack needs integer seq and created');
      return { type: 'ack', ...(id === undefined ? {} : { id }), seq: value.seq, created: value.created };
    }
    case 'error': {
      const id = optional(value, 'id', isId, 'a string or an integer');
      if (!isSeq(value.status) || !isString(value.code) || !isString(value.message)) throw new FrameError('error needs status, code, message');
      return { type: 'error', ...(id === undefined ? {} : { id }), status: value.status, code: value.code, message: value.message, ...(value.closing === true ? { closing: true as const } : {}) };
    }
    case 'gap':
      if (!isSeq(value.from) || !isSeq(value.to)) throw new FrameError('gap needs integer from and to');
      return { type: 'gap', from: value.from, to: value.to };
    default:
      throw new FrameError(`unknown frame type ${JSON.stringify(value.type)}`);
  }
}

// ---- client → server -------------------------------------------------------------------------

export function encodeClientFrame(frame: ClientFrame, encoding: FrameEncoding): string | Uint8Array {
  if (frame.type === 'ack') return encoding === 'json' ? JSON.stringify(frame) : cborEncode(frame);
  if (encoding === 'cbor') return cborEncode(frame);
  const { payload, ...rest } = frame;
  return JSON.stringify({ ...rest, ...payloadToWire(frame.contentType ?? 'application/octet-stream', payload) });
}

function publishPayload(value: Obj, json: boolean): { payload: Uint8Array; defaultType: string } {
  const p = value.payload;
  if (p === undefined) throw new FrameError("publish needs a 'payload'");
  const bytes = asBytes(p);
  if (bytes) return { payload: bytes, defaultType: 'application/octet-stream' };
  if (typeof p === 'string') {
    if (json && value.encoding !== undefined) {
      try {
        return { payload: payloadFromWire(p, value.encoding), defaultType: 'application/octet-stream' };
      } catch (e) {
        throw new FrameError(e instanceof Error ? e.message : String(e));
      }
    }
    return { payload: utf8Bytes(p), defaultType: 'text/plain; charset=utf-8' };
  }
  // A JSON value (object, array, number…) is published as its JSON text: convenient for browsers.
  if (json) return { payload: utf8Bytes(JSON.stringify(p)), defaultType: 'application/json' };
  throw new FrameError("'payload' must be a byte string or a text string");
}

/**
 * Parses an untrusted frame from a subscriber. A frame without `type` is a publish. A frame that
 * is an object with a valid `id` but is refused throws a FrameError carrying that id, so the client
 * learns which of its publishes failed.
 */
export function decodeClientFrame(data: string | Uint8Array): ClientFrame {
  const { value, json } = parse(data);
  if (!isObj(value)) throw new FrameError('frame must be an object');
  try {
    return clientFrame(value, json);
  } catch (e) {
    if (e instanceof FrameError && isId(value.id)) e.id = value.id;
    throw e;
  }
}

/** What each client frame may carry: a misspelt key (`retained`, `subTopic`) is refused, not ignored. */
const PUBLISH_KEYS = new Set(['type', 'id', 'subtopic', 'contentType', 'retain', 'payload', 'encoding']);
const ACK_KEYS = new Set(['type', 'seq']);

function knownKeys(value: Obj, known: Set<string>, what: string): void {
  for (const k in value) if (!known.has(k)) throw new FrameError(`unknown key ${JSON.stringify(k)} in ${what} frame; it takes ${[...known].join(', ')}`);
}

function clientFrame(value: Obj, json: boolean): ClientFrame {
  const type = value.type ?? 'publish';
  if (type === 'ack') {
    knownKeys(value, ACK_KEYS, 'an ack');
    if (!isSeq(value.seq)) throw new FrameError("ack needs an integer 'seq'");
    return { type: 'ack', seq: value.seq };
  }
  if (type !== 'publish') throw new FrameError(`unknown frame type ${JSON.stringify(type)}; expected publish or ack`);
  knownKeys(value, PUBLISH_KEYS, 'a publish');
  const id = optional(value, 'id', isId, `a string of at most ${MAX_ID_LENGTH} characters or an integer`);
  const subtopic = optional(value, 'subtopic', isString, 'a string');
  const contentType = optional(value, 'contentType', isContentType, `a non-empty string of at most ${MAX_CONTENT_TYPE_LENGTH} characters`);
  const retain = optional(value, 'retain', isBool, 'a boolean');
  const { payload, defaultType } = publishPayload(value, json);
  const frame: ClientFrame = { type: 'publish', payload, contentType: contentType ?? defaultType };
  if (id !== undefined) frame.id = id;
  if (subtopic !== undefined) frame.subtopic = subtopic;
  if (retain !== undefined) frame.retain = retain;
  return frame;
}
