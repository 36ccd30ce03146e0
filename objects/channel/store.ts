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
}

type OutboxRow = Pick<MessageRow, 'seq' | 'subtopic' | 'publisher' | 'protocol' | 'content_type' | 'payload' | 'created'> & { retain: number; records: string | null };

/** One outbox message as the drain writes it: the message and its SenML records as JSON text. */
export interface OutboxItem {
  message: ChannelMessage;
  records: string | null;
}

/** At most this many log rows past the recent window are deleted at a time (one DELETE, not one per publish). */
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

/** ArrayBuffer holding exactly the view's bytes (SQLite binds ArrayBuffers, not views). */
function toArrayBuffer(u8: Uint8Array): ArrayBuffer {
  if (u8.byteOffset === 0 && u8.byteLength === u8.buffer.byteLength && u8.buffer instanceof ArrayBuffer) return u8.buffer;
  return u8.slice().buffer as ArrayBuffer;
}

const LOG_COLUMNS = ['seq', 'subtopic', 'publisher', 'protocol', 'content_type', 'payload', 'created', 'retain', 'properties', 'expires_at', 'records'] as const;
/** Durable Object SQLite binds at most 100 values per statement. */
const LOG_ROWS_PER_INSERT = Math.floor(100 / LOG_COLUMNS.length);
const insertLogSqls = new Map<number, string>();
/** `INSERT INTO log … VALUES (…), (…)` for `rows` rows (the text is cached, so is the statement). */
function insertLogSql(rows: number): string {
  let sql = insertLogSqls.get(rows);
  if (!sql) {
    const row = `(${LOG_COLUMNS.map(() => '?').join(', ')})`;
    sql = `INSERT INTO log (${LOG_COLUMNS.join(', ')}) VALUES ${Array.from({ length: rows }, () => row).join(', ')}`;
    insertLogSqls.set(rows, sql);
  }
  return sql;
}

