/*
 * presence (issue 16): what keeping members and publishing joins and leaves
 * costs. Part 1 (presence-fanout.ts): fan-out with presence off, on, and
 * with --presence-events, to subscribers who did not ask; part 2
 * (presence-joins.ts): one join or leave on a big channel against one
 * ordinary message to the same subscribers, at two sizes.
 */
import type { Bench } from '../lib/bench.js';
import { log } from '../lib/bench.js';
import { presenceFanout } from './presence-fanout.js';
import { presenceJoins } from './presence-joins.js';

export interface PresenceOptions {
  /** Share of a joins channel's members that subscribe with ?presence=1 (0 < share ≤ 1). */
  readonly share: number;
  /** Also measure joins and leaves with a Redis of the run's own (`--presence-redis`). */
  readonly redis: boolean;
}

export async function presence(bench: Bench, options: PresenceOptions): Promise<void> {
  await presenceFanoutPart(bench);
  await presenceJoinsPart(bench, options);
}

export async function presenceFanoutPart(bench: Bench): Promise<void> {
  const { quick, repeat } = bench.config;
  bench.results.presence!.push(...(await presenceFanout(bench, quick ? [2000] : [2000, 10_000], repeat)));
}

export async function presenceJoinsPart(bench: Bench, options: PresenceOptions): Promise<void> {
  const { quick, repeat } = bench.config;
  const results = bench.results.presence!;
  log('presence: joins and leaves');
  const sizes = quick ? [500, 2000] : [2500, 10_000];
  const steps = quick ? 10 : 20;
  const brokers = options.redis ? (['memory', 'redis'] as const) : (['memory'] as const);
  results.push(...(await presenceJoins(bench, { sizes, share: options.share, rounds: repeat, steps, brokers })));
}
