/**
 * An in-memory `Platform` for the MQTT unit tests: devices with keys, channels with publish /
 * subscribe connections, per-channel seq, retained messages per subtopic, a recent window replayed
 * after `since`, No Local, synchronous fan-out, and knobs to defer, refuse or fail. A test double
 * only: the real platform (workers + channel actors) is tested end to end elsewhere.
 */
import type { Principal } from '../../../shared/principal';
import { AccessChanges } from '../../testing/access-changes';
import { matchSubtopic } from '../../../shared/topics';
import {
  PlatformError, type Decision, type Delivery, type MessageAction, type Platform, type PublishOutcome, type PublishRequest, type SubscribeRequest, type Subscription,
} from '../../platform/types';

interface Sub {
  filter: string;
  noLocal?: string;
  onMessage: (d: Delivery) => void;
}

interface Channel {
  publishers: Set<string>;
  subscribers: Set<string>;
  seq: number;
  retained: Map<string, Delivery>;
  recent: Delivery[];
  subs: Set<Sub>;
}

/** MQTT 5 No Local as the channel actor applies it (objects/channel/types.ts isLocal): the same origin, or the publisher id of older bridges. */
const isLocal = (noLocal: string | undefined, d: Delivery, origin: string | undefined): boolean => !!noLocal && (noLocal === d.publisher || (origin !== undefined && noLocal === origin));

export class MemoryPlatform implements Platform {
  /** Each stored message's origin (PublishRequest.origin): kept beside it, never handed to subscribers; retained copies have none. */
  private readonly origins = new WeakMap<Delivery, string>();
  readonly keys = new Map<string, Principal>();
  readonly channels = new Map<string, Channel>();
  readonly published: PublishRequest[] = [];
  readonly presenceLog: [string, boolean][] = [];
  authorizeCalls = 0;
  subscribeCalls = 0;
  /** Messages kept per channel for replay after `since`. */
  recentWindow = 100;
  /** Every call fails as if the workers were unreachable (authenticate/authorize/subscribe throw 503; publish answers 503). */
  down = false;
  /** When set, every publish answers this instead of storing. */
  refuse: PublishOutcome | undefined;
  /** Called once each authorize call has decided, before it answers (a change racing the answer); then the call waits for `authorizeGate`, if set. */
  onAuthorize: (() => void) | undefined;
  authorizeGate: Promise<void> | undefined;
  /** Access changes, as the real platform client follows them (`access.change(org)`, as the bridge hears of it from the workers; `access.version++`: seen at the next packet, no one told). */
  readonly access = new AccessChanges();
  /** When true, publishes wait until `releasePublishes()`. */
  defer = false;
  private readonly deferred: (() => void)[] = [];

  constructor(private readonly clock: { now(): number }) {}

  addDevice(id: string, key: string, orgId = 'org-1'): this {
    this.keys.set(key, { kind: 'device', id, orgId });
    return this;
  }

  /** The device's key is rotated: its principal is refused from now on (401), as the workers refuse a stale key stamp. */
  rotateKey(key: string): this {
    this.keys.delete(key);
    return this;
  }

  addChannel(id: string, connections: { publish?: string[]; subscribe?: string[] } = {}): this {
    this.channels.set(id, { publishers: new Set(connections.publish), subscribers: new Set(connections.subscribe), seq: 0, retained: new Map(), recent: [], subs: new Set() });
    return this;
  }

  readonly accessVersion = (): number => this.access.version;
  readonly onAccessChange = this.access.listen;

  /** Lets `n` deferred publishes (default all) go on, in order. */
  releasePublishes(n = Infinity): void {
    for (let i = 0; i < n && this.deferred.length > 0; i++) this.deferred.shift()!();
  }

  /** Lets the `i`-th waiting publish go on first (out-of-order storage acknowledgements). */
  releaseAt(i: number): void {
    this.deferred.splice(i, 1)[0]?.();
  }

  get pendingPublishes(): number {
    return this.deferred.length;
  }

  get activeSubscriptions(): number {
    let n = 0;
    for (const c of this.channels.values()) n += c.subs.size;
    return n;
  }

  private check(): void {
    if (this.down) throw new PlatformError(503, 'platform unreachable');
  }

  async authenticate(username: string | undefined, password: string): Promise<Principal> {
    this.check();
    const p = this.keys.get(password);
    if (password === 'forbidden') throw new PlatformError(403, 'account disabled');
    if (!p || (username !== undefined && username !== p.id)) throw new PlatformError(401, 'unknown device or key');
    return p;
  }

