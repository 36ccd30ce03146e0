import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { encodeSenmlCbor } from '../../shared/senml';
import type { ChannelCore } from './core';
import { DRAIN_BACKSTOP_MS, DRAIN_EARLY_GAP_MS, DRAIN_EARLY_ROWS } from './config';
import { isTextualType, utf8Text } from '../../shared/envelope';
import { backoffMs, blobKey, INLINE_TEXT_MAX, partsOf, writeBatch, type MessageTail } from './drain';
import { RETENTION_JITTER, RETENTION_SWEEP_MS, type SweepResult } from './retention';
import type { ChannelMessage } from './types';
import { signToken } from '../../workers/auth/tokens';
import { api, newOrg, newUser, checkedFetch } from '../../test/workers/helpers';
import type { ChannelActor } from './index';
import { actor, msg, newChannel, storedRows as rows, text } from './test-helpers';

// Everything that touches D1's messages tables lives in this one file, so the fault test below
// (which renames a table) never races another file's drain.

const alarmOf = (ch: string) => runInDurableObject(actor(ch), (_i: ChannelActor, state) => state.storage.getAlarm());
/** When the actor's drain timer fires (ms), or null when no drain is scheduled. */
const timerOf = (ch: string) => runInDurableObject(actor(ch), (instance: ChannelActor) => (instance as unknown as { core: ChannelCore }).core.drainTimerDue());

/**
 * Waits until the outbox is empty: drains due now run by themselves; one set for later (fewer
 * rows than a slice wait `drainDelayMs`) is run here.
 */
async function outboxEmpty(ch: string, ms: number, runLaterAlarm = true): Promise<void> {
  const until = Date.now() + ms;
  while ((await actor(ch).info()).outbox > 0) {
    if (Date.now() > until) throw new Error(`outbox of ${ch} not empty after ${ms} ms`);
    const at = await alarmOf(ch);
    if (runLaterAlarm && at !== null && at > Date.now() + 1000) await runDurableObjectAlarm(actor(ch));
    else await new Promise((r) => setTimeout(r, 10));
  }
}

