/** Messages between the bench's parent process and its load generators (IPC). */

export type SubscriberKind = 'sse' | 'poll' | 'ws';

export interface ConnectOrder {
  readonly type: 'connect';
  readonly host: string;
  readonly port: number;
  readonly kind: SubscriberKind;
  /** Subscribers this process opens. */
  readonly count: number;
  /** Request path; `{ch}` is replaced by the subscriber's channel, `{i}` by its global index. */
  readonly path: string;
  /** One channel for all (`c`), or one each (`prefix` + global index) when `perSocketChannel`. */
  readonly channel: string;
  readonly perSocketChannel: boolean;
  /** With `perSocketChannel`: spread subscribers over this many channels (`prefix` + global index mod `channels`). */
  readonly channels?: number;
  /** Global index of this process's first subscriber (channel names, source addresses). */
  readonly firstIndex: number;
  /** Source address block to start from; one address per `perAddress` sockets. */
  readonly addressBase: number;
  readonly perAddress: number;
  /** WebSocket: text frame sent right after the upgrade request (`{ch}` replaced). */
  readonly wsFrame?: string;
  /** WebSocket: send `wsFrame` once these bytes have arrived (default: the end of the 101 response). */
  readonly wsSendAfter?: string;
  /** Bytes that mean "subscribed" (SSE: end of the response head). */
  readonly readyToken?: string;
  /** Connections opening at once. */
  readonly concurrency: number;
  /** Keep each SSE subscriber's last `id:` (for the reconnect storm). */
  readonly trackIds: boolean;
  /** Report each message sequence once every subscriber here has it (closed-loop publishing). */
  readonly frontier: boolean;
  /** Count in-band `kometa-join` / `kometa-leave` events per subscriber, and report each event once all have it. */
  readonly countEvents?: boolean;
}

export type ParentMessage =
  | ConnectOrder
  | { readonly type: 'reset' }
  | { readonly type: 'report' }
  | { readonly type: 'drop' }
  | { readonly type: 'reconnect'; readonly addressBase: number }
  | { readonly type: 'exit' };

export interface LoadReport {
  /** Frames (message markers) seen, duplicates included. */
  frames: number;
  /** Messages that were new for their subscriber. */
  unique: number;
  duplicates: number;
  /** Sequence jumps: messages a subscriber skipped. */
  skipped: number;
  latency: number[];
  latencyMax: number;
  /** process.cpuUsage since the last reset, in microseconds. */
  cpuUs: number;
  wallMs: number;
  ready: number;
  closed: number;
  errors: number;
  /**
   * Connection errors by code (ECONNREFUSED, ECONNRESET, …) and non-2xx answers (`HTTP 429`), retried ones included.
   */
  errorCodes: Record<string, number>;
  /** Subscribers whose last message is the given sequence (caught-up check). */
  atSeq: Record<string, number>;
  /** With `countEvents`: joins and leaves seen, and subscribers by how many of each they saw (`"<joins>/<leaves>"`). */
  joins: number;
  leaves: number;
  atEvents: Record<string, number>;
}

export type ChildMessage =
  | {
      readonly type: 'connected';
      readonly ready: number;
      readonly failed: number;
      readonly ms: number;
      readonly errorCodes: Record<string, number>;
    }
  | { readonly type: 'frontier'; readonly seq: number }
  /** With `countEvents`: every subscriber of this process has seen at least `n` joins and leaves since the reset. */
  | { readonly type: 'events'; readonly n: number }
  | { readonly type: 'report'; readonly report: LoadReport }
  | { readonly type: 'dropped' }
  | { readonly type: 'reset' }
  | { readonly type: 'error'; readonly message: string };

/**
 * The data of every benchmark message: `@@<seq>.<µs>;` then padding.
 * `µs` is CLOCK_MONOTONIC (process.hrtime), the same clock in every process
 * on the machine, so a receiver can subtract it from its own reading.
 */
export function messageData(seq: number, size: number): string {
  const head = `@@${seq}.${Number(process.hrtime.bigint() / 1000n)};`;
  return head.length >= size ? head : head + 'x'.repeat(size - head.length);
}

export function sourceAddress(index: number): string {
  return `127.0.${1 + Math.floor(index / 250)}.${2 + (index % 250)}`;
}
