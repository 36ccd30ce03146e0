import { createExecutionContext, createScheduledController, evictDurableObject, runInDurableObject, waitOnExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { api, newOrg, newUser, worker as self } from '../../test/workers/helpers';
import worker from '../../workers/index';
import { channelPurger } from '../../workers/lib/actors';
import { writeParts } from '../writer';
import { PURGE_CHUNK } from '.';
import { purgePass, STAGE_ROWS } from './purge';

/** A stored message with one SenML record per channel, as the store writer writes them, and a blob each. */
async function store(channels: readonly string[]): Promise<void> {
  const message = JSON.stringify([1, '', 'http', 'application/senml+json', 1, 15, '[{"n":"t","v":1}]', null, 0]).slice(1);
  const blob = JSON.stringify([2, '', 'http', 'application/octet-stream', 2, 9000, null, 'k', 0]).slice(1);
  const records = JSON.stringify([1, '', 1, [{ i: 0, n: 't', t: 1, v: 1 }]]).slice(1);
  await writeParts(
    env.DB,
    channels.map((channel) => ({ channel, publishers: ['dev'], messages: [message, blob], messagePublishers: [0, 0], records: [records], recordPublishers: [0] })),
  );
  await Promise.all(channels.map((ch) => env.BLOBS.put(`channels/${ch}/0000000000000002`, new Uint8Array([1, 2]))));
}

const json = (ids: readonly string[]) => JSON.stringify(ids);
const keysOf = 'SELECT key FROM channel_keys WHERE channel_id IN (SELECT value FROM json_each(?1))';
const rows = async (ids: readonly string[]) =>
  Number(await env.DB.prepare(`SELECT (SELECT COUNT(*) FROM message_rows WHERE ch IN (${keysOf})) + (SELECT COUNT(*) FROM senml_rows WHERE ch IN (${keysOf})) AS n`).bind(json(ids)).first('n'));
const blobs = async (ids: readonly string[]) => (await Promise.all(ids.map((ch) => env.BLOBS.list({ prefix: `channels/${ch}/` })))).reduce((n, l) => n + l.objects.length, 0);
const pending = (org: string) => env.DB.prepare('SELECT channel_id, stage, attempts, due_at, error FROM channel_purges WHERE org_id = ? ORDER BY channel_id').bind(org).all<{ channel_id: string; stage: number; attempts: number; due_at: number; error: string | null }>();
const gone = async (ids: readonly string[]) => (await rows(ids)) === 0 && (await blobs(ids)) === 0;

async function until(ok: () => Promise<boolean>, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    if (await ok()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return ok();
}

async function orgWith(n: number) {
  const owner = await newUser();
  const org = await newOrg(owner.token);
  const ids: string[] = [];
  for (let i = 0; i < n; i += 100) {
    const channels = Array.from({ length: Math.min(100, n - i) }, (_, k) => ({ name: `c${i + k}` }));
    const made = await api('POST', `/orgs/${org.id}/channels/bulk`, { token: owner.token, body: { channels } });
    expect(made.status).toBe(201);
    ids.push(...(made.body.items as { id: string }[]).map((c) => c.id));
  }
  await store(ids);
  expect(await rows(ids)).toBe(3 * n);
  expect(await blobs(ids)).toBe(n);
  return { token: owner.token, org: org.id, ids };
}

/**
 * A real D1 failure: a trigger makes every delete of this channel's message rows abort, as a D1
 * error mid-purge would (the other channels of the chunk are purged all the same).
 */
async function blockPurgeOf(channel: string): Promise<() => Promise<void>> {
  const key = Number(await env.DB.prepare('SELECT key FROM channel_keys WHERE channel_id = ?').bind(channel).first('key'));
  const name = `purge_blocked_${key}`;
  await env.DB.prepare(`CREATE TRIGGER ${name} BEFORE DELETE ON message_rows WHEN OLD.ch = ${key} BEGIN SELECT RAISE(ABORT, 'purge blocked by the test'); END`).run();
  return async () => void (await env.DB.prepare(`DROP TRIGGER IF EXISTS ${name}`).run());
}

describe('channel purges', () => {
  it('a purge that fails on a real D1 error is retried with back-off, survives the purger being evicted, and completes once D1 lets it', async () => {
    const { token, org, ids } = await orgWith(3);
    const [a, blocked, c] = ids as [string, string, string];
    const unblock = await blockPurgeOf(blocked);
    try {
      // The answer does not wait for the purge (which cannot finish now).
      expect((await api('DELETE', `/orgs/${org}`, { token })).status).toBe(204);
      expect(await until(() => gone([a, c]))).toBe(true);
      // The blocked channel's purge failed, is recorded at the step it failed at, and is tried again, later each time.
      const due = new Map<number, number>(); // attempts → when the next try is due
      expect(
        await until(async () => {
          const [row, ...more] = (await pending(org)).results;
          if (!row || more.length > 0 || row.attempts === 0) return false;
          due.set(row.attempts, row.due_at);
          return row.attempts >= 3 && due.size >= 2;
        }),
      ).toBe(true);
      const [row] = (await pending(org)).results;
      expect(row).toMatchObject({ channel_id: blocked, stage: 1 });
      expect(row!.error).toContain('purge blocked by the test');
      // Back-off: the k-th failure happens no sooner than the try it failed was due, and sets the next
      // one 50 × 2^(k-1) ms after it (PURGE_RETRY_MS, vitest.config.ts), so due times seen after
      // attempts a < b are at least the delays in between apart.
      const seen = [...due].sort(([x], [y]) => x - y);
      for (let i = 1; i < seen.length; i++) {
        const [x, atX] = seen[i - 1]!;
        const [y, atY] = seen[i]!;
        let min = 0;
        for (let k = x + 1; k <= y; k++) min += 50 * 2 ** (k - 1);
        expect(atY - atX).toBeGreaterThanOrEqual(min);
      }
      expect(await rows([blocked])).toBe(3);
      // The purger loses its memory; its alarm (durable) and D1's list keep the work.
      await evictDurableObject(channelPurger(env));
    } finally {
      await unblock();
    }
    expect(await until(() => gone(ids))).toBe(true);
    expect(await until(async () => (await pending(org)).results.length === 0)).toBe(true);
  });

  it('an org with more channels than a chunk is purged completely: no message rows, SenML rows or blobs left', async () => {
    const n = 2 * PURGE_CHUNK + 20;
    const { token, org, ids } = await orgWith(n);
    expect((await api('DELETE', `/orgs/${org}`, { token })).status).toBe(204);
    expect(await until(() => gone(ids), 30_000)).toBe(true);
    expect(await until(async () => (await pending(org)).results.length === 0)).toBe(true);
    // Every actor retired: a late publish through one (a bridge link) is refused.
    const [late] = await env.CHANNELS.get(env.CHANNELS.idFromName(ids.at(-1)!)).publish([{ subtopic: '', publisher: 'p', protocol: 'mqtt', contentType: 'text/plain', payload: new Uint8Array([1]), retain: false }], ids.at(-1)!);
    expect(late).toMatchObject({ ok: false, status: 404 });
  });
});

describe('the cron trigger', () => {
  it('starts a purge recorded while the purger was not told (the worker died between the delete and the kick)', async () => {
    const { org, ids } = await orgWith(1);
    // No purge waits from earlier tests, so the purger has no alarm set.
    expect(await until(async () => (await env.DB.prepare('SELECT COUNT(*) AS n FROM channel_purges').first('n')) === 0)).toBe(true);
    expect(await runInDurableObject(channelPurger(env), (_, state) => state.storage.getAlarm())).toBeNull();
    // What DELETE /orgs/{org} commits, without the kick that follows it: nothing purges it.
    await env.DB.batch([
      env.DB.prepare("INSERT INTO channel_purges (channel_id, org_id, due_at, created_at) SELECT id, org_id, 0, 0 FROM channels WHERE org_id = ?").bind(org),
      env.DB.prepare('DELETE FROM orgs WHERE id = ?').bind(org),
    ]);
    await new Promise((r) => setTimeout(r, 300));
    expect(await rows(ids)).toBe(3);
    const ctx = createExecutionContext();
    await worker.scheduled!(createScheduledController({ cron: '*/5 * * * *' }), env, ctx);
    await waitOnExecutionContext(ctx);
    expect(await until(() => gone(ids))).toBe(true);
    expect(await until(async () => (await pending(org)).results.length === 0)).toBe(true);
  });
});

describe('a channel deleted while its drain writes blobs', () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const channelActor = (ch: string) => env.CHANNELS.get(env.CHANNELS.idFromName(ch));
  /** The actor's R2 as on a bad day (a fault R2 cannot be made to show locally): `put` as given, the rest real. */
  const withPut = (ch: string, put: (real: R2Bucket, key: string, value: Uint8Array, opts: R2PutOptions) => Promise<unknown>) =>
    runInDurableObject(channelActor(ch), (instance: unknown) => {
      const core = (instance as { core: { env: Env } }).core;
      const real = core.env.BLOBS;
      const bucket = { list: real.list.bind(real), delete: real.delete.bind(real), get: real.get.bind(real), head: real.head.bind(real), put: (k: string, v: Uint8Array, o: R2PutOptions) => put(real, k, v, o) };
      core.env = { ...core.env, BLOBS: bucket as unknown as R2Bucket };
    });
  const oneChannel = async () => {
    const u = await newUser();
    const org = (await newOrg(u.token)).id;
    const [ch] = (await api('POST', `/orgs/${org}/channels/bulk`, { token: u.token, body: { channels: [{ name: 'a' }] } })).body.items as { id: string }[];
    return { token: u.token, org, ch: ch!.id };
  };
  const binary = (n: number) => Array.from({ length: n }, () => ({ subtopic: '', publisher: 'p', protocol: 'mqtt' as const, contentType: 'application/octet-stream', payload: new Uint8Array(1000).fill(7) }));

  it('leaves no blob behind when one put fails while the others are still under way', async () => {
    const { token, org, ch } = await oneChannel();
    let puts = 0;
    await withPut(ch, async (real, k, v, o) => {
      if (puts++ === 0) throw new Error('R2 put: 500 internal error (injected)');
      await sleep(800);
      return real.put(k, v, o);
    });
    expect((await channelActor(ch).publish(binary(4), ch)).every((r) => r.ok)).toBe(true);
    await sleep(1150); // the drain (drainDelayMs 1 s) has started its puts; the first failed
    expect((await api('DELETE', `/orgs/${org}/channels/${ch}`, { token })).status).toBe(204);
    expect(await until(async () => (await pending(org)).results.length === 0)).toBe(true);
    await sleep(1200); // any put still under way has ended
    expect(await blobs([ch])).toBe(0);
  }, 30_000);

  it('a DELETE given up by its client while the actor retires still has its purge carried out', async () => {
    const { token, org, ch } = await oneChannel();
    await withPut(ch, async (real, k, v, o) => (await sleep(3000), real.put(k, v, o)));
    expect((await channelActor(ch).publish(binary(1), ch))[0]?.ok).toBe(true);
    await sleep(1100); // its drain is under way (a slow put): retire waits for it
    const gaveUp = new AbortController();
    // worker.fetch, not checkedFetch: the client gives up before any answer, so there is none to hold to docs/openapi.json.
    const del = self.fetch(`http://edgeflux.test/orgs/${org}/channels/${ch}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` }, signal: gaveUp.signal }).catch((e: unknown) => e);
    await sleep(300);
    gaveUp.abort();
    await del;
    expect(await until(async () => (await pending(org)).results.length === 0 && (await blobs([ch])) === 0)).toBe(true);
  }, 30_000);
});

