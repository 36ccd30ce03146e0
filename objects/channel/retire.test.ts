import { evictDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { actor, msg, newChannel } from './test-helpers';

describe('channel actor: retire', () => {
  it('retires once: later retires (the purger after the delete) wait for it and leave the actor readable, before and after an eviction', async () => {
    const ch = newChannel();
    const a = actor(ch);
    expect((await a.publish([msg({ retain: true })], ch))[0]).toMatchObject({ ok: true, seq: 1 });
    for (const evict of [false, true]) {
      if (evict) await evictDurableObject(a);
      // Retires racing reads and publishes, a few rounds: none may see the storage emptied under it.
      for (let round = 0; round < 10; round++) {
        const calls = await Promise.allSettled([a.retire(ch), ...Array.from({ length: 20 }, (_, i) => (i % 5 === 4 ? a.publish([msg()], ch) : a.info())), a.retire(ch), a.info()]);
        for (const c of calls) expect(c.status === 'rejected' ? String(c.reason) : 'ok').toBe('ok');
      }
      expect(await a.info()).toMatchObject({ seq: 0, retained: 0, outbox: 0 });
      const [late] = await a.publish([msg()], ch);
      expect(late).toMatchObject({ ok: false, status: 404, code: 'channel_not_found' });
    }
  });
});
