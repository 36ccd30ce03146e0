import { asBytes, cborDecode, cborEncode } from '../../shared/cbor';
import type { Protocol } from '../../shared/envelope';
import type { UserProperties } from '../../shared/link';
import type { ChannelMessage, PublishInput } from './types';

/** Everything the actor reads and writes in its own SQLite. Synchronous: SQLite-backed DO storage is. */

type Row = Record<string, SqlStorageValue>;
interface MessageRow extends Row {
  seq: number;
  subtopic: string;
  publisher: string;
  protocol: string;
  content_type: string;
  payload: ArrayBuffer;
  created: number;
  properties: string | null;
  expires_at: number | null;
  /** The publish QoS when below 2 (schema v4; null: 2). */
  qos: number | null;
  /** MQTT 5 format bits, Response Topic, Correlation Data (schema v5; null: not given). */
  format: number | null;
  response_topic: string | null;
  correlation: ArrayBuffer | null;
}

/**
 * The log is stored in runs: one row per run of consecutive messages stored together (one
 * publish batch, or a part of it), not one row per message. A row write costs the actor about
 * what a message's did (bound values, a B-tree insert, a delete when it leaves the window), so a
 * run of 100 costs about 1/100 of that per message — and DO storage bills rows written.
 * `data` is CBOR: an array of RunEntry, the i-th being message `first + i`; all share `created`.
 */
interface RunRow extends Row {
  first: number;
  last: number;
  created: number;
  /** Payload bytes of the run's messages (replay budgets are in payload bytes). */
  bytes: number;
  data: ArrayBuffer;
}

/**
 * One message inside a run. `qos` (the publish QoS when below 2), the MQTT 5 format, Response
 * Topic and Correlation Data, and the publishing client's `origin` for No Local (shared/link.ts)
 * are trailing elements left out when absent, as in runs written before they existed; null where a
 * later one is present.
 */
export type RunEntry = [subtopic: string, publisher: string, protocol: string, contentType: string, payload: Uint8Array, retain: boolean, properties: UserProperties | null, expiresAt: number | null, records: string | null, qos?: 0 | 1 | null, format?: number | null, responseTopic?: string | null, correlation?: Uint8Array | null, origin?: string | null];

/** A run row stops growing past this much payload and records (DO SQLite caps a row at 2 MB; a payload is at most 1 MiB). */
const RUN_ROW_BYTES = 256 * 1024;
/** What an entry adds to its row besides payload and records (strings, CBOR framing): a bound, not a count. */
const ENTRY_OVERHEAD = 64;

/** One outbox message as the drain writes it: the message and its SenML records as JSON text. */
export interface OutboxItem {
  message: ChannelMessage;
  records: string | null;
}

/** At most this many messages past the recent window wait before their runs are deleted (one DELETE, not one per publish). */
const TRIM_STEP = 64;

/** Payload (and records) bytes of outbox messages kept in memory for the drain (ChannelStore.outboxCache). */
const OUTBOX_CACHE_BYTES = 8 * 1024 * 1024;

export interface AppendItem {
  input: PublishInput;
  /** Normalized SenML records (JSON) for the drain, or null. */
  records: string | null;
}

export interface LinkSubRow extends Row {
  sub: number;
  filter: string;
  no_local: string | null;
}

/** A link subscription as kept: its No Local token, or the shared group it belongs to (link v5), never both. */
export interface LinkSub {
  sub: number;
  filter: string;
  noLocal: string | null;
  share: string | null;
}

/**
 * A shared subscription's group is kept in `link_subs.no_local` behind this prefix, not in a column
 * of its own: No Local on a shared subscription is a Protocol Error [MQTT-3.8.3-4], so that column
 * is free for them, and no schema change is needed (an actor rolled back to code before link v5
 * reads the group as a No Local token that matches no publisher: a plain subscription, what such
 * code gives every subscription). A token never starts with U+0001 (it is a device id, or a
 * principal and client id).
 */