describe('a channel with more rows than a pass has time for', () => {
  it('goes on in the next pass, due at once and not counted as a failure; then nothing is left', async () => {
    const { org, ids } = await orgWith(1);
    const [ch] = ids as [string];
    // 12,000 more message rows: more than two of the purge's 5,000-row steps.
    const rowsOf = (from: number) => Array.from({ length: 3000 }, (_, i) => JSON.stringify([from + i, '', 'http', 'text/plain', 1, 1, 'x', null, 0]).slice(1));
    for (let from = 10; from < 12_010; from += 3000) await writeParts(env.DB, [{ channel: ch, publishers: ['dev'], messages: rowsOf(from), messagePublishers: rowsOf(from).map(() => 0), records: [], recordPublishers: [] }]);
    expect(await rows([ch])).toBe(12_003);
    // Recorded as a delete does, without the kick, so that only the passes below run.
    await env.DB.batch([env.DB.prepare('INSERT INTO channel_purges (channel_id, org_id, due_at, created_at) VALUES (?, ?, 0, 0)').bind(ch, org)]);
    expect((await pending(org)).results).toHaveLength(1);
    // A pass whose time is up before it starts still takes its first step: rows are left, and the
    // purge is due again at once, no failure counted.
    const next = await purgePass(env, 1, Date.now() - 1);
    const [row] = (await pending(org)).results;
    expect(row).toMatchObject({ channel_id: ch, stage: STAGE_ROWS, attempts: 0, error: null });
    expect(await rows([ch])).toBeGreaterThan(0);
    expect(next).not.toBeNull();
    expect(next! - Date.now()).toBeLessThan(1000);
    expect(await purgePass(env, 4, Date.now() + 10_000)).toBeNull();
    expect(await gone([ch])).toBe(true);
    expect((await pending(org)).results).toEqual([]);
  }, 60_000);
});
