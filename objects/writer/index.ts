import { DurableObject } from 'cloudflare:workers';

/**
 * The store writer: gathers the D1 writes of many channel actors' drains into few D1 batches.
 *
 * Each channel drains its outbox on its own (objects/channel/drain.ts). Writing each drain as its
 * own D1 batch made D1's per-request cost — a request, a transaction, a commit — a per-drain cost,
 * and a channel that gets a message every few seconds drains every message alone: with a thousand
 * such channels, a thousand D1 requests a second. D1 runs one database's queries one at a time,
 * so that request rate, not the rows, becomes the ceiling.
 *
 * A channel hands its rows to a writer (`write`), which answers once they are committed in D1.
 * Parts that arrive while the writer lingers (WRITER_LINGER_MS) or while its previous batch is
 * under way go out together, as one D1 batch of a few statements (the rows of all channels in one
 * JSON parameter per statement). The writer keeps nothing itself: a part is the channel's until
 * `write` resolves, so a failed or lost batch is the channel's to retry (its drain backs off), and
 * the inserts are idempotent. If SQLite refuses a shared batch, each part is retried alone, so one
 * channel's bad rows cannot hold back the others; any other failure (D1 unreachable, overloaded,
 * or silent for BATCH_TIMEOUT_MS) fails the batch's parts at once, without more requests. A
 * writer with more than QUEUE_CHARS of rows waiting answers "busy" rather than queue more.
 *
 * Channels are spread over `STORE_WRITERS` writers by a hash of their id (`writerFor`).
 */

/** How long a writer waits after the first part before writing, so more can join. Drains are already ≥ 50 ms apart; this adds little. */
export const WRITER_LINGER_MS = 20;
/** At most this many parameter characters go in one D1 batch; more waits for the next. */
const BATCH_CHARS = 8 * 1024 * 1024;
/**
 * D1 caps a bound value at 2 MB (bytes); each statement's JSON parameter stays under this many
 * UTF-16 code units, at most 3 UTF-8 bytes each: ≤ 1.8 MB whatever the text.
 */
const PARAM_BUDGET = 600 * 1024;
/** A part is at most this many characters: drains split bigger ones (`splitPart`). */
export const PART_CHARS = 4 * 1024 * 1024;
/** Parts waiting beyond this many characters are refused ("busy"): their channels back off. */
const QUEUE_CHARS = 64 * 1024 * 1024;
/** A D1 batch that has not answered in this long counts as failed (it may still commit: the inserts are idempotent). */
export const BATCH_TIMEOUT_MS = 30_000;

/**
 * One channel drain's rows (objects/channel/drain.ts, partsOf), without their ids: the part names
 * its `channel` and its distinct `publishers` once, each row gives its publisher as an index into
 * `publishers` (`messagePublishers`, `recordPublishers`: one per row), and the writer puts both
 * ids in front of each row as their integer keys (migrations/0004), so D1 is not sent two UUIDs
 * per row. A row is JSON text without its opening bracket:
 * `messages`: `seq, subtopic, protocol, contentType, created, size, payload, blobKey, retained]`;
 * `records`: `seq, subtopic, created, [record…]]`, each record an object as objects/channel/payload.ts writes it.
 */
export interface WritePart {
  channel: string;
  publishers: string[];
  messages: string[];
  messagePublishers: number[];
  records: string[];
  recordPublishers: number[];
}

/**
 * Keys for ids not seen before: one small JSON array of distinct ids per statement. Only the new
 * ids are inserted: with AUTOINCREMENT, `INSERT OR IGNORE` would use up a key number for every id
 * it skips, and keys would grow with every batch instead of with the ids (bigger integers in
 * every row and index).
 */
export const INSERT_CHANNEL_KEYS = 'INSERT INTO channel_keys (channel_id) SELECT j.value FROM json_each(?1) j WHERE NOT EXISTS (SELECT 1 FROM channel_keys c WHERE c.channel_id = j.value)';
export const INSERT_PUBLISHER_KEYS = 'INSERT INTO publisher_keys (publisher) SELECT j.value FROM json_each(?1) j WHERE NOT EXISTS (SELECT 1 FROM publisher_keys p WHERE p.publisher = j.value)';
const SELECT_CHANNEL_KEYS = 'SELECT c.channel_id AS id, c.key AS key FROM json_each(?1) j JOIN channel_keys c ON c.channel_id = j.value';
const SELECT_PUBLISHER_KEYS = 'SELECT p.publisher AS id, p.key AS key FROM json_each(?1) j JOIN publisher_keys p ON p.publisher = j.value';

