/**
 * The session socket: one WebSocket between a bridge and the session actor of one MQTT session
 * (objects/session/, docs/mqtt.md "Durable sessions"), subprotocol `edgeflux.session.v1`. It is
 * both the way the bridge reads and writes the session and the holder channel: while it is open
 * the actor can tell this bridge "another connection claimed the session".
 *
 * Each text message is one JSON op. `id` is the bridge's own request number, echoed in the reply.
 * `state` is opaque to the actor (the bridge's SessionState); `expiry` is in seconds.
 *
 *   bridge → actor
 *     open     {id, clean, expiry, will?}     claim the session; `expiry` and `will` apply if this socket is lost
 *     save     {id, epoch, state}             checkpoint of a live session
 *     release  {id, epoch, state|null, expiry, willDelay?} the connection ended; keep `state` `expiry` seconds;
 *                                          with `willDelay` the actor publishes the will of `open` after that
 *                                          many seconds unless the session is claimed first (a bridge shutting down)
 *     attach   {id, epoch}                    the socket dropped, the connection lives on: hold it again
 *     done     {}                             answer to `takeover`: the old holder has finished
 *   actor → bridge
 *     opened   {id, epoch, state|null}        the claim is granted; `state` unless clean/expired/none
 *     saved    {id, ok}                       ok false: stale epoch (taken over)
 *     released {id, ok}
 *     attached {id, ok}                       ok false: claimed by another connection meanwhile
 *     takeover {clean}                        end the connection and release, then answer `done`
 *     error    {id?, code, reason}
 */

import { isLinkFormat, LINK_LIMITS, MAX_CORRELATION_BYTES } from './link';

export const SESSION_SUBPROTOCOL = 'edgeflux.session.v1';

/** Close code the actor uses when it ends a holder's socket because the session was claimed elsewhere. */
export const CLOSE_TAKEN_OVER = 4409;
/** Close code when the released session expired. */
export const CLOSE_EXPIRED = 4410;

/**
 * The connection's will, for the actor to publish should the holder's bridge vanish without a
 * release (a crash): after min(delay, session expiry), unless the session is claimed again first.
 */
export interface SessionWill {
  channel: string;
  subtopic: string;
  publisher: string;
  contentType: string;
  /** Base64. */
  payload: string;
  retain: boolean;
  properties?: [string, string][];
  /** Message expiry interval, seconds. */
  expiry?: number;
  /** The will QoS when below 2 (absent: 2), so subscribers get it at min(will QoS, granted). */
  qos?: 0 | 1;
  /** MQTT 5 format bits, Response Topic and Correlation Data (base64) of the will, passed on unaltered (shared/link.ts). */
  format?: number;
  responseTopic?: string;
  correlation?: string;
  /** Will delay interval, seconds. */
  delay: number;
}

export type SessionBridgeOp =
  | { op: 'open'; id: number; clean: boolean; expiry: number; will?: SessionWill }
  | { op: 'save'; id: number; epoch: number; state: unknown }
  | { op: 'release'; id: number; epoch: number; state: unknown; expiry: number; willDelay?: number }
  | { op: 'attach'; id: number; epoch: number }
  | { op: 'done' };

export type SessionActorOp =
  | { op: 'opened'; id: number; epoch: number; state: unknown }
  | { op: 'saved'; id: number; ok: boolean }
  | { op: 'released'; id: number; ok: boolean }
  | { op: 'attached'; id: number; ok: boolean }
  | { op: 'takeover'; clean: boolean }
  | { op: 'error'; id?: number; code: string; reason: string };

export class SessionFrameError extends Error {
  override name = 'SessionFrameError';
}

const MAX_EXPIRY = 0xffffffff; // MQTT 5 Session Expiry Interval is a four-byte integer (§3.1.2.11.2)

type Obj = Record<string, unknown>;

function int(o: Obj, k: string, max = Number.MAX_SAFE_INTEGER): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw new SessionFrameError(`${k} must be an integer 0..${max}`);
  return v;
}

function bool(o: Obj, k: string): boolean {
  const v = o[k];
  if (typeof v !== 'boolean') throw new SessionFrameError(`${k} must be a boolean`);
  return v;
}

