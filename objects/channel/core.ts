import { SubscriberAccess } from './access';
import { LiveRegistry } from './live';
import { isProtocol, mediaTypeProblem } from '../../shared/envelope';
import { formatWithDefault, isLinkFormat, LINK_LIMITS, MAX_CORRELATION_BYTES } from '../../shared/link';
import { channelIdProblem, subtopicProblem } from '../../shared/topics';
import { DEFAULT_CONFIG, DRAIN_BACKSTOP_MS, DRAINED_SAVE_MS, DRAIN_EARLY_GAP_MS, DRAIN_EARLY_ROWS, MAX_BATCH, mergeConfig, type ChannelConfig } from './config';
import { drainOutbox } from './drain';
import { writerFor, type StoreWriter } from '../writer';
import { closeSocket, deliver, regive, sendFrame } from './fanout';
import { CLOSE_TRY_AGAIN_LATER, Flow } from './flow';
import { checkPayload } from './payload';
import { RateLimiter } from './ratelimit';
import { Retention } from './retention';
import { ensureSchema } from './schema';
import { ShareGroups } from './shares';
import { SocketCache, TAG_LINK, TAG_SUBSCRIBER } from './sockets';
import { ChannelStore, type AppendItem } from './store';
import { fail, type ChannelInfo, type PublishInput, type PublishResult } from './types';

export class ChannelIdError extends Error {}

/**
 * A message published without a content type gets the channel's default, which is what is stored,
 * checked and queried; `format` keeps that the publisher gave none, so MQTT 5 subscribers get no
 * Content Type [MQTT-3.3.2-20] (shared/link.ts formatWithDefault).
 */
function withDefaultType(given: PublishInput, contentType: string): PublishInput {
  const input = { ...given, contentType };
  const format = formatWithDefault(given.format, contentType);
  if (format !== undefined) input.format = format;
  return input;
}

/** The MQTT 5 fields' shapes (the bridge checked the Response Topic is an Edgeflux topic name; the link decoder, these shapes). */
function mqtt5Problem(input: PublishInput): string | null {
  if (input.format !== undefined && !(typeof input.format === 'number' && isLinkFormat(input.format))) return 'format must be 0..7 with at most one Payload Format Indicator bit';
  if (input.responseTopic !== undefined && !(typeof input.responseTopic === 'string' && input.responseTopic !== '' && input.responseTopic.length <= LINK_LIMITS.stringLength)) return `responseTopic must be a non-empty string of at most ${LINK_LIMITS.stringLength} characters`;
  if (input.correlation !== undefined && !(input.correlation instanceof Uint8Array && input.correlation.byteLength <= MAX_CORRELATION_BYTES)) return `correlation must be at most ${MAX_CORRELATION_BYTES} bytes`;
  if (input.origin !== undefined && !(typeof input.origin === 'string' && input.origin.length <= LINK_LIMITS.stringLength)) return `origin must be a string of at most ${LINK_LIMITS.stringLength} characters`;
  return null;
}

/** Close code for subscribers of a deleted channel: 4000 + 404, as a refused upgrade. */
export const CLOSE_NOT_FOUND = 4404;

const MAX_PUBLISHER_LENGTH = 256;
const MAX_CONTENT_TYPE_LENGTH = 255;

/**
 * The channel actor's state and its one write path. The Durable Object class (index.ts) only
 * routes platform events here; handlers in the other files get this object.
 */
export class ChannelCore {
  readonly store: ChannelStore;
  readonly flow = new Flow();
  readonly sockets = new SocketCache();
  /** Shared subscription groups spanning links (link v5), in memory (shares.ts). */
  shares = new ShareGroups();
  /** Live subscribers' permissions, asked again while they live (access.ts). */
  readonly access = new SubscriberAccess(this);
  /** This channel's row in D1's `live_channels` while it has subscribers (live.ts). */
  readonly live = new LiveRegistry(this);
  /** Deletes stored messages older than `config.retentionDays` (retention.ts). */
  readonly retention = new Retention(this);
  /** This channel's store writer (a hash of its id names it: the same for the actor's life). */
  private writerStub: DurableObjectStub<StoreWriter> | null = null;
  config: ChannelConfig = DEFAULT_CONFIG;
  private limiter: RateLimiter;
  /** When the alarm is known to be set (ms), null = known unset, undefined = unknown. */
  private alarmAt: number | null | undefined;
  /** The next drain's timer, and when it fires (ms). */
  private drainTimer: ReturnType<typeof setTimeout> | null = null;
  private drainTimerAt = 0;
  /** The drain under way (and any queued behind it), so that drains never overlap. */
  private draining: Promise<void> | null = null;
  /** Writes the drained mark unless an append has written it meanwhile (store.drainedUnsaved). */
  private saveDrained: ReturnType<typeof setTimeout> | null = null;
  /**
   * After a failed drain, no retry before this (ms), however many publishes or other alarms (an
   * expiry, a sweep) arrive meanwhile. Kept in meta too (drain.ts), so an instance after hibernation
   * or eviction backs off as the one before did.
   */
  backoffUntil = 0;
  /** When the last drain began (ms; in memory: 0 after eviction just allows one early drain at once). */
  private lastDrainAt = 0;
  /** The channel was deleted (`retire`): nothing is accepted any more. */
  retired = false;
  /** Times the worker asked this instance to recheck its subscribers (`recheckSubscribers`; in memory). */
  rechecks = 0;
  /** The retirement under way or done (`retire`), so that it runs once. */
  private retiring: Promise<void> | null = null;

