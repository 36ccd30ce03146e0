import { AUTHORIZE_BATCH } from '../../shared/authorize';
import type { Principal } from '../../shared/principal';
import { PlatformError, type Decision, type MessageAction } from './types';

/**
 * Coalesces the bridge's `/internal/authorize` questions into batch requests (`{items}`): what
 * the sessions ask in one event-loop turn leaves together, split at the worker's bound
 * (shared/authorize.ts). After an access change every session of the org asks at once — the
 * platform client tells them all in one synchronous loop — so a thousand sessions cost ten requests
 * (each one D1 round trip on the worker), not a thousand.
 *
 * The window is the turn, closed by `setImmediate`: it catches every question raised by that loop
 * and by whatever its promises run next, and adds no timer to a lone question (a session's first
 * PUBLISH waits for a few microseconds, not a millisecond). A lone question goes in the single
 * form, as before batches existed.
 *
 * A batch the worker refuses (4xx) has its questions asked one by one, so that a question the worker
 * will not take (one principal with more scopes than it accepts, say) fails alone instead of
 * failing — and so holding back the re-checks of — up to a hundred other sessions. A worker from
 * before batches refuses the batch form — 422, its schema wanting the single form's `principal` and
 * `checks` (`olderWorker`) — and batches are then not tried again for `SINGLES_FOR_MS`; after any
 * other refusal the next turn is a batch again. Any other failure of a batch (the platform away, a
 * 5xx) fails each of its questions with that error, as a failed single request did.
 */

export interface AuthorizeItem {
  principal: Principal;
  checks: { channel: string; action: MessageAction }[];
}

export interface AuthorizeAnswer {
  results: Decision[];
  /** The credential itself is no longer good: every result is this refusal. */
  refused?: { status: number; reason: string };
}

/** Sends one request through the platform client's in-flight limit. */
export type Send = <T>(path: string, body: unknown) => Promise<T>;

/**
 * A worker from before batches, told a batch: it reads the body as the single form, which has no
 * `items`, so it answers 422 with every issue at the single form's keys (problem JSON `errors`:
 * `principal` and `checks` missing). A worker that knows batches names `items…` in a 422, whatever
 * is wrong with the batch; a 400, 404, 413 or a 422 without those paths is no sign of an older one.
 */
export function olderWorker(e: unknown): boolean {
  return e instanceof PlatformError && e.status === 422 && !!e.paths?.length && e.paths.every((p) => p === 'principal' || p === 'checks');
}
/** After an older worker's refusal, single requests only for this long (the worker may be upgraded meanwhile). */
export const SINGLES_FOR_MS = 60_000;

interface Question {
  item: AuthorizeItem;
  resolve: (a: AuthorizeAnswer) => void;
  reject: (e: unknown) => void;
}

export class AuthorizeBatcher {
  private pending: Question[] = [];
  private scheduled = false;
  private singlesUntil = -Infinity;

  constructor(
    private readonly send: Send,
    private readonly now: () => number,
  ) {}

  /** Asks about one principal (at most AUTHORIZE_BATCH.checksPerItem checks; none: only its credential). */
  ask(item: AuthorizeItem): Promise<AuthorizeAnswer> {
    return new Promise((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const questions = this.pending;
    this.pending = [];
    let batch: Question[] = [];
    let checks = 0;
    for (const q of questions) {
      if (batch.length === AUTHORIZE_BATCH.items || checks + q.item.checks.length > AUTHORIZE_BATCH.checks) {
        void this.sendBatch(batch);
        batch = [];
        checks = 0;
      }
      batch.push(q);
      checks += q.item.checks.length;
    }
    if (batch.length) void this.sendBatch(batch);
  }

  private async sendBatch(batch: Question[]): Promise<void> {
    if (batch.length === 1 || this.now() < this.singlesUntil) return batch.forEach((q) => this.single(q));
    let items: AuthorizeAnswer[];
    try {
      ({ items } = await this.send<{ items: AuthorizeAnswer[] }>('/internal/authorize', { items: batch.map((q) => q.item) }));
      if (!Array.isArray(items) || items.length !== batch.length) throw new PlatformError(503, `platform answered ${Array.isArray(items) ? items.length : 'no'} items for ${batch.length} questions`);
    } catch (e) {
      if (!(e instanceof PlatformError) || e.status < 400 || e.status >= 500) return batch.forEach((q) => q.reject(e));
      if (olderWorker(e)) this.singlesUntil = this.now() + SINGLES_FOR_MS;
      return batch.forEach((q) => this.single(q));
    }
    batch.forEach((q, i) => q.resolve(items[i]!));
  }

  private single(q: Question): void {
    this.send<AuthorizeAnswer>('/internal/authorize', q.item).then(q.resolve, q.reject);
  }
}