const SHARE_PREFIX = '\u0001share\u0001';

function linkSubOf(r: LinkSubRow): LinkSub {
  const shared = r.no_local?.startsWith(SHARE_PREFIX) === true;
  return { sub: r.sub, filter: r.filter, noLocal: shared ? null : r.no_local, share: shared ? (r.no_local as string).slice(SHARE_PREFIX.length) : null };
}

/** ArrayBuffer holding exactly the view's bytes (SQLite binds ArrayBuffers, not views). */
function toArrayBuffer(u8: Uint8Array): ArrayBuffer {
  if (u8.byteOffset === 0 && u8.byteLength === u8.buffer.byteLength && u8.buffer instanceof ArrayBuffer) return u8.buffer;
  // A copy, not u8.slice(): on a Node Buffer (cbor-x's output under nodejs_compat) slice is a view.
  const copy = new Uint8Array(u8.byteLength);
  copy.set(u8);
  return copy.buffer;
}

const entrySize = (payload: Uint8Array, records: string | null, strings: number): number => payload.byteLength + (records?.length ?? 0) + strings + ENTRY_OVERHEAD;

/** Encodes a run row's `data` (an ArrayBuffer of its own: SQLite binds ArrayBuffers). */
export function encodeRun(entries: readonly RunEntry[]): ArrayBuffer {
  return toArrayBuffer(cborEncode(entries));
}

/** A run row's messages (with their records), oldest first. */
function unpackRun(r: Pick<RunRow, 'first' | 'created' | 'data'>, channel: string): OutboxItem[] {
  const entries = cborDecode(new Uint8Array(r.data)) as RunEntry[];
  return entries.map(([subtopic, publisher, protocol, contentType, raw, retain, properties, expiresAt, records, qos, format, responseTopic, correlation, origin], i) => {
    const payload = asBytes(raw);
    if (!payload) throw new Error(`run ${r.first}: message ${i} has no payload bytes`);
    const message: ChannelMessage = {
      envelope: { channel, subtopic, publisher, protocol: protocol as Protocol, contentType, payload, created: r.created, seq: r.first + i },
      retain,
    };
    if (properties !== null) message.properties = properties;
    if (expiresAt !== null) message.expiresAt = expiresAt;
    if (qos === 0 || qos === 1) message.qos = qos;
    if (typeof format === 'number') message.format = format;
    if (typeof responseTopic === 'string') message.responseTopic = responseTopic;
    const c = correlation === undefined || correlation === null ? undefined : asBytes(correlation);
    if (c) message.correlation = c;
    if (typeof origin === 'string') message.origin = origin;
    return { message, records };
  });
}

export class ChannelStore {
  /** The channel this actor serves; null until the worker first tells it. */
  channel: string | null = null;
  lastSeq = 0;
  /** Every seq up to this one is in D1/R2; the log rows after it are the outbox. */
  drainedUpTo = 0;
  /**
   * The drained mark moved since it was last written. It is written with the next append, with a
   * trim (never after one: the log keeps every row after the stored mark), or by flushDrained: a
   * drain needs no commit of its own. If the instance ends first, the stored mark is behind and the
   * next drain sends those rows again, which the drain's idempotent writes absorb.
   */
  drainedUnsaved = false;
  private lastCreated = 0;
  /**
   * The newest undrained messages as this actor stored them (a contiguous run of seqs), so a drain
   * need not read back from SQLite what was just written: at most OUTBOX_CACHE_BYTES of payload.
   * Rows before the run (after a restart, or appended while it was full) are read from the log;
   * an append that does not continue the run starts a new one.
   */
  private outboxCache: OutboxItem[] = [];
  private outboxCacheBytes = 0;

  constructor(private readonly storage: DurableObjectStorage) {}

  private get sql(): SqlStorage {
    return this.storage.sql;
  }

