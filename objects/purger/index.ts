import { DurableObject } from 'cloudflare:workers';
import { purgePass, retryDelay } from './purge';

export { PURGE_CHUNK } from './purge';

/** Chunks per alarm: each costs ~2 subrequests per channel (its actor, its blob listing), so a pass stays well inside an invocation's limit. */
const PASS_CHUNKS = 4;
/** A pass stops starting chunks after this long and goes on in the next alarm (set for now). */
const PASS_MS = 10_000;

/**
 * The channel purger: one actor that drives the purges of deleted channels (D1 `channel_purges`,
 * migrations/0008; the steps in purge.ts) to completion. Deleting a channel or an org records its
 * channels' purges in the same D1 batch as the delete and then `kick`s this actor; its alarm does
 * the work in passes, and sets itself again while any purge waits: for now when more are due, for
 * the earliest retry when the rest back off. An alarm survives eviction and restarts, and the
 * worker's cron trigger kicks it too (workers/index.ts), so a purge recorded when this actor could
 * not be told still starts. It keeps nothing but its own failures in a row (for the back-off of
 * a pass that could not even read D1): the work list is D1's.
 */
export class ChannelPurger extends DurableObject<Env> {
  /** Kicked while a pass ran: the pass may have read the list before the new purges were in it. */
  private kicked = false;

  /** New purges are recorded: a pass starts now (unless one is already due sooner). */
  async kick(): Promise<void> {
    this.kicked = true;
    const now = Date.now();
    const at = await this.ctx.storage.getAlarm();
    if (at === null || at > now) await this.ctx.storage.setAlarm(now);
  }

  override async alarm(): Promise<void> {
    this.kicked = false;
    let next: number | null;
    try {
      next = await purgePass(this.env, PASS_CHUNKS, Date.now() + PASS_MS);
      await this.ctx.storage.delete('failures');
    } catch (e) {
      const failures = ((await this.ctx.storage.get<number>('failures')) ?? 0) + 1;
      await this.ctx.storage.put('failures', failures);
      const delay = retryDelay(this.env, failures);
      console.error(`channel purger: a pass failed (${failures} time(s) in a row); tried again in ${delay} ms`, e);
      next = Date.now() + delay;
    }
    if (this.kicked) next = Date.now();
    if (next !== null) await this.ctx.storage.setAlarm(next);
  }
}
