import type { Duplex } from 'node:stream';
import mqtt, { type Packet } from 'mqtt-packet';
import type { Principal } from '../../shared/principal';
import type { Address } from '../../shared/topics';
import type { Subscription } from '../platform/types';
import type { Timer } from '../clock';
import { connackV4, RC, type Qos } from './codes';
import type { ServerContext } from './context';
import type { Cursor } from './cursor';
import type { KeptAlive } from './keepalive';
import { Outbox, type OutboundLink, type SubscriptionSlot } from './outbound';
import { Permissions } from './permissions';
import { encodeSimplePublish } from './publish-encode';
import { PacketReader, type ReaderEvents } from './reader';
import { parseTopicName, type TopicFilter } from './topics';
import type { SessionHolder, SessionState, StoredSubscription } from './session';
import { SubscriptionMap } from './subscription-map';
import type { Will } from './wills';

/** One subscription of a connection, as SUBSCRIBE established it (bridge/mqtt/subscriptions.ts). */
export interface ActiveSub {
  readonly topicFilter: string;
  readonly parsed: TopicFilter;
  qos: Qos;
  readonly noLocal: boolean;
  readonly retainAsPublished: boolean;
  readonly retainHandling: 0 | 1 | 2;
  /** v5 Subscription Identifier, sent with every PUBLISH this subscription causes [MQTT-3.3.4-3]; undefined: none. */
  readonly subscriptionId: number | undefined;
  /** Its filter's place, shared with the subscription it replaces: the identifier in effect (outbound.ts). */
  readonly slot: SubscriptionSlot;
  /** Non-shared: channel → platform subscription. */
  readonly handles: Map<string, Subscription>;
  /** Channel → resume cursor (a shared subscription's is its group's). */
  readonly cursors: Map<string, Cursor>;
  /** Channels it covers (for `channels/+/…`, as of the SUBSCRIBE). */
  readonly channels: Set<string>;
  /** Ends it; a shared subscription stays a member on the `keep` channels (a re-SUBSCRIBE). */
  close(keep?: ReadonlySet<string>): void;
  /** Stops its deliveries from one channel (the permission to subscribe there was withdrawn). */
  drop(channel: string): void;
  toStored(): StoredSubscription;
}

export interface ConnectionInfo {
  remote?: string;
  /** The listener it came in on (metrics); tcp when not said. */
  transport?: 'tcp' | 'tls' | 'ws';
  /** Common name of a verified TLS client certificate. */
  certificateCN?: string;
}

export interface ConnectionHooks {
  /** The packet handlers (handlers/index.ts). */
  dispatch(conn: Connection, packet: Packet): Promise<void> | void;
  /** Called once when the connection ends. */
  ended(conn: Connection): void;
}

interface EndOptions {
  reason: string;
  /** Publish the will (ungraceful end). */
  will: boolean;
  /**
   * Publish it now, whatever its delay, and once (a takeover: a retry after a 503 would come after
   * what the new connection publishes).
   */
  willNow?: boolean;
  /**
   * The bridge is shutting down: a delayed will is left to the session store when it keeps wills
   * (session actors), which publishes it when due unless the client reconnects first, instead of
   * being a timer in a process about to exit.
   */
  willToStore?: boolean;
}

let lastId = 0;

const CONNECTION = Symbol('mqtt connection');
type ConnectionStream = Duplex & { [CONNECTION]?: Connection };
/** A settled promise: where each connection's chain of acknowledgements starts. */
function uncorkTurn(conn: Connection): void {
  conn.corkedTurn = false;
  conn.stream.uncork();
}

const SETTLED = Promise.resolve();

/**
 * One MQTT network connection: bytes in → packets → the handlers (one at a time, in order); the
 * state the handlers share; and one way out (`end`) that releases the session, publishes the will
 * and reports presence exactly once.
 */