/**
 * Each batch first makes sure D1 holds every (key, id) pair its rows were given: a pair that is
 * there inserts nothing; a pair that is missing is inserted (a database emptied under a running
 * writer gets back the keys its rows carry); a key or an id that D1 holds in another pair — the
 * database went back in time (a restore) and handed the key to another id — fails the primary
 * key or the UNIQUE constraint, and with it the batch, and the writer forgets its keys (a data
 * error). So a cached key cannot put rows under another channel or publisher, and the rows
 * themselves carry their keys as plain integers. One small statement per batch, per id, not per row.
 */
export const VERIFY_CHANNEL_KEYS = 'INSERT INTO channel_keys (key, channel_id) SELECT j.value ->> 0, j.value ->> 1 FROM json_each(?1) j WHERE NOT EXISTS (SELECT 1 FROM channel_keys c WHERE c.key = j.value ->> 0 AND c.channel_id = j.value ->> 1)';
export const VERIFY_PUBLISHER_KEYS = 'INSERT INTO publisher_keys (key, publisher) SELECT j.value ->> 0, j.value ->> 1 FROM json_each(?1) j WHERE NOT EXISTS (SELECT 1 FROM publisher_keys p WHERE p.key = j.value ->> 0 AND p.publisher = j.value ->> 1)';

/**
 * Positional rows read with `v ->> n`: an index step per column (objects cost a key search each).
 * Each row is converted to SQLite's binary JSON once, in a MATERIALIZED CTE: `json_each` hands a
 * container value out as text, and every `value ->> n` on that text would render and re-parse the
 * row again — eleven times per message row (measured: ~10 % of workerd's CPU in a stored fan-in).
 * `ON CONFLICT … DO NOTHING` skips rows already stored (a retried drain), and only those: `INSERT
 * OR IGNORE` would also skip a row that breaks a NOT NULL or CHECK constraint. (`WHERE true` is
 * SQLite's way to write an upsert after a SELECT.)
 */
export const INSERT_MESSAGES = `WITH m AS MATERIALIZED (SELECT jsonb(value) AS v FROM json_each(?1))
  INSERT INTO message_rows (ch, pub, seq, subtopic, protocol, content_type, created, size, payload, blob_key, retained)
  SELECT v ->> 0, v ->> 1, v ->> 2, v ->> 3, v ->> 4, v ->> 5, v ->> 6, v ->> 7, v ->> 8, v ->> 9, v ->> 10 FROM m WHERE true
  ON CONFLICT (ch, seq) DO NOTHING`;

export const INSERT_RECORDS = `WITH m AS MATERIALIZED (SELECT jsonb(value) AS v FROM json_each(?1)),
  r AS MATERIALIZED (SELECT m.v AS v, jsonb(e.value) AS rv FROM m, json_each(m.v, '$[5]') AS e)
  INSERT INTO senml_rows (ch, pub, seq, idx, subtopic, created, name, time, unit, value, string_value, bool_value, data_value, sum, update_time)
  SELECT v ->> 0, v ->> 1, v ->> 2, rv ->> '$.i', v ->> 3, v ->> 4, rv ->> '$.n', rv ->> '$.t', rv ->> '$.u',
         rv ->> '$.v', rv ->> '$.vs', rv ->> '$.vb', rv ->> '$.vd', rv ->> '$.s', rv ->> '$.ut'
  FROM r WHERE true
  ON CONFLICT (ch, seq, idx) DO NOTHING`;

/** Joins JSON rows into array parameters that each stay under the D1 value limit. */
export function chunks(items: readonly string[]): string[] {
  const out: string[] = [];
  let cur: string[] = [];
  let size = 2;
  for (const it of items) {
    if (cur.length > 0 && size + it.length + 1 > PARAM_BUDGET) {
      out.push(`[${cur.join(',')}]`);
      cur = [];
      size = 2;
    }
    cur.push(it);
    size += it.length + 1;
  }
  if (cur.length > 0) out.push(`[${cur.join(',')}]`);
  return out;
}

export const partChars = (p: WritePart): number => {
  let n = p.channel.length + 3;
  for (const s of p.publishers) n += s.length + 3;
  for (const s of p.messages) n += s.length + 24;
  for (const s of p.records) n += s.length + 24;
  return n;
};

/**
 * A failure that the rows themselves may cause (SQLite refused a statement, or an id got no key):
 * worth retrying part by part. Anything else — D1 unreachable, overloaded, timed out — would fail
 * each part alone too, and retrying them one by one would only multiply the requests.
 */