describe('channel actor: outbox drain to D1 and R2', () => {
  it('drains accepted messages to D1 on the alarm, then leaves no alarm behind', async () => {
    const ch = newChannel();
    const results = await actor(ch).publish(
      [msg({ subtopic: 'a', payload: text('one'), publisher: 'dev-1', protocol: 'mqtt' }), msg({ payload: text('{"x":1}'), contentType: 'application/json', retain: true })],
      ch,
    );
    expect(await alarmOf(ch)).not.toBeNull();
    expect(await rows(ch)).toEqual([]);
    expect(await runDurableObjectAlarm(actor(ch))).toBe(true);
    const stored = await rows(ch);
    expect(stored).toEqual([
      { channel_id: ch, seq: 1, subtopic: 'a', publisher: 'dev-1', protocol: 'mqtt', content_type: 'text/plain', created: results[0]?.ok && results[0].created, size: 3, payload: 'one', blob_key: null, retained: 0 },
      { channel_id: ch, seq: 2, subtopic: '', publisher: 'dev-1', protocol: 'http', content_type: 'application/json', created: results[1]?.ok && results[1].created, size: 7, payload: '{"x":1}', blob_key: null, retained: 1 },
    ]);
    expect((await actor(ch).info()).outbox).toBe(0);
    expect(await alarmOf(ch)).toBeNull();
    // Queryable the way the query API will: by time range on the (channel_id, created) index.
    const since = await env.DB.prepare('SELECT COUNT(*) AS n FROM messages WHERE channel_id = ? AND created >= ?').bind(ch, 0).first<{ n: number }>();
    expect(since?.n).toBe(2);
  });

  it('stores binary and large payloads in R2 and points the row at the key', async () => {
    const ch = newChannel();
    const bin = new Uint8Array(Array.from({ length: 3000 }, (_, i) => (i * 7) % 256));
    const big = text('x'.repeat(70 * 1024));
    await actor(ch).publish([msg({ contentType: 'application/octet-stream', payload: bin, subtopic: 'img' }), msg({ payload: big }), msg({ contentType: 'text/plain', payload: new Uint8Array([0xff, 0xfe]) })], ch);
    await runDurableObjectAlarm(actor(ch));
    const stored = await rows(ch);
    expect(stored.map((r) => [r.seq, r.payload, r.blob_key, r.size])).toEqual([
      [1, null, blobKey(ch, 1), 3000],
      [2, null, blobKey(ch, 2), 70 * 1024],
      [3, null, blobKey(ch, 3), 2],
    ]);
    expect(blobKey(ch, 1)).toBe(`channels/${ch}/0000000000000001`);
    const obj = await env.BLOBS.get(blobKey(ch, 1));
    expect(obj?.httpMetadata?.contentType).toBe('application/octet-stream');
    expect(obj?.customMetadata).toMatchObject({ channel: ch, seq: '1', subtopic: 'img' });
    expect(new Uint8Array(await obj!.arrayBuffer())).toEqual(bin);
    expect((await (await env.BLOBS.get(blobKey(ch, 2)))!.text()).length).toBe(70 * 1024);
  });

  it('writes resolved SenML records (JSON and CBOR) to senml_records', async () => {
    const ch = newChannel();
    const r = await actor(ch).publish(
      [
        msg({ subtopic: 'room/1', contentType: 'application/senml+json', payload: text('[{"bn":"urn:dev:1:","bt":1700000000,"n":"temp","u":"Cel","v":21.5},{"n":"on","t":10,"vb":true},{"n":"label","vs":"hi"}]') }),
        msg({ contentType: 'application/senml+cbor', payload: encodeSenmlCbor([{ name: 'urn:dev:2:hum', time: 1_700_000_100, unit: '%RH', value: 40 }]), publisher: 'dev-2' }),
      ],
      ch,
    );
    expect(r.every((x) => x.ok)).toBe(true);
    await runDurableObjectAlarm(actor(ch));
    const recs = (
      await env.DB.prepare('SELECT seq, idx, subtopic, publisher, created, name, time, unit, value, string_value, bool_value FROM senml_records WHERE channel_id = ? ORDER BY seq, idx').bind(ch).all()
    ).results;
    const created = r.map((x) => (x.ok ? x.created : 0));
    // Every record carries its message's subtopic, publisher and created (the writer's positional columns).
    expect(recs.map(({ seq, subtopic, publisher, created: c }) => [seq, subtopic, publisher, c])).toEqual([
      [1, 'room/1', 'dev-1', created[0]],
      [1, 'room/1', 'dev-1', created[0]],
      [1, 'room/1', 'dev-1', created[0]],
      [2, '', 'dev-2', created[1]],
    ]);
    expect(recs.map(({ subtopic: _s, created: _c, ...rest }) => rest)).toEqual([
      { seq: 1, idx: 0, publisher: 'dev-1', name: 'urn:dev:1:temp', time: 1_700_000_000, unit: 'Cel', value: 21.5, string_value: null, bool_value: null },
      // Resolved records come in time order (RFC 8428 §4.6), so "on" (t+10) is last.
      { seq: 1, idx: 1, publisher: 'dev-1', name: 'urn:dev:1:label', time: 1_700_000_000, unit: null, value: null, string_value: 'hi', bool_value: null },
      { seq: 1, idx: 2, publisher: 'dev-1', name: 'urn:dev:1:on', time: 1_700_000_010, unit: null, value: null, string_value: null, bool_value: 1 },
      { seq: 2, idx: 0, publisher: 'dev-2', name: 'urn:dev:2:hum', time: 1_700_000_100, unit: '%RH', value: 40, string_value: null, bool_value: null },
    ]);
    // The CBOR pack itself is binary: in R2.
    expect((await rows(ch)).map((x) => x.blob_key === null)).toEqual([true, false]);
    // Every other record column, and text that JSON must escape, comes through the writer's JSON parameter unchanged.
    const tricky = 'q"\\ \n\t é ✓ 🌡 \u0001';
    const payload = JSON.stringify([{ bn: 'urn:dev:3:', n: 'x', vd: 'AQID_w', s: 12.25, ut: 60, t: 1_700_000_200 }, { n: 'y', vs: tricky, t: 1_700_000_201 }, { n: 'z', v: -0.000001, t: 1_700_000_202 }]);
    const r2 = await actor(ch).publish([msg({ subtopic: 'a/"b"/é', contentType: 'application/senml+json', payload: text(payload), publisher: tricky })], ch);
    expect(r2).toMatchObject([{ ok: true }]);
    await runDurableObjectAlarm(actor(ch));
    const more = (await env.DB.prepare('SELECT idx, subtopic, publisher, name, time, value, string_value, data_value, sum, update_time FROM senml_records WHERE channel_id = ? AND seq = 3 ORDER BY idx').bind(ch).all()).results;
    expect(more).toEqual([
      { idx: 0, subtopic: 'a/"b"/é', publisher: tricky, name: 'urn:dev:3:x', time: 1_700_000_200, value: null, string_value: null, data_value: 'AQID_w', sum: 12.25, update_time: 60 },
      { idx: 1, subtopic: 'a/"b"/é', publisher: tricky, name: 'urn:dev:3:y', time: 1_700_000_201, value: null, string_value: tricky, data_value: null, sum: null, update_time: null },
      { idx: 2, subtopic: 'a/"b"/é', publisher: tricky, name: 'urn:dev:3:z', time: 1_700_000_202, value: -0.000001, string_value: null, data_value: null, sum: null, update_time: null },
    ]);
    const row = await env.DB.prepare('SELECT subtopic, publisher, payload, size FROM messages WHERE channel_id = ? AND seq = 3').bind(ch).first();
    expect(row).toEqual({ subtopic: 'a/"b"/é', publisher: tricky, payload, size: new TextEncoder().encode(payload).length });
    // The name/time index serves "this sensor between t1 and t2".
    const plan = await env.DB.prepare('EXPLAIN QUERY PLAN SELECT value FROM senml_rows WHERE ch = (SELECT key FROM channel_keys WHERE channel_id = ?) AND name = ? AND time BETWEEN ? AND ?').bind(ch, 'x', 0, 1).all<{ detail: string }>();
    expect(plan.results.map((p) => p.detail).join(' ')).toMatch(/senml_channel_name_time/);
  });

  it('survives a real D1 failure: rows stay in the outbox, the alarm retries with back-off, every row lands exactly once', async () => {
    const ch = newChannel();
    await actor(ch).publish(Array.from({ length: 5 }, (_, i) => msg({ payload: text(`m${i}`) })), ch);
    await env.DB.exec('ALTER TABLE message_rows RENAME TO message_rows_offline');
    try {
      expect(await runDurableObjectAlarm(actor(ch))).toBe(true);
    } finally {
      await env.DB.exec('ALTER TABLE message_rows_offline RENAME TO message_rows');
    }
    const failed = await actor(ch).info();
    expect(failed.outbox).toBe(5);
    expect(failed.drainAttempts).toBe(1);
    expect(failed.lastDrainError).toMatch(/no such table: message_rows/);
    const retryAt = await alarmOf(ch);
    expect(retryAt).not.toBeNull();
    expect(retryAt! - Date.now()).toBeGreaterThan(300); // back-off, not an immediate hammer

    // Meanwhile more traffic arrives; the drain picks it all up once D1 is back, when the back-off ends.
    await actor(ch).publish([msg({ payload: text('m5') })], ch);
    // The alarm at the back-off's end, fired by the runtime (an alarm run before it would not drain).
    expect(retryAt! - Date.now()).toBeLessThan(1500);
    await outboxEmpty(ch, 5000, false);
    const stored = await rows(ch);
    expect(stored.map((r) => [r.seq, r.payload])).toEqual(Array.from({ length: 6 }, (_, i) => [i + 1, `m${i}`]));
    const ok = await actor(ch).info();
    expect(ok).toMatchObject({ outbox: 0, drainAttempts: 0, lastDrainError: null });
    expect(await alarmOf(ch)).toBeNull();
  });

  it('a timer drain that fails backs off on the alarm: no timer retries, later publishes wait for it', async () => {
    const ch = newChannel();
    await actor(ch).configure(ch, { drainDelayMs: 20 });
    let retryAt = 0;
    await env.DB.exec('ALTER TABLE message_rows RENAME TO message_rows_offline');
    try {
      await actor(ch).publish([msg({ payload: text('a') })], ch);
      const until = Date.now() + 5000;
      while ((await actor(ch).info()).drainAttempts === 0) {
        if (Date.now() > until) throw new Error('the timer drain never ran');
        await new Promise((r) => setTimeout(r, 10));
      }
      await actor(ch).publish([msg({ payload: text('b') })], ch);
      // Backing off: the alarm holds the retry (≥ 0.5 s away), and no timer runs sooner.
      expect(await timerOf(ch)).toBeNull();
      retryAt = (await alarmOf(ch))!;
      expect(retryAt - Date.now()).toBeGreaterThan(300);
      expect((await actor(ch).info()).drainAttempts).toBe(1);
    } finally {
      await env.DB.exec('ALTER TABLE message_rows_offline RENAME TO message_rows');
    }
    // The alarm at the back-off's end, fired by the runtime (an alarm run before it would not drain).
    expect(retryAt - Date.now()).toBeLessThan(1500);
    await outboxEmpty(ch, 5000, false);
    expect((await rows(ch)).map((r) => r.payload)).toEqual(['a', 'b']);
    expect(await actor(ch).info()).toMatchObject({ outbox: 0, drainAttempts: 0, lastDrainError: null });
  });

  it('a back-off alarm set later than a subscriber credential expiry does not keep the socket open past that expiry', async () => {
    const u = await newUser();
    const org = (await newOrg(u.token)).id;
    const ch = (await api('POST', `/orgs/${org}/channels`, { token: u.token, body: { name: 'backoff' } })).body.id as string;
    const token = await signToken(env, { typ: 'user', sub: u.id }, 60);
    const exp = (JSON.parse(atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))) as { exp: number }).exp * 1000;
    const res = await checkedFetch(`http://edgeflux.test/channels/${ch}/messages`, { headers: { upgrade: 'websocket', authorization: `Bearer ${token}` } });
    expect(res.status).toBe(101);
    res.webSocket!.accept();
    // The subscriber's expiry set the alarm.
    expect(await alarmOf(ch)).toBe(exp);
    await actor(ch).configure(ch, { drainDelayMs: 20 });
    // Many failures already: the next backs off for minutes, past the expiry.
    await runInDurableObject(actor(ch), (instance: ChannelActor) => (instance as unknown as { core: ChannelCore }).core.store.setMeta('drain_attempts', 10));
    await env.DB.exec('ALTER TABLE message_rows RENAME TO message_rows_offline');
    try {
      // A timer's drain fails (the alarm's handler would set the expiry's alarm again by itself).
      await actor(ch).publish([msg({ payload: text('a') })], ch);
      const until = Date.now() + 5000;
      while ((await actor(ch).info()).drainAttempts === 10) {
        if (Date.now() > until) throw new Error('the timer drain never ran');
        await new Promise((r) => setTimeout(r, 10));
      }
    } finally {
      await env.DB.exec('ALTER TABLE message_rows_offline RENAME TO message_rows');
    }
    expect((await actor(ch).info()).drainAttempts).toBe(11);
    expect(await alarmOf(ch)).toBe(exp);
    res.webSocket!.close(1000, 'bye');
    // The expiry's alarm closes the socket and leaves the drain to the back-off's end (brought forward here).
    await runInDurableObject(actor(ch), (instance: ChannelActor) => void ((instance as unknown as { core: ChannelCore }).core.backoffUntil = Date.now()));
    expect(await runDurableObjectAlarm(actor(ch))).toBe(true);
    expect((await rows(ch)).map((r) => r.payload)).toEqual(['a']);
  });

  it('subscriber expiries during a back-off close their sockets but add no drain attempt; the alarm stays at the back-off, also after eviction', async () => {
    const u = await newUser();
    const org = (await newOrg(u.token)).id;
    const ch = (await api('POST', `/orgs/${org}/channels`, { token: u.token, body: { name: 'expiries' } })).body.id as string;
    const coreOf = (i: ChannelActor) => (i as unknown as { core: ChannelCore }).core;
    await actor(ch).configure(ch, { drainDelayMs: 20 });
    // Many failures already: the next backs off for minutes.
    await runInDurableObject(actor(ch), (i: ChannelActor) => coreOf(i).store.setMeta('drain_attempts', 10));
    const closed: number[] = [];
    await env.DB.exec('ALTER TABLE message_rows RENAME TO message_rows_offline');
    let backoffUntil: number;
    try {
      await actor(ch).publish([msg({ payload: text('a') })], ch);
      const until = Date.now() + 5000;
      while ((await actor(ch).info()).drainAttempts === 10) {
        if (Date.now() > until) throw new Error('the timer drain never ran');
        await new Promise((r) => setTimeout(r, 10));
      }
      backoffUntil = await runInDurableObject(actor(ch), (i: ChannelActor) => coreOf(i).backoffUntil);
      expect(backoffUntil - Date.now()).toBeGreaterThan(60_000);
      // Three subscribers whose tokens run out one after another, each expiry an alarm.
      for (const ttl of [1, 2, 3]) {
        const token = await signToken(env, { typ: 'user', sub: u.id }, ttl);
        const res = await checkedFetch(`http://edgeflux.test/channels/${ch}/messages`, { headers: { upgrade: 'websocket', authorization: `Bearer ${token}` } });
        expect(res.status).toBe(101);
        res.webSocket!.addEventListener('close', (e) => closed.push(e.code));
        res.webSocket!.accept();
      }
      const by = Date.now() + 8000;
      while (closed.length < 3) {
        if (Date.now() > by) throw new Error(`only ${closed.length} of 3 sockets closed at their expiry`);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(closed).toEqual([4401, 4401, 4401]);
      expect((await actor(ch).info()).drainAttempts).toBe(11);
      expect(await alarmOf(ch)).toBe(backoffUntil);
      // A new instance keeps backing off: a publish does not drain early, the alarm is where it was.
      await evictDurableObject(actor(ch));
      await actor(ch).publish([msg({ payload: text('b') })], ch);
      await new Promise((r) => setTimeout(r, 100));
      expect(await runInDurableObject(actor(ch), (i: ChannelActor) => coreOf(i).backoffUntil)).toBe(backoffUntil);
      expect((await actor(ch).info()).drainAttempts).toBe(11);
      expect(await alarmOf(ch)).toBe(backoffUntil);
    } finally {
      await env.DB.exec('ALTER TABLE message_rows_offline RENAME TO message_rows');
    }
    // The back-off's end (brought forward here) drains everything once.
    await runInDurableObject(actor(ch), (i: ChannelActor) => void (coreOf(i).backoffUntil = Date.now()));
    expect(await runDurableObjectAlarm(actor(ch))).toBe(true);
    await outboxEmpty(ch, 5000);
    expect((await rows(ch)).map((r) => r.payload)).toEqual(['a', 'b']);
    expect(await actor(ch).info()).toMatchObject({ outbox: 0, drainAttempts: 0, lastDrainError: null });
    expect(await runInDurableObject(actor(ch), (i: ChannelActor) => coreOf(i).store.meta('drain_backoff_until'))).toBeNull();
  }, 20_000);

  // The drain under way fails and backs off; the drain queued behind it (the other of a timer's and
  // an alarm's) starts within the back-off and must not write (a second attempt on the failing D1).
  for (const first of ['timer', 'alarm'] as const) {
    it(`a drain queued behind a failing ${first} drain heeds the back-off that drain sets (no second attempt on the failing D1)`, async () => {
      const ch = newChannel();
      const coreOf = (i: ChannelActor) => (i as unknown as { core: ChannelCore }).core;
      /** The drain under way and any queued behind it (core.ts, private). */
      const draining = (core: ChannelCore) => (core as unknown as { draining: Promise<void> | null }).draining;
      // No timer of the publish's own fires during the test.
      await actor(ch).configure(ch, { drainDelayMs: 60_000 });
      await actor(ch).publish([msg({ payload: text('a') })], ch);
      await env.DB.exec('ALTER TABLE message_rows RENAME TO message_rows_offline');
      let backoffUntil = 0;
      try {
        await runInDurableObject(actor(ch), async (i: ChannelActor) => {
          const core = coreOf(i);
          const attempts = () => Number(core.store.meta('drain_attempts') ?? 0);
          const timerFired = async () => {
            while (core.drainTimerDue() !== null) await new Promise((r) => setTimeout(r, 1));
          };
          // A timer due now: it fires on the next turn, its drain starting at once or queued.
          void core.scheduleDrain(Date.now());
          if (first === 'timer') {
            await timerFired();
            expect(attempts()).toBe(0); // the timer's drain is under way, not failed yet
            await i.alarm(); // the alarm's drain queues behind it
          } else {
            const alarm = i.alarm(); // the alarm's drain starts before the timer fires
            await timerFired();
            expect(attempts()).toBe(0); // the timer's drain queued behind the alarm's, not failed yet
            await alarm;
          }
          for (let d = draining(core); d !== null; d = draining(core)) await d;
          backoffUntil = core.backoffUntil;
          expect(backoffUntil).toBeGreaterThan(Date.now());
          expect(attempts()).toBe(1);
          expect(core.drainTimerDue()).toBeNull();
        });
        expect(await actor(ch).info()).toMatchObject({ outbox: 1, drainAttempts: 1 });
        expect(await alarmOf(ch)).toBe(backoffUntil);
      } finally {
        await env.DB.exec('ALTER TABLE message_rows_offline RENAME TO message_rows');
      }
      // The back-off's own alarm (its end brought forward here) still drains.
      await runInDurableObject(actor(ch), (i: ChannelActor) => void (coreOf(i).backoffUntil = Date.now()));
      expect(await runDurableObjectAlarm(actor(ch))).toBe(true);
      expect((await rows(ch)).map((r) => r.payload)).toEqual(['a']);
      expect(await actor(ch).info()).toMatchObject({ outbox: 0, drainAttempts: 0, lastDrainError: null });
    });
  }

  it('keeps the earliest of alarms asked for at once by a fresh instance (no stale read of the alarm hides one)', async () => {
    const ch = newChannel();
    await actor(ch).info();
    await evictDurableObject(actor(ch)); // the next instance does not know its alarm yet
    const at = Date.now() + 60_000;
    await runInDurableObject(actor(ch), async (instance: ChannelActor) => {
      const core = (instance as unknown as { core: ChannelCore }).core;
      await Promise.all([core.alarmNoLaterThan(at), core.alarmNoLaterThan(at + 30_000)]);
    });
    expect(await alarmOf(ch)).toBe(at);
    await runInDurableObject(actor(ch), (_i: ChannelActor, state) => state.storage.deleteAlarm());
  });

  it('stores each row once however often a batch is retried (crash between the D1 write and the outbox delete)', async () => {
    const ch = newChannel();
    await actor(ch).publish([msg({ payload: text('a') }), msg({ payload: new Uint8Array([1, 2]), contentType: 'application/octet-stream' })], ch);
    // Write the pending batch twice by hand, exactly as the drain would, without clearing the outbox…
    await runInDurableObject(actor(ch), async (instance: ChannelActor) => {
      const core = (instance as unknown as { core: ChannelCore }).core;
      const batch = core.store.outboxBatch(100, 1 << 30);
      expect(batch.length).toBe(2);
      await writeBatch(env, ch, batch);
      await writeBatch(env, ch, batch);
    });
    // …then let the real drain run over the same rows a third time.
    expect(await runDurableObjectAlarm(actor(ch))).toBe(true);
    const stored = await rows(ch);
    expect(stored.map((r) => [r.seq, r.payload, r.blob_key])).toEqual([
      [1, 'a', null],
      [2, null, blobKey(ch, 2)],
    ]);
    expect((await actor(ch).info()).outbox).toBe(0);
  });

  it('starts the drain at once when a slice of rows waits, and leaves fewer rows for drainDelayMs', async () => {
    const ch = newChannel();
    await actor(ch).configure(ch, { drainDelayMs: 60_000, publisherRate: { perSecond: 1000, burst: 1000 } });
    await actor(ch).publish(Array.from({ length: DRAIN_EARLY_ROWS - 1 }, (_, i) => msg({ payload: text(`m${i}`) })), ch);
    // Fewer than a slice: the drain waits drainDelayMs, so a trickle is written in one batch; the
    // alarm is the backstop behind the timer.
    const due = (await timerOf(ch))!;
    expect(due - Date.now()).toBeGreaterThan(30_000);
    expect(await alarmOf(ch)).toBe(due + DRAIN_BACKSTOP_MS);
    await actor(ch).publish([msg({ payload: text('last') })], ch);
    // A slice's worth: due now (no drain ran lately), not a minute later.
    await outboxEmpty(ch, 10_000, false);
    expect((await rows(ch)).length).toBe(DRAIN_EARLY_ROWS);
    expect(await timerOf(ch)).toBeNull();
    // Right after a drain, the next slice waits DRAIN_EARLY_GAP_MS at most — still not a minute.
    await actor(ch).publish(Array.from({ length: DRAIN_EARLY_ROWS }, (_, i) => msg({ payload: text(`n${i}`) })), ch);
    const at = await timerOf(ch);
    if (at !== null) expect(at - Date.now()).toBeLessThanOrEqual(DRAIN_EARLY_GAP_MS);
    await outboxEmpty(ch, 10_000, false);
    expect((await rows(ch)).length).toBe(2 * DRAIN_EARLY_ROWS);
  });

  it('drains a long outbox in slices: every row once, in seq order, publishes during the drain included', async () => {
    const ch = newChannel();
    const slice = 40;
    await actor(ch).configure(ch, { drainBatch: slice, drainDelayMs: 60_000, publisherRate: { perSecond: 10_000, burst: 10_000 } });
    const payloads: string[] = [];
    const publish = async (n: number) => {
      const batch = Array.from({ length: n }, (_, i) => `m${payloads.length + i}`);
      payloads.push(...batch);
      const r = await actor(ch).publish(batch.map((p) => msg({ payload: text(p) })), ch);
      expect(r.every((x) => x.ok)).toBe(true);
    };
    // Bursts while earlier slices drain; the last leftover (< a slice) waits for its alarm.
    for (const n of [250, 7, 60, 3, 130]) await publish(n);
    await outboxEmpty(ch, 20_000);
    const stored = await rows(ch);
    expect(stored.map((r) => [r.seq, r.payload])).toEqual(payloads.map((p, i) => [i + 1, p]));
    expect(await timerOf(ch)).toBeNull();
  });

  it('drains a quiet channel on its timer: no alarm written or fired per drain, only the one backstop', async () => {
    const ch = newChannel();
    await actor(ch).configure(ch, { drainDelayMs: 20 });
    await actor(ch).publish([msg({ payload: text('one') })], ch);
    const backstop = await alarmOf(ch);
    expect(backstop).not.toBeNull();
    await outboxEmpty(ch, 5000, false);
    for (const p of ['two', 'three']) {
      await actor(ch).publish([msg({ payload: text(p) })], ch);
      await outboxEmpty(ch, 5000, false);
    }
    expect((await rows(ch)).map((r) => r.payload)).toEqual(['one', 'two', 'three']);
    // Three drains, and the alarm is still the one set by the first publish: it was not fired, reset
    // or rewritten by any of them.
    expect(await alarmOf(ch)).toBe(backstop);
    // When it fires with nothing waiting it drains nothing and sets nothing.
    expect(await runDurableObjectAlarm(actor(ch))).toBe(true);
    expect(await alarmOf(ch)).toBeNull();
    expect(await timerOf(ch)).toBeNull();
    expect((await rows(ch)).length).toBe(3);
  });

  it('a drain commits nothing of its own: the next append carries the drained mark, else a timer; a lost mark only re-sends rows', async () => {
    const ch = newChannel();
    await actor(ch).configure(ch, { drainDelayMs: 20 });
    const stored = () =>
      runInDurableObject(actor(ch), (instance: ChannelActor) => {
        const { store } = (instance as unknown as { core: ChannelCore }).core;
        return { written: Number(store.meta('drained') ?? 0), inMemory: store.drainedUpTo, unsaved: store.drainedUnsaved };
      });
    await actor(ch).publish([msg({ payload: text('a') })], ch);
    await outboxEmpty(ch, 5000, false);
    expect(await stored()).toEqual({ written: 0, inMemory: 1, unsaved: true });
    // The next publish's transaction writes it.
    await actor(ch).publish([msg({ payload: text('b') })], ch);
    const afterAppend = await stored();
    expect(afterAppend.written).toBe(1);
    await outboxEmpty(ch, 5000, false);
    expect(await stored()).toEqual({ written: 1, inMemory: 2, unsaved: true });
    // As after a restart before the mark was written: the stored mark is behind, so 'b' is the
    // outbox again; the drain sends it once more and D1 still holds each row once.
    await runInDurableObject(actor(ch), (instance: ChannelActor) => (instance as unknown as { core: ChannelCore }).core.store.load());
    expect((await actor(ch).info()).outbox).toBe(1);
    await outboxEmpty(ch, 5000);
    expect((await rows(ch)).map((r) => [r.seq, r.payload])).toEqual([
      [1, 'a'],
      [2, 'b'],
    ]);
    // With no append to carry it, the timer writes it.
    const until = Date.now() + 10_000;
    while ((await stored()).unsaved) {
      if (Date.now() > until) throw new Error('the drained mark was never written');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await stored()).toEqual({ written: 2, inMemory: 2, unsaved: false });
  });

  it('drains on the backstop alarm when the instance that held the timer is gone', async () => {
    const ch = newChannel();
    await actor(ch).configure(ch, { drainDelayMs: 60_000 });
    await actor(ch).publish([msg({ payload: text('a') }), msg({ payload: text('b') })], ch);
    // The test runtime's eviction waits for pending timers, so the instance's end (a crash, a
    // deploy) is stood in for by dropping its timer, then evicting it.
    await runInDurableObject(actor(ch), (instance: ChannelActor) => {
      const { core } = instance as unknown as { core: ChannelCore };
      expect(core.drainTimerDue()).not.toBeNull();
      core.cancelDrainTimer();
    });
    await evictDurableObject(actor(ch));
    expect(await timerOf(ch)).toBeNull();
    expect((await actor(ch).info()).outbox).toBe(2);
    expect(await runDurableObjectAlarm(actor(ch))).toBe(true);
    expect((await rows(ch)).map((r) => [r.seq, r.payload])).toEqual([
      [1, 'a'],
      [2, 'b'],
    ]);
    expect((await actor(ch).info()).outbox).toBe(0);
  });

  it('takes outbox batches bounded by rows and payload bytes, always at least one row, in seq order', async () => {
    const ch = newChannel();
    await actor(ch).publish([msg({ payload: text('aaaaaaaaaa') }), msg({ payload: text('bbbbbbbbbb'), retain: true }), msg({ payload: text('cccccccccc') })], ch);
    await runInDurableObject(actor(ch), (instance: ChannelActor) => {
      const { store } = (instance as unknown as { core: ChannelCore }).core;
      const seqs = (limit: number, bytes: number) => store.outboxBatch(limit, bytes).map((b) => b.message.envelope.seq);
      expect(seqs(2, 1 << 30)).toEqual([1, 2]);
      expect(seqs(10, 25)).toEqual([1, 2]);
      expect(seqs(10, 5)).toEqual([1]);
      const [, second] = store.outboxBatch(10, 1 << 30);
      expect(second?.message.retain).toBe(true);
      expect(new TextDecoder().decode(second?.message.envelope.payload)).toBe('bbbbbbbbbb');
      expect(second?.message.envelope.channel).toBe(ch);
    });
  });

  it('drains from memory what it just stored, exactly as the log holds it; after a restart from the log', async () => {
    const ch = newChannel();
    await actor(ch).configure(ch, { drainDelayMs: 60_000 });
    await actor(ch).publish(
      [
        msg({ payload: text('plain') }),
        msg({ contentType: 'application/senml+json', payload: text('[{"n":"t","v":1.5}]'), retain: true, subtopic: 'a/b' }),
        msg({ contentType: 'application/octet-stream', payload: new Uint8Array([0, 255, 7]), publisher: 'p2' }),
      ],
      ch,
    );
    await runInDurableObject(actor(ch), (instance: ChannelActor) => {
      const { store } = (instance as unknown as { core: ChannelCore }).core;
      const view = (b: ReturnType<typeof store.outboxBatch>) =>
        b.map(({ message: { envelope: e, retain }, records }) => ({ ...e, payload: [...e.payload], retain, records }));
      const fromMemory = view(store.outboxBatch(10, 1 << 30));
      store.load(); // as after a restart: nothing in memory
      const fromLog = view(store.outboxBatch(10, 1 << 30));
      expect(fromMemory).toEqual(fromLog);
      expect(fromLog.map((m) => m.seq)).toEqual([1, 2, 3]);
      expect(fromLog[1]!.records).toContain('"n":"t"');
    });
    // New messages start a new run in memory while 1–3 are only in the log: the log's come first.
    await actor(ch).publish([msg({ payload: text('four') }), msg({ payload: text('five') })], ch);
    await runInDurableObject(actor(ch), (instance: ChannelActor) => {
      const { store } = (instance as unknown as { core: ChannelCore }).core;
      const seqs = () => store.outboxBatch(10, 1 << 30).map((b) => b.message.envelope.seq);
      expect(seqs()).toEqual([1, 2, 3]);
    });
    expect(await runDurableObjectAlarm(actor(ch))).toBe(true); // 1–3, from the log
    await runInDurableObject(actor(ch), (instance: ChannelActor) => {
      const { store } = (instance as unknown as { core: ChannelCore }).core;
      expect(store.outboxBatch(10, 1 << 30).map((b) => b.message.envelope.seq)).toEqual([4, 5]);
    });
    expect(await runDurableObjectAlarm(actor(ch))).toBe(true); // 4–5, from memory
    expect((await rows(ch)).map((r) => [r.seq, r.payload])).toEqual([
      [1, 'plain'],
      [2, '[{"n":"t","v":1.5}]'],
      [3, null],
      [4, 'four'],
      [5, 'five'],
    ]);
  });

  it('backs off exponentially with jitter, capped at five minutes', () => {
    expect(backoffMs(1, 0)).toBe(500);
    expect(backoffMs(1, 1)).toBe(1000);
    expect(backoffMs(4, 1)).toBe(8000);
    expect(backoffMs(30, 1)).toBe(300_000);
    expect(backoffMs(30, 0)).toBe(150_000);
  });
});

