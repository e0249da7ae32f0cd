/*
 * herd: a hub restart under plain SSE subscribers that behave like
 * EventSource, once with a fixed retry hint and once with the herd controls
 * (bench/herd.ts).
 */
import type { Bench } from '../lib/bench.js';
import { herdComparison, renderHerd } from '../herd.js';

export async function herdScenario(bench: Bench, subscribers: number | undefined): Promise<void> {
  const quick = bench.config.quick;
  const rows = await herdComparison(
    { subscribers: subscribers ?? (quick ? 2000 : 10_000), loaders: 4, channels: 100 },
    bench.port(),
  );
  bench.results.herd!.push({ rows, markdown: renderHerd(rows) });
}