  meta(key: string): SqlStorageValue {
    return this.sql.exec<{ value: SqlStorageValue }>('SELECT value FROM meta WHERE key = ?', key).toArray()[0]?.value ?? null;
  }

  setMeta(key: string, value: SqlStorageValue): void {
    this.sql.exec('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)', key, value);
  }

  /** Loads the counters once, after the schema is ensured. */
  load(): void {
    const channel = this.meta('channel');
    this.channel = typeof channel === 'string' ? channel : null;
    this.lastSeq = Number(this.meta('seq') ?? 0);
    this.lastCreated = Number(this.meta('created') ?? 0);
    this.drainedUpTo = Number(this.meta('drained') ?? 0);
    this.drainedUnsaved = false;
    this.outboxCache = [];
    this.outboxCacheBytes = 0;
  }

  /** Messages accepted and not yet in D1/R2. */
  get pending(): number {
    return this.lastSeq - this.drainedUpTo;
  }

  /** The `created` of the next batch: wall-clock ms, but never before the previous batch's. */
  nextCreated(now: number): number {
    return Math.max(now, this.lastCreated);
  }

  setChannel(channel: string): void {
    this.setMeta('channel', channel);
    this.channel = channel;
  }

  private toMessage(r: MessageRow, retain: boolean): ChannelMessage {
    const m: ChannelMessage = {
      envelope: {
        channel: this.channel ?? '',
        subtopic: r.subtopic,
        publisher: r.publisher,
        protocol: r.protocol as Protocol,
        contentType: r.content_type,
        payload: new Uint8Array(r.payload),
        created: r.created,
        seq: r.seq,
      },
      retain,
    };
    if (r.properties !== null) m.properties = JSON.parse(r.properties) as UserProperties;
    if (r.expires_at !== null) m.expiresAt = r.expires_at;
    if (r.qos === 0 || r.qos === 1) m.qos = r.qos;
    if (r.format !== null && r.format !== undefined) m.format = r.format;
    if (r.response_topic !== null && r.response_topic !== undefined) m.responseTopic = r.response_topic;
    if (r.correlation !== null && r.correlation !== undefined) m.correlation = new Uint8Array(r.correlation);
    return m;
  }

