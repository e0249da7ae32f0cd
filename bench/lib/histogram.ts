/**
 * Latency histogram in microseconds: 1 µs buckets below 1 ms, then
 * logarithmic buckets (about 1% wide) up to an hour. Cheap to record,
 * cheap to send between processes (a plain array), mergeable by adding.
 */
const LINEAR = 1000;
const LOG_BASE = Math.log(1.01);
const LOG_BUCKETS = Math.ceil(Math.log(3.6e9 / LINEAR) / LOG_BASE) + 1;
export const BUCKETS = LINEAR + LOG_BUCKETS;

export function bucketOf(us: number): number {
  if (us < LINEAR) return us < 0 ? 0 : Math.floor(us);
  const i = LINEAR + Math.floor(Math.log(us / LINEAR) / LOG_BASE);
  return i >= BUCKETS ? BUCKETS - 1 : i;
}

function valueOf(bucket: number): number {
  if (bucket < LINEAR) return bucket;
  return LINEAR * Math.exp((bucket - LINEAR + 0.5) * LOG_BASE);
}

export class Histogram {
  counts = new Float64Array(BUCKETS);
  count = 0;
  max = 0;

  record(us: number): void {
    this.counts[bucketOf(us)]!++;
    this.count++;
    if (us > this.max) this.max = us;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.max = 0;
  }

  /** Sparse form for IPC: [bucket, count, bucket, count, …]. */
  toSparse(): number[] {
    const out: number[] = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i]! > 0) out.push(i, this.counts[i]!);
    return out;
  }

  addSparse(sparse: readonly number[], max: number): void {
    for (let i = 0; i < sparse.length; i += 2) {
      this.counts[sparse[i]!]! += sparse[i + 1]!;
      this.count += sparse[i + 1]!;
    }
    if (max > this.max) this.max = max;
  }

  /** Value at quantile q (0..1), in microseconds; NaN when empty. */
  quantile(q: number): number {
    if (this.count === 0) return NaN;
    const target = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= target) return Math.min(valueOf(i), this.max);
    }
    return this.max;
  }
}
