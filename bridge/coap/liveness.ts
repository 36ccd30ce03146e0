/**
 * Liveness of observing endpoints. CoAP has no connection, so an observer that went away is only
 * noticed when a confirmable message to it goes unanswered. On a busy channel the CON
 * notifications do that (RFC 7641 §4.5); on a quiet one an endpoint not heard from for
 * `observerPingMs` gets a CoAP ping — an empty CON, which any endpoint answers with a RST
 * (RFC 7252 §4.3). No answer after MAX_RETRANSMIT retransmissions: its observations are removed.
 */
import { Type, emptyMessage } from '../../shared/coap';
import type { Context } from './context';
import type { Send, Timer } from './types';

interface Watched {
  heard: number;
  observations: number;
  send: Send;
  pinging: boolean;
}

export class Liveness {
  private readonly endpoints = new Map<string, Watched>();
  private timer: Timer | undefined;

  constructor(private readonly ctx: Context, private readonly onDead: (epKey: string) => void) {}

  /** An observation now uses this endpoint. */
  watch(epKey: string, send: Send): void {
    const w = this.endpoints.get(epKey);
    if (w) {
      w.observations++;
      w.send = send;
    } else this.endpoints.set(epKey, { heard: this.ctx.clock.now(), observations: 1, send, pinging: false });
    this.timer ??= this.ctx.clock.setTimer(this.ctx.limits.observerPingMs / 2, () => this.sweep());
  }

  unwatch(epKey: string): void {
    const w = this.endpoints.get(epKey);
    if (w && --w.observations <= 0) this.endpoints.delete(epKey);
  }

  /** Any message from the endpoint proves it is there. */
  heard(epKey: string): void {
    const w = this.endpoints.get(epKey);
    if (w) w.heard = this.ctx.clock.now();
  }

  private sweep(): void {
    this.timer = undefined;
    const now = this.ctx.clock.now();
    for (const [epKey, w] of this.endpoints) {
      if (w.pinging || now - w.heard < this.ctx.limits.observerPingMs) continue;
      w.pinging = true;
      const alive = () => {
        w.pinging = false;
        w.heard = this.ctx.clock.now();
      };
      const { transmitter } = this.ctx.layer;
      transmitter.sendCon(epKey, w.send, emptyMessage(Type.CON, transmitter.nextMessageId()), {
        onAck: alive,
        onReset: alive,
        onTimeout: () => {
          this.endpoints.delete(epKey);
          this.onDead(epKey);
        },
      });
    }
    if (this.endpoints.size > 0) this.timer = this.ctx.clock.setTimer(this.ctx.limits.observerPingMs / 2, () => this.sweep());
  }

  close(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.endpoints.clear();
  }
}
