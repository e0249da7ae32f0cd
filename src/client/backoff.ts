export interface BackoffOptions {
  /** The first retry waits up to this long. */
  readonly baseMs?: number;
  /** No retry waits longer than this. */
  readonly maxMs?: number;
}

/**
 * Exponential backoff with full jitter: attempt n waits a uniformly random
 * time in [0, min(max, base * 2^n)). Spreading retries over the whole window
 * keeps thousands of clients that lost the same server from coming back in
 * step (a reconnect storm).
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const base = options.baseMs ?? 500;
  const max = options.maxMs ?? 20_000;
  const window = Math.min(max, base * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * window);
}