export class ChannelStore {
  /** The channel this actor serves; null until the worker first tells it. */
  channel: string | null = null;
  lastSeq = 0;
  /** Every seq up to this one is in D1/R2; the log rows after it are the outbox. */
  drainedUpTo = 0;
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
    return m;
  }

  /**
   * The single writer: assigns seq (strictly increasing, persisted) and created (ms, never
   * decreasing) and stores the batch (log rows, which are also the outbox) and retained changes
   * in one transaction.
   */
  append(items: readonly AppendItem[], created: number, recentWindow: number): ChannelMessage[] {
    let seq = this.lastSeq;
    const out: ChannelMessage[] = [];
    const cached: OutboxItem[] = [];
    this.storage.transactionSync(() => {
      // Log rows go in LOG_ROWS_PER_INSERT at a time (one statement, its 100 bound values at most).
      let values: SqlStorageValue[] = [];
      const insert = () => {
        if (values.length === 0) return;
        this.sql.exec(insertLogSql(values.length / LOG_COLUMNS.length), ...values);
        values = [];
      };
      for (const { input, records } of items) {
        seq++;
        const retain = input.retain === true;
        const props = input.properties && input.properties.length > 0 ? JSON.stringify(input.properties) : null;
        const expiresAt = input.expiry === undefined ? null : created + input.expiry * 1000;
        const payload = toArrayBuffer(input.payload);
        values.push(seq, input.subtopic, input.publisher, input.protocol, input.contentType, payload, created, retain ? 1 : 0, props, expiresAt, records);
        if (values.length === LOG_ROWS_PER_INSERT * LOG_COLUMNS.length) insert();
        if (retain) {
          // [MQTT-3.3.1-10] a zero-byte retained message removes the retained message of its topic.
          if (input.payload.length === 0) this.sql.exec('DELETE FROM retained WHERE subtopic = ?', input.subtopic);
          else
            this.sql.exec(
              'INSERT OR REPLACE INTO retained (subtopic, seq, publisher, protocol, content_type, payload, created, properties, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
              input.subtopic, seq, input.publisher, input.protocol, input.contentType, payload, created, props, expiresAt,
            );
        }
        const m: ChannelMessage = {
          envelope: { channel: this.channel ?? '', subtopic: input.subtopic, publisher: input.publisher, protocol: input.protocol, contentType: input.contentType, payload: input.payload, created, seq },
          retain,
        };
        if (props !== null && input.properties) m.properties = input.properties;
        if (expiresAt !== null) m.expiresAt = expiresAt;
        out.push(m);
        // The drain's copy: the payload's own buffer (not a view into the link frame it came in).
        cached.push({ message: { envelope: { ...m.envelope, payload: new Uint8Array(payload) }, retain }, records });
      }
      insert();
      this.setMeta('seq', seq);
      this.setMeta('created', created);
      this.trimLog(seq, recentWindow);
    });
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

  /** Drops log rows that are both drained and outside the recent window. */
  private trimLog(lastSeq: number, recentWindow: number): void {
    const cutoff = Math.min(lastSeq - recentWindow, this.drainedUpTo);
    // One DELETE per step of rows, not per transaction: the log may keep up to a step (≤ 1/16 of
    // the window, at most TRIM_STEP) more than the window.
    const step = Math.max(1, Math.min(TRIM_STEP, Math.floor(recentWindow / 16)));
    if (cutoff >= this.trimmedUpTo + step) {
      this.sql.exec('DELETE FROM log WHERE seq <= ?', cutoff);
      this.trimmedUpTo = cutoff;
    }
  }
  /** Log rows up to here are known to be gone (in memory only: 0 after a restart just means one extra DELETE). */
  private trimmedUpTo = 0;

  trim(recentWindow: number): void {
    this.trimLog(this.lastSeq, recentWindow);
  }

  oldestKept(): number | null {
    return this.sql.exec<{ m: number | null }>('SELECT MIN(seq) AS m FROM log').one().m;
  }

  /**
   * The first seq after `after` from which replaying everything to the end costs at most
   * `maxBytes` of payload (null when nothing qualifies). Bounds the memory a replay may take.
   */
  replayStart(after: number, maxBytes: number): number | null {
    return this.sql
      .exec<{ seq: number }>(
        'SELECT seq FROM (SELECT seq, SUM(length(payload)) OVER (ORDER BY seq DESC) AS total FROM log WHERE seq > ?) WHERE total <= ? ORDER BY seq LIMIT 1',
        after, maxBytes,
      )
      .toArray()[0]?.seq ?? null;
  }

  /** Log rows with seq >= from, in seq order. Callers bound the size first (see replayStart). */
  logFrom(from: number): ChannelMessage[] {
    return this.sql
      .exec<MessageRow & { retain: number }>('SELECT * FROM log WHERE seq >= ? ORDER BY seq', from)
      .toArray()
      .map((r) => this.toMessage(r, r.retain === 1));
  }

  retained(): ChannelMessage[] {
    return this.sql.exec<MessageRow>('SELECT * FROM retained ORDER BY seq').toArray().map((r) => this.toMessage(r, true));
  }

  count(table: 'retained' | 'log'): number {
    return this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`).one().n;
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
    // The rows before the in-memory run (all of them if there is none) come from the log.
    const until = head ?? this.lastSeq + 1;
    for (const r of this.sql.exec<OutboxRow>('SELECT seq, subtopic, publisher, protocol, content_type, payload, created, retain, records FROM log WHERE seq > ? AND seq < ? ORDER BY seq LIMIT ?', this.drainedUpTo, until, limit)) {
      total += r.payload.byteLength;
      if (total > maxBytes && out.length > 0) break;
      const envelope = { channel, subtopic: r.subtopic, publisher: r.publisher, protocol: r.protocol as Protocol, contentType: r.content_type, payload: new Uint8Array(r.payload), created: r.created, seq: r.seq };
      out.push({ message: { envelope, retain: r.retain === 1 }, records: r.records });
    }
    return out;
  }

  /** Moves the drained mark (drains go in seq order, so `upTo` ends a prefix of the outbox). */
  drained(upTo: number, recentWindow: number): void {
    this.storage.transactionSync(() => {
      this.setMeta('drained', upTo);
      this.drainedUpTo = upTo;
      this.trimLog(this.lastSeq, recentWindow);
    });
    let n = 0;
    while (n < this.outboxCache.length && this.outboxCache[n]!.message.envelope.seq <= upTo) {
      const it = this.outboxCache[n++]!;
      this.outboxCacheBytes -= it.message.envelope.payload.byteLength + (it.records?.length ?? 0);
    }
    if (n > 0) this.outboxCache = this.outboxCache.slice(n);
  }

  linkSubs(socket: string): LinkSubRow[] {
    return this.sql.exec<LinkSubRow>('SELECT sub, filter, no_local FROM link_subs WHERE socket = ? ORDER BY sub', socket).toArray();
  }

  linkSubCount(socket: string): number {
    return this.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM link_subs WHERE socket = ?', socket).one().n;
  }

  putLinkSub(socket: string, sub: number, filter: string, noLocal: string | null): void {
    this.sql.exec('INSERT OR REPLACE INTO link_subs (socket, sub, filter, no_local) VALUES (?, ?, ?, ?)', socket, sub, filter, noLocal);
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
