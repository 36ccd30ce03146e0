import { runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { ensureSchema, MIGRATIONS, SCHEMA_VERSION } from './schema';
import { ChannelStore, encodeRun } from './store';
import type { ChannelMessage } from './types';
import { actor, newChannel } from './test-helpers';
import type { ChannelActor } from './index';

/** Rebuilds an actor's storage as schema `version` left it, with `seq` as the last accepted seq. */
function asVersion(sql: SqlStorage, version: number, seq: number): void {
  for (const t of ['log', 'outbox', 'runs', 'retained', 'link_subs', 'meta']) sql.exec(`DROP TABLE IF EXISTS ${t}`);
  sql.exec('CREATE TABLE meta (key TEXT PRIMARY KEY, value)');
  for (let v = 0; v < version; v++) {
    for (const step of MIGRATIONS[v]!) {
      if (typeof step === 'string') sql.exec(step);
      else step(sql);
    }
  }
  sql.exec("INSERT INTO meta (key, value) VALUES ('schema_version', ?), ('seq', ?)", version, seq);
}

const tables = (sql: SqlStorage) => sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").toArray().map((r) => r.name);

describe('channel actor: schema migrations', () => {
  it('v1 → current: the outbox table becomes the log after the drained mark (records kept) and loses nothing', async () => {
    const ch = newChannel();
    const after = await runInDurableObject(actor(ch), (_i: ChannelActor, state) => {
      const sql = state.storage.sql;
      // As v1 had it: seqs 1–4 accepted, 1–2 drained, 3–4 in the outbox.
      asVersion(sql, 1, 4);
      for (let seq = 1; seq <= 4; seq++) {
        sql.exec("INSERT INTO log (seq, subtopic, publisher, protocol, content_type, payload, created, retain) VALUES (?, '', 'd', 'http', 'text/plain', ?, 1, 0)", seq, new Uint8Array([seq]).buffer);
      }
      sql.exec(`INSERT INTO outbox (seq, records) VALUES (3, '[{"n":"x"}]'), (4, NULL)`);
      ensureSchema(state.storage);
      const store = new ChannelStore(state.storage);
      store.load();
      return {
        version: sql.exec<{ value: number }>("SELECT value FROM meta WHERE key = 'schema_version'").one().value,
        drained: store.drainedUpTo,
        log: store.logFrom(1).map((m) => [m.envelope.seq, [...m.envelope.payload]]),
        outbox: store.outboxBatch(10, 1 << 30).map((it) => [it.message.envelope.seq, it.records]),
        tables: tables(sql),
      };
    });
    expect(after).toEqual({
      version: SCHEMA_VERSION,
      drained: 2,
      log: [[1, [1]], [2, [2]], [3, [3]], [4, [4]]],
      outbox: [[3, '[{"n":"x"}]'], [4, null]],
      tables: ['link_subs', 'meta', 'retained', 'runs'],
    });
  });

  it('v1 → current with an empty outbox marks everything drained', async () => {
    const ch = newChannel();
    const drained = await runInDurableObject(actor(ch), (_i: ChannelActor, state) => {
      const sql = state.storage.sql;
      asVersion(sql, 1, 7);
      ensureSchema(state.storage);
      return sql.exec<{ value: number }>("SELECT value FROM meta WHERE key = 'drained'").one().value;
    });
    expect(drained).toBe(7);
  });

  it('v2 → v3 turns each log row into a run of one, every field kept, in chunks past the step size', async () => {
    const ch = newChannel();
    const n = 600; // more than one chunk of the step's loop
    const after = await runInDurableObject(actor(ch), (_i: ChannelActor, state) => {
      const sql = state.storage.sql;
      asVersion(sql, 2, n);
      sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('channel', ?), ('drained', ?)", ch, n - 2);
      for (let seq = 1; seq <= n; seq++) {
        sql.exec(
          'INSERT INTO log (seq, subtopic, publisher, protocol, content_type, payload, created, retain, properties, expires_at, records) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
          seq, `s/${seq % 3}`, `dev-${seq % 2}`, 'mqtt', 'application/senml+json', new TextEncoder().encode(`[{"n":"t","v":${seq}}]`).buffer, 1000 + seq, seq % 5 === 0 ? 1 : 0,
          seq === n ? JSON.stringify([['k', 'v'], ['k', 'w']]) : null, seq === n ? 99_000 : null, seq > n - 2 ? `[{"i":0,"n":"t","t":1,"v":${seq}}]` : null,
        );
      }
      ensureSchema(state.storage);
      const store = new ChannelStore(state.storage);
      store.load();
      return {
        runs: sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM runs').one().n,
        count: store.logCount(),
        tail: store.logFrom(n - 1),
        outbox: store.outboxBatch(10, 1 << 30).map((it) => [it.message.envelope.seq, it.records]),
        tables: tables(sql),
      };
    });
    const payload = (seq: number) => new TextEncoder().encode(`[{"n":"t","v":${seq}}]`);
    expect(after.runs).toBe(n);
    expect(after.count).toBe(n);
    expect(after.tables).toEqual(['link_subs', 'meta', 'retained', 'runs']);
    expect(after.tail).toEqual([
      { envelope: { channel: ch, seq: n - 1, created: 1000 + n - 1, subtopic: `s/${(n - 1) % 3}`, publisher: `dev-${(n - 1) % 2}`, protocol: 'mqtt', contentType: 'application/senml+json', payload: payload(n - 1) }, retain: false },
      { envelope: { channel: ch, seq: n, created: 1000 + n, subtopic: `s/${n % 3}`, publisher: `dev-${n % 2}`, protocol: 'mqtt', contentType: 'application/senml+json', payload: payload(n) }, retain: true, properties: [['k', 'v'], ['k', 'w']], expiresAt: 99_000 },
    ]);
    expect(after.outbox).toEqual([[n - 1, `[{"i":0,"n":"t","t":1,"v":${n - 1}}]`], [n, `[{"i":0,"n":"t","t":1,"v":${n}}]`]]);
  });

  it('v3 → v4: a retained message stored before keeps being served (at QoS 2); new ones keep their publish QoS', async () => {
    const ch = newChannel();
    const after = await runInDurableObject(actor(ch), (_i: ChannelActor, state) => {
      const sql = state.storage.sql;
      asVersion(sql, 3, 1);
      sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('channel', ?)", ch);
      sql.exec("INSERT INTO retained (subtopic, seq, publisher, protocol, content_type, payload, created) VALUES ('old', 1, 'd', 'mqtt', 'text/plain', ?, 5)", new Uint8Array([1]).buffer);
      ensureSchema(state.storage);
      const store = new ChannelStore(state.storage);
      store.load();
      store.append([{ input: { subtopic: 'new', publisher: 'd', protocol: 'mqtt', contentType: 'text/plain', payload: new Uint8Array([2]), retain: true, qos: 0 }, records: null }], 10, 100);
      return {
        version: sql.exec<{ value: number }>("SELECT value FROM meta WHERE key = 'schema_version'").one().value,
        retained: store.retained().map((m) => [m.envelope.subtopic, m.envelope.seq, m.qos ?? 2]),
        log: store.logFrom(2).map((m) => [m.envelope.seq, m.qos ?? 2]),
      };
    });
    expect(after).toEqual({ version: SCHEMA_VERSION, retained: [['old', 1, 2], ['new', 2, 0]], log: [[2, 0]] });
  });

  it('v4 → v5: a retained message and a run stored before are served as they were; new ones keep format, Response Topic and Correlation Data', async () => {
    const ch = newChannel();
    const after = await runInDurableObject(actor(ch), (_i: ChannelActor, state) => {
      const sql = state.storage.sql;
      asVersion(sql, 4, 1);
      sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('channel', ?)", ch);
      sql.exec("INSERT INTO retained (subtopic, seq, publisher, protocol, content_type, payload, created, qos) VALUES ('old', 1, 'd', 'mqtt', 'text/plain', ?, 5, 1)", new Uint8Array([1]).buffer);
      // A v4 run entry: qos last.
      sql.exec('INSERT INTO runs (first, last, created, bytes, data) VALUES (1, 1, 5, 1, ?)', encodeRun([['old', 'd', 'mqtt', 'text/plain', new Uint8Array([1]), true, null, null, null, 1]]));
      ensureSchema(state.storage);
      const store = new ChannelStore(state.storage);
      store.load();
      const input = { subtopic: 'new', publisher: 'd', protocol: 'mqtt' as const, contentType: 'application/json', payload: new Uint8Array([0x7b, 0x7d]), retain: true, format: 6, responseTopic: `channels/${ch}/messages/re`, correlation: new Uint8Array([9, 0]) };
      store.append([{ input, records: null }, { input: { ...input, subtopic: 'plain', retain: false, format: undefined, responseTopic: undefined, correlation: undefined }, records: null }], 10, 100);
      const fields = (m: ChannelMessage) => [m.envelope.subtopic, m.qos ?? 2, m.format, m.responseTopic, m.correlation && [...m.correlation]];
      return {
        version: sql.exec<{ value: number }>("SELECT value FROM meta WHERE key = 'schema_version'").one().value,
        retained: store.retained().map(fields),
        log: store.logFrom(0).map(fields),
      };
    });
    const rt = `channels/${ch}/messages/re`;
    expect(after).toEqual({
      version: SCHEMA_VERSION,
      retained: [['old', 1, undefined, undefined, undefined], ['new', 2, 6, rt, [9, 0]]],
      log: [['old', 1, undefined, undefined, undefined], ['new', 2, 6, rt, [9, 0]], ['plain', 2, undefined, undefined, undefined]],
    });
  });
});
