/**
 * An in-memory `Platform` for unit tests of the protocol front-ends: devices with keys, channels
 * with publish/subscribe connections, retained messages per subtopic (MQTT-style), synchronous
 * retained replay on subscribe, and knobs to make it fail or slow. Not the real platform: the
 * end-to-end tests run the bridge against the workers.
 */
import type { Principal } from '../../../shared/principal';
import { AccessChanges } from '../../testing/access-changes';
import { matchSubtopic } from '../../../shared/topics';
import {
  PlatformError, type Decision, type Delivery, type MessageAction, type Platform, type PublishOutcome, type PublishRequest, type SubscribeRequest, type Subscription,
} from '../../platform/types';

interface Channel {
  publishers: Set<string>;
  subscribers: Set<string>;
  seq: number;
  retained: Map<string, Delivery>;
  subs: Set<Sub>;
}

interface Sub {
  filter: string;
  onMessage: (d: Delivery) => void;
}

export class MemoryPlatform implements Platform {
  readonly devices = new Map<string, Principal>();
  readonly channels = new Map<string, Channel>();
  readonly published: PublishRequest[] = [];
  readonly presenceLog: [string, boolean][] = [];
  authenticateCalls = 0;
  subscribeCalls = 0;
  /** Every call fails with PlatformError 503. */
  down = false;
  /** When set, decides the outcome of the next publishes instead of storing them. */
  refuse: PublishOutcome | undefined;
  /** When set, publish waits for this promise (a slow platform). */
  gate: Promise<void> | undefined;
  /** Thrown from publish (an unexpected failure). */
  explode: Error | undefined;
  /** Access changes, as the real platform client follows them (`access.change(org)`, as the bridge hears of it from the workers; `access.version++`: seen at the next packet, no one told). */
  readonly access = new AccessChanges();

  readonly accessVersion = (): number => this.access.version;
  readonly onAccessChange = this.access.listen;

  addDevice(id: string, key: string, orgId = 'org-1'): this {
    this.devices.set(key, { kind: 'device', id, orgId });
    return this;
  }

  /** The device's key is rotated: its principal is refused from now on (401), as the workers refuse a stale key stamp. */
  rotateKey(key: string): this {
    this.devices.delete(key);
    return this;
  }

  addChannel(id: string, connections: { publish?: string[]; subscribe?: string[] } = {}): this {
    this.channels.set(id, { publishers: new Set(connections.publish), subscribers: new Set(connections.subscribe), seq: 0, retained: new Map(), subs: new Set() });
    return this;
  }

  get activeSubscriptions(): number {
    let n = 0;
    for (const c of this.channels.values()) n += c.subs.size;
    return n;
  }

  private check(): void {
    if (this.down) throw new PlatformError(503, 'platform unreachable');
  }

  async authenticate(_username: string | undefined, password: string): Promise<Principal> {
    this.check();
    this.authenticateCalls++;
    const p = this.devices.get(password);
    if (!p) throw new PlatformError(401, 'unknown key');
    return p;
  }

  async authorize(principal: Principal, checks: { channel: string; action: MessageAction }[]): Promise<Decision[]> {
    this.check();
    if (principal.kind === 'device' && ![...this.devices.values()].includes(principal)) return checks.map(({ channel, action }) => ({ channel, action, allowed: false, status: 401, reason: 'the device key was rotated' }));
    return checks.map(({ channel, action }) => {
      const c = this.channels.get(channel);
      if (!c) return { channel, action, allowed: false, status: 404, reason: `no channel ${channel}` };
      const allowed = (action === 'messages:publish' ? c.publishers : c.subscribers).has(principal.id);
      return { channel, action, allowed, status: allowed ? 200 : 403 };
    });
  }

  async channelsFor(principal: Principal, action: MessageAction): Promise<string[]> {
    this.check();
    return [...this.channels].filter(([, c]) => (action === 'messages:publish' ? c.publishers : c.subscribers).has(principal.id)).map(([id]) => id);
  }

  async publish(req: PublishRequest): Promise<PublishOutcome> {
    this.check();
    if (this.gate) await this.gate;
    if (this.explode) throw this.explode;
    if (this.refuse) return this.refuse;
    const c = this.channels.get(req.channel);
    if (!c) return { ok: false, status: 404, code: 'not_found', message: 'no such channel' };
    this.published.push(req);
    const created = 1_700_000_000_000 + c.seq;
    const d: Delivery = { channel: req.channel, subtopic: req.subtopic, publisher: req.publisher, protocol: req.protocol, contentType: req.contentType || 'application/octet-stream', payload: req.payload, created, seq: ++c.seq, retained: false };
    if (req.retain) {
      if (req.payload.length === 0) c.retained.delete(req.subtopic);
      else c.retained.set(req.subtopic, { ...d, retained: true });
    }
    for (const s of [...c.subs]) if (matchSubtopic(s.filter, d.subtopic)) s.onMessage(d);
    return { ok: true, seq: d.seq, created };
  }

  async subscribe(req: SubscribeRequest, onMessage: (d: Delivery) => void): Promise<Subscription> {
    this.check();
    this.subscribeCalls++;
    const c = this.channels.get(req.channel);
    if (!c) throw new PlatformError(404, 'no such channel');
    const sub: Sub = { filter: req.filter, onMessage };
    for (const d of [...c.retained.values()].sort((a, b) => a.seq - b.seq)) if (matchSubtopic(req.filter, d.subtopic)) onMessage(d);
    c.subs.add(sub);
    return { close: () => c.subs.delete(sub) };
  }

  presence(deviceId: string, online: boolean): void {
    this.presenceLog.push([deviceId, online]);
  }

  /** A message from another protocol (e.g. MQTT), for observers to receive. */
  inject(channel: string, subtopic: string, payload: string | Uint8Array, contentType = 'text/plain', retain = false): Promise<PublishOutcome> {
    const bytes = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
    return this.publish({ channel, subtopic, publisher: 'other', protocol: 'mqtt', contentType, payload: bytes, retain });
  }
}
