import { runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { ensureSchema, MIGRATIONS, SCHEMA_VERSION } from './schema';
import { actor, newChannel } from './test-helpers';
import type { ChannelActor } from './index';

/** Rebuilds an actor's storage as schema v1 left it, with `seq` as the last accepted seq. */
function asV1(sql: SqlStorage, seq: number): void {
  for (const t of ['log', 'retained', 'link_subs', 'meta']) sql.exec(`DROP TABLE IF EXISTS ${t}`);
  sql.exec('CREATE TABLE meta (key TEXT PRIMARY KEY, value)');
  for (const ddl of MIGRATIONS[0]!) sql.exec(ddl);
  sql.exec("INSERT INTO meta (key, value) VALUES ('schema_version', 1), ('seq', ?)", seq);
}

describe('channel actor: schema migrations', () => {
  it('v1 → v2 moves the outbox table into the log (records kept, drained mark set) and loses nothing', async () => {
    const ch = newChannel();
    const after = await runInDurableObject(actor(ch), (_i: ChannelActor, state) => {
      const sql = state.storage.sql;
      // As v1 had it: seqs 1–4 accepted, 1–2 drained, 3–4 in the outbox.
      asV1(sql, 4);
      for (let seq = 1; seq <= 4; seq++) {
        sql.exec("INSERT INTO log (seq, subtopic, publisher, protocol, content_type, payload, created, retain) VALUES (?, '', 'd', 'http', 'text/plain', ?, 1, 0)", seq, new Uint8Array([seq]).buffer);
      }
      sql.exec(`INSERT INTO outbox (seq, records) VALUES (3, '[{"n":"x"}]'), (4, NULL)`);
      ensureSchema(state.storage);
      return {
        version: sql.exec<{ value: number }>("SELECT value FROM meta WHERE key = 'schema_version'").one().value,
        drained: sql.exec<{ value: number }>("SELECT value FROM meta WHERE key = 'drained'").one().value,
        log: sql.exec<{ seq: number; records: string | null }>('SELECT seq, records FROM log ORDER BY seq').toArray(),
        outboxTable: sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'outbox'").one().n,
      };
    });
    expect(after).toEqual({
      version: SCHEMA_VERSION,
      drained: 2,
      log: [
        { seq: 1, records: null },
        { seq: 2, records: null },
        { seq: 3, records: '[{"n":"x"}]' },
        { seq: 4, records: null },
      ],
      outboxTable: 0,
    });
  });

  it('v1 → v2 with an empty outbox marks everything drained', async () => {
    const ch = newChannel();
    const drained = await runInDurableObject(actor(ch), (_i: ChannelActor, state) => {
      const sql = state.storage.sql;
      asV1(sql, 7);
      ensureSchema(state.storage);
      return sql.exec<{ value: number }>("SELECT value FROM meta WHERE key = 'drained'").one().value;
    });
    expect(drained).toBe(7);
  });
});