  /**
   * The single writer: assigns seq (strictly increasing, persisted) and created (ms, never
   * decreasing) and stores the batch (run rows of the log, which are also the outbox) and
   * retained changes in one transaction.
   */
  append(items: readonly AppendItem[], created: number, recentWindow: number): ChannelMessage[] {
    let seq = this.lastSeq;
    const out: ChannelMessage[] = [];
    const cached: OutboxItem[] = [];
    this.storage.transactionSync(() => {
      let entries: RunEntry[] = [];
      let bytes = 0;
      let size = 0;
      const writeRun = () => {
        if (entries.length === 0) return;
        this.sql.exec('INSERT INTO runs (first, last, created, bytes, data) VALUES (?, ?, ?, ?, ?)', seq - entries.length + 1, seq, created, bytes, encodeRun(entries));
        entries = [];
        bytes = 0;
        size = 0;
      };
      for (const { input, records } of items) {
        const entryBytes = entrySize(input.payload, records, input.subtopic.length + input.publisher.length + input.contentType.length + (input.responseTopic?.length ?? 0) + (input.correlation?.byteLength ?? 0) + (input.origin?.length ?? 0));
        if (entries.length > 0 && size + entryBytes > RUN_ROW_BYTES) writeRun();
        seq++;
        const retain = input.retain === true;
        const props = input.properties && input.properties.length > 0 ? input.properties : null;
        const expiresAt = input.expiry === undefined ? null : created + input.expiry * 1000;
        const qos = input.qos;
        const { format, responseTopic, origin } = input;
        const correlation = input.correlation === undefined ? undefined : new Uint8Array(toArrayBuffer(input.correlation));
        const mqtt5 = format !== undefined || responseTopic !== undefined || correlation !== undefined;
        const entry: RunEntry = [input.subtopic, input.publisher, input.protocol, input.contentType, input.payload, retain, props, expiresAt, records];
        if (qos !== undefined || mqtt5 || origin !== undefined) entry.push(qos ?? null);
        if (mqtt5 || origin !== undefined) entry.push(format ?? null, responseTopic ?? null, correlation ?? null);
        if (origin !== undefined) entry.push(origin);
        entries.push(entry);
        bytes += input.payload.byteLength;
        size += entryBytes;
        // The payload's own buffer (not a view into the link frame it came in) for the drain and retained.
        const payload = toArrayBuffer(input.payload);
        if (retain) {
          // [MQTT-3.3.1-10] a zero-byte retained message removes the retained message of its topic.
          if (input.payload.length === 0) this.sql.exec('DELETE FROM retained WHERE subtopic = ?', input.subtopic);
          else
            this.sql.exec(
              'INSERT OR REPLACE INTO retained (subtopic, seq, publisher, protocol, content_type, payload, created, properties, expires_at, qos, format, response_topic, correlation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
              input.subtopic, seq, input.publisher, input.protocol, input.contentType, payload, created, props === null ? null : JSON.stringify(props), expiresAt, qos ?? null,
              format ?? null, responseTopic ?? null, correlation === undefined ? null : toArrayBuffer(correlation),
            );
        }
        const m: ChannelMessage = {
          envelope: { channel: this.channel ?? '', subtopic: input.subtopic, publisher: input.publisher, protocol: input.protocol, contentType: input.contentType, payload: input.payload, created, seq },
          retain,
        };
        if (props !== null) m.properties = props;
        if (expiresAt !== null) m.expiresAt = expiresAt;
        if (qos !== undefined) m.qos = qos;
        if (format !== undefined) m.format = format;
        if (responseTopic !== undefined) m.responseTopic = responseTopic;
        if (correlation !== undefined) m.correlation = correlation;
        if (origin !== undefined) m.origin = origin;
        out.push(m);
        cached.push({ message: { envelope: { ...m.envelope, payload: new Uint8Array(payload) }, retain }, records });
      }
      writeRun();
      this.setMeta('seq', seq);
      this.setMeta('created', created);
      if (this.drainedUnsaved) this.setMeta('drained', this.drainedUpTo);
      this.trimLog(seq, recentWindow);
    });
    this.drainedUnsaved = false;
    // Only after the commit: a failed transaction leaves the counters where they were.
    const first = this.lastSeq + 1;
    this.lastSeq = seq;
    this.lastCreated = created;
    this.cacheOutbox(first, cached);
    return out;
  }

  private cacheOutbox(first: number, items: OutboxItem[]): void {
    const last = this.outboxCache.at(-1);
    if (last && last.message.envelope.seq + 1 !== first) {
      this.outboxCache = [];
      this.outboxCacheBytes = 0;
    }
    for (const it of items) {
      const bytes = it.message.envelope.payload.byteLength + (it.records?.length ?? 0);
      if (this.outboxCacheBytes + bytes > OUTBOX_CACHE_BYTES) return;
      this.outboxCache.push(it);
      this.outboxCacheBytes += bytes;
    }
  }

  /**
   * Where the log would be cut now (the runs whose messages are all both drained and outside the
   * recent window), or null while that is less than a step past the last cut: one DELETE per step
   * of messages, not per transaction. A run straddling the cutoff stays whole, so the log may keep
   * up to a step (≤ 1/16 of the window, at most TRIM_STEP) and a run more than the window.
   */
  private trimCutoff(lastSeq: number, recentWindow: number, drainedUpTo = this.drainedUpTo): number | null {
    const cutoff = Math.min(lastSeq - recentWindow, drainedUpTo);
    const step = Math.max(1, Math.min(TRIM_STEP, Math.floor(recentWindow / 16)));
    return cutoff >= this.trimmedUpTo + step ? cutoff : null;
  }

