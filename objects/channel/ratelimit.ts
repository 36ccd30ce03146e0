import type { Rate } from './config';

/**
 * Token buckets in the actor's memory. Losing them on eviction only forgives a burst, which is
 * acceptable for a limit whose job is protecting the channel, not billing.
 */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private rate: Rate,
    now: number,
  ) {
    this.tokens = rate.burst;
    this.at = now;
  }

  private refill(now: number): void {
    if (now > this.at) {
      this.tokens = Math.min(this.rate.burst, this.tokens + ((now - this.at) / 1000) * this.rate.perSecond);
      this.at = now;
    }
  }

  available(now: number): number {
    this.refill(now);
    return this.tokens;
  }

  take(): void {
    this.tokens -= 1;
  }

  /** Seconds until one token is back (for Retry-After, RFC 9110 §10.2.3). */
  retryAfter(now: number): number {
    this.refill(now);
    return Math.max(1, Math.ceil((1 - this.tokens) / this.rate.perSecond));
  }

  reconfigure(rate: Rate): void {
    this.rate = rate;
    this.tokens = Math.min(this.tokens, rate.burst);
  }
}

const MAX_TRACKED_PUBLISHERS = 10_000;

export type Limited = { scope: 'channel' | 'publisher'; retryAfter: number };

export class RateLimiter {
  private channel: TokenBucket;
  private publishers = new Map<string, TokenBucket>();

  constructor(
    private channelRate: Rate,
    private publisherRate: Rate,
    now: number,
  ) {
    this.channel = new TokenBucket(channelRate, now);
  }

  reconfigure(channelRate: Rate, publisherRate: Rate): void {
    this.channelRate = channelRate;
    this.publisherRate = publisherRate;
    this.channel.reconfigure(channelRate);
    for (const b of this.publishers.values()) b.reconfigure(publisherRate);
  }

  /** Takes one token from both buckets, or none and says which one is empty. */
  take(publisher: string, now: number): Limited | null {
    let bucket = this.publishers.get(publisher);
    if (!bucket) {
      // Bounded memory: a flood of distinct publishers resets everyone's bucket to full.
      if (this.publishers.size >= MAX_TRACKED_PUBLISHERS) this.publishers.clear();
      bucket = new TokenBucket(this.publisherRate, now);
      this.publishers.set(publisher, bucket);
    }
    if (bucket.available(now) < 1) return { scope: 'publisher', retryAfter: bucket.retryAfter(now) };
    if (this.channel.available(now) < 1) return { scope: 'channel', retryAfter: this.channel.retryAfter(now) };
    bucket.take();
    this.channel.take();
    return null;
  }
}
