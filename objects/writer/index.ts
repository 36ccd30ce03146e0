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
 * One channel drain's rows, each already JSON text.
 * `messages`: `[channel, seq, subtopic, publisher, protocol, contentType, created, size, payload, blobKey, retained]`.
 * `records`: `[channel, seq, subtopic, publisher, created, [record…]]`, each record an object as objects/channel/payload.ts writes it.
 * `channel` and `publishers`: the ids the rows name (distinct), which get their integer keys first (migrations/0004).
 */
export interface WritePart {
  channel: string;
  publishers: string[];
  messages: string[];
  records: string[];
}

/**
 * Keys for ids not seen before: one small JSON array of distinct ids per statement. Only the new
 * ids are inserted: with AUTOINCREMENT, `INSERT OR IGNORE` would use up a key number for every id
 * it skips, and keys would grow with every batch instead of with the ids (bigger integers in
 * every row and index).
 */
export const INSERT_CHANNEL_KEYS = 'INSERT INTO channel_keys (channel_id) SELECT j.value FROM json_each(?1) j WHERE NOT EXISTS (SELECT 1 FROM channel_keys c WHERE c.channel_id = j.value)';
export const INSERT_PUBLISHER_KEYS = 'INSERT INTO publisher_keys (publisher) SELECT j.value FROM json_each(?1) j WHERE NOT EXISTS (SELECT 1 FROM publisher_keys p WHERE p.publisher = j.value)';

/**
 * Positional rows read with `v ->> n`: an index step per column (objects cost a key search each).
 * Each row is converted to SQLite's binary JSON once, in a MATERIALIZED CTE: `json_each` hands a
 * container value out as text, and every `value ->> n` on that text would render and re-parse the
 * row again — eleven times per message row (measured: ~10 % of workerd's CPU in a stored fan-in).
 *
 * Each row's ids become their keys by lookup (inserted by the same batch's first statements): a
 * key that is not there is NULL, which the NOT NULL columns refuse — the batch fails and the
 * drain retries, rather than a join dropping the row. (So `ON CONFLICT … DO NOTHING` for rows
 * already stored, not `INSERT OR IGNORE`, which would skip a NOT NULL violation too; `WHERE
 * true` is SQLite's way to write an upsert after a SELECT.)
 */
const CH = `(SELECT key FROM channel_keys WHERE channel_id = v ->> 0)`;
const PUB = `(SELECT key FROM publisher_keys WHERE publisher = v ->> 3)`;

export const INSERT_MESSAGES = `WITH m AS MATERIALIZED (SELECT jsonb(value) AS v FROM json_each(?1))
  INSERT INTO message_rows (ch, seq, subtopic, pub, protocol, content_type, created, size, payload, blob_key, retained)
  SELECT ${CH}, v ->> 1, v ->> 2, ${PUB}, v ->> 4, v ->> 5, v ->> 6, v ->> 7, v ->> 8, v ->> 9, v ->> 10 FROM m WHERE true
  ON CONFLICT (ch, seq) DO NOTHING`;

export const INSERT_RECORDS = `WITH m AS MATERIALIZED (SELECT jsonb(value) AS v FROM json_each(?1)),
  r AS MATERIALIZED (SELECT m.v AS v, jsonb(e.value) AS rv FROM m, json_each(m.v, '$[5]') AS e)
  INSERT INTO senml_rows (ch, seq, idx, subtopic, pub, created, name, time, unit, value, string_value, bool_value, data_value, sum, update_time)
  SELECT ${CH}, v ->> 1, rv ->> '$.i', v ->> 2, ${PUB}, v ->> 4, rv ->> '$.n', rv ->> '$.t', rv ->> '$.u',
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
  for (const s of p.messages) n += s.length + 1;
  for (const s of p.records) n += s.length + 1;
  return n;
};

/**
 * A failure that the rows themselves may cause (SQLite refused a statement): worth retrying part
 * by part. Anything else — D1 unreachable, overloaded, timed out — would fail each part alone
 * too, and retrying them one by one would only multiply the requests.
 */
export const isDataError = (e: unknown): boolean => /SQLITE_|malformed JSON/i.test(e instanceof Error ? e.message : String(e));

/** Writes parts to D1 in one batch (atomic): the keys of their ids first, then every row of every part, or none. */
export async function writeParts(db: D1Database, parts: readonly WritePart[]): Promise<void> {
  const messages = parts.flatMap((p) => p.messages);
  if (messages.length === 0) return;
  const records = parts.flatMap((p) => p.records);
  const ids = (xs: Iterable<string>) => chunks([...new Set(xs)].map((x) => JSON.stringify(x)));
  const statements = [
    ...ids(parts.map((p) => p.channel)).map((json) => db.prepare(INSERT_CHANNEL_KEYS).bind(json)),
    ...ids(parts.flatMap((p) => p.publishers)).map((json) => db.prepare(INSERT_PUBLISHER_KEYS).bind(json)),
    ...chunks(messages).map((json) => db.prepare(INSERT_MESSAGES).bind(json)),
    ...chunks(records).map((json) => db.prepare(INSERT_RECORDS).bind(json)),
  ];
  await db.batch(statements);
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
      if (batch.length === 1 || !isDataError(e)) return batch.forEach((w) => this.refuse(w, e));
    }
    // The shared batch failed: each part alone, so only the parts that fail on their own fail.
    for (const w of batch) {
      try {
        await this.send([w]);
      } catch (e) {
        this.refuse(w, e);
      }
    }
  }

  private async send(batch: Waiting[]): Promise<void> {
    this.counts.batches++;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`D1 batch not answered in ${BATCH_TIMEOUT_MS} ms`)), BATCH_TIMEOUT_MS)));
    try {
      await Promise.race([writeParts(this.env.DB, batch.map((w) => w.part)), deadline]);
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
