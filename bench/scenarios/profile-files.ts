/* CPU profiles of the `profile` scenario: kept under bench/results/profiles/ (gitignored), their top in the results. */
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Bench, RESULTS, log } from '../lib/bench.js';
import { summarizeProfile } from '../lib/profile.js';
import type { System } from '../lib/systems.js';

export const nowUs = () => Number(process.hrtime.bigint() / 1000n);

export function keepProfile(bench: Bench, profDir: string, system: System, label: string): void {
  const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (file === undefined) {
    log(`${system.name}: no CPU profile was written`);
    return;
  }
  mkdirSync(join(RESULTS, 'profiles'), { recursive: true });
  const kept = join(RESULTS, 'profiles', `${system.name}-${label}.cpuprofile`);
  writeFileSync(kept, readFileSync(join(profDir, file)));
  const summary = summarizeProfile(kept, 25, bench.profileWindow);
  const row = bench.results.profile!.at(-1) as Record<string, unknown> | undefined;
  if (row !== undefined) row.profile = { file: kept.slice(RESULTS.length), ...summary };
  log(`${system.name} ${label} profile (${kept}):\n${summary.text}`);
}