  constructor(
    readonly ctx: DurableObjectState,
    readonly env: Env,
  ) {
    this.store = new ChannelStore(ctx.storage);
    this.limiter = new RateLimiter(DEFAULT_CONFIG.channelRate, DEFAULT_CONFIG.publisherRate, Date.now());
  }

  /** Runs once per actor instance, inside blockConcurrencyWhile. */
  init(): void {
    ensureSchema(this.ctx.storage);
    this.store.load();
    this.retired = this.store.meta('retired') === 1;
    if (this.retired) this.retiring = Promise.resolve();
    this.backoffUntil = Number(this.store.meta('drain_backoff_until') ?? 0);
    const stored = this.store.meta('config');
    if (typeof stored === 'string') this.applyConfig(mergeConfig(DEFAULT_CONFIG, JSON.parse(stored)));
    // Link subscriptions of sockets that closed while no instance was running.
    const live = this.ctx.getWebSockets(TAG_LINK).flatMap((ws) => {
      const a = this.sockets.attachment(ws);
      return a ? [a.id] : [];
    });
    this.store.pruneLinkSubs(live);
    this.loadShares();
  }

  /**
   * Shared groups, from the subscriptions that name one: an instance starts with nothing else of
   * them in memory (what an earlier one had unsettled is forgotten: shares.ts, docs/channel-actor.md).
   */
  loadShares(shares = new ShareGroups()): void {
    // The last resort for a link that holds shared deliveries and settles none (shares.ts sweep, logged there).
    shares.onStuck = (id, why) => {
      for (const ws of this.ctx.getWebSockets(TAG_LINK)) if (this.sockets.attachment(ws)?.id === id) closeSocket(this, ws, CLOSE_TRY_AGAIN_LATER, why);
    };
    for (const s of this.store.sharedLinkSubs()) shares.join(s.socket, s.sub, s.share, s.filter);
    this.shares = shares;
  }

  private applyConfig(config: ChannelConfig): void {
    this.config = config;
    this.limiter.reconfigure(config.channelRate, config.publisherRate);
  }

  /**
   * A Durable Object cannot rely on knowing its own name, so the worker passes the channel id
   * with every call; the first one is stored, and a different one later means a routing bug.
   */
  bindChannel(channel: string | null | undefined): string {
    const known = this.store.channel;
    if (channel === null || channel === undefined || channel === '') {
      if (known) return known;
      const fromId = this.ctx.id.name;
      if (fromId && !channelIdProblem(fromId)) {
        this.store.setChannel(fromId);
        return fromId;
      }
      throw new ChannelIdError('this channel actor does not know its channel id yet; pass it');
    }
    if (known) {
      if (known !== channel) throw new ChannelIdError(`this actor serves channel ${known}, not ${channel}`);
      return known;
    }
    const problem = channelIdProblem(channel);
    if (problem) throw new ChannelIdError(problem);
    if (this.ctx.id.name !== undefined && this.ctx.id.name !== channel) throw new ChannelIdError(`this actor was created for ${this.ctx.id.name}, not ${channel}`);
    this.store.setChannel(channel);
    return channel;
  }

  async configure(patch: unknown): Promise<ChannelConfig> {
    const next = mergeConfig(this.config, patch);
    const retentionChanged = next.retentionDays !== this.config.retentionDays;
    this.store.setMeta('config', JSON.stringify(next));
    this.applyConfig(next);
    if (retentionChanged) await this.retention.configured();
    return next;
  }