  /** Drops the runs whose messages are all both drained and outside the recent window (when a step is due). */
  private trimLog(lastSeq: number, recentWindow: number): void {
    const cutoff = this.trimCutoff(lastSeq, recentWindow);
    if (cutoff === null) return;
    // `first <= cutoff` bounds the scan to the primary key's range (runs are contiguous, so `last` follows `first`).
    this.sql.exec('DELETE FROM runs WHERE first <= ? AND last <= ?', cutoff, cutoff);
    this.trimmedUpTo = cutoff;
  }
  /** Messages up to here are known to be gone (in memory only: 0 after a restart just means one extra DELETE). */
  private trimmedUpTo = 0;

  trim(recentWindow: number): void {
    this.trimLog(this.lastSeq, recentWindow);
  }

  oldestKept(): number | null {
    return this.sql.exec<{ m: number | null }>('SELECT MIN(first) AS m FROM runs').one().m;
  }

  /** Messages in the log. */
  logCount(): number {
    return this.sql.exec<{ n: number }>('SELECT COALESCE(SUM(last - first + 1), 0) AS n FROM runs').one().n;
  }

  /**
   * The first seq after `after` from which replaying everything to the end costs at most
   * `maxBytes` of payload (null when nothing qualifies). Bounds the memory a replay may take.
   * Whole runs are counted from their `bytes`; only the run where the budget ends is decoded.
   */
  replayStart(after: number, maxBytes: number): number | null {
    const runs = this.sql.exec<Pick<RunRow, 'first' | 'last' | 'bytes'>>('SELECT first, last, bytes FROM runs WHERE last > ? ORDER BY first DESC', after).toArray();
    let total = 0;
    let start: number | null = null;
    for (const r of runs) {
      if (r.first > after && total + r.bytes <= maxBytes) {
        total += r.bytes;
        start = r.first;
        continue;
      }
      // The budget ends inside this run (or the run begins at or before `after`): its newest messages that fit.
      const row = this.sql.exec<RunRow>('SELECT first, created, data FROM runs WHERE first = ?', r.first).one();
      const items = unpackRun(row, '');
      for (let i = items.length - 1; i >= 0; i--) {
        const seq = r.first + i;
        total += (items[i] as OutboxItem).message.envelope.payload.byteLength;
        if (seq <= after || total > maxBytes) break;
        start = seq;
      }
      break;
    }
    return start;
  }

  /** Log messages with seq >= from, in seq order. Callers bound the size first (see replayStart). */
  logFrom(from: number): ChannelMessage[] {
    const channel = this.channel ?? '';
    const out: ChannelMessage[] = [];
    for (const r of this.sql.exec<RunRow>('SELECT first, created, data FROM runs WHERE last >= ? ORDER BY first', from).toArray()) {
      for (const it of unpackRun(r, channel)) if (it.message.envelope.seq >= from) out.push(it.message);
    }
    return out;
  }

  retained(): ChannelMessage[] {
    return this.sql.exec<MessageRow>('SELECT * FROM retained ORDER BY seq').toArray().map((r) => this.toMessage(r, true));
  }

  retainedCount(): number {
    return this.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM retained').one().n;
  }