describe('drain rows (partsOf)', () => {
  it('writes each row as exactly the JSON of its MessageTail, with its publisher named once per part, whatever the strings and payload', () => {
    const ch = newChannel();
    const strings = ['', 'room/1', 'q"\\ \n\t é ✓ 🌡 \u0001 \u2028', 'dev-1', 'dev-2'];
    const payloads = [text('hello'), text('[{"n":"t","v":1}]'), new Uint8Array([0xff, 0xfe, 0x00]), new Uint8Array(64 * 1024 + 1).fill(0x41), text('x'.repeat(64 * 1024)), text('"é\\')];
    const types = ['text/plain', 'application/senml+json', 'application/octet-stream', 'text/plain; charset=latin1', 'application/json'];
    let seed = 7;
    const pick = <T,>(xs: readonly T[]): T => xs[(seed = (seed * 1103515245 + 12345) % 2 ** 31) % xs.length] as T;
    const batch = Array.from({ length: 300 }, (_, i) => {
      const envelope = { seq: i + 1, subtopic: pick(strings), publisher: pick(strings), protocol: pick(['http', 'ws', 'mqtt', 'coap'] as const), contentType: pick(types), created: 1_700_000_000_000 + i, payload: pick(payloads) };
      return { message: { envelope, retain: pick([true, false]) } as ChannelMessage, records: pick([null, '[{"i":0,"n":"t","t":1,"v":1}]']) };
    });
    const { parts, blobs } = partsOf(ch, batch, 20_000);
    expect(parts.length).toBeGreaterThan(1);
    const inline = (m: ChannelMessage): string | null => {
      const e = m.envelope;
      return e.payload.length <= INLINE_TEXT_MAX && isTextualType(e.contentType) ? utf8Text(e.payload) : null;
    };
    const expected = batch.map(({ message: m }) => {
      const e = m.envelope;
      const t = inline(m);
      const item: MessageTail = [e.seq, e.subtopic, e.protocol, e.contentType, e.created, e.payload.length, t, t === null ? blobKey(ch, e.seq) : null, m.retain ? 1 : 0];
      return JSON.stringify(item).slice(1);
    });
    expect(parts.flatMap((p) => p.messages)).toEqual(expected);
    // Each row's publisher, by its index into its own part's list, which names each once.
    expect(parts.flatMap((p) => p.messagePublishers.map((i) => p.publishers[i]))).toEqual(batch.map((b) => b.message.envelope.publisher));
    for (const p of parts) {
      expect(p.channel).toBe(ch);
      expect(new Set(p.publishers).size).toBe(p.publishers.length);
      expect(p.messagePublishers).toHaveLength(p.messages.length);
      expect(p.recordPublishers).toHaveLength(p.records.length);
    }
    expect(parts.flatMap((p) => p.recordPublishers.map((i) => p.publishers[i]))).toEqual(batch.filter((b) => b.records !== null).map((b) => b.message.envelope.publisher));
    expect(blobs.map((m) => m.envelope.seq)).toEqual(batch.filter(({ message: m }) => inline(m) === null).map(({ message: m }) => m.envelope.seq));
    const recs = batch.filter((b) => b.records !== null).map(({ message: { envelope: e }, records }) => JSON.stringify([e.seq, e.subtopic, e.created, JSON.parse(records!)]).slice(1));
    expect(parts.flatMap((p) => p.records)).toEqual(recs);
    // Every kind of row came up: inline text, R2 (binary, too big, invalid UTF-8, other charset), retained.
    expect(new Set(expected.map((r) => (JSON.parse(`[${r}`) as unknown[])[6] === null)).size).toBe(2);
  });
});

