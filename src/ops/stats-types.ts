/*
 * What the hub publishes to the dashboard once a second, on the operator
 * channel `stats` (see docs/operations.md). Types only: the dashboard's
 * browser code imports them too.
 */

export interface StatsSample {
  /** Sample time, ms since 1970. */
  readonly t: number;
  /** Seconds since the process started. */
  readonly uptime: number;
  readonly pid: number;
  readonly node: string;
  /** sse/stream/poll: open subscriber requests; ws: WebSocket connections. */
  readonly connections: { readonly sse: number; readonly stream: number; readonly poll: number; readonly ws: number };
  readonly subscriptions: number;
  readonly channels: number;
  /** Totals since start. */
  readonly published: number;
  readonly delivered: number;
  readonly publishedBytes: number;
  readonly deliveredBytes: number;
  readonly gaps: number;
  /** Per second over the last sample interval. */
  readonly rates: { readonly published: number; readonly delivered: number; readonly deliveredBytes: number };
  /** Slow consumers closed since start, by transport. */
  readonly slowCloses: Readonly<Record<string, number>>;
  /** Errors answered since start, by code. */
  readonly errors: Readonly<Record<string, number>>;
  readonly memory: {
    readonly rss: number;
    readonly heapUsed: number;
    readonly heapTotal: number;
    readonly external: number;
  };
  /** Event-loop delay over the interval (perf_hooks.monitorEventLoopDelay), in ms. */
  readonly eventLoop: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly broker: { readonly ok: boolean; readonly reason?: string };
  /** Busiest channels here: by subscribers, then messages per second. */
  readonly top: readonly { readonly name: string; readonly subscribers: number; readonly perSecond: number }[];
}

/** One step of a wire exchange, as the inspector records it (terminal and dashboard). */
export type WireEvent =
  | {
      readonly type: 'connect';
      readonly t: number;
      readonly remote: string;
      readonly ms: number;
      readonly tls?: string;
    }
  | {
      readonly type: 'request';
      readonly t: number;
      readonly index: number;
      readonly reused: boolean;
      readonly head: string;
    }
  | {
      readonly type: 'response';
      readonly t: number;
      readonly index: number;
      readonly httpVersion: string;
      readonly status: number;
      readonly statusText: string;
      readonly headers: readonly (readonly [string, string])[];
    }
  | {
      readonly type: 'chunk';
      readonly t: number;
      readonly index: number;
      /**
       * `chunked`: one HTTP/1.1 chunk, as framed by the server; `read`: one read from the socket (a body without
       * chunked framing); `write`: one write by the server to a tapped connection.
       */
      readonly framing: 'chunked' | 'read' | 'write';
      /** Chunk number within the response, from 1. */
      readonly n: number;
      readonly size: number;
      readonly text: string;
      readonly truncated: boolean;
    }
  | {
      readonly type: 'end';
      readonly t: number;
      readonly index: number;
      readonly bytes: number;
      readonly chunks: number;
      readonly keepAlive: boolean;
    }
  | { readonly type: 'close'; readonly t: number; readonly reason: string }
  | { readonly type: 'error'; readonly t: number; readonly message: string };

/**
 * One process of a deployment, as it reports itself to the others: every
 * worker of `--workers N` to the primary, every node sharing a Redis to that
 * Redis (see docs/operations.md, "The whole cluster").
 */
export interface MemberStats {
  /** `host:pid`: unique among the processes sharing a Redis. */
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  /** node:cluster's worker number under --workers; absent for a single-process node. */
  readonly worker?: number;
  /** When this record was taken, ms since 1970 (the reporter's clock: for people, not for liveness). */
  readonly t: number;
  readonly uptime: number;
  readonly connections: { readonly sse: number; readonly stream: number; readonly poll: number; readonly ws: number };
  readonly subscriptions: number;
  readonly channels: number;
  readonly rates: { readonly published: number; readonly delivered: number };
  readonly rss: number;
  readonly brokerOk: boolean;
}

/** A member as the dashboard lists it: `down` once its record is older than its time to live. */
export interface ClusterMember extends MemberStats {
  readonly state: 'up' | 'down';
  /** The process answering this request. */
  readonly self: boolean;
}

/** Sums over the members that are up. */
export interface ClusterTotals {
  readonly up: number;
  readonly down: number;
  readonly connections: number;
  readonly subscriptions: number;
  readonly rates: { readonly published: number; readonly delivered: number };
}

/** `GET /_kometa/api/cluster`: this process, its sibling workers, and the nodes sharing its Redis. */
export interface ClusterSnapshot {
  readonly self: string;
  /** The workers of this machine's `--workers N` (from the primary); absent for a single process. */
  readonly workers?: readonly ClusterMember[];
  /** Every process sharing this Redis (from Redis); absent without Redis. */
  readonly nodes?: readonly ClusterMember[];
  /** Over `nodes` when there are nodes, else over `workers`, else this process alone. */
  readonly totals: ClusterTotals;
  /** Seconds: how often members report, and after how long without a report one is shown down. */
  readonly beatSeconds: number;
  readonly downAfterSeconds: number;
}