export const isDataError = (e: unknown): boolean => /SQLITE_|malformed JSON|no D1 key/i.test(e instanceof Error ? e.message : String(e));

/** Keys the cache holds at most (per kind); past that it starts again empty. */
const KEY_CACHE_MAX = 100_000;

/**
 * The D1 keys of channel and publisher ids (migrations/0004), as a writer has seen them. Keys
 * are never handed out twice nor deleted, so a key once read stays right for as long as the
 * database does; `clear` is for when it may not have (SQLite refused a batch).
 */
export class KeyCache {
  readonly channels = new Map<string, number>();
  readonly publishers = new Map<string, number>();

  constructor(private readonly max = KEY_CACHE_MAX) {}

  /** Gives every id of `parts` its key: the ones not cached in one D1 batch (new ids inserted, then all read). */
  async resolve(db: D1Database, parts: readonly WritePart[]): Promise<void> {
    // Full: start again empty, before looking for what is missing (so nothing this batch needs is dropped after).
    if (this.channels.size >= this.max) this.channels.clear();
    if (this.publishers.size >= this.max) this.publishers.clear();
    const channels = new Set<string>();
    const publishers = new Set<string>();
    for (const p of parts) {
      if (!this.channels.has(p.channel)) channels.add(p.channel);
      for (const id of p.publishers) if (!this.publishers.has(id)) publishers.add(id);
    }
    if (channels.size === 0 && publishers.size === 0) return;
    const ids = (xs: Set<string>) => chunks([...xs].map((x) => JSON.stringify(x)));
    const c = ids(channels);
    const pub = ids(publishers);
    const results = await db.batch<{ id: string; key: number }>([
      ...c.map((json) => db.prepare(INSERT_CHANNEL_KEYS).bind(json)),
      ...pub.map((json) => db.prepare(INSERT_PUBLISHER_KEYS).bind(json)),
      ...c.map((json) => db.prepare(SELECT_CHANNEL_KEYS).bind(json)),
      ...pub.map((json) => db.prepare(SELECT_PUBLISHER_KEYS).bind(json)),
    ]);
    const reads = results.slice(c.length + pub.length);
    reads.forEach((r, i) => {
      const into = i < c.length ? this.channels : this.publishers;
      for (const { id, key } of r.results) into.set(id, key);
    });
  }

  clear(): void {
    this.channels.clear();
    this.publishers.clear();
  }
}

/** An id's cached key; an id D1 gave no key (one that does not survive SQLite's text unchanged) fails its part alone (isDataError). */
function key(map: Map<string, number>, id: string): number {
  const k = map.get(id);
  if (k === undefined) throw new Error(`no D1 key for ${JSON.stringify(id).slice(0, 300)}`);
  return k;
}

/** Each row of `part` with its two keys in front: the text INSERT_MESSAGES / INSERT_RECORDS read. */
function keyed(rows: readonly string[], publishers: readonly number[], ch: number, pubKeys: readonly number[], out: string[]): void {
  for (let i = 0; i < rows.length; i++) out.push(`[${ch},${pubKeys[publishers[i] as number]},${rows[i]}`);
}

/**
 * Writes parts to D1 in one batch (atomic): every row of every part, or none. Ids `keys` has not
 * seen get their keys first, in a D1 batch of their own; the batch itself checks the pairs it uses
 * (VERIFY_CHANNEL_KEYS).
 */
export async function writeParts(db: D1Database, parts: readonly WritePart[], keys = new KeyCache()): Promise<void> {
  await keys.resolve(db, parts);
  const messages: string[] = [];
  const records: string[] = [];
  const channelPairs = new Map<string, number>();
  const publisherPairs = new Map<string, number>();
  for (const p of parts) {
    const ch = key(keys.channels, p.channel);
    channelPairs.set(p.channel, ch);
    const pubKeys = p.publishers.map((id) => {
      const k = key(keys.publishers, id);
      publisherPairs.set(id, k);
      return k;
    });
    keyed(p.messages, p.messagePublishers, ch, pubKeys, messages);
    keyed(p.records, p.recordPublishers, ch, pubKeys, records);
  }
  if (messages.length === 0) return;
  const pairs = (m: Map<string, number>) => chunks([...m].map(([id, k]) => `[${k},${JSON.stringify(id)}]`));
  await db.batch([
    ...pairs(channelPairs).map((json) => db.prepare(VERIFY_CHANNEL_KEYS).bind(json)),
    ...pairs(publisherPairs).map((json) => db.prepare(VERIFY_PUBLISHER_KEYS).bind(json)),
    ...chunks(messages).map((json) => db.prepare(INSERT_MESSAGES).bind(json)),
    ...chunks(records).map((json) => db.prepare(INSERT_RECORDS).bind(json)),
  ]);
}

