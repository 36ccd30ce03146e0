/**
 * The actor's own SQLite schema, migrated by a stored version (the cloudflare/agents
 * `_ensureSchema` pattern): steps above the stored version run in one transaction and the version
 * is written last, so a step runs exactly once (v1 is idempotent DDL; v2's ALTER TABLE relies on
 * that transaction). Append new steps; never edit old ones.
 */
export const MIGRATIONS: readonly (readonly string[])[] = [
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
    for (let v = current; v < SCHEMA_VERSION; v++) for (const ddl of MIGRATIONS[v] ?? []) sql.exec(ddl);
    sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", SCHEMA_VERSION);
  });
}
