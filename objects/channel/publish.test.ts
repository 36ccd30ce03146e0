import { runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { encodeSenmlCbor } from '../../shared/senml';
import { ChannelStore } from './store';
import { actor, msg, newChannel, payloadText, subscribe, text } from './test-helpers';
import type { ChannelActor } from './index';

describe('channel actor: publish', () => {
  it('assigns strictly increasing seqs and a created time, and stores before it acknowledges', async () => {
    const ch = newChannel();
    const before = Date.now();
    const results = await actor(ch).publish([msg(), msg({ subtopic: 'a' }), msg({ subtopic: 'a/b' })], ch);
    expect(results.map((r) => (r.ok ? r.seq : -1))).toEqual([1, 2, 3]);
    for (const r of results) expect(r.ok && r.created >= before && r.created <= Date.now()).toBe(true);
    const more = await actor(ch).publish([msg()], ch);
    expect(more[0]).toMatchObject({ ok: true, seq: 4 });
    // Acknowledged means in the actor's own SQLite: in the log, after the drained mark (the outbox).
    const rows = await runInDurableObject(actor(ch), (_i: ChannelActor, state) => {
      const store = new ChannelStore(state.storage);
      store.load();
      return {
        log: store.logFrom(1).map((m) => ({ seq: m.envelope.seq, subtopic: m.envelope.subtopic })),
        outbox: 4 - Number(state.storage.sql.exec<{ value: number | null }>("SELECT value FROM meta WHERE key = 'drained'").toArray()[0]?.value ?? 0),
      };
    });
    expect(rows.log).toEqual([
      { seq: 1, subtopic: '' },
      { seq: 2, subtopic: 'a' },
      { seq: 3, subtopic: 'a/b' },
      { seq: 4, subtopic: '' },
    ]);
    expect(rows.outbox).toBe(4);
  });

  it('delivers the exact envelope to subscribers, in seq order', async () => {
    const ch = newChannel();
    const sub = await subscribe(ch);
    const inputs = Array.from({ length: 20 }, (_, i) => msg({ subtopic: `s/${i % 3}`, payload: text(`m${i}`), publisher: `dev-${i % 2}`, protocol: 'mqtt' }));
    const results = await actor(ch).publish(inputs, ch);
    const frames = await sub.take(20);
    expect(frames.map((f) => (f.type === 'message' ? f.envelope.seq : 0))).toEqual(results.map((r) => (r.ok ? r.seq : -1)));
    const first = frames[0];
    expect(first).toEqual({
      type: 'message',
      envelope: { channel: ch, subtopic: 's/0', publisher: 'dev-0', protocol: 'mqtt', contentType: 'text/plain', payload: text('m0'), created: results[0]?.ok ? results[0].created : 0, seq: 1 },
    });
    expect(frames.map(payloadText)).toEqual(inputs.map((_, i) => `m${i}`));
  });

  it('orders concurrent publishers into one sequence that every subscriber sees identically', async () => {
    const ch = newChannel();
    const [s1, s2] = [await subscribe(ch), await subscribe(ch, { encoding: 'cbor' })];
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => actor(ch).publish([msg({ publisher: `p${i}`, payload: text(`${i}`) }), msg({ publisher: `p${i}` })], ch)));
    const assigned = results.flat().map((r) => (r.ok ? r.seq : -1)).sort((a, b) => a - b);
    expect(assigned).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    // Each batch got two consecutive seqs: one transaction, nothing interleaved.
    for (const r of results) expect(r[0]?.ok && r[1]?.ok && r[1].seq - r[0].seq).toBe(1);
    const order = (frames: Awaited<ReturnType<typeof s1.take>>) => frames.map((f) => (f.type === 'message' ? `${f.envelope.seq}:${f.envelope.publisher}` : f.type));
    const seen1 = order(await s1.take(24));
    expect(seen1.map((x) => Number(x.split(':')[0]))).toEqual(assigned);
    expect(order(await s2.take(24))).toEqual(seen1);
  });

  it('refuses bad subtopics, oversized payloads and bad JSON per item, and stores the rest', async () => {
    const ch = newChannel();
    await actor(ch).configure(ch, { maxPayloadBytes: 1000 });
    const results = await actor(ch).publish(
      [
        msg({ subtopic: 'a/+' }),
        msg({ payload: new Uint8Array(1001), contentType: 'application/octet-stream' }),
        msg({ payload: new Uint8Array(1000), contentType: 'application/octet-stream' }),
        msg({ contentType: 'application/json', payload: text('42') }),
        msg({ contentType: 'application/json', payload: text('[{"a":1}, 2]') }),
        msg({ contentType: 'application/json', payload: text('{"a":') }),
        msg({ contentType: 'application/json; charset=utf-8', payload: text('[{"a":1},{"b":2}]') }),
        msg({ subtopic: 'a//b' }),
      ],
      ch,
    );
    expect(results.map((r) => (r.ok ? 'ok' : `${r.status} ${r.code}`))).toEqual([
      '400 invalid_subtopic',
      '413 payload_too_large',
      'ok',
      '400 invalid_json',
      '400 invalid_json',
      '400 invalid_json',
      'ok',
      '400 invalid_subtopic',
    ]);
    expect(results[4]).toMatchObject({ message: expect.stringContaining('element 1') });
    // Seqs stay dense: refused items take none.
    expect(results.filter((r) => r.ok).map((r) => r.ok && r.seq)).toEqual([1, 2]);
    expect((await actor(ch).info()).seq).toBe(2);
  });

  it('accepts valid SenML JSON and CBOR and refuses invalid SenML with a 400 naming the record and field; nothing stored', async () => {
    const ch = newChannel();
    const good = await actor(ch).publish(
      [
        msg({ contentType: 'application/senml+json', payload: text('[{"bn":"dev1/","n":"temp","u":"Cel","v":21.5},{"n":"hum","v":40}]') }),
        msg({ contentType: 'application/senml+cbor', payload: encodeSenmlCbor([{ name: 'x', time: 1_700_000_000, value: 1 }]) }),
      ],
      ch,
    );
    expect(good.every((r) => r.ok)).toBe(true);
    const bad = await actor(ch).publish([msg({ contentType: 'application/senml+json', payload: text('[{"n":"ok","v":1},{"n":"t","v":"hot"}]') })], ch);
    expect(bad[0]).toMatchObject({ ok: false, status: 400, code: 'invalid_senml' });
    const message = bad[0] && !bad[0].ok ? bad[0].message : '';
    expect(message).toMatch(/record 1/);
    expect(message).toMatch(/'v'/);
    const badCbor = await actor(ch).publish([msg({ contentType: 'application/senml+cbor', payload: new Uint8Array([0xa1, 0x00]) })], ch);
    expect(badCbor[0]).toMatchObject({ ok: false, status: 400, code: 'invalid_senml' });
    const info = await actor(ch).info();
    expect(info.seq).toBe(2);
    expect(info.outbox).toBe(2);
  });

  it('rate-limits per publisher and per channel with 429 and a retry hint', async () => {
    const ch = newChannel();
    await actor(ch).configure(ch, { publisherRate: { perSecond: 0.01, burst: 3 }, channelRate: { perSecond: 0.01, burst: 5 } });
    const a = await actor(ch).publish(Array.from({ length: 4 }, () => msg({ publisher: 'a' })), ch);
    expect(a.map((r) => (r.ok ? 'ok' : r.status))).toEqual(['ok', 'ok', 'ok', 429]);
    expect(a[3]).toMatchObject({ code: 'rate_limited', message: expect.stringContaining('publisher a') });
    expect(a[3] && !a[3].ok ? a[3].retryAfter : 0).toBeGreaterThanOrEqual(1);
    // Another publisher has its own bucket, but the channel's (5) runs out after 2 more.
    const b = await actor(ch).publish(Array.from({ length: 3 }, () => msg({ publisher: 'b' })), ch);
    expect(b.map((r) => (r.ok ? 'ok' : r.status))).toEqual(['ok', 'ok', 429]);
    expect(b[2]).toMatchObject({ message: expect.stringContaining('this channel') });
  });

  it('binds the channel id once and refuses a different one', async () => {
    const ch = newChannel();
    await actor(ch).publish([msg()], ch);
    const wrong = await actor(ch).publish([msg()], newChannel());
    expect(wrong[0]).toMatchObject({ ok: false, status: 400, code: 'channel_unknown', message: expect.stringContaining('serves channel') });
    // Without the id, the stored one is used.
    expect((await actor(ch).publish([msg()]))[0]).toMatchObject({ ok: true, seq: 2 });
    expect((await actor(ch).info()).channel).toBe(ch);
  });

  it('refuses unknown configuration keys', async () => {
    const ch = newChannel();
    expect(await actor(ch).configure(ch, { maxPayload: 5 } as never)).toEqual({ ok: false, message: 'unknown setting maxPayload' });
    expect(await actor(ch).configure(ch, { maxPayloadBytes: 10 * 1024 * 1024 })).toMatchObject({ ok: false, message: expect.stringContaining('maxPayloadBytes') });
    const ok = await actor(ch).configure(ch, { recentWindow: 5 });
    expect(ok.ok && ok.config.recentWindow).toBe(5);
    expect(ok.ok && ok.config.maxPayloadBytes).toBe(256 * 1024);
  });
});
