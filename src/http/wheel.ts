/**
 * Deadlines counted in the sweep's ticks: one Map entry per tick that has
 * something due, one shared timer for everything. Used for long-poll timeouts
 * and credential expiry, so no connection owns a timer.
 */
export class TimeoutWheel<T> {
  readonly #buckets = new Map<number, Set<T>>();
  readonly #due = new Map<T, number>();

  add(item: T, tick: number): void {
    this.delete(item);
    let bucket = this.#buckets.get(tick);
    if (bucket === undefined) this.#buckets.set(tick, (bucket = new Set()));
    bucket.add(item);
    this.#due.set(item, tick);
  }

  delete(item: T): void {
    const tick = this.#due.get(item);
    if (tick === undefined) return;
    this.#due.delete(item);
    const bucket = this.#buckets.get(tick);
    bucket?.delete(item);
    if (bucket?.size === 0) this.#buckets.delete(tick);
  }

  /** Remove and return what is due at `tick`. */
  take(tick: number): T[] {
    const bucket = this.#buckets.get(tick);
    if (bucket === undefined) return [];
    this.#buckets.delete(tick);
    for (const item of bucket) this.#due.delete(item);
    return [...bucket];
  }

  /** Everything still waiting (for shutdown). */
  drain(): T[] {
    const all = [...this.#due.keys()];
    this.#buckets.clear();
    this.#due.clear();
    return all;
  }

  get size(): number {
    return this.#due.size;
  }
}
