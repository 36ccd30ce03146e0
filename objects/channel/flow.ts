import type { Window } from './config';

/**
 * Slow-subscriber detection. workerd's server-side WebSocket has no `bufferedAmount`
 * (cloudflare/workerd#988, verified absent in this runtime) and `send()` never blocks — a socket
 * whose reader stalls just grows a buffer in the runtime. So the signal is application-level:
 * a flow-controlled socket (every bridge link; WebSocket subscribers that opt in) acknowledges
 * what it has processed with a cumulative seq, and the actor counts live deliveries not yet
 * acknowledged. Over the window → the socket is closed with 1013 (IANA "Try Again Later") and a
 * reason, and resumes with `since` — the channel itself never waits for anybody.
 *
 * The counters are in memory only: hibernation drops them, which forgives a subscriber at most
 * one window, and an actor only hibernates when nothing is happening.
 */
interface Outstanding {
  /** Flat [seq, bytes, seq, bytes, …] of unacknowledged deliveries, oldest first. */
  queue: number[];
  head: number;
  bytes: number;
  count: number;
}

export const CLOSE_TRY_AGAIN_LATER = 1013;

export class Flow {
  private sockets = new WeakMap<WebSocket, Outstanding>();

  /** Records one delivery; returns why the socket is over its window, or null. */
  sent(ws: WebSocket, seq: number, bytes: number, window: Window): string | null {
    let o = this.sockets.get(ws);
    if (!o) this.sockets.set(ws, (o = { queue: [], head: 0, bytes: 0, count: 0 }));
    o.queue.push(seq, bytes);
    o.bytes += bytes;
    o.count++;
    if (o.bytes > window.bytes) return `slow consumer: ${o.bytes} bytes unacknowledged (window ${window.bytes})`;
    if (o.count > window.messages) return `slow consumer: ${o.count} messages unacknowledged (window ${window.messages})`;
    return null;
  }

  /** A cumulative ack: everything up to and including `seq` is processed. */
  acked(ws: WebSocket, seq: number): void {
    const o = this.sockets.get(ws);
    if (!o) return;
    while (o.head < o.queue.length && (o.queue[o.head] ?? Infinity) <= seq) {
      o.bytes -= o.queue[o.head + 1] ?? 0;
      o.count--;
      o.head += 2;
    }
    // Compact now and then so the array does not grow forever.
    if (o.head > 4096 && o.head * 2 > o.queue.length) {
      o.queue = o.queue.slice(o.head);
      o.head = 0;
    }
  }

  outstanding(ws: WebSocket): { bytes: number; messages: number } {
    const o = this.sockets.get(ws);
    return { bytes: o?.bytes ?? 0, messages: o?.count ?? 0 };
  }
}

/** Future-proofing: if the runtime ever exposes `bufferedAmount` (workerd#988), use it for every socket. */
export function bufferedAmount(ws: WebSocket): number | null {
  const v = (ws as unknown as { bufferedAmount?: unknown }).bufferedAmount;
  return typeof v === 'number' ? v : null;
}
