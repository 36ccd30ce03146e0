import type { Principal } from '../../shared/principal';
import type { FrameEncoding } from '../../shared/frames';
import { compileFilter, isWildcardFilter, subscriptionFilter, subtopicProblem } from '../../shared/topics';
import { chooseLinkSubprotocol } from '../../shared/link';
import type { ChannelStore } from './store';

/**
 * What the actor knows about each socket lives in the socket's attachment (serializeAttachment)
 * or, for link subscriptions, in SQLite — both survive hibernation. The maps here are caches
 * only: a woken actor starts with them empty and fills them from attachments and SQLite.
 */

export const TAG_SUBSCRIBER = 'subscriber';
export const TAG_LINK = 'link';

/** Internal request headers, set only by the worker (which strips them from client requests). */
export const HEADER_CHANNEL = 'x-edgeflux-channel';
export const HEADER_SUBSCRIBER = 'x-edgeflux-subscriber';
export const HEADER_LINK = 'x-edgeflux-link';

export interface SubscriberAttachment {
  kind: 'subscriber';
  id: string;
  publisher: string;
  canPublish: boolean;
  /** The subtopic of the connection path ('' = channel root); may hold wildcards. */
  subtopic: string;
  encoding: FrameEncoding;
  /** The client sends cumulative `ack` frames, so the actor can tell when it falls behind. */
  ack: boolean;
  /** Who it is, for re-checking its permissions while it lives (access.ts). */
  principal?: Principal;
  /** Its principal was too big for the attachment and is kept in memory (access.ts). */
  principalInMemory?: boolean;
  /** With `principalInMemory`: its credential's expiry (`exp`, seconds; `key`: an API key), so the socket still closes at it after hibernation (access.ts). */
  expiry?: { exp: number; key: boolean };
}

export interface LinkAttachment {
  kind: 'link';
  id: string;
  /** Frames to the bridge may use string references (the link chose `edgeflux.link.v2`; shared/link.ts). Absent on links accepted before v2. */
  refs?: boolean;
  /** Frames to the bridge may carry publish QoS (the link chose `edgeflux.link.v3` or newer). Absent on links accepted before v3. */
  qos?: boolean;
  /** Frames to the bridge may carry the MQTT 5 format, Response Topic and Correlation Data (the link chose `edgeflux.link.v4`). Absent on links accepted before v4. */
  mqtt5?: boolean;
  /** Its subscriptions may name a shared group, and it settles group deliveries by frame (the link chose `edgeflux.link.v5`). Absent on links accepted before v5. */
  share?: boolean;
}

export type Attachment = SubscriberAttachment | LinkAttachment;

/** `x-edgeflux-subscriber`: JSON the worker writes after authorizing the subscriber. */
export interface SubscriberOptions {
  publisher: string;
  canPublish: boolean;
  subtopic: string;
  encoding: FrameEncoding;
  ack: boolean;
  since?: number;
  /** The Sec-WebSocket-Protocol value to answer with (RFC 6455 §4.2.2), if the client offered any. */
  subprotocol?: string;
  /** The principal the worker authorized, so the actor can ask again while the socket lives. */
  principal?: Principal;
  /** The channel's org, as the worker found it (live.ts names it in `live_channels`). */
  org?: string;
}

export class BadRequest extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type Obj = Record<string, unknown>;