function parseObject(text: string): Obj {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new SessionFrameError('not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new SessionFrameError('a frame is a JSON object');
  return v as Obj;
}

function str(o: Obj, k: string, max = 65_536): string {
  const v = o[k];
  if (typeof v !== 'string' || v.length > max) throw new SessionFrameError(`${k} must be a string of at most ${max} characters`);
  return v;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function parseWill(v: unknown): SessionWill {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new SessionFrameError('will must be an object');
  const o = v as Obj;
  const payload = str(o, 'payload', 1_000_000);
  if (!BASE64.test(payload)) throw new SessionFrameError('will payload must be base64');
  const will: SessionWill = { channel: str(o, 'channel', 256), subtopic: str(o, 'subtopic', 1024), publisher: str(o, 'publisher', 256), contentType: str(o, 'contentType', 256), payload, retain: bool(o, 'retain'), delay: int(o, 'delay', MAX_EXPIRY) };
  if (o.properties !== undefined) {
    const p = o.properties;
    if (!Array.isArray(p) || p.length > 256 || !p.every((x) => Array.isArray(x) && x.length === 2 && typeof x[0] === 'string' && typeof x[1] === 'string')) throw new SessionFrameError('will properties must be [name, value] string pairs');
    will.properties = (p as [string, string][]).map(([k, x]) => [k, x]);
  }
  if (o.expiry !== undefined) will.expiry = int(o, 'expiry', MAX_EXPIRY);
  if (o.qos !== undefined) {
    const qos = int(o, 'qos', 2);
    if (qos < 2) will.qos = qos as 0 | 1;
  }
  if (o.format !== undefined) {
    const format = int(o, 'format', 7);
    if (!isLinkFormat(format)) throw new SessionFrameError('will format has both Payload Format Indicator bits');
    will.format = format;
  }
  if (o.responseTopic !== undefined) will.responseTopic = str(o, 'responseTopic', LINK_LIMITS.stringLength);
  if (o.correlation !== undefined) {
    const correlation = str(o, 'correlation', Math.ceil(MAX_CORRELATION_BYTES / 3) * 4);
    if (!BASE64.test(correlation)) throw new SessionFrameError('will correlation must be base64');
    will.correlation = correlation;
  }
  return will;
}

/** Untrusted-input parser (the actor side): throws SessionFrameError. */
export function parseBridgeOp(text: string): SessionBridgeOp {
  const o = parseObject(text);
  switch (o.op) {
    case 'open': {
      const op: SessionBridgeOp = { op: 'open', id: int(o, 'id'), clean: bool(o, 'clean'), expiry: int(o, 'expiry', MAX_EXPIRY) };
      if (o.will !== undefined && o.will !== null) op.will = parseWill(o.will);
      return op;
    }
    case 'save':
      if (!('state' in o)) throw new SessionFrameError('save needs a state');
      return { op: 'save', id: int(o, 'id'), epoch: int(o, 'epoch'), state: o.state };
    case 'release': {
      const op: SessionBridgeOp = { op: 'release', id: int(o, 'id'), epoch: int(o, 'epoch'), state: o.state ?? null, expiry: int(o, 'expiry', MAX_EXPIRY) };
      if (o.willDelay !== undefined) op.willDelay = int(o, 'willDelay', MAX_EXPIRY);
      return op;
    }
    case 'attach':
      return { op: 'attach', id: int(o, 'id'), epoch: int(o, 'epoch') };
    case 'done':
      return { op: 'done' };
    default:
      throw new SessionFrameError(`unknown op ${JSON.stringify(o.op)}`);
  }
}

/** The bridge side: the actor is trusted, so only the shape needed to route the reply is checked. */
export function parseActorOp(text: string): SessionActorOp {
  const o = parseObject(text);
  switch (o.op) {
    case 'opened':
      return { op: 'opened', id: int(o, 'id'), epoch: int(o, 'epoch'), state: o.state ?? null };
    case 'saved':
    case 'released':
    case 'attached':
      return { op: o.op, id: int(o, 'id'), ok: bool(o, 'ok') };
    case 'takeover':
      return { op: 'takeover', clean: bool(o, 'clean') };
    case 'error':
      return { op: 'error', ...(typeof o.id === 'number' ? { id: o.id } : {}), code: String(o.code), reason: String(o.reason) };
    default:
      throw new SessionFrameError(`unknown op ${JSON.stringify(o.op)}`);
  }
}