  async authorize(principal: Principal, checks: { channel: string; action: MessageAction }[]): Promise<Decision[]> {
    this.check();
    this.authorizeCalls++;
    const decided: Decision[] =
      principal.kind === 'device' && ![...this.keys.values()].includes(principal)
        ? checks.map(({ channel, action }) => ({ channel, action, allowed: false, status: 401, reason: 'the device key was rotated' }))
        : checks.map(({ channel, action }) => {
            const c = this.channels.get(channel);
            if (!c) return { channel, action, allowed: false, status: 404, reason: `no channel ${channel}` };
            const allowed = (action === 'messages:publish' ? c.publishers : c.subscribers).has(principal.id);
            return { channel, action, allowed, status: allowed ? 200 : 403 };
          });
    // Decided; what happens now races the answer on its way.
    this.onAuthorize?.();
    if (this.authorizeGate) await this.authorizeGate;
    return decided;
  }

  credentialRefusals = 0;
  async credentialRefusal(principal: Principal): Promise<string | null> {
    this.check();
    this.credentialRefusals++;
    return principal.kind === 'device' && ![...this.keys.values()].includes(principal) ? 'the device key was rotated' : null;
  }

  async channelsFor(principal: Principal, action: MessageAction): Promise<string[]> {
    this.check();
    if (principal.kind === 'device' && ![...this.keys.values()].includes(principal)) throw new PlatformError(401, 'the device key was rotated');
    return [...this.channels].filter(([, c]) => (action === 'messages:publish' ? c.publishers : c.subscribers).has(principal.id)).map(([id]) => id);
  }

  async publish(req: PublishRequest): Promise<PublishOutcome> {
    if (this.defer) await new Promise<void>((resolve) => this.deferred.push(resolve));
    if (this.down) return { ok: false, status: 503, code: 'unavailable', message: 'platform unreachable' };
    if (this.refuse) return this.refuse;
    const c = this.channels.get(req.channel);
    if (!c) return { ok: false, status: 404, code: 'not_found', message: 'no such channel' };
    this.published.push(req);
    const d: Delivery = {
      channel: req.channel, subtopic: req.subtopic, publisher: req.publisher, protocol: req.protocol, contentType: req.contentType || 'application/octet-stream', payload: req.payload,
      created: this.clock.now(), seq: ++c.seq, retained: false,
      ...(req.userProperties ? { userProperties: req.userProperties } : {}), ...(req.messageExpiry !== undefined ? { expiresAt: this.clock.now() + req.messageExpiry * 1000 } : {}),
      ...(req.retain ? { retainPublished: true } : {}),
      ...(req.qos === 0 || req.qos === 1 ? { qos: req.qos } : {}),
      ...(req.format !== undefined ? { format: req.format } : {}),
      ...(req.responseTopic !== undefined ? { responseTopic: req.responseTopic } : {}),
      ...(req.correlation !== undefined ? { correlation: req.correlation } : {}),
    };
    if (req.origin !== undefined) this.origins.set(d, req.origin);
    if (req.retain) {
      if (req.payload.length === 0) c.retained.delete(req.subtopic);
      else c.retained.set(req.subtopic, { ...d, retained: true });
    }
    c.recent.push(d);
    if (c.recent.length > this.recentWindow) c.recent.shift();
    for (const s of [...c.subs]) if (matchSubtopic(s.filter, d.subtopic) && !isLocal(s.noLocal, d, req.origin)) s.onMessage(d);
    return { ok: true, seq: d.seq, created: d.created };
  }

  /** Retained first (new subscriptions) or the recent window after `since` (resumes), then live. */
  async subscribe(req: SubscribeRequest, onMessage: (d: Delivery) => void): Promise<Subscription & { seq: number }> {
    this.check();
    this.subscribeCalls++;
    const c = this.channels.get(req.channel);
    if (!c) throw new PlatformError(404, 'no such channel');
    const sub: Sub = { filter: req.filter, onMessage, ...(req.noLocal ? { noLocal: req.noLocal } : {}) };
    const wanted = (d: Delivery) => matchSubtopic(req.filter, d.subtopic) && !isLocal(req.noLocal, d, this.origins.get(d));
    const replay = req.since === undefined ? [...c.retained.values()].sort((a, b) => a.seq - b.seq) : c.recent.filter((d) => d.seq > req.since!);
    for (const d of replay) if (wanted(d)) onMessage(d);
    c.subs.add(sub);
    return { seq: c.seq, close: () => void c.subs.delete(sub) };
  }

  presence(deviceId: string, online: boolean): void {
    this.presenceLog.push([deviceId, online]);
  }

  /** A message from another protocol (HTTP, CoAP) or device. */
  inject(channel: string, subtopic: string, payload: string, opts: Partial<PublishRequest> = {}): Promise<PublishOutcome> {
    return this.publish({ channel, subtopic, publisher: 'http-user', protocol: 'coap', contentType: 'text/plain', payload: new TextEncoder().encode(payload), retain: false, ...opts });
  }
}
