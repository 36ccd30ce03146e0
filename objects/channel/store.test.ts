import { runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { ChannelStore, type AppendItem } from './store';
import { actor, msg, newChannel } from './test-helpers';
import type { ChannelActor } from './index';

/** A store of its own over a fresh actor's storage (the actor ensured the schema). */
function withStore<T>(fn: (store: ChannelStore, sql: SqlStorage) => T): Promise<T> {
  const ch = newChannel();
  return runInDurableObject(actor(ch), (_i: ChannelActor, state) => {
    const store = new ChannelStore(state.storage);
    store.load();
    store.setChannel(ch);
    return fn(store, state.storage.sql);
  });
}

const item = (bytes: number, subtopic = 's'): AppendItem => ({ input: msg({ subtopic, payload: new Uint8Array(bytes).fill(bytes % 251) }), records: null });

describe('channel actor: the log in runs', () => {
  it('replayStart is the oldest seq whose replay to the end fits the byte budget, whether the budget ends between runs or inside one', async () => {
    const { sizes, got } = await withStore((store) => {
      const sizes: number[] = [0];
      // Runs of 1…12 messages, payloads of 1…50 bytes.
      for (let k = 1; k <= 12; k++) {
        const batch = Array.from({ length: k }, (_, i) => 1 + ((sizes.length + i) * 7) % 50);
        store.append(batch.map((b) => item(b)), 1000 + k, 1_000_000);
        sizes.push(...batch);
      }
      const got: Record<string, number | null> = {};
      // Budgets that end exactly on a message boundary too (the last n messages' bytes).
      const exact = [1, 5, 13, 40].map((n) => sizes.slice(-n).reduce((a, b) => a + b, 0));
      for (const after of [0, 1, 5, 20, 40, 60, 77, 78]) for (const max of [0, 1, 30, 100, 250, 1000, 1e9, ...exact]) got[`${after}/${max}`] = store.replayStart(after, max);
      return { sizes, got };
    });
    const last = sizes.length - 1;
    expect(last).toBe(78);
    // The definition, message by message.
    const expected = (after: number, max: number): number | null => {
      let total = 0;
      let start: number | null = null;
      for (let seq = last; seq > after; seq--) {
        total += sizes[seq]!;
        if (total > max) break;
        start = seq;
      }
      return start;
    };
    for (const [key, value] of Object.entries(got)) {
      const [after, max] = key.split('/').map(Number) as [number, number];
      expect([key, value]).toEqual([key, expected(after, max)]);
    }
  });

  it('splits a batch larger than a run row into several rows; seqs, payloads and order are kept', async () => {
    const out = await withStore((store, sql) => {
      const acked = store.append([item(100_000, 'a'), item(100_000, 'b'), item(100_000, 'c'), item(10, 'd'), item(200_000, 'e')], 5000, 1_000_000);
      return {
        acked: acked.map((m) => m.envelope.seq),
        rows: sql.exec<{ first: number; last: number }>('SELECT first, last FROM runs ORDER BY first').toArray().map((r) => [r.first, r.last]),
        log: store.logFrom(2).map((m) => [m.envelope.seq, m.envelope.subtopic, m.envelope.payload.length, m.envelope.payload[0], m.envelope.created]),
        count: store.logCount(),
      };
    });
    expect(out.acked).toEqual([1, 2, 3, 4, 5]);
    // At most 256 KiB of payload per row (a lone bigger message gets a row of its own).
    expect(out.rows).toEqual([[1, 2], [3, 4], [5, 5]]);
    expect(out.log).toEqual([
      [2, 'b', 100_000, 100_000 % 251, 5000],
      [3, 'c', 100_000, 100_000 % 251, 5000],
      [4, 'd', 10, 10, 5000],
      [5, 'e', 200_000, 200_000 % 251, 5000],
    ]);
    expect(out.count).toBe(5);
  });

  it('trims whole runs once they are drained and out of the window; a run straddling the cutoff stays', async () => {
    const out = await withStore((store) => {
      for (let k = 0; k < 10; k++) store.append(Array.from({ length: 10 }, () => item(5)), 1000, 1_000_000);
      store.drained(100, 25); // window 25 → cutoff 75: runs 1–70 go, 71–80 holds 75 and stays
      return { oldest: store.oldestKept(), count: store.logCount(), first: store.logFrom(0)[0]?.envelope.seq };
    });
    expect(out).toEqual({ oldest: 71, count: 30, first: 71 });
  });
});
