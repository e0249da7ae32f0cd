/** The top of a V8 CPU profile (`node --cpu-prof`): self time by function. */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileSummary {
  totalMs: number;
  top: { fn: string; where: string; selfPct: number; selfMs: number }[];
  text: string;
}

/**
 * `window` limits the summary to samples taken between two CLOCK_MONOTONIC
 * readings in microseconds (process.hrtime in any process on the machine;
 * V8 stamps its samples with the same clock), e.g. one phase of a run.
 */
export function summarizeProfile(path: string, limit: number, window?: readonly [number, number]): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let at = profile.startTime;
  for (let i = 0; i < samples.length; i++) {
    at += deltas[i] ?? 0;
    if (window !== undefined && (at < window[0] || at > window[1])) continue;
    // Each sample's time is the delta to the next one.
    const dt = deltas[i + 1] ?? 0;
    selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + dt);
  }
  const byFunction = new Map<string, { fn: string; where: string; us: number }>();
  let total = 0;
  for (const node of profile.nodes) {
    const us = selfUs.get(node.id) ?? 0;
    if (node.callFrame.functionName === '(idle)') continue;
    total += us;
    const url = node.callFrame.url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/');
    const where = url === '' ? '' : `${url}:${node.callFrame.lineNumber + 1}`;
    const fn = node.callFrame.functionName || '(anonymous)';
    const key = `${fn} ${where}`;
    const entry = byFunction.get(key) ?? { fn, where, us: 0 };
    entry.us += us;
    byFunction.set(key, entry);
  }
  const top = [...byFunction.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, limit)
    .map((e) => ({
      fn: e.fn,
      where: e.where,
      selfPct: Math.round((e.us / total) * 1000) / 10,
      selfMs: Math.round(e.us / 1000),
    }));
  const text = top
    .map((e) => `${e.selfPct.toFixed(1).padStart(5)}%  ${String(e.selfMs).padStart(6)} ms  ${e.fn}  ${e.where}`)
    .join('\n');
  return { totalMs: Math.round(total / 1000), top, text };
}
