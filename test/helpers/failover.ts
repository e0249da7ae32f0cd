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
}

export async function publishAttempt(node: KometaProcess, channel: string, k: number): Promise<Attempt> {
  const res = await httpRequest(`${node.url}/pub/${channel}`, {
    method: 'POST',
    headers: { 'Content-Type': 'text/plain' },
    body: `${channel}|${k}`,
  });
  if (res.status === 201) return { channel, k, status: 201, id: res.json<{ id: string }>().id };
  const problem = res.headers['content-type']?.toString().includes('json') ? res.json<{ code?: string }>() : {};
  return { channel, k, status: res.status, code: problem.code };
}

/** Publish until it is answered 201 (bounded), the data of each try numbered by `next`. */
export async function publishUntilStored(
  node: KometaProcess,
  channel: string,
  next: () => number,
  attempts: Attempt[],
): Promise<Attempt> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const attempt = await publishAttempt(node, channel, next());
    attempts.push(attempt);
    if (attempt.status === 201) return attempt;
    if (Date.now() > deadline)
      throw new Error(`publishing to ${channel} kept failing: ${attempt.status} ${attempt.code}`);
    await new Promise((r) => setTimeout(r, 50));
  }
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
