import assert from 'node:assert/strict';
import { httpRequest } from './hub.js';
import { type KometaProcess, type SseCollector, sseCollector } from './redis.js';

/*
 * What the failover tests (Redis Cluster, Sentinel) share: publishes whose
 * data says which try they were (`channel|k`), and subscribers of many
 * channels whose deliveries are sorted out per channel.
 */

type After = { after(fn: () => Promise<void> | void): void };

export interface Attempt {
  readonly channel: string;
  readonly k: number;
  readonly status: number;
  readonly id?: string;
  readonly code?: string;
  /** The problem's detail, when refused: it says why (unreachable, or still checking after a reconnect). */
  readonly detail?: string;
}

export async function publishAttempt(node: KometaProcess, channel: string, k: number): Promise<Attempt> {
  const res = await httpRequest(`${node.url}/pub/${channel}`, {
    method: 'POST',
    headers: { 'Content-Type': 'text/plain' },
    body: `${channel}|${k}`,
  });
  if (res.status === 201) return { channel, k, status: 201, id: res.json<{ id: string }>().id };
  const problem = res.headers['content-type']?.toString().includes('json')
    ? res.json<{ code?: string; detail?: string }>()
    : {};
  return { channel, k, status: res.status, code: problem.code, detail: problem.detail };
}

/**
 * Publish until it is answered 201 (bounded), the data of each try numbered by `next`. When it gives up, the error
 * says why the node refused, what its /healthz says, the end of its output and whatever `context` adds (the
 * sentinels' view, say): a failure seen once in a full run must be diagnosable from its log alone.
 */
export async function publishUntilStored(
  node: KometaProcess,
  channel: string,
  next: () => number,
  attempts: Attempt[],
  context?: () => Promise<string>,
): Promise<Attempt> {
  const started = Date.now();
  const deadline = started + 60_000;
  for (;;) {
    const attempt = await publishAttempt(node, channel, next());
    attempts.push(attempt);
    if (attempt.status === 201) return attempt;
    if (Date.now() > deadline) {
      throw new Error(
        `publishing to ${channel} kept failing for ${Date.now() - started} ms: ${attempt.status} ${attempt.code}; ` +
          `why, by count: ${refusals(attempts, channel)}\n` +
          `${await describeNode(node)}${context === undefined ? '' : `\n${await context().catch(String)}`}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The reasons a channel's publishes were refused, each with how often: `detail ×n; …`. */
function refusals(attempts: readonly Attempt[], channel: string): string {
  const counts = new Map<string, number>();
  for (const x of attempts) {
    if (x.channel !== channel || x.status === 201) continue;
    const why = `${x.status} ${x.detail ?? x.code ?? ''}`;
    counts.set(why, (counts.get(why) ?? 0) + 1);
  }
  return [...counts].map(([why, n]) => `${why} ×${n}`).join('; ');
}

/** A node's /healthz and the end of its output, for a failure message. */
export async function describeNode(node: KometaProcess): Promise<string> {
  const health = await httpRequest(`${node.url}/healthz`).then(
    (res) => `${res.status} ${res.body}`,
    (error: unknown) => `no answer (${String(error)})`,
  );
  return `node ${node.url}: /healthz ${health}\nits output ends:\n${node.output().slice(-3000)}`;
}

export function subscribe(t: After, node: KometaProcess, cursor: string, channels: readonly string[]): SseCollector {
  const query = channels.map((c) => `channel=${c}`).join('&');
  const collector = sseCollector(`${node.url}/sub?${query}&lastEventId=${encodeURIComponent(cursor)}`);
  t.after(() => collector.close());
  return collector;
}

/** The entry for `channel` in a cursor `a~e~1,b~e~2,…`. */
export function positionIn(cursor: string, channel: string): { epoch: string; seq: number } {
  const entry = cursor.split(',').find((e) => e.startsWith(`${channel}~`));
  if (entry === undefined) throw new Error(`${channel} is not in the cursor`);
  const [, epoch, seq] = entry.split('~');
  return { epoch: epoch!, seq: Number(seq) };
}

export interface Delivery {
  readonly k: number;
  readonly epoch: string;
  readonly seq: number;
}

/** What one subscriber got, per channel, in arrival order (data is `channel|k`). */
export function byChannel(received: readonly { id: string; data: string }[]): Map<string, Delivery[]> {
  const out = new Map<string, Delivery[]>();
  for (const r of received) {
    const [channel, k] = r.data.split('|');
    const list = out.get(channel!) ?? [];
    list.push({ k: Number(k), ...positionIn(r.id, channel!) });
    out.set(channel!, list);
  }
  return out;
}

/**
 * The promise after a failover, for one subscriber of `channels`: per
 * channel, messages in publish order and never twice, positions never going
 * back within an epoch, and every message answered 201 (after the one
 * numbered `fromK`, where the subscriber started) delivered — or, if some
 * were lost, an explicit gap notice on that channel.
 */
export function assertEverythingOrGap(
  sub: SseCollector,
  channels: readonly string[],
  attempts: readonly Attempt[],
  fromK: number,
): void {
  const got = byChannel(sub.received);
  const stored = attempts.filter((x) => x.status === 201 && x.k > fromK);
  for (const c of channels) {
    const list = got.get(c) ?? [];
    const ks = list.map((d) => d.k);
    // In order and never twice (k only grows per channel, one k per publish).
    for (let i = 1; i < ks.length; i++) {
      if (ks[i]! > ks[i - 1]!) continue;
      const where = sub.received.flatMap((r, n) => (r.data === `${c}|${ks[i]}` ? [n] : []));
      assert.fail(
        `${c}: ${ks[i - 1]} (${list[i - 1]!.epoch}:${list[i - 1]!.seq}) then ${ks[i]} ` +
          `(${list[i]!.epoch}:${list[i]!.seq}): out of order or twice (at ${where.join(', ')} of ` +
          `${sub.received.length}; the subscriber (re)connected ${sub.opens()} times)`,
      );
    }
    for (let i = 1; i < list.length; i++) {
      if (list[i]!.epoch === list[i - 1]!.epoch)
        assert.ok(list[i]!.seq > list[i - 1]!.seq, `${c}: positions never go backwards within an epoch`);
    }
    const received = new Set(ks);
    const missing = stored.filter((x) => x.channel === c && !received.has(x.k));
    if (missing.length > 0) {
      assert.ok(
        sub.gaps.some((g) => (g as { channel?: string }).channel === c),
        `${c}: ${missing.length} stored messages missing (${missing.map((x) => x.k).join(',')}) without a gap notice`,
      );
    }
  }
}
