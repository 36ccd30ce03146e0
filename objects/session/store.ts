/**
 * The session actor's SQLite: one row. Schema versioned like the channel actor's (objects/channel/
 * schema.ts): idempotent DDL per version, applied in one transaction, version written last.
 */
const MIGRATIONS: readonly (readonly string[])[] = [
  // v1
  [
    `CREATE TABLE IF NOT EXISTS session (
       id          INTEGER PRIMARY KEY CHECK (id = 1),
       key         TEXT    NOT NULL,
       epoch       INTEGER NOT NULL,
       state       TEXT,
       expiry      INTEGER NOT NULL,
       released_at INTEGER
     )`,
  ],
  // v2: the will of a holder that was lost (SessionWill as JSON) and when it is due.
  ['ALTER TABLE session ADD COLUMN will TEXT', 'ALTER TABLE session ADD COLUMN will_due INTEGER'],
];

const SCHEMA_VERSION = MIGRATIONS.length;

export interface SessionRow {
  key: string;
  /** Fencing token of the current holder; writes carrying another epoch are refused. */
  epoch: number;
  /** The bridge's SessionState as JSON, or null (none kept). */
  state: string | null;
  /** Seconds the state outlives its connection. */
  expiry: number;
  /** When the holder released the session (or its socket was lost), ms; null while a connection holds it. */
  releasedAt: number | null;
  /** The holder's will (SessionWill JSON), kept while it holds the session. */
  will: string | null;
  /** When the will of a lost holder is to be published (ms), or null: none pending. */
  willDue: number | null;
}

export class SessionStorage {
  /**
   * Whether the tables exist. An actor with nothing stored (new, or wiped at its expiry) creates
   * none until it writes: a DO's storage that is empty is no storage at all, while an empty table
   * is a database kept forever — one per client id ever seen, most of them random (MQTT.js,
   * mosquitto_pub) and used once.
   */
  private ready = false;

  constructor(private readonly storage: DurableObjectStorage) {}

  /** Migrates what is stored to this code's schema; nothing stored, nothing created. */
  ensureSchema(): void {
    const sql = this.storage.sql;
    if (sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").toArray().length === 0) return;
    this.migrate();
  }

  private migrate(): void {
    const sql = this.storage.sql;
    sql.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value)');
    const row = sql.exec<{ value: number }>("SELECT value FROM meta WHERE key = 'schema_version'").toArray()[0];
    const current = row ? Number(row.value) : 0;
    if (current > SCHEMA_VERSION) throw new Error(`session actor storage is at schema v${current}; this code knows up to v${SCHEMA_VERSION}`);
    if (current < SCHEMA_VERSION)
      this.storage.transactionSync(() => {
        for (let v = current; v < SCHEMA_VERSION; v++) for (const ddl of MIGRATIONS[v] ?? []) sql.exec(ddl);
        sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", SCHEMA_VERSION);
      });
    this.ready = true;
  }

  read(): SessionRow | null {
    if (!this.ready) this.ensureSchema();
    if (!this.ready) return null;
    const r = this.storage.sql
      .exec<{ key: string; epoch: number; state: string | null; expiry: number; released_at: number | null; will: string | null; will_due: number | null }>(
        'SELECT key, epoch, state, expiry, released_at, will, will_due FROM session WHERE id = 1',
      )
      .toArray()[0];
    return r ? { key: r.key, epoch: r.epoch, state: r.state, expiry: r.expiry, releasedAt: r.released_at, will: r.will, willDue: r.will_due } : null;
  }

  write(row: SessionRow): void {
    if (!this.ready) this.migrate();
    this.storage.sql.exec(
      'INSERT OR REPLACE INTO session (id, key, epoch, state, expiry, released_at, will, will_due) VALUES (1, ?, ?, ?, ?, ?, ?, ?)',
      row.key,
      row.epoch,
      row.state,
      row.expiry,
      row.releasedAt,
      row.will,
      row.willDue,
    );
  }

  /** Forgets everything (the session expired), schema included: the next claim creates it again. */
  async clear(): Promise<void> {
    await this.storage.deleteAll();
    this.ready = false;
  }
}