export class Connection implements SessionHolder, OutboundLink, ReaderEvents, KeptAlive {
  readonly id = ++lastId;
  private readonly reader: PacketReader;
  version: 4 | 5 = 4;
  phase: 'new' | 'connecting' | 'open' | 'closed' = 'new';
  clientId = '';
  principal: Principal | null = null;
  sessionKey = '';
  epoch = 0;
  /** Seconds the session outlives the connection (0: it ends with it). */
  sessionExpiry = 0;
  keepalive = 0;
  will: Will | null = null;
  // An idle connection holds nothing but its socket, reader and timers (docs/mqtt.md "Memory"):
  // the outbox, the maps below and the decision cache are made on first use. Each empty Map or
  // Set is ~170 bytes of hash table, and thousands of connections never use most of them.
  private _outbox: Outbox | null = null;
  private _subs: SubscriptionMap<ActiveSub> | null = null;
  private _qos2In: Set<number> | null = null;
  private _qos2Storing: Map<number, Promise<unknown>> | null = null;
  private _aliases: Map<number, string> | null = null;
  /**
   * While a resumed session's subscriptions are being activated: the stored ones not active yet.
   * The session keeps them as stored should the connection end first (a takeover mid-resume).
   */
  resuming: SubscriptionMap<StoredSubscription> | null = null;
  /** Inbound QoS 1/2 PUBLISHes not yet acknowledged (our Receive Maximum). */
  inboundInflight = 0;
  /** Acknowledgements of inbound PUBLISHes, chained so they go out in arrival order [MQTT-4.6.0-2/3]. */
  acks: Promise<void> = SETTLED;
  /** The stream is corked until the end of this turn (corkTurn). */
  corkedTurn = false;
  /** Inbound PUBLISHes issued to the platform and not yet stored or refused (`maxUnstoredPublishes`). */
  unstored = 0;
  /** Set while the packet reader waits for one of them to settle. */
  unstoredWaiter: (() => void) | null = null;
  clientReceiveMaximum = 65_535;
  clientMaxPacketSize = Infinity;
  /** v5: the Topic Alias Maximum the CONNACK told the client (0 when it was left out to fit). */
  topicAliasMaximum = 0;
  /** v5 Request Problem Information: 0 → no Reason String / User Property outside PUBLISH/CONNACK/DISCONNECT [MQTT-3.1.2-29]. */
  problemInformation = true;
  private _permissions: Permissions | null = null;
  /** The last topic name published to and its address: a device mostly publishes to one topic. */
  private lastTopic = '';
  private lastAddress: Address | null = null;
  private connectTimer: Timer | null;
  private checkpointTimer: Timer | null = null;
  private lastSeen = 0;
  private ending: Promise<void> | null = null;

  constructor(
    readonly stream: Duplex,
    readonly ctx: ServerContext,
    readonly info: ConnectionInfo,
    private readonly hooks: ConnectionHooks,
  ) {
    // The connection is its reader's event sink: no per-connection closures for it.
    this.reader = new PacketReader(stream, ctx.limits, this);
    // Listeners shared by every connection (`this` is the stream).
    (stream as ConnectionStream)[CONNECTION] = this;
    stream.on('error', Connection.onError);
    stream.on('end', Connection.onEnd);
    stream.on('close', Connection.onClose);
    // §3.1.4: a connection that is not CONNECTed in time is closed (with a CONNACK if one is due).
    this.connectTimer = ctx.clock.setTimer(ctx.limits.connectTimeoutMs, () => this.connectTimedOut());
  }

  get limits() {
    return this.ctx.limits;
  }

  /** Deliveries to the client (made by the first SUBSCRIBE, resumed session or acknowledgement). */
  get outbox(): Outbox {
    return (this._outbox ??= new Outbox(this));
  }
  /** Subscriptions by topic filter. */
  get subs(): SubscriptionMap<ActiveSub> {
    return (this._subs ??= new SubscriptionMap());
  }
  /**
   * What this connection's publishes give as their origin for No Local (shared/link.ts): its session
   * key — the client id within its principal — and only while it has a No Local subscription, active
   * or still being resumed, since No Local is about this client's own subscriptions [MQTT-3.8.3-3].
   * Asked on every PUBLISH: two counts (SubscriptionMap), whatever the number of subscriptions.
   */
  get origin(): string | undefined {
    return (this._subs?.noLocal ?? 0) + (this.resuming?.noLocal ?? 0) > 0 ? this.sessionKey : undefined;
  }
  /** Inbound QoS 2 ids: PUBREC sent (or due once stored), PUBREL not yet received [MQTT-4.3.3-10]. */
  get qos2In(): Set<number> {
    return (this._qos2In ??= new Set());
  }
  /**
   * The ids of `qos2In` whose publish is not stored yet, with the store's outcome: a checkpoint
   * meanwhile does not keep them (snapshot), and `end` waits for them before saving the session.
   */
  get qos2Storing(): Map<number, Promise<unknown>> {
    return (this._qos2Storing ??= new Map());
  }
  /** v5 client → server topic aliases [MQTT-3.3.2-12]. */
  get aliases(): Map<number, string> {
    return (this._aliases ??= new Map());
  }