  /** Per-item checks, cheapest first: a refusal, or the SenML records (JSON) to store with an accepted item. */
  private check(input: PublishInput, created: number): PublishResult | { records: string | null } {
    if (typeof input !== 'object' || input === null || !(input.payload instanceof Uint8Array)) return fail(400, 'invalid_message', 'payload must be bytes');
    if (typeof input.publisher !== 'string' || input.publisher === '' || input.publisher.length > MAX_PUBLISHER_LENGTH) return fail(400, 'invalid_message', 'publisher must be a non-empty string');
    if (!isProtocol(input.protocol)) return fail(400, 'invalid_message', 'protocol must be http, ws, mqtt or coap');
    if (typeof input.contentType !== 'string' || input.contentType === '' || input.contentType.length > MAX_CONTENT_TYPE_LENGTH) {
      return fail(400, 'invalid_content_type', `content type must be a non-empty string of at most ${MAX_CONTENT_TYPE_LENGTH} characters`);
    }
    // It is served back as an HTTP Content-Type (the query API, /payloads): a media type or nothing.
    const typeIssue = mediaTypeProblem(input.contentType);
    if (typeIssue) return fail(400, 'invalid_content_type', typeIssue);
    if (input.expiry !== undefined && !(Number.isInteger(input.expiry) && input.expiry >= 0 && input.expiry <= 0xffff_ffff)) return fail(400, 'invalid_message', 'expiry must be whole seconds');
    if (input.format !== undefined || input.responseTopic !== undefined || input.correlation !== undefined) {
      const issue = mqtt5Problem(input);
      if (issue) return fail(400, 'invalid_message', issue);
    }
    const subtopicIssue = typeof input.subtopic === 'string' ? subtopicProblem(input.subtopic, 'publish') : 'subtopic must be a string';
    if (subtopicIssue) return fail(400, 'invalid_subtopic', subtopicIssue);
    const max = this.config.maxPayloadBytes;
    if (input.payload.length > max) return fail(413, 'payload_too_large', `payload is ${input.payload.length} bytes; this channel accepts at most ${max}`);
    const limited = this.limiter.take(input.publisher, created);
    if (limited) {
      const who = limited.scope === 'channel' ? 'this channel' : `publisher ${input.publisher} on this channel`;
      return fail(429, 'rate_limited', `rate limit exceeded for ${who}; retry in ${limited.retryAfter} s`, limited.retryAfter);
    }
    // A zero-byte retained publish only clears the retained message: no content to check.
    if (input.retain === true && input.payload.length === 0) return { records: null };
    const checked = checkPayload(input.contentType, input.payload, created);
    return checked.ok ? { records: checked.records } : checked;
  }

  /**
   * The single write path. Checks every item, stores the accepted ones in one transaction (seq
   * and created assigned there), fans them out, and schedules the drain. Acknowledged = in the
   * actor's SQLite: the output gate holds the reply until the write is durable.
   */
  async publish(inputs: readonly PublishInput[]): Promise<PublishResult[]> {
    if (this.retired) return inputs.map(() => fail(404, 'channel_not_found', 'channel deleted'));
    const created = this.store.nextCreated(Date.now());
    const results: PublishResult[] = new Array<PublishResult>(inputs.length);
    const items: AppendItem[] = [];
    const slots: number[] = [];
    inputs.forEach((given, i) => {
      // No content type from the publisher ('') → the channel's default.
      const input = given?.contentType === '' ? withDefaultType(given, this.config.defaultContentType) : given;
      if (i >= MAX_BATCH) {
        results[i] = fail(413, 'batch_too_large', `at most ${MAX_BATCH} messages per batch`);
        return;
      }
      const r = this.check(input, created);
      if ('records' in r) {
        items.push({ input, records: r.records });
        slots.push(i);
      } else results[i] = r;
    });
    if (items.length > 0) {
      const messages = this.store.append(items, created, this.config.recentWindow);
      messages.forEach((m, k) => (results[slots[k] as number] = { ok: true, seq: m.envelope.seq, created: m.envelope.created }));
      deliver(this, messages);
      await this.scheduleDrain();
    }
    return results;
  }

  /**
   * When the next drain is due: now once a full batch waits; once a slice waits, DRAIN_EARLY_GAP_MS
   * after the last drain began (short drains, but not so many that their overhead adds up under
   * load); else `drainDelayMs` from now.
   */
  drainDueAt(now = Date.now()): number {
    const { pending } = this.store;
    const { drainBatch, drainDelayMs } = this.config;
    if (pending >= drainBatch) return now;
    const later = now + drainDelayMs;
    if (pending >= DRAIN_EARLY_ROWS) return Math.min(later, Math.max(now, this.lastDrainAt + DRAIN_EARLY_GAP_MS));
    return later;
  }