  /**
   * The oldest outbox rows: at most `limit` of them and `maxBytes` of payload (but at least one).
   * One query, read lazily: the cursor stops at the byte bound. Only what the drain writes is read
   * (no properties or expiry: D1 does not keep them).
   */
  outboxBatch(limit: number, maxBytes: number): OutboxItem[] {
    if (this.pending === 0) return [];
    const out: OutboxItem[] = [];
    const channel = this.channel ?? '';
    let total = 0;
    const head = this.outboxCache[0]?.message.envelope.seq;
    if (head === this.drainedUpTo + 1) {
      for (const it of this.outboxCache) {
        total += it.message.envelope.payload.byteLength;
        if (out.length >= limit || (total > maxBytes && out.length > 0)) break;
        out.push(it);
      }
      return out;
    }
    // The messages before the in-memory run (all of them if there is none) come from the log.
    const until = head ?? this.lastSeq + 1;
    const runs = this.sql.exec<RunRow>('SELECT first, created, data FROM runs WHERE last > ? AND first < ? ORDER BY first', this.drainedUpTo, until);
    for (const r of runs) {
      for (const it of unpackRun(r, channel)) {
        const seq = it.message.envelope.seq;
        if (seq <= this.drainedUpTo || seq >= until) continue;
        total += it.message.envelope.payload.byteLength;
        if (out.length >= limit || (total > maxBytes && out.length > 0)) return out;
        out.push(it);
      }
    }
    return out;
  }

  /** Moves the drained mark (drains go in seq order, so `upTo` ends a prefix of the outbox). */
  drained(upTo: number, recentWindow: number): void {
    if (this.trimCutoff(this.lastSeq, recentWindow, upTo) === null) {
      this.drainedUpTo = upTo;
      this.drainedUnsaved = true;
    } else {
      this.storage.transactionSync(() => {
        this.setMeta('drained', upTo);
        this.drainedUpTo = upTo;
        this.trimLog(this.lastSeq, recentWindow);
      });
      this.drainedUnsaved = false;
    }
    let n = 0;
    while (n < this.outboxCache.length && this.outboxCache[n]!.message.envelope.seq <= upTo) {
      const it = this.outboxCache[n++]!;
      this.outboxCacheBytes -= it.message.envelope.payload.byteLength + (it.records?.length ?? 0);
    }
    if (n > 0) this.outboxCache = this.outboxCache.slice(n);
  }

  /** Writes the drained mark if it moved since it was last written (see drainedUnsaved). */
  flushDrained(): void {
    if (!this.drainedUnsaved) return;
    this.setMeta('drained', this.drainedUpTo);
    this.drainedUnsaved = false;
  }

  linkSubs(socket: string): LinkSub[] {
    return this.sql.exec<LinkSubRow>('SELECT sub, filter, no_local FROM link_subs WHERE socket = ? ORDER BY sub', socket).toArray().map(linkSubOf);
  }

  /** Every link's shared subscriptions (an instance rebuilds its groups from them: shares.ts). */
  sharedLinkSubs(): (LinkSub & { socket: string; share: string })[] {
    return this.sql
      .exec<LinkSubRow & { socket: string }>('SELECT socket, sub, filter, no_local FROM link_subs WHERE substr(no_local, 1, ?) = ? ORDER BY socket, sub', SHARE_PREFIX.length, SHARE_PREFIX)
      .toArray()
      .map((r) => ({ ...linkSubOf(r), socket: r.socket, share: (r.no_local as string).slice(SHARE_PREFIX.length) }));
  }

  linkSubCount(socket: string): number {
    return this.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM link_subs WHERE socket = ?', socket).one().n;
  }

  putLinkSub(socket: string, s: LinkSub): void {
    this.sql.exec('INSERT OR REPLACE INTO link_subs (socket, sub, filter, no_local) VALUES (?, ?, ?, ?)', socket, s.sub, s.filter, s.share !== null ? SHARE_PREFIX + s.share : s.noLocal);
  }

  deleteLinkSub(socket: string, sub: number): void {
    this.sql.exec('DELETE FROM link_subs WHERE socket = ? AND sub = ?', socket, sub);
  }

  /** Forgets subscriptions of link sockets that no longer exist (closed while the actor was gone). */
  pruneLinkSubs(liveSockets: readonly string[]): void {
    const live = new Set(liveSockets);
    for (const { socket } of this.sql.exec<{ socket: string }>('SELECT DISTINCT socket FROM link_subs').toArray()) {
      if (!live.has(socket)) this.sql.exec('DELETE FROM link_subs WHERE socket = ?', socket);
    }
  }
}
