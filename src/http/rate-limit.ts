import type { Grant } from '../auth/grant.js';
import { monotonicClock } from '../core/clock.js';

/**
 * Token buckets keyed by who is publishing (a token's subject, the publisher
 * key, or the client address for anonymous publishers). Buckets refill lazily
 * from the time of each request, so there is no timer; full buckets are
 * forgotten by `prune`, so the map only holds recent publishers. Refills are
 * timed on the monotonic clock: a wall clock stepped back an hour must not
 * owe a publisher an hour of tokens.
 */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    /** Sustained requests per second; 0 turns the limit off. */
    readonly perSecond: number,
    /** Requests allowed in a burst. */
    readonly burst: number = perSecond * 2,
    private readonly now: () => number = monotonicClock.now,
  ) {}

  /** Take one token; returns 0 when allowed, else the seconds until one is free. */
  take(key: string): number {
    if (this.perSecond <= 0) return 0;
    const now = this.now();
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: this.burst, at: now };
      this.#buckets.set(key, bucket);
    } else {
      bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.perSecond);
      bucket.at = now;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - bucket.tokens) / this.perSecond);
  }

  /**
   * Take one publish for whoever holds `grant`: keyed by the token's subject,
   * or by the client address when anonymous. The publisher key is the
   * backends' own credential and is never limited.
   */
  takePublish(grant: Grant, remoteAddress: string | undefined): number {
    if (grant.kind === 'publisher-key') return 0;
    return this.take(grant.kind === 'anonymous' ? `ip:${remoteAddress}` : grant.subject);
  }

  prune(): void {
    const now = this.now();
    for (const [key, bucket] of this.#buckets) {
      if (bucket.tokens + ((now - bucket.at) / 1000) * this.perSecond >= this.burst) this.#buckets.delete(key);
    }
  }

  get size(): number {
    return this.#buckets.size;
  }
}