function parseJsonHeader(raw: string, name: string): Obj {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new BadRequest('bad_internal_header', `${name} is not JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BadRequest('bad_internal_header', `${name} must be a JSON object`);
  return v as Obj;
}

export function parseSubscriberOptions(raw: string): SubscriberOptions {
  const o = parseJsonHeader(raw, HEADER_SUBSCRIBER);
  if (typeof o.publisher !== 'string' || o.publisher === '') throw new BadRequest('bad_internal_header', 'subscriber.publisher must be a non-empty string');
  const subtopic = o.subtopic ?? '';
  if (typeof subtopic !== 'string') throw new BadRequest('bad_internal_header', 'subscriber.subtopic must be a string');
  const problem = subtopicProblem(subtopic, 'subscribe');
  if (problem) throw new BadRequest('invalid_subtopic', problem);
  const encoding = o.encoding ?? 'json';
  if (encoding !== 'json' && encoding !== 'cbor') throw new BadRequest('bad_internal_header', 'subscriber.encoding must be json or cbor');
  const since = o.since;
  if (since !== undefined && (typeof since !== 'number' || !Number.isSafeInteger(since) || since < 0)) throw new BadRequest('invalid_since', 'since must be a non-negative integer seq');
  const opts: SubscriberOptions = { publisher: o.publisher, canPublish: o.canPublish === true, subtopic, encoding, ack: o.ack === true };
  if (since !== undefined) opts.since = since;
  if (typeof o.subprotocol === 'string' && o.subprotocol !== '') opts.subprotocol = o.subprotocol;
  if (o.principal !== undefined) opts.principal = parsePrincipal(o.principal);
  if (typeof o.org === 'string' && o.org !== '') opts.org = o.org;
  return opts;
}

const KINDS = new Set(['user', 'device', 'app', 'key']);

/** The worker's principal, shape-checked (the header comes from the worker, not the client). */
function parsePrincipal(v: unknown): Principal {
  const p = v as Obj | null;
  if (typeof p !== 'object' || p === null || !KINDS.has(p.kind as string) || typeof p.id !== 'string') throw new BadRequest('bad_internal_header', 'subscriber.principal must be a principal');
  if ((p.kind === 'key' || p.kind === 'app') && !(Array.isArray(p.scopes) && p.scopes.every((x) => typeof x === 'string'))) throw new BadRequest('bad_internal_header', 'subscriber.principal.scopes must be strings');
  return p as unknown as Principal;
}

/**
 * `offered`: the subprotocols the bridge offered; this actor picks the newest it speaks (so a newer
 * worker in front of an older actor, as in a gradual deploy, never makes the bridge write what the
 * actor cannot read). `subprotocol`: the worker's own pick among what actors before link v3 speak,
 * which those actors use.
 */
export function parseLinkOptions(raw: string): { subprotocol?: string } {
  const o = parseJsonHeader(raw, HEADER_LINK);
  if (Array.isArray(o.offered) && o.offered.every((x) => typeof x === 'string')) {
    const chosen = chooseLinkSubprotocol(o.offered as string[]);
    return chosen ? { subprotocol: chosen } : {};
  }
  return typeof o.subprotocol === 'string' && o.subprotocol !== '' ? { subprotocol: o.subprotocol } : {};
}

function isAttachment(v: unknown): v is Attachment {
  if (typeof v !== 'object' || v === null) return false;
  const a = v as Obj;
  return (a.kind === 'subscriber' || a.kind === 'link') && typeof a.id === 'string';
}

/** The subtopic a subscriber's publish frames go to when they name none; null = they must name one. */
export const defaultPublishSubtopic = (a: SubscriberAttachment): string | null => (isWildcardFilter(a.subtopic) ? null : a.subtopic);

export interface CompiledLinkSub {
  sub: number;
  match: (subtopic: string) => boolean;
  noLocal: string | null;
  /** Its shared group (link v5): delivered through the group (shares.ts), not as a plain subscription. */
  share: string | null;
}

export class SocketCache {
  private attachments = new WeakMap<WebSocket, { att: Attachment; match: (s: string) => boolean }>();
  private links = new Map<string, CompiledLinkSub[]>();

  remember(ws: WebSocket, att: Attachment): void {
    ws.serializeAttachment(att);
    const match = att.kind === 'subscriber' ? compileFilter(subscriptionFilter(att.subtopic)) : () => false;
    this.attachments.set(ws, { att, match });
  }

  private entry(ws: WebSocket): { att: Attachment; match: (s: string) => boolean } | null {
    let e = this.attachments.get(ws);
    if (!e) {
      const att: unknown = ws.deserializeAttachment();
      if (!isAttachment(att)) return null;
      e = { att, match: att.kind === 'subscriber' ? compileFilter(subscriptionFilter(att.subtopic)) : () => false };
      this.attachments.set(ws, e);
    }
    return e;
  }

  attachment(ws: WebSocket): Attachment | null {
    return this.entry(ws)?.att ?? null;
  }

  /** The subscriber's attachment and filter matcher, or null for other sockets. */
  subscriber(ws: WebSocket): { att: SubscriberAttachment; match: (s: string) => boolean } | null {
    const e = this.entry(ws);
    return e && e.att.kind === 'subscriber' ? { att: e.att, match: e.match } : null;
  }

  linkSubs(store: ChannelStore, linkId: string): CompiledLinkSub[] {
    let subs = this.links.get(linkId);
    if (!subs) {
      subs = store.linkSubs(linkId).map((r) => ({ sub: r.sub, match: compileFilter(r.filter), noLocal: r.noLocal, share: r.share }));
      this.links.set(linkId, subs);
    }
    return subs;
  }

  forgetLink(linkId: string): void {
    this.links.delete(linkId);
  }
}
