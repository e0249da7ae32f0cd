import { randomBytes } from 'node:crypto';
import { channel } from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorCode } from '../core/errors.js';
import type { Hub } from '../core/hub.js';
import { type InstructionLimits, defaultInstructionLimits } from './instructions.js';
import { Origin, type OriginOptions } from './origin.js';
import { ProxySession } from './session.js';
import { GripSigner } from './sig.js';
import type { TrustProxy } from '../http/client-address.js';
import { TimerWheel } from '../core/timer-wheel.js';

export interface ProxyOptions {
  /** The origin, e.g. http://127.0.0.1:8000 (a path prefix is allowed). */
  readonly origin: string | URL;
  readonly limits?: Partial<InstructionLimits>;
  readonly originOptions?: Partial<OriginOptions>;
  /** Most origin requests one client request may lead to (Kometa-Defer stages and next links). */
  readonly maxStages?: number;
  /** Largest origin body kept for a response hold (Pushpin's limit is 100,000 bytes too). */
  readonly maxHeldBodyBytes?: number;
  /** Bytes queued to a held stream's client before it is cut as too slow. */
  readonly maxQueueBytes?: number;
  /** Key for Grip-Sig (HS256). Default: random per process, so only "the request came through kometa" can be checked. */
  readonly sigKey?: string | Buffer;
  readonly sigIss?: string;
  /** Told of every request the proxy could not complete; the library itself never prints. */
  readonly onError?: (report: ProxyErrorReport) => void;
  /** Tick of the shared timer wheel (hold timeouts, keep-alives, stage delays). */
  readonly tickMs?: number;
  /** Proxies in front of this one whose X-Forwarded-Proto is passed on to the origin (`--trust-proxy`). */
  readonly trustProxy?: TrustProxy | undefined;
}

export interface ProxyErrorReport {
  readonly code: ErrorCode;
  readonly detail: string;
  readonly method: string;
  /** The client's path, without the query. */
  readonly path: string;
  /** `before-response`: answered with a problem (502/504); `mid-response`: the response was cut. */
  readonly phase: 'before-response' | 'mid-response';
}

/** Published for every report (node:diagnostics_channel), for those who would rather subscribe than inject. */
export const proxyErrorChannel = channel('kometa:proxy:error');

export interface ProxyCounters {
  requests: number;
  passedThrough: number;
  heldResponses: number;
  heldStreams: number;
  /** Origin requests made for Kometa-Defer stages and next links. */
  stages: number;
  errors: number;
}

/** What a session needs from the proxy that runs it. */
export interface ProxyContext {
  readonly hub: Hub;
  readonly origin: Origin;
  readonly wheel: TimerWheel;
  readonly limits: InstructionLimits;
  readonly maxStages: number;
  readonly maxHeldBodyBytes: number;
  readonly maxQueueBytes: number;
  readonly counters: ProxyCounters;
  readonly trustProxy: TrustProxy | undefined;
  gripSig(): string;
  report(report: ProxyErrorReport): void;
  readonly sessions: Set<ProxySession>;
}

/**
 * A GRIP-compatible reverse proxy in front of one origin. Every request is
 * forwarded; the origin's response either passes through untouched or
 * carries instructions (Grip-Hold, Grip-Link, Kometa-Defer) that the proxy
 * follows with the hub's channels. See docs/proxy.md.
 */
export class GripProxy implements ProxyContext {
  readonly hub: Hub;
  readonly origin: Origin;
  readonly wheel: TimerWheel;
  readonly limits: InstructionLimits;
  readonly maxStages: number;
  readonly maxHeldBodyBytes: number;
  readonly maxQueueBytes: number;
  readonly counters: ProxyCounters = { requests: 0, passedThrough: 0, heldResponses: 0, heldStreams: 0, stages: 0, errors: 0 };
  readonly sessions = new Set<ProxySession>();
  readonly trustProxy: TrustProxy | undefined;
  readonly #signer: GripSigner;
  readonly #onError: ((report: ProxyErrorReport) => void) | undefined;

  constructor(hub: Hub, options: ProxyOptions) {
    this.hub = hub;
    this.origin = new Origin(options.origin, options.originOptions);
    this.wheel = new TimerWheel(options.tickMs ?? 100);
    this.limits = { ...defaultInstructionLimits, maxChannels: hub.limits.maxChannelsPerSubscription, ...options.limits };
    this.maxStages = options.maxStages ?? 100;
    this.maxHeldBodyBytes = options.maxHeldBodyBytes ?? 100_000;
    this.maxQueueBytes = options.maxQueueBytes ?? 1024 * 1024;
    this.#signer = new GripSigner(options.sigKey ?? randomBytes(32), options.sigIss ?? 'kometa');
    this.#onError = options.onError;
    this.trustProxy = options.trustProxy;
  }

  /** Requests in flight (passing through, held, or between stages). */
  get activeCount(): number {
    return this.sessions.size;
  }

  gripSig(): string {
    return this.#signer.token();
  }

  report(report: ProxyErrorReport): void {
    this.counters.errors++;
    if (proxyErrorChannel.hasSubscribers) proxyErrorChannel.publish(report);
    this.#onError?.(report);
  }

  /** A node:http request handler: forwards everything. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.counters.requests++;
    const session = new ProxySession(this, req, res);
    this.sessions.add(session);
    session.run().finally(() => this.sessions.delete(session));
  };

  /** Shutting down: end every held request now (streams cleanly, long-polls with the origin's response). */
  drain(): void {
    for (const session of this.sessions) session.drain();
  }

  /** Stop: whatever is still open is cut, pending timers dropped, origin connections closed. */
  close(): void {
    for (const session of this.sessions) session.shutdown();
    this.wheel.clear();
    this.origin.close();
  }
}