/** Which writer a channel's drains go to: a stable hash of its id over `STORE_WRITERS` writers. */
export function writerFor(env: Env, channel: string): DurableObjectStub<StoreWriter> {
  const n = Math.max(1, Math.min(256, Math.floor(Number(env.STORE_WRITERS)) || 1));
  let h = 0;
  for (let i = 0; i < channel.length; i++) h = (Math.imul(h, 31) + channel.charCodeAt(i)) | 0;
  const ns = env.WRITERS;
  return ns.get(ns.idFromName(`writer-${(h >>> 0) % n}`));
}

export type WriteResult = { ok: true } | { ok: false; error: string };

interface Waiting {
  part: WritePart;
  chars: number;
  done: () => void;
  fail: (e: unknown) => void;
}

/** What a writer has done since it started (in memory). */
export interface WriterStats {
  /** Parts written (resolved). */
  parts: number;
  /** Parts answered not ok: D1's error, or the writer busy. */
  failed: number;
  /** D1 batches sent, including failed ones and single-part retries. */
  batches: number;
}

export class StoreWriter extends DurableObject<Env> {
  private waiting: Waiting[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private writing = false;
  private counts: WriterStats = { parts: 0, failed: 0, batches: 0 };
  private queued = 0;
  private keys = new KeyCache();

  stats(): WriterStats {
    return { ...this.counts };
  }

  /**
   * Answers once every row of `part` is committed in D1, or with D1's error if not. The error is
   * an answer, not a throw: a throw out of an RPC method is logged as uncaught on this side too,
   * and the channel already logs its failed drains.
   */
  write(part: WritePart): Promise<WriteResult> {
    const chars = partChars(part);
    if (this.queued > 0 && this.queued + chars > QUEUE_CHARS) {
      this.counts.failed++;
      return Promise.resolve({ ok: false, error: `store writer busy: ${this.queued} characters of rows wait for D1` });
    }
    this.queued += chars;
    return new Promise<WriteResult>((resolve) => {
      const answer = (r: WriteResult) => {
        this.queued -= chars;
        resolve(r);
      };
      this.waiting.push({ part, chars, done: () => answer({ ok: true }), fail: (e) => answer({ ok: false, error: e instanceof Error ? e.message : String(e) }) });
      this.schedule();
    });
  }

  /** A batch starts WRITER_LINGER_MS after the first waiting part, or as soon as the previous batch ends. */
  private schedule(): void {
    if (this.writing || this.timer !== null || this.waiting.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, WRITER_LINGER_MS);
  }

  private async flush(): Promise<void> {
    this.writing = true;
    try {
      while (this.waiting.length > 0) {
        let chars = 0;
        let n = 0;
        while (n < this.waiting.length && (n === 0 || chars + (this.waiting[n] as Waiting).chars <= BATCH_CHARS)) chars += (this.waiting[n++] as Waiting).chars;
        const batch = this.waiting.splice(0, n);
        // writeBatch answers every part itself; this is only so that nothing can leave one unanswered.
        await this.writeBatch(batch).catch((e: unknown) => batch.forEach((w) => this.refuse(w, e)));
      }
    } finally {
      this.writing = false;
      this.schedule();
    }
  }

  private async writeBatch(batch: Waiting[]): Promise<void> {
    try {
      await this.send(batch);
      return;
    } catch (e) {
      // SQLite refused rows: maybe for a cached key D1 no longer holds with its id (VERIFY_CHANNEL_KEYS). Read them again next time.
      if (isDataError(e)) this.keys.clear();
      if (batch.length === 1 || !isDataError(e)) return batch.forEach((w) => this.refuse(w, e));
    }
    // The shared batch failed: each part alone, so only the parts that fail on their own fail.
    for (const w of batch) {
      try {
        await this.send([w]);
      } catch (e) {
        if (isDataError(e)) this.keys.clear();
        this.refuse(w, e);
      }
    }
  }

  private async send(batch: Waiting[]): Promise<void> {
    this.counts.batches++;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`D1 batch not answered in ${BATCH_TIMEOUT_MS} ms`)), BATCH_TIMEOUT_MS)));
    try {
      await Promise.race([writeParts(this.env.DB, batch.map((w) => w.part), this.keys), deadline]);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
    this.counts.parts += batch.length;
    for (const w of batch) w.done();
  }

  private refuse(w: Waiting, e: unknown): void {
    this.counts.failed++;
    w.fail(e);
  }
}
