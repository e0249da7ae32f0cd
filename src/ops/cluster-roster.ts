import cluster from 'node:cluster';
import type { ClusterMember, MemberStats } from './stats-types.js';

/*
 * The workers of `kometa serve --workers N`, seen from any one of them: each
 * worker sends its record to the primary over node:cluster's IPC channel, and
 * the primary answers with every worker's last record. The primary is the one
 * process that sees all of them and knows at once when one exits.
 */
const BEAT = 'kometa:cluster-view:beat';
const ROSTER = 'kometa:cluster-view:roster';

interface Beat {
  readonly type: typeof BEAT;
  readonly member: MemberStats;
  readonly downAfterMs: number;
}

interface Roster {
  readonly type: typeof ROSTER;
  readonly members: readonly Omit<ClusterMember, 'self'>[];
}

/** In a worker: send `member` to the primary; the primary's answer arrives through `onRoster`. */
export class WorkerRoster {
  #members: readonly Omit<ClusterMember, 'self'>[] = [];
  readonly #onMessage = (message: Partial<Roster>) => {
    if (message?.type === ROSTER && Array.isArray(message.members)) this.#members = message.members;
  };

  /** Undefined outside --workers (no primary to report to). */
  static create(): WorkerRoster | undefined {
    if (!cluster.isWorker || process.send === undefined) return undefined;
    return new WorkerRoster();
  }

  private constructor() {
    process.on('message', this.#onMessage);
  }

  report(member: MemberStats, downAfterMs: number): void {
    // A primary that is gone cannot be told; the roster just stops changing.
    if (process.connected) process.send?.({ type: BEAT, member, downAfterMs } satisfies Beat, undefined, {}, () => {});
  }

  /** Every worker's last record, as of the primary's last answer. */
  get members(): readonly Omit<ClusterMember, 'self'>[] {
    return this.#members;
  }

  close(): void {
    process.off('message', this.#onMessage);
  }
}

/** A worker that exited stays listed as down this long, so that a crash is seen, then it is dropped. */
const FORGET_EXITED_MS = 5 * 60_000;

/** In the primary of --workers: keep each worker's last record and answer every beat with all of them. */
export function serveClusterRoster(): void {
  const seen = new Map<number, { member: MemberStats; at: number; downAfterMs: number; exitedAt?: number }>();
  cluster.on('message', (worker, message: Partial<Beat>) => {
    if (message?.type !== BEAT || typeof message.member !== 'object' || message.member === null) return;
    const now = performance.now();
    seen.set(worker.id, { member: message.member, at: now, downAfterMs: Number(message.downAfterMs) || 6000 });
    for (const [id, entry] of seen) {
      if (entry.exitedAt !== undefined && now - entry.exitedAt > FORGET_EXITED_MS) seen.delete(id);
    }
    const members = [...seen.values()].map((entry) => ({
      ...entry.member,
      state: entry.exitedAt === undefined && now - entry.at <= entry.downAfterMs ? ('up' as const) : ('down' as const),
    }));
    if (worker.isConnected()) worker.send({ type: ROSTER, members } satisfies Roster, undefined, () => {});
  });
  cluster.on('exit', (worker) => {
    const entry = seen.get(worker.id);
    if (entry !== undefined) entry.exitedAt = performance.now();
  });
}