describe('channel actor: message retention (retention.ts)', () => {
  const HOUR_DAYS = 1 / 24;
  const coreOf = (ch: string) => (fn: (core: ChannelCore) => unknown) => runInDurableObject(actor(ch), (instance: ChannelActor) => fn((instance as unknown as { core: ChannelCore }).core));
  const senmlCount = async (ch: string) => (await env.DB.prepare('SELECT COUNT(*) AS n FROM senml_records WHERE channel_id = ?').bind(ch).first<{ n: number }>())?.n;
  const blobKeys = async (ch: string) => (await env.BLOBS.list({ prefix: `channels/${ch}/` })).objects.map((o) => o.key);
  const createdOf = (r: Awaited<ReturnType<ReturnType<typeof actor>['publish']>>) => r.map((x) => (x.ok ? x.created : NaN));

  /** Publishes an old batch and, a few ms later, a new one, each drained; `mid` lies between their times. */
  async function oldAndNew(ch: string) {
    const senml = text('[{"n":"temp","v":21.5},{"n":"hum","v":40}]');
    const bin = new Uint8Array([0xff, 0x00, 0x01]);
    const old = await actor(ch).publish([msg({ contentType: 'application/senml+json', payload: senml }), msg({ contentType: 'application/octet-stream', payload: bin }), msg({ subtopic: 'state', payload: text('on'), retain: true })], ch);
    await outboxEmpty(ch, 5000);
    await new Promise((r) => setTimeout(r, 5));
    const recent = await actor(ch).publish([msg({ contentType: 'application/senml+json', payload: senml }), msg({ contentType: 'application/octet-stream', payload: bin })], ch);
    await outboxEmpty(ch, 5000);
    const [oldAt, newAt] = [Math.max(...createdOf(old)), Math.min(...createdOf(recent))];
    expect(newAt).toBeGreaterThan(oldAt);
    return { mid: (oldAt + newAt) / 2 };
  }

  it('deletes what is older than the retention from D1, R2 and the replay window; keeps the newer and the retained message', async () => {
    const ch = newChannel();
    const configured = await actor(ch).configure(ch, { retentionDays: HOUR_DAYS });
    expect(configured.ok && configured.config.retentionDays).toBe(HOUR_DAYS);
    const { mid } = await oldAndNew(ch);
    expect((await rows(ch)).map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(await senmlCount(ch)).toBe(4);
    expect(await blobKeys(ch)).toEqual([blobKey(ch, 2), blobKey(ch, 5)]);

    // An hour after `mid`: the first batch (seqs 1–3) is older than the retention, the second is not.
    const result = (await coreOf(ch)((core) => core.retention.sweep(mid + 3_600_000))) as SweepResult;
    expect(result).toMatchObject({ upTo: 3, more: false, blobsDeleted: 1 });
    expect((await rows(ch)).map((r) => r.seq)).toEqual([4, 5]);
    expect(await senmlCount(ch)).toBe(2);
    expect(await blobKeys(ch)).toEqual([blobKey(ch, 5)]);
    // Nothing expired is replayed to a subscriber asking `since` 0; the retained message stays.
    const info = await actor(ch).info();
    expect(info.oldestKept).toBe(4);
    expect(info.retained).toBe(1);
    // Sweeping again at the same time deletes nothing more.
    expect(await coreOf(ch)((core) => core.retention.sweep(mid + 3_600_000))).toMatchObject({ upTo: 0, blobsDeleted: 0 });
    expect((await rows(ch)).map((r) => r.seq)).toEqual([4, 5]);
  });

  it('a sweep cut short by its chunk budget leaves its bound stored and the next one finishes, blobs included', async () => {
    const ch = newChannel();
    await actor(ch).configure(ch, { retentionDays: HOUR_DAYS, channelRate: { perSecond: 1e6, burst: 1e6 }, publisherRate: { perSecond: 1e6, burst: 1e6 } });
    const first = await actor(ch).publish(Array.from({ length: 40 }, (_, i) => msg({ contentType: 'application/octet-stream', payload: new Uint8Array([i]) })), ch);
    await outboxEmpty(ch, 5000);
    await new Promise((r) => setTimeout(r, 5));
    await actor(ch).publish([msg({ payload: text('new') })], ch);
    await outboxEmpty(ch, 5000);
    const at = Math.max(...createdOf(first)) + 1 + 3_600_000;
    const cut = (await coreOf(ch)((core) => core.retention.sweep(at, { chunk: 10, chunksPerSweep: 2 }))) as SweepResult;
    expect(cut).toMatchObject({ upTo: 40, more: true, blobsDeleted: 0 });
    expect((await rows(ch)).map((r) => r.seq)).toEqual(Array.from({ length: 21 }, (_, i) => i + 21));
    expect(await blobKeys(ch)).toHaveLength(40); // blobs wait for their rows to go
    expect(await coreOf(ch)((core) => core.store.meta('retention_done'))).toBe(20);
    // The next sweep (a later alarm) goes on from where this one stopped.
    expect(await coreOf(ch)((core) => core.retention.sweep(at, { chunk: 10, chunksPerSweep: 2 }))).toMatchObject({ upTo: 40, more: false, blobsDeleted: 40 });
    expect((await rows(ch)).map((r) => r.seq)).toEqual([41]);
    expect(await blobKeys(ch)).toEqual([]);
    expect(await coreOf(ch)((core) => core.store.meta('retention_done'))).toBeNull();
  });

  it('runs on the alarm: a first sweep as soon as configured, then one an hour; 0 keeps everything', async () => {
    const ch = newChannel();
    const before = Date.now();
    await actor(ch).configure(ch, { retentionDays: 30 });
    // The first sweep is due at once: the alarm fires by itself and puts the next an hour on.
    let next = 0;
    for (const until = Date.now() + 5000; next < before + RETENTION_SWEEP_MS * (1 - RETENTION_JITTER); ) {
      if (Date.now() > until) throw new Error('no first sweep within 5 s of configuring');
      await new Promise((r) => setTimeout(r, 20));
      next = (await coreOf(ch)((core) => core.retention.nextAt)) as number;
    }
    expect(next - Date.now()).toBeLessThanOrEqual(RETENTION_SWEEP_MS * (1 + RETENTION_JITTER));
    expect(await alarmOf(ch)).toBe(next); // the alarm now waits for the next sweep
    // A publish's drain moves the alarm earlier; after that alarm, it waits for the sweep again.
    await actor(ch).publish([msg()], ch);
    expect(await alarmOf(ch)).toBeLessThan(next);
    await outboxEmpty(ch, 5000);
    await runDurableObjectAlarm(actor(ch));
    expect(await alarmOf(ch)).toBe(next);
    await actor(ch).configure(ch, { retentionDays: 0 });
    expect(await coreOf(ch)((core) => core.retention.nextAt)).toBeNull();
  });

  it('a sweep right after a drain keeps the log the stored drained mark needs: a new instance still drains', async () => {
    const ch = newChannel();
    await actor(ch).configure(ch, { retentionDays: HOUR_DAYS });
    const r = await actor(ch).publish([msg({ payload: text('old') })], ch);
    await outboxEmpty(ch, 5000);
    const created = r[0]?.ok ? r[0].created : NaN;
    await coreOf(ch)((core) => core.retention.sweep(created + 3_600_001));
    // What a new instance loads before the drained mark's own timer (2 s) would have written it.
    await coreOf(ch)((core) => core.store.load());
    await actor(ch).publish([msg({ payload: text('new') })], ch);
    await outboxEmpty(ch, 5000);
    expect((await rows(ch)).map((x) => x.seq)).toEqual([2]);
  });

  it('a sweep cut short never deletes more than the retention in force says; blobs it left go even once retention is off', async () => {
    const ch = newChannel();
    await actor(ch).configure(ch, { retentionDays: HOUR_DAYS, channelRate: { perSecond: 1e6, burst: 1e6 }, publisherRate: { perSecond: 1e6, burst: 1e6 } });
    const first = await actor(ch).publish(Array.from({ length: 40 }, (_, i) => msg({ contentType: 'application/octet-stream', payload: new Uint8Array([i]) })), ch);
    await outboxEmpty(ch, 5000);
    const at = Math.max(...createdOf(first)) + 1 + 3_600_000;
    expect(await coreOf(ch)((core) => core.retention.sweep(at, { chunk: 10, chunksPerSweep: 2 }))).toMatchObject({ upTo: 40, more: true });
    expect(await rows(ch)).toHaveLength(20);
    // Off: the rows left stay; the next sweep (on the alarm, at once) deletes only the 20 blobs whose rows are gone.
    await actor(ch).configure(ch, { retentionDays: 0 });
    for (const until = Date.now() + 5000; (await blobKeys(ch)).length !== 20; await new Promise((r) => setTimeout(r, 20))) {
      if (Date.now() > until) throw new Error(`blobs: ${(await blobKeys(ch)).length}`);
    }
    expect(await blobKeys(ch)).toEqual(Array.from({ length: 20 }, (_, i) => blobKey(ch, i + 21)));
    await new Promise((r) => setTimeout(r, 100));
    expect(await coreOf(ch)((core) => [core.retention.nextAt, core.store.meta('retention_done')])).toEqual([null, null]);
    // Thirty days: nothing seconds old goes.
    await actor(ch).configure(ch, { retentionDays: 30 });
    expect(await coreOf(ch)((core) => core.retention.sweep())).toMatchObject({ upTo: 0, blobsDeleted: 0 });
    expect(await rows(ch)).toHaveLength(20);
  });

  it('a retention changed or a channel retired during a sweep is not undone by that sweep', async () => {
    const ch = newChannel();
    await actor(ch).configure(ch, { retentionDays: HOUR_DAYS });
    await actor(ch).publish([msg({ payload: text('x') })], ch);
    await outboxEmpty(ch, 5000);
    const off = (await coreOf(ch)(async (core) => {
      core.store.setMeta('retention_next', 1); // due
      const sweeping = core.retention.onAlarm();
      await core.configure({ retentionDays: 0 });
      await sweeping;
      return core.retention.nextAt;
    })) as number | null;
    expect(off).toBeNull();
    await actor(ch).configure(ch, { retentionDays: HOUR_DAYS });
    // Changed to another retention during a sweep: its own sweep, due at once, stays due.
    const changed = (await coreOf(ch)(async (core) => {
      core.store.setMeta('retention_next', 1);
      const sweeping = core.retention.onAlarm();
      const before = Date.now();
      await core.configure({ retentionDays: 2 * HOUR_DAYS });
      await sweeping;
      return (core.retention.nextAt ?? Infinity) - before;
    })) as number;
    expect(changed).toBeLessThan(1000);
    const retired = (await coreOf(ch)(async (core) => {
      core.store.setMeta('retention_next', 1);
      const sweeping = core.retention.onAlarm(Date.now() + 7_200_000);
      await core.retire();
      await sweeping;
      return { next: core.retention.nextAt, alarm: await core.ctx.storage.getAlarm() };
    })) as { next: number | null; alarm: number | null };
    expect(retired).toEqual({ next: null, alarm: null });
  });

  it('refuses a retention under an hour, negative or over a hundred years', async () => {
    const ch = newChannel();
    for (const retentionDays of [0.01, -1, 36_501, Number.NaN]) {
      const r = await actor(ch).configure(ch, { retentionDays });
      expect(r.ok).toBe(false);
      expect(!r.ok && r.message).toContain('retentionDays');
    }
    const r = await actor(ch).configure(ch, { retentionDays: 0 });
    expect(r.ok && r.config.retentionDays).toBe(0);
  });
});