  /**
   * Schedules the next drain at `at` (unless one is due sooner) on a timer, and makes sure an alarm
   * is set no later than DRAIN_BACKSTOP_MS after it (config.ts). `force` (a failed drain backing
   * off): the alarm alone, at `at`; publishes meanwhile schedule nothing sooner.
   */
  async scheduleDrain(at = this.drainDueAt(), force = false): Promise<void> {
    if (this.retired) return; // nothing is drained for a deleted channel
    at = Math.max(at, this.backoffUntil);
    if (force) {
      this.cancelDrainTimer();
      await this.ctx.storage.setAlarm(at);
      this.alarmAt = at;
      // A subscriber's credential expiring before the back-off ends still closes on time (its alarm drains nothing: drain()).
      await this.access.armExpiry();
      return;
    }
    if (this.backoffUntil > Date.now()) return; // the back-off alarm drains
    // The timer first, with no await before it: two publishes never race to set it.
    if (this.drainTimer === null || this.drainTimerAt > at) {
      this.cancelDrainTimer();
      this.drainTimerAt = at;
      this.drainTimer = setTimeout(() => {
        this.drainTimer = null;
        this.drain()
          .catch((e: unknown) => {
            console.error(`channel ${this.store.channel}: drain failed; the alarm retries`, e);
            return this.backstop(Date.now());
          })
          .catch((e: unknown) => console.error(`channel ${this.store.channel}: no alarm set after a failed drain`, e));
      }, Math.max(0, at - Date.now()));
    }
    await this.backstop(at);
  }

  /** Makes sure an alarm is set no later than DRAIN_BACKSTOP_MS after `at`. */
  private async backstop(at: number): Promise<void> {
    await this.loadAlarm();
    const known = this.alarmAt ?? null; // read in the turn that sets it (loadAlarm)
    if (known !== null && known <= at + DRAIN_BACKSTOP_MS) return;
    this.alarmAt = at + DRAIN_BACKSTOP_MS;
    await this.ctx.storage.setAlarm(this.alarmAt);
  }

  /**
   * Reads the alarm into `alarmAt`, once per instance — unless another caller set it while this one
   * waited (the drain's backstop, a sweep and a subscriber's expiry may ask at once: a stale read
   * would hide the alarm one of them set). Callers read `alarmAt` after it and set it in that same
   * turn: a value carried across an await may be stale.
   */
  private async loadAlarm(): Promise<void> {
    if (this.alarmAt !== undefined) return;
    const stored = await this.ctx.storage.getAlarm();
    if (this.alarmAt === undefined) this.alarmAt = stored;
  }

  /** Makes sure the alarm fires no later than `at` (retention.ts and access.ts: sweeps and credential expiries share the drain's alarm). */
  async alarmNoLaterThan(at: number): Promise<void> {
    await this.loadAlarm();
    const known = this.alarmAt ?? null; // read in the turn that sets it (loadAlarm)
    if (known !== null && known <= at) return;
    this.alarmAt = at;
    await this.ctx.storage.setAlarm(at);
  }

  /** The store writer this channel drains through, looked up once (objects/writer/). */
  writer(channel: string): DurableObjectStub<StoreWriter> {
    return (this.writerStub ??= writerFor(this.env, channel));
  }

  /** No drain is needed before more rows arrive (the outbox is empty). */
  cancelDrainTimer(): void {
    if (this.drainTimer !== null) clearTimeout(this.drainTimer);
    this.drainTimer = null;
  }

  /** When the next drain's timer fires (ms), or null when none is set. */
  drainTimerDue(): number | null {
    return this.drainTimer === null ? null : this.drainTimerAt;
  }

  /**
   * Runs a drain after the one under way, if any: drains never overlap. A failed D1/R2 write is
   * handled inside (back-off); anything else rejects — the alarm's handler then fails and the
   * runtime retries it, and a timer's drain is logged and left to the alarm.
   *
   * Every drain (a timer's, an alarm's) heeds the back-off, and when it starts, not when it is
   * queued: one queued behind a drain that then fails would otherwise run at once against the
   * failing D1. It does nothing then but keep the alarm no later than the back-off's end, whose
   * alarm drains (at or after `backoffUntil`, so not held back).
   */
  drain(): Promise<void> {
    // Checked when each drain starts: one queued behind a drain that `retire` waits for does
    // nothing, nor one queued behind a drain that failed and backs off.
    const next = () => {
      if (this.retired) return;
      if (Date.now() < this.backoffUntil) return this.alarmNoLaterThan(this.backoffUntil);
      return drainOutbox(this);
    };
    const run = (this.draining ?? Promise.resolve()).then(next, next);
    this.draining = run;
    const done = () => {
      if (this.draining === run) this.draining = null;
    };
    run.then(done, done);
    return run;
  }

