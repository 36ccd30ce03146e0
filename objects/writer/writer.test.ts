// The store writer in workerd: real D1, real channel actors.
import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import type { ChannelCore } from '../channel/core';
import { partsOf } from '../channel/drain';
import type { ChannelActor } from '../channel/index';
import { actor, msg, newChannel, storedRows as rows, text } from '../channel/test-helpers';
import { isDataError, KeyCache, writeParts, writerFor, type WritePart } from './index';

describe('store writer: many channels per D1 batch', () => {
  /** A messages row as a drain hands it to the writer (WritePart: a MessageTail without its opening bracket). */
  const row = (seq: number) => JSON.stringify([seq, '', 'http', 'text/plain', 1_700_000_000_000 + seq, 2, `m${seq}`, null, 0]).slice(1);
  const part = (ch: string, seqs: number[], publisher = 'dev'): WritePart => ({ channel: ch, publishers: [publisher], messages: seqs.map(row), messagePublishers: seqs.map(() => 0), records: [], recordPublishers: [] });
  const freshWriter = () => env.WRITERS.get(env.WRITERS.idFromName(`test-${crypto.randomUUID()}`));

  it('writes parts that arrive together as one D1 batch, and answers each once its rows are in', async () => {
    const w = freshWriter();
    const [a, b, c] = [newChannel(), newChannel(), newChannel()];
    expect(await Promise.all([w.write(part(a, [1, 2])), w.write(part(b, [1])), w.write(part(c, [1, 2, 3]))])).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    // Sent in one turn, they arrive within the writer's 20 ms linger: fewer batches than parts.
    const st = await w.stats();
    expect(st).toMatchObject({ parts: 3, failed: 0 });
    expect(st.batches).toBeLessThan(3);
    for (const [ch, n] of [[a, 2], [b, 1], [c, 3]] as const) expect((await rows(ch)).map((r) => r.payload)).toEqual(Array.from({ length: n }, (_, i) => `m${i + 1}`));
    // A part written again (a drain retried after its answer was lost) stores nothing twice.
    await w.write(part(a, [1, 2]));
    expect(await rows(a)).toHaveLength(2);
  });

  it('gives each id one key, and uses up no key numbers for ids it already has', async () => {
    const w = freshWriter();
    const ch = newChannel();
    const maxKey = async (table: string) => (await env.DB.prepare(`SELECT MAX(key) AS k FROM ${table}`).first<{ k: number }>())!.k;
    expect(await w.write(part(ch, [1]))).toEqual({ ok: true });
    const [c0, p0] = [await maxKey('channel_keys'), await maxKey('publisher_keys')];
    // The same ids again (a retried drain, the next drain of the channel), also through writers
    // that have not cached them (they ask D1): no new key numbers.
    expect(await w.write(part(ch, [1]))).toEqual({ ok: true });
    expect(await freshWriter().write(part(ch, [2, 3]))).toEqual({ ok: true });
    expect(await freshWriter().write(part(ch, [4]))).toEqual({ ok: true });
    expect([await maxKey('channel_keys'), await maxKey('publisher_keys')]).toEqual([c0, p0]);
    // A new channel takes the next number.
    const other = newChannel();
    expect(await w.write(part(other, [1]))).toEqual({ ok: true });
    expect(await env.DB.prepare('SELECT key FROM channel_keys WHERE channel_id = ?').bind(other).first('key')).toBe(c0 + 1);
    expect(await env.DB.prepare('SELECT COUNT(*) AS n FROM channel_keys WHERE channel_id IN (?, ?)').bind(ch, other).first('n')).toBe(2);
  });

  it('gives an emptied database back the keys its cached rows carry', async () => {
    const w = freshWriter();
    const ch = newChannel();
    const publisher = `dev-${crypto.randomUUID()}`;
    expect(await w.write(part(ch, [1], publisher))).toEqual({ ok: true });
    const keyOf = () => env.DB.prepare('SELECT key FROM channel_keys WHERE channel_id = ?').bind(ch).first('key');
    const k = await keyOf();
    // The database loses the rows and the keys the writer has cached (as if emptied under it).
    await env.DB.batch([env.DB.prepare('DELETE FROM message_rows WHERE ch = ?').bind(k), env.DB.prepare('DELETE FROM channel_keys WHERE key = ?').bind(k), env.DB.prepare('DELETE FROM publisher_keys WHERE publisher = ?').bind(publisher)]);
    expect(await w.write(part(ch, [2], publisher))).toEqual({ ok: true });
    expect(await keyOf()).toBe(k);
    expect((await rows(ch)).map((x) => [x.seq, x.publisher])).toEqual([[2, publisher]]);
  });

  it('refuses rows whose cached key D1 has given to another id, stores nothing under it, and then reads its keys again', async () => {
    const w = freshWriter();
    const [ch, other] = [newChannel(), newChannel()];
    expect(await w.write(part(ch, [1]))).toEqual({ ok: true });
    const k = await env.DB.prepare('SELECT key FROM channel_keys WHERE channel_id = ?').bind(ch).first<number>('key');
    // As after a restore to an earlier time: the key now belongs to another channel.
    await env.DB.batch([env.DB.prepare('DELETE FROM message_rows WHERE ch = ?').bind(k), env.DB.prepare('UPDATE channel_keys SET channel_id = ? WHERE key = ?').bind(other, k)]);
    const r = await w.write(part(ch, [2]));
    expect(r).toEqual({ ok: false, error: expect.stringMatching(/constraint/i) });
    expect(await rows(other)).toEqual([]);
    // The refusal made the writer forget its keys: the drain's retry gets a new key and lands.
    expect(await w.write(part(ch, [2]))).toEqual({ ok: true });
    expect((await rows(ch)).map((x) => x.seq)).toEqual([2]);
    expect(await env.DB.prepare('SELECT key FROM channel_keys WHERE channel_id = ?').bind(ch).first('key')).not.toBe(k);
    expect(await rows(other)).toEqual([]);
  });

  it('fails only the part with an id D1 gives no key, and keeps a full key cache working', async () => {
    const w = freshWriter();
    const [good1, bad, good2] = [newChannel(), newChannel(), newChannel()];
    // A lone surrogate does not come back from SQLite as the same text: no key can be read for it.
    const results = await Promise.all([w.write(part(good1, [1])), w.write(part(bad, [1], 'dev-\ud800')), w.write(part(good2, [1]))]);
    expect(results).toEqual([{ ok: true }, { ok: false, error: expect.stringMatching(/no D1 key/) }, { ok: true }]);
    // A cache at its limit starts again before it looks for missing ids, so a batch never loses keys it needs.
    const keys = new KeyCache(2);
    const [a, b] = [newChannel(), newChannel()];
    const three: WritePart = { channel: a, publishers: ['p-1', 'p-2', 'p-3'], messages: [row(1), row(2), row(3)], messagePublishers: [0, 1, 2], records: [], recordPublishers: [] };
    await writeParts(env.DB, [three], keys);
    expect(keys.publishers.size).toBe(3);
    await writeParts(env.DB, [part(a, [4], 'p-1'), part(b, [1], 'p-4')], keys);
    expect([...keys.publishers.keys()].sort()).toEqual(['p-1', 'p-4']);
    expect((await rows(a)).map((x) => x.publisher)).toEqual(['p-1', 'p-2', 'p-3', 'p-1']);
    expect((await rows(b)).map((x) => x.publisher)).toEqual(['p-4']);
  });

  it('writes each row under its own publisher and its part\'s channel', async () => {
    const w = freshWriter();
    const [a, b] = [newChannel(), newChannel()];
    const [p1, p2, p3] = ['dev-1', `dev-${crypto.randomUUID()}`, 'dev-"quoted"'];
    const records = (seq: number) => JSON.stringify([seq, 'room', 1_700_000_000_000 + seq, [{ i: 0, n: 'temp', t: 1_700_000_000 + seq, v: seq }]]).slice(1);
    const pa: WritePart = { channel: a, publishers: [p1, p2], messages: [row(1), row(2), row(3)], messagePublishers: [1, 0, 1], records: [records(1), records(3)], recordPublishers: [1, 1] };
    const pb: WritePart = { channel: b, publishers: [p3, p1], messages: [row(1), row(2)], messagePublishers: [0, 1], records: [records(2)], recordPublishers: [1] };
    expect(await Promise.all([w.write(pa), w.write(pb)])).toEqual([{ ok: true }, { ok: true }]);
    expect((await rows(a)).map((x) => [x.seq, x.publisher])).toEqual([[1, p2], [2, p1], [3, p2]]);
    expect((await rows(b)).map((x) => [x.seq, x.publisher])).toEqual([[1, p3], [2, p1]]);
    const recs = await env.DB.prepare('SELECT channel_id, seq, publisher, subtopic, name, value FROM senml_records WHERE channel_id IN (?, ?) ORDER BY channel_id = ? DESC, seq').bind(a, b, a).all();
    expect(recs.results).toEqual([
      { channel_id: a, seq: 1, publisher: p2, subtopic: 'room', name: 'temp', value: 1 },
      { channel_id: a, seq: 3, publisher: p2, subtopic: 'room', name: 'temp', value: 3 },
      { channel_id: b, seq: 2, publisher: p1, subtopic: 'room', name: 'temp', value: 2 },
    ]);
  });

  it("fails only the part whose rows D1 refuses: the others' rows land", async () => {
    const w = freshWriter();
    const [good1, bad, good2] = [newChannel(), newChannel(), newChannel()];
    // A row that is not JSON makes json_each fail, and with it the shared batch.
    const broken: WritePart = { channel: bad, publishers: ['dev'], messages: [row(1), '{not json'], messagePublishers: [0, 0], records: [], recordPublishers: [] };
    const results = await Promise.all([w.write(part(good1, [1])), w.write(broken), w.write(part(good2, [1, 2]))]);
    expect(results).toEqual([{ ok: true }, { ok: false, error: expect.stringMatching(/malformed JSON/) }, { ok: true }]);
    expect(await w.stats()).toMatchObject({ parts: 2, failed: 1 });
    expect(await rows(good1)).toHaveLength(1);
    expect(await rows(good2)).toHaveLength(2);
    expect(await rows(bad)).toEqual([]);
  });

  it("carries a channel's drains: its writer by hash, the same one every time", async () => {
    const ch = newChannel();
    expect(writerFor(env, ch).id.toString()).toBe(writerFor(env, ch).id.toString());
    const before = await writerFor(env, ch).stats();
    await actor(ch).publish([msg({ payload: text('via the writer') })], ch);
    expect(await runDurableObjectAlarm(actor(ch))).toBe(true);
    expect((await rows(ch)).map((r) => r.payload)).toEqual(['via the writer']);
    // (Other test files' drains may pass through the same writer meanwhile: at least this one did.)
    expect((await writerFor(env, ch).stats()).parts).toBeGreaterThanOrEqual(before.parts + 1);
    // Channels spread over the STORE_WRITERS writers.
    const ids = new Set(Array.from({ length: 64 }, () => writerFor(env, newChannel()).id.toString()));
    expect(ids.size).toBe(Number(env.STORE_WRITERS));
  });

  it('splits a big drain into parts, a message and its records always together, and stores them all', async () => {
    const ch = newChannel();
    const senml = (i: number) => text(JSON.stringify(Array.from({ length: 20 }, (_, k) => ({ n: `s${i}.${k}`, v: k, t: 1_700_000_000 + k }))));
    const res = await actor(ch).publish(Array.from({ length: 12 }, (_, i) => msg({ contentType: 'application/senml+json', payload: senml(i) })), ch);
    expect(res.every((x) => x.ok)).toBe(true);
    await runInDurableObject(actor(ch), (instance: ChannelActor) => {
      const batch = (instance as unknown as { core: ChannelCore }).core.store.outboxBatch(100, 1 << 30);
      const { parts } = partsOf(ch, batch, 4000);
      expect(parts.length).toBeGreaterThan(3);
      for (const p of parts) {
        expect(p.messages.length).toBeGreaterThan(0);
        // Each records row names a seq whose message row is in the same part.
        const seqs = new Set(p.messages.map((m) => (JSON.parse(`[${m}`) as unknown[])[0]));
        for (const r of p.records) expect(seqs.has((JSON.parse(`[${r}`) as unknown[])[0])).toBe(true);
      }
      expect(parts.flatMap((p) => p.messages)).toHaveLength(12);
      expect(parts.flatMap((p) => p.records)).toHaveLength(12);
    });
    expect(await runDurableObjectAlarm(actor(ch))).toBe(true);
    expect(await rows(ch)).toHaveLength(12);
    const n = await env.DB.prepare('SELECT COUNT(*) AS n FROM senml_records WHERE channel_id = ?').bind(ch).first<{ n: number }>();
    expect(n?.n).toBe(240);
  });

  it('retries part by part only when SQLite refused the rows, not when D1 itself failed', () => {
    expect(isDataError(new Error('D1_ERROR: no such table: messages: SQLITE_ERROR'))).toBe(true);
    expect(isDataError(new Error('D1_ERROR: malformed JSON: SQLITE_ERROR'))).toBe(true);
    expect(isDataError(new Error('D1_ERROR: Network connection lost.'))).toBe(false);
    expect(isDataError(new Error('D1 batch not answered in 30000 ms'))).toBe(false);
  });
});
