/**
 * One shared timer for many deadlines — the hub's long-poll timeouts,
 * credential expiry and heartbeats, the proxy's hold timeouts, keep-alives, next-link
 * refreshes and deferred stages: a wheel of buckets
 * keyed by tick, swept by one interval that runs only while something is
 * scheduled, instead of one timer per connection.
 *
 * A task due in `ms` never runs earlier than `ms` from when it was scheduled
 * (ticks are counted from the wheel's start on the monotonic clock, and the
 * due tick is rounded up), and at most about one tick later.
 */
export interface WheelTask {
  cancel(): void;
}

interface Entry extends WheelTask {
  readonly fn: () => void;
  cancelled: boolean;
}

export class TimerWheel {
  readonly #buckets = new Map<number, Set<Entry>>();
  readonly #start = performance.now();
  #swept: number;
  #size = 0;
  #interval: NodeJS.Timeout | undefined;

  constructor(readonly tickMs = 100) {
    this.#swept = 0;
  }

  /** The tick the wheel has reached: a cheap "now" for callers that count idle time. */
  get tick(): number {
    return this.#swept;
  }

  get size(): number {
    return this.#size;
  }

  schedule(ms: number, fn: () => void): WheelTask {
    return this.#at(this.#dueIn(ms), fn);
  }

  /**
   * Run `fn` every `ms` (rounded to whole ticks, at least one) until cancelled:
   * one entry on the wheel, not a timer. The period is counted in ticks from
   * the first due tick, so a late sweep does not push later runs later.
   */
  every(ms: number, fn: () => void): WheelTask {
    const period = Math.max(1, Math.round(ms / this.tickMs));
    let due = this.#dueIn(period * this.tickMs);
    const run = (): void => {
      due = Math.max(due + period, this.#swept + 1);
      current = this.#at(due, run);
      fn();
    };
    let current = this.#at(due, run);
    return { cancel: () => current.cancel() };
  }

  /** The tick at which something due in `ms` runs: never earlier, at most about a tick later. */
  #dueIn(ms: number): number {
    const elapsed = performance.now() - this.#start;
    // An empty wheel has no interval running; skip the ticks it slept through.
    if (this.#interval === undefined) this.#swept = Math.max(this.#swept, Math.floor(elapsed / this.tickMs));
    return Math.max(this.#swept + 1, Math.ceil((elapsed + ms) / this.tickMs));
  }

  #at(due: number, fn: () => void): WheelTask {
    const entry: Entry = {
      fn,
      cancelled: false,
      cancel: () => {
        if (entry.cancelled) return;
        entry.cancelled = true;
        const bucket = this.#buckets.get(due);
        if (bucket?.delete(entry)) {
          this.#size--;
          if (bucket.size === 0) this.#buckets.delete(due);
          this.#idle();
        }
      },
    };
    let bucket = this.#buckets.get(due);
    if (bucket === undefined) this.#buckets.set(due, (bucket = new Set()));
    bucket.add(entry);
    this.#size++;
    if (this.#interval === undefined) {
      this.#interval = setInterval(() => this.#sweep(), this.tickMs);
      this.#interval.unref();
    }
    return entry;
  }

  #sweep(): void {
    const now = Math.floor((performance.now() - this.#start) / this.tickMs);
    while (this.#swept < now) {
      this.#swept++;
      const bucket = this.#buckets.get(this.#swept);
      if (bucket === undefined) continue;
      this.#buckets.delete(this.#swept);
      for (const entry of bucket) {
        this.#size--;
        if (entry.cancelled) continue;
        entry.cancelled = true;
        try {
          entry.fn();
        } catch (error) {
          // A task's failure is its own; the others in the bucket still run.
          queueMicrotask(() => {
            throw error;
          });
        }
      }
    }
    this.#idle();
  }

  #idle(): void {
    if (this.#size === 0 && this.#interval !== undefined) {
      clearInterval(this.#interval);
      this.#interval = undefined;
    }
  }

  /** Drop every task (shutdown). */
  clear(): void {
    for (const bucket of this.#buckets.values()) for (const entry of bucket) entry.cancelled = true;
    this.#buckets.clear();
    this.#size = 0;
    this.#idle();
  }
}