  /**
   * The alarm's drain. None while a failed drain backs off (checked by `drain` when its turn
   * comes, after any drain under way, which may be the one that fails): the alarm also fires for
   * credential expiries and sweeps, and each would otherwise retry a drain against a D1 that is
   * down; the alarm is left set for the back-off's end instead.
   */
  drainOnAlarm(): Promise<void> {
    return this.drain();
  }

  /**
   * The drained mark moved without a commit: an append within DRAINED_SAVE_MS writes it with its
   * own transaction (the usual case on a channel in use); else this timer writes it.
   */
  saveDrainedSoon(): void {
    if (this.saveDrained !== null) return;
    this.saveDrained = setTimeout(() => {
      this.saveDrained = null;
      this.store.flushDrained();
    }, DRAINED_SAVE_MS);
  }

  /** The alarm fired (the runtime deletes it once the handler returns). */
  alarmFired(): void {
    this.alarmAt = null;
  }

  /** A drain begins. */
  drainStarted(): void {
    this.lastDrainAt = Date.now();
  }

  /**
   * The channel was deleted (the worker, before it deletes the stored messages): subscribers get a
   * last error frame and 4404, a drain under way finishes (so no row of it lands after the
   * worker's delete), and everything the actor kept — outbox, recent window, retained messages,
   * limits, the alarm — goes. A mark stays: later publishes (a bridge link still open) are
   * refused with 404, and nothing is stored under the deleted channel again.
   *
   * Runs once: a later call (the channel purger's, after the delete's own; objects/purger/) waits
   * for the first and has nothing more to do.
   */
  retire(): Promise<void> {
    this.retiring ??= this.retireOnce().catch((e: unknown) => {
      this.retiring = null; // not done: a later call tries again
      throw e;
    });
    return this.retiring;
  }

  private async retireOnce(): Promise<void> {
    this.retired = true;
    for (const ws of this.ctx.getWebSockets(TAG_SUBSCRIBER)) {
      const s = this.sockets.subscriber(ws);
      if (s) sendFrame(this, ws, { type: 'error', status: 404, code: 'not_found', message: 'channel deleted', closing: true }, s.att.encoding);
      closeSocket(this, ws, CLOSE_NOT_FOUND, 'channel deleted');
    }
    // Every drain under way or queued (an alarm's, a timer's) finishes first; none starts after.
    while (this.draining) await this.draining.catch(() => undefined);
    this.cancelDrainTimer();
    if (this.saveDrained !== null) clearTimeout(this.saveDrained);
    this.saveDrained = null;
    const channel = this.store.channel;
    // No event in between: one that arrived after deleteAll and before the schema is back would
    // find no tables (a read, a publish refused with 500 instead of 404).
    await this.ctx.blockConcurrencyWhile(async () => {
      await this.ctx.storage.deleteAlarm();
      await this.ctx.storage.deleteAll();
      this.alarmAt = null;
      this.backoffUntil = 0;
      ensureSchema(this.ctx.storage);
      this.store.load();
      if (channel !== null) this.store.setChannel(channel);
      this.store.setMeta('retired', 1);
      this.applyConfig(DEFAULT_CONFIG);
    });
  }

  /** A socket is closed or failed: forget what only it needed. */
  socketGone(ws: WebSocket): void {
    const att = this.sockets.attachment(ws);
    if (att?.kind === 'link') {
      this.ctx.storage.sql.exec('DELETE FROM link_subs WHERE socket = ?', att.id);
      this.sockets.forgetLink(att.id);
      // What it was given for shared groups and did not settle goes to their other links (or waits as orphans).
      if (this.shares.active) regive(this, this.shares.linkGone(att.id));
    } else if (att?.kind === 'subscriber') this.live.sync();
  }

  /** Sockets still open (one this actor closed stays listed until the client's close arrives). */
  private openSockets(tag: string): number {
    return this.ctx.getWebSockets(tag).filter((ws) => ws.readyState === WebSocket.READY_STATE_OPEN).length;
  }

  info(): ChannelInfo {
    const attempts = this.store.meta('drain_attempts');
    const error = this.store.meta('drain_error');
    return {
      channel: this.store.channel,
      seq: this.store.lastSeq,
      outbox: this.store.pending,
      retained: this.store.retainedCount(),
      oldestKept: this.store.oldestKept(),
      subscribers: this.openSockets(TAG_SUBSCRIBER),
      links: this.openSockets(TAG_LINK),
      drainAttempts: typeof attempts === 'number' ? attempts : 0,
      lastDrainError: typeof error === 'string' ? error : null,
      rechecks: this.rechecks,
    };
  }
}
