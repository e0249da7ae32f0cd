/*
 * Against the thundering herd: when a hub restarts, every subscriber it had
 * comes back. With one fixed `retry:` they all come back in the same second
 * (Socket.IO #2998, centrifuge-js #371), and the process spends that second
 * parsing handshakes and reading history for everyone at once. Two remedies
 * here, both documented in docs/tls.md#reconnect-storms:
 *
 * - reconnect hints drawn at random from a range around `--retry`, so the
 *   next restart's returns are spread out even for a plain EventSource;
 * - a bound on how many new streaming subscriptions are admitted per second;
 *   past it a subscriber is told to come back later, at a time drawn from the
 *   span the refused backlog needs at that rate.
 */

/** Reconnect hints spread over `retryMs × (1 ± jitter)`. */
export class RetryHints {
  constructor(
    readonly retryMs: number,
    /** 0 to 1: the spread of the range, as a fraction of retryMs (0 = every hint is retryMs). */
    readonly jitter: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** The `retry:` hint, in milliseconds, for one connection. */
  hintMs(): number {
    if (this.jitter === 0) return this.retryMs;
    return Math.round(this.retryMs * (1 - this.jitter + 2 * this.jitter * this.random()));
  }

  /** The bounds hintMs draws from. */
  get rangeMs(): readonly [number, number] {
    return [Math.round(this.retryMs * (1 - this.jitter)), Math.round(this.retryMs * (1 + this.jitter))];
  }

  /**
   * `Retry-After` (whole seconds, at least 1) for a request refused while
   * draining: drawn from the same range, rounded outward; 1 without jitter,
   * as before.
   */
  retryAfterSeconds(): number {
    if (this.jitter === 0) return 1;
    const [low, high] = this.rangeMs;
    const least = Math.max(1, Math.floor(low / 1000));
    const most = Math.max(least, Math.ceil(high / 1000));
    return least + Math.floor(this.random() * (most - least + 1));
  }
}

/** A refusal: come back after this long (already spread at random). */
export interface Refusal {
  readonly retryMs: number;
}

/**
 * New streaming subscriptions admitted per second at most: a token bucket
 * holding one second's worth, so a quiet hub takes a burst of `rate` at once
 * and a storm is taken at `rate` per second. A refused subscriber is sent
 * back for a time drawn from [the retry range's low end, that plus the time
 * the backlog refused over the last second needs at `rate`]: the more are
 * refused, the wider they are spread, and the admitted rate stays steady.
 */
export class Admission {
  #tokens: number;
  #last: number;
  #windowStart: number;
  #refusedInWindow = 0;
  #refusedLastWindow = 0;
  #admitted = 0;
  #refused = 0;

  constructor(
    readonly rate: number,
    private readonly hints: RetryHints,
    private readonly now: () => number = () => performance.now(),
    private readonly random: () => number = Math.random,
  ) {
    this.#tokens = rate;
    this.#last = this.now();
    this.#windowStart = this.#last;
  }

  get admitted(): number {
    return this.#admitted;
  }

  get refused(): number {
    return this.#refused;
  }

  /** Take one subscription now, or say when to come back. */
  admit(): Refusal | undefined {
    if (this.rate <= 0) return undefined;
    const now = this.now();
    this.#tokens = Math.min(this.rate, this.#tokens + ((now - this.#last) / 1000) * this.rate);
    this.#last = now;
    if (now - this.#windowStart >= 1000) {
      this.#refusedLastWindow = now - this.#windowStart >= 2000 ? 0 : this.#refusedInWindow;
      this.#refusedInWindow = 0;
      this.#windowStart = now;
    }
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      this.#admitted++;
      return undefined;
    }
    this.#refused++;
    this.#refusedInWindow++;
    const backlog = Math.max(this.#refusedInWindow, this.#refusedLastWindow);
    const [low, high] = this.hints.rangeMs;
    const spanMs = Math.max(high - low, (backlog / this.rate) * 1000);
    return { retryMs: Math.round(Math.max(low, 1000) + this.random() * spanMs) };
  }
}