  /** The socket ended or failed: packets already received (a DISCONNECT just before the close) are handled first. */
  private lost(reason: string): void {
    void this.reader.idle().then(() => this.end({ reason, will: true }));
  }
  private static onError(this: ConnectionStream, e: Error): void {
    this[CONNECTION]?.lost(`socket error: ${e.message}`);
  }
  private static onEnd(this: ConnectionStream): void {
    this[CONNECTION]?.lost('the client closed the connection');
  }
  private static onClose(this: ConnectionStream): void {
    this[CONNECTION]?.lost('connection closed');
  }

  // --- ReaderEvents -----------------------------------------------------------------------------
  handle(packet: Packet): Promise<void> | void {
    if (this.phase === 'closed') return undefined;
    this.ctx.counters.read(packet);
    return this.hooks.dispatch(this, packet);
  }
  seen(): void {
    this.lastSeen = this.now();
  }
  failed(e: unknown, p: Packet): void {
    this.log(`internal error handling ${p.cmd}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    this.disconnect(RC.ImplementationSpecificError, 'internal error');
  }

  log(msg: string): void {
    this.ctx.log(`mqtt ${this.clientId || `#${this.id}`}: ${msg}`);
  }

  // --- OutboundLink -----------------------------------------------------------------------------
  get window(): number {
    return Math.min(this.limits.maxInflight, this.clientReceiveMaximum);
  }
  get maxQueued(): number {
    return this.limits.maxQueued;
  }
  get backlog(): number {
    return this.stream.writableLength;
  }
  get maxWriteBuffer(): number {
    return this.limits.maxWriteBuffer;
  }
  now(): number {
    return this.ctx.clock.now();
  }
  slowConsumer(): void {
    this.disconnect(RC.QuotaExceeded, 'too many undelivered messages: the client is not keeping up');
  }
  progress(): void {
    this.markDirty();
  }

  /**
   * Holds this connection's writes until the current turn is done (process.nextTick), so what is
   * settled together leaves in one write: a link frame's answer acknowledges up to a window of a
   * publisher's QoS 1/2 publishes at once, and a write (a syscall) per PUBACK was a third of the
   * bridge's busy samples in the QoS 1 fan-in. Nothing waits past the turn; `end()` flushes a
   * corked stream.
   */
  corkTurn(): void {
    if (this.corkedTurn) return;
    this.corkedTurn = true;
    this.stream.cork();
    process.nextTick(uncorkTurn, this);
  }
  batch(fn: () => void): void {
    this.stream.cork();
    try {
      fn();
    } finally {
      this.stream.uncork();
    }
  }

  send(packet: Packet): 'sent' | 'too-large' | 'closed' {
    if (this.stream.destroyed || this.stream.writableEnded) return 'closed';
    const v5 = this.version === 5;
    if (v5 && !this.problemInformation && 'properties' in packet && packet.properties && !['publish', 'connack', 'disconnect'].includes(packet.cmd)) {
      delete packet.properties;
    }
    let bytes: Buffer;
    try {
      // Outside PUBLISH, mqtt-packet drops Reason String, then User Properties, to fit the client's maximum (e.g. [MQTT-3.4.2-2]).
      const trim = v5 && packet.cmd !== 'publish' && Number.isFinite(this.clientMaxPacketSize);
      bytes = (packet.cmd === 'publish' ? encodeSimplePublish(packet, this.version) : null) ?? mqtt.generate(packet, trim ? { protocolVersion: 5, properties: { maximumPacketSize: this.clientMaxPacketSize } } : { protocolVersion: this.version });
    } catch (e) {
      this.log(`cannot encode ${packet.cmd}: ${e instanceof Error ? e.message : String(e)}`);
      return 'too-large';
    }
    // [MQTT-3.1.2-24 (5.0)] nothing larger than the client's Maximum Packet Size is sent.
    if (bytes.length > this.clientMaxPacketSize) {
      this.log(`${packet.cmd} of ${bytes.length} bytes discarded (client maximum ${this.clientMaxPacketSize})`);
      return 'too-large';
    }
    this.stream.write(bytes);
    this.ctx.counters.wrote(packet);
    return 'sent';
  }

  // --- refusing input ----------------------------------------------------------------------
  /** Malformed bytes: v5 is told 0x81 when possible, then the connection closes [MQTT-4.13.1-1]. */
  malformed(message: string): void {
    if (this.phase === 'closed') return;
    if (this.phase === 'new' && /protocol version/i.test(message)) {
      // [MQTT-3.1.2-2] unsupported protocol level: CONNACK 0x01 (3.1.1 form, the only one it can read), then close.
      this.ctx.counters.connect(RC.UnsupportedProtocolVersion);
      this.send({ cmd: 'connack', sessionPresent: false, returnCode: 1 });
      return void this.end({ reason: `refused: ${message}`, will: false });
    }
    // A first packet that cannot be read is a refused CONNECT (closed unanswered).
    if (this.phase === 'new') this.ctx.counters.connect(RC.MalformedPacket);
    this.disconnect(RC.MalformedPacket, `malformed packet: ${message}`);
  }

  tooLarge(size: number, v5Connect: boolean): void {
    const reason = `packet of ${size} bytes exceeds the maximum of ${this.limits.maxPacketSize}`;
    if (this.phase === 'new' || this.phase === 'connecting') {
      this.ctx.counters.connect(RC.PacketTooLarge);
      // v5 gets CONNACK 0x95; 3.1.1 has no code for it: just close.
      if (v5Connect) {
        this.version = 5;
        this.send({ cmd: 'connack', sessionPresent: false, reasonCode: RC.PacketTooLarge, properties: { reasonString: reason } });
      }
      return void this.end({ reason, will: false });
    }
    this.disconnect(RC.PacketTooLarge, reason);
  }

  // --- lifecycle --------------------------------------------------------------------------------
  /** CONNECT accepted: counted, kept alive, presence reported. */
  opened(): void {
    this.connectTimer?.cancel();
    this.connectTimer = null;
    this.phase = 'open';
    this.ctx.counters.connect(RC.Success);
    this.lastSeen = this.now();
    // [MQTT-3.1.2-24 (3.1.1)] nothing from the client for 1.5 × Keep Alive: the connection is closed;
    // so is one whose credential runs out (the same sweep watches both deadlines).
    if (this.keepalive > 0 || this.credentialExpiry < Infinity) this.ctx.keepalive.watch(this);
    this.ctx.holders.set(this.sessionKey, this.id);
    const device = this.deviceId;
    if (device) {
      // Online on the device's first connection here, offline when its last goes (end): one of
      // each, as the platform client's count across MQTT and CoAP needs (platform/presence.ts).
      const open = this.ctx.devices.get(device) ?? 0;
      this.ctx.devices.set(device, open + 1);
      if (open === 0) this.ctx.platform.presence(device, true);
    }
  }

  get deviceId(): string | null {
    return this.principal?.kind === 'device' ? this.principal.id : null;
  }

  private connectTimedOut(): void {
    this.connectTimer = null;
    // A CONNECT still being handled (a slow platform) is answered 0x88 / 0x03; no CONNECT at all, just closed.
    if (this.phase === 'connecting') this.disconnect(RC.ServerUnavailable, 'CONNECT took too long', false);
    else void this.end({ reason: 'no CONNECT in time', will: false });
  }

  /** The keep alive deadline, or the credential's expiry if sooner (both only move later). */
  get keepaliveDeadline(): number {
    const keptAlive = this.keepalive > 0 ? this.lastSeen + this.keepalive * 1500 : Infinity;
    return Math.min(keptAlive, this.credentialExpiry);
  }

  keepaliveExpired(): void {
    if (this.credentialExpired()) return;
    this.disconnect(RC.KeepAliveTimeout, `nothing received for ${this.keepalive * 1.5} s (1.5 × keep alive)`);
  }

  /**
   * When the credential this connection presented runs out (ms; Infinity: never): an API key issued
   * with an expiry, an app token (docs/auth.md). Known from the principal, so no platform call is
   * needed to act on it: the connection ends then, idle or not, and nothing goes either way after it.
   */
  get credentialExpiry(): number {
    const p = this.principal;
    return p !== null && p.kind !== 'device' && p.exp !== undefined ? p.exp * 1000 : Infinity;
  }

  /** True once the credential has run out, and then the connection is ended (0x87, no will), as on a refused one. */
  credentialExpired(): boolean {
    // A device key (every device's connection) never expires: no clock read on its deliveries and publishes.
    const p = this.principal;
    if (p === null || p.kind === 'device' || p.exp === undefined) return false;
    if (this.now() < p.exp * 1000) return false;
    this.credentialRefused(this.principal?.kind === 'key' ? 'the API key expired' : 'the access token expired');
    return true;
  }

  /**
   * Server-initiated end: v5 hears why (DISCONNECT with a reason code) [MQTT-4.13.2-1]; the will
   * goes out. While a CONNECT is being handled the answer is a CONNACK with that code instead.
   */
  disconnect(reasonCode: number, reason: string, will = true, willToStore = false): void {
    if (this.phase === 'closed') return;
    if (this.phase === 'connecting') {
      this.ctx.counters.connect(reasonCode);
      this.send(this.version === 5 ? { cmd: 'connack', sessionPresent: false, reasonCode, properties: { reasonString: reason } } : { cmd: 'connack', sessionPresent: false, returnCode: connackV4(reasonCode) });
    } else if (this.phase === 'open') {
      this.ctx.counters.disconnected(reasonCode);
      if (this.version === 5) this.send({ cmd: 'disconnect', reasonCode, properties: { reasonString: reason } });
    }
    void this.end({ reason, will, willToStore });
  }

  /** SessionHolder: another connection claimed this session [MQTT-3.1.4-3]. */
  takenOver({ clean }: { clean: boolean }): Promise<void> {
    if (this.phase === 'closed') {
      this.ctx.wills.claimed(this.sessionKey, clean);
      // Claimed on another bridge: whether it resumed there or ended, this bridge's groups lose the
      // member (a claim here sorts its shares out itself: it resumes them, or calls claimed()).
      if (!this.ctx.claiming.has(this.sessionKey)) this.ctx.shares.claimed(this.sessionKey);
      return this.ending ?? Promise.resolve();
    }
    // v5 §3.1.4: the will goes if it has no delay or the session ends; a delayed one is cancelled by this very reconnect.
    const ends = clean || this.sessionExpiry === 0;
    const will = this.version === 4 || (this.will?.delay ?? 0) === 0 || ends;
    if (this.phase === 'open') this.ctx.counters.disconnected(RC.SessionTakenOver);
    if (this.version === 5 && this.phase === 'open') this.send({ cmd: 'disconnect', reasonCode: RC.SessionTakenOver, properties: { reasonString: 'another connection took over this session' } });
    return this.end({ reason: 'session taken over', will, willNow: true });
  }

  /**
   * SessionHolder: a released session still listens for claims while its will waits (delayed, or to
   * be tried again) and while shared groups here hold deliveries for it (a claim elsewhere frees them).
   */
  lingering(): boolean {
    return this.ctx.wills.has(this.sessionKey) || this.ctx.shares.holding(this.sessionKey);
  }

  /**
   * SessionHolder: without its holder channel this connection could not be taken over; end it.
   * The session actor saw the holder go without a release and publishes the will itself.
   */
  storeLost(reason: string): void {
    this.disconnect(RC.UnspecifiedError, reason, false);
  }

  /** The one way out. Returns once the session is released to the store. */
  end(opts: EndOptions): Promise<void> {
    if (this.ending) return this.ending;
    const wasOpen = this.phase === 'open';
    /** A delayed will left to the session store (shutdown). */
    let willDelay: number | undefined;
    this.phase = 'closed';
    for (const t of [this.connectTimer, this.checkpointTimer]) t?.cancel();
    this.ctx.keepalive.unwatch(this);
    this.log(`closed: ${opts.reason}`);
    this.hooks.ended(this);
    this.reader.stop();
    if (this._subs) for (const sub of this._subs.values()) sub.close();
    this._outbox?.abandon();
    this.stream.end();
    setTimeout(() => this.stream.destroy(), 1000).unref?.();
    if (wasOpen) {
      if (this.ctx.holders.get(this.sessionKey) === this.id) this.ctx.holders.delete(this.sessionKey);
      const device = this.deviceId;
      const left = device ? (this.ctx.devices.get(device) ?? 1) - 1 : 0;
      if (device && left > 0) this.ctx.devices.set(device, left);
      else if (device) {
        this.ctx.devices.delete(device);
        this.ctx.buckets.delete(device);
        this.ctx.platform.presence(device, false);
      }
      // [MQTT-3.1.2-8] the will is published unless the client said DISCONNECT (0x00).
      if (opts.will && this.will && this.principal) {
        const delay = opts.willNow || this.version === 4 ? 0 : Math.min(this.will.delay, this.sessionExpiry);
        if (delay > 0 && opts.willToStore && this.ctx.store.keepsWills) willDelay = delay;
        else this.ctx.wills.schedule(this.sessionKey, this.principal, this.will, delay, !opts.willNow);
      }
    }
    const keep = wasOpen && this.sessionExpiry > 0;
    const release = () => {
      const state = keep ? this.snapshot() : null;
      return this.ctx.store.release(this.sessionKey, this.epoch, state, state ? this.sessionExpiry : 0, willDelay === undefined ? {} : { willDelay });
    };
    // QoS 2 publishes still being stored are waited for (bounded: the link answers every publish,
    // at worst with a nack after its answer timeout), so the saved session holds the ids of those
    // stored — the client's resend then gets PUBREC, not a second copy — and not of those refused.
    const storing = keep && this._qos2Storing?.size ? Promise.allSettled(this._qos2Storing.values()) : null;
    this.ending = wasOpen
      ? (storing ? storing.then(release) : release()).catch((e: unknown) => this.log(`session not saved: ${e instanceof Error ? e.message : String(e)}`))
      : Promise.resolve();
    return this.ending;
  }

  // --- session ----------------------------------------------------------------------------------
  snapshot(): SessionState {
    const subscriptions = this._subs ? [...this._subs.values()].map((s) => s.toStored()) : [];
    if (this.resuming) for (const s of this.resuming.values()) if (!this._subs?.has(s.topicFilter)) subscriptions.push(s);
    // An id whose publish is still being stored is not kept (a checkpoint while open; `end` waits
    // for them): if that store failed after a crash, the client's resend must be stored, not
    // answered PUBREC as a copy.
    const storing = this._qos2Storing;
    const awaitingRelease = this._qos2In ? [...this._qos2In].filter((id) => !storing?.has(id)) : [];
    return { subscriptions, inflight: this._outbox?.snapshot() ?? [], awaitingRelease };
  }

  /** Something the session keeps changed: write it soon (persistent sessions only). */
  markDirty(): void {
    if (this.sessionExpiry === 0 || this.phase !== 'open' || this.checkpointTimer) return;
    this.checkpointTimer = this.ctx.clock.setTimer(this.limits.sessionCheckpointMs, () => {
      this.checkpointTimer = null;
      void this.saveSession();
    });
  }

  /** Writes the session now (before SUBACK/UNSUBACK, so an acknowledged subscription survives). */
  async saveSession(): Promise<void> {
    if (this.sessionExpiry === 0 || this.phase !== 'open') return;
    try {
      if (!(await this.ctx.store.save(this.sessionKey, this.epoch, this.snapshot()))) this.disconnect(RC.SessionTakenOver, 'session taken over elsewhere', false);
    } catch (e) {
      this.log(`session checkpoint failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** A PUBLISH topic name's address (throws TopicProblem), parsed once for a run of the same topic. */
  addressOf(topic: string): Address {
    if (topic === this.lastTopic && this.lastAddress) return this.lastAddress;
    const address = parseTopicName(topic);
    this.lastTopic = topic;
    this.lastAddress = address;
    return address;
  }

  /** What this connection may do, and when to ask again (created at its first publish or subscription). */
  get permissions(): Permissions {
    return (this._permissions ??= new Permissions(this));
  }

  /** A PINGREQ: a quiet subscriber's permissions are asked about when due (Permissions.recheckIdle). */
  recheckIdle(): void {
    this._permissions?.recheckIdle();
  }

  /** Its org's access changed (Platform.onAccessChange): what it was granted is asked about now; one granted nothing yet, its credential (permissions.ts). */
  accessChanged(): void {
    this.permissions.accessChanged();
  }

  /**
   * The credential this connection presented is no longer good (its API key revoked or expired, its
   * device key rotated, its device deleted): the connection ends, as a refused CONNECT would, and
   * its will is not published — it was left under a credential the owner has withdrawn.
   */
  credentialRefused(reason: string | undefined): void {
    this.disconnect(RC.NotAuthorized, `credential no longer valid: ${reason ?? 'refused'}`, false);
  }

  /** The permission to subscribe on `channel` was withdrawn: it leaves every subscription, as on a resumed session. */
  dropChannel(channel: string): void {
    if (!this._subs) return;
    for (const [filter, sub] of this._subs) {
      if (!sub.channels.has(channel)) continue;
      sub.drop(channel);
      if (sub.channels.size === 0) this._subs.delete(filter);
      this.log(`subscription ${filter}: no longer allowed to subscribe on channel ${channel}; deliveries from it stop`);
    }
    this.markDirty();
  }
}
