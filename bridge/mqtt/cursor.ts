import type { StoredCursor } from './session';

/**
 * How far one subscription has got in one channel (the resume point of a persistent session).
 * Seqs of a channel are strictly increasing but a filter sees only some of them, and QoS 1/2
 * acknowledgements may come back in any order, so the cursor is a low-water mark (`since`: all
 * matching messages up to it are done) plus the seqs completed above it. "Done" means delivered
 * at QoS 0, PUBACKed, PUBRECed, or discarded as the spec allows (expired, too large for the client).
 */
export class Cursor {
  private sinceSeq: number | null;
  private readonly open = new Set<number>();
  private readonly done = new Set<number>();
  /**
   * A shared group spanning bridges (shares.ts): this bridge sees only some of the channel's seqs, and
   * a delivery given back elsewhere may come here later with a seq below `since` — so nothing is
   * skipped by the mark (the group skips what it has in flight itself).
   */
  spanning = false;
  /** Told of every seq finished (a spanning group settles it with the channel actor). */
  onFinished: ((seq: number) => void) | null = null;

  /** `start`: the channel's seq when the subscription began, if the platform told us. */
  constructor(stored?: StoredCursor, start?: number) {
    this.sinceSeq = stored?.since ?? start ?? null;
    for (const s of stored?.acked ?? []) this.done.add(s);
  }

  get since(): number | null {
    return this.sinceSeq;
  }

  /**
   * Already done: a replay after a resume skips it (no second copy of an acknowledged message). A
   * seq still handed out is never done, even below `since`: only liveFrom puts one there (a group
   * that stopped spanning while a member held it), and given back it must go out again.
   */
  skip(seq: number): boolean {
    return !this.spanning && this.sinceSeq !== null && !this.open.has(seq) && (seq <= this.sinceSeq || this.done.has(seq));
  }

  /** The channel's seq when the subscription was registered: nothing before it concerns us. */
  begin(seq: number): void {
    if (this.sinceSeq !== null) return;
    this.sinceSeq = seq;
    for (const s of this.done) if (s <= seq) this.done.delete(s);
  }

  /** How many seqs are done above `since`: what one unfinished delivery holds back. */
  get ahead(): number {
    return this.done.size;
  }

  /** Handed out and not yet finished (in flight or queued somewhere). */
  pending(seq: number): boolean {
    return this.open.has(seq);
  }

  handed(seq: number): void {
    if (!this.skip(seq)) this.open.add(seq);
  }

  /**
   * A group that stopped spanning subscribes again live from `seq` (its new subscription's): what
   * came before was the spanning subscription's business (the mark did not follow it), so a later
   * resume starts here rather than replaying what other bridges took.
   */
  liveFrom(seq: number): void {
    if (this.sinceSeq === null || seq > this.sinceSeq) this.sinceSeq = seq;
  }

  finished(seq: number): void {
    this.open.delete(seq);
    // A spanning group never resumes by the mark (shares.ts subscribes it without `since`): keeping
    // one would walk `done` on every finish behind one pending seq (quadratic under load).
    if (this.spanning) {
      this.onFinished?.(seq);
      return;
    }
    this.done.add(seq);
    let low: number;
    if (this.open.size > 0) {
      low = Infinity;
      for (const s of this.open) low = Math.min(low, s - 1);
    } else {
      low = this.sinceSeq ?? -Infinity;
      for (const s of this.done) low = Math.max(low, s);
    }
    if (this.sinceSeq === null || low > this.sinceSeq) this.sinceSeq = low;
    for (const s of this.done) if (s <= this.sinceSeq) this.done.delete(s);
    this.onFinished?.(seq);
  }

  toStored(): StoredCursor | null {
    return this.sinceSeq === null ? null : { since: this.sinceSeq, acked: [...this.done].sort((a, b) => a - b) };
  }
}
