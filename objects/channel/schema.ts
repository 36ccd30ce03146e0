import { encodeRun, type RunEntry } from './store';

/** A migration step: SQL, or code for what SQL cannot do (v3 re-encodes rows as CBOR). */
type Step = string | ((sql: SqlStorage) => void);

/** Old log rows moved into runs per call of the v3 step's loop (bounded memory, whatever the window). */
const V3_CHUNK = 256;

/**
 * The actor's own SQLite schema, migrated by a stored version (the cloudflare/agents
 * `_ensureSchema` pattern): steps above the stored version run in one transaction and the version
 * is written last, so a step runs exactly once (v1 is idempotent DDL; v2's ALTER TABLE relies on
 * that transaction). Append new steps; never edit old ones.
 */
export const MIGRATIONS: readonly (readonly Step[])[] = [
  // v1
  [
    // Every message accepted, in seq order. Rows leave when they are both drained to D1/R2 and
    // older than the recent window (see store.trim).
    `CREATE TABLE IF NOT EXISTS log (
       seq          INTEGER PRIMARY KEY,
       subtopic     TEXT    NOT NULL,
       publisher    TEXT    NOT NULL,
       protocol     TEXT    NOT NULL,
       content_type TEXT    NOT NULL,
       payload      BLOB    NOT NULL,
       created      INTEGER NOT NULL,
       retain       INTEGER NOT NULL,
       properties   TEXT,
       expires_at   INTEGER
     )`,
    // Seqs not yet stored in D1/R2; `records` holds the normalized SenML records as JSON.
    `CREATE TABLE IF NOT EXISTS outbox (
       seq     INTEGER PRIMARY KEY,
       records TEXT
     )`,
    // The last retained message per subtopic (MQTT 3.3.1.3), a full copy: it outlives the log.
    `CREATE TABLE IF NOT EXISTS retained (
       subtopic     TEXT PRIMARY KEY,
       seq          INTEGER NOT NULL,
       publisher    TEXT    NOT NULL,
       protocol     TEXT    NOT NULL,
       content_type TEXT    NOT NULL,
       payload      BLOB    NOT NULL,
       created      INTEGER NOT NULL,
       properties   TEXT,
       expires_at   INTEGER
     )`,
    // Subscriptions carried by bridge links, keyed by the link socket's id (from its attachment).
    `CREATE TABLE IF NOT EXISTS link_subs (
       socket   TEXT    NOT NULL,
       sub      INTEGER NOT NULL,
       filter   TEXT    NOT NULL,
       no_local TEXT,
       PRIMARY KEY (socket, sub)
     )`,
  ],
  // v2: the outbox is no longer a table of its own but the log rows after the `drained` mark, so
  // a publish is one row insert instead of two. Pending rows keep their SenML records in the log.
  [
    `ALTER TABLE log ADD COLUMN records TEXT`,
    `UPDATE log SET records = (SELECT records FROM outbox WHERE outbox.seq = log.seq)`,
    `INSERT OR REPLACE INTO meta (key, value)
       SELECT 'drained', COALESCE((SELECT MIN(seq) - 1 FROM outbox), (SELECT value FROM meta WHERE key = 'seq'), 0)`,
    `DROP TABLE outbox`,
  ],
  // v3: the log is kept in runs — one row per run of messages stored together, their fields in a
  // CBOR blob (store.ts) — instead of one row per message. Each old row becomes a run of one.
  [
    `CREATE TABLE runs (
       first   INTEGER PRIMARY KEY,
       last    INTEGER NOT NULL,
       created INTEGER NOT NULL,
       bytes   INTEGER NOT NULL,
       data    BLOB    NOT NULL
     )`,
    (sql) => {
      type Old = { seq: number; subtopic: string; publisher: string; protocol: string; content_type: string; payload: ArrayBuffer; created: number; retain: number; properties: string | null; expires_at: number | null; records: string | null };
      for (let after = -1; ; ) {
        const rows = sql.exec<Old>('SELECT * FROM log WHERE seq > ? ORDER BY seq LIMIT ?', after, V3_CHUNK).toArray();
        for (const r of rows) {
          const entry: RunEntry = [r.subtopic, r.publisher, r.protocol, r.content_type, new Uint8Array(r.payload), r.retain === 1, r.properties === null ? null : JSON.parse(r.properties), r.expires_at, r.records];
          sql.exec('INSERT INTO runs (first, last, created, bytes, data) VALUES (?, ?, ?, ?, ?)', r.seq, r.seq, r.created, r.payload.byteLength, encodeRun([entry]));
        }
        if (rows.length < V3_CHUNK) break;
        after = (rows.at(-1) as Old).seq;
      }
    },
    `DROP TABLE log`,
  ],
  // v4: a retained message keeps the QoS it was published with (null: 2), so a subscriber gets it
  // at min(published, granted) [MQTT-3.3.1-8]. Runs carry it in their entries (store.ts RunEntry).
  [`ALTER TABLE retained ADD COLUMN qos INTEGER`],
  // v5: a retained message keeps what its MQTT 5 publisher said beyond the envelope — the format
  // bits (shared/link.ts FORMAT), Response Topic and Correlation Data — handed back unaltered
  // [MQTT-3.3.2-4, -15, -16, -20]. Null: not given (rows from before: read as they were). Runs carry
  // them in their entries (store.ts RunEntry).
  [`ALTER TABLE retained ADD COLUMN format INTEGER`, `ALTER TABLE retained ADD COLUMN response_topic TEXT`, `ALTER TABLE retained ADD COLUMN correlation BLOB`],
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export function ensureSchema(storage: DurableObjectStorage): void {
  const sql = storage.sql;
  sql.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value)');
  const row = sql.exec<{ value: number }>("SELECT value FROM meta WHERE key = 'schema_version'").toArray()[0];
  const current = row ? Number(row.value) : 0;
  if (current > SCHEMA_VERSION) {
    // A rollback to older code must not write into a schema it does not understand.
    throw new Error(`channel actor storage is at schema v${current}; this code knows up to v${SCHEMA_VERSION}`);
  }
  if (current === SCHEMA_VERSION) return;
  storage.transactionSync(() => {
    for (let v = current; v < SCHEMA_VERSION; v++) {
      for (const step of MIGRATIONS[v] ?? []) {
        if (typeof step === 'string') sql.exec(step);
        else step(sql);
      }
    }
    sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", SCHEMA_VERSION);
  });
}
