import type { ChannelCore } from './core';
import { TAG_SUBSCRIBER } from './sockets';

/**
 * Which channels have live WebSocket subscribers, in D1 (`live_channels`, migrations/0006), so an
 * access change in an org reaches them at once: the worker that wrote it asks these actors to ask
 * again about their subscribers (`recheckSubscribers`), and a revoked subscriber on a quiet channel
 * is closed within a round trip instead of at its next delivery. The row is this actor's: written
 * when its first subscriber arrives, deleted when its last one goes. Writes are chained, and each
 * writes what is true when it runs, so they cannot land out of order; a row left behind (an actor
 * gone without its sockets' close events) costs one wake-up on the next change, which deletes it.
 */
export class LiveRegistry {
  /** The row as last written (null: not known, e.g. after a wake-up). */
  private written: boolean | null = null;
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly core: ChannelCore) {}

  /** The org the worker authorized a subscriber for: kept, so the row can name it. */
  noteOrg(org: string | undefined): void {
    if (org && this.core.store.meta('org') !== org) this.core.store.setMeta('org', org);
  }

  /** Subscribers came or went: bring the row in line (in the background, in order). */
  sync(): void {
    this.chain = this.chain.then(() => this.write()).catch((e: unknown) => {
      this.written = null; // unknown: the next change writes again
      console.error(`channel ${this.core.store.channel}: live_channels not updated`, e);
    });
  }

  /** For tests: the writes under way are done. */
  settled(): Promise<void> {
    return this.chain;
  }

  private async write(): Promise<void> {
    const channel = this.core.store.channel;
    if (channel === null) return;
    const live = this.core.ctx.getWebSockets(TAG_SUBSCRIBER).some((ws) => ws.readyState === WebSocket.READY_STATE_OPEN);
    if (live === this.written) return;
    const org = this.core.store.meta('org');
    if (live && typeof org !== 'string') return; // subscribers from before orgs were passed: no row to write
    const db = this.core.env.DB;
    if (live) await db.prepare('INSERT INTO live_channels (channel_id, org_id) VALUES (?1, ?2) ON CONFLICT (channel_id) DO UPDATE SET org_id = excluded.org_id').bind(channel, org).run();
    else await db.prepare('DELETE FROM live_channels WHERE channel_id = ?').bind(channel).run();
    this.written = live;
  }
}
