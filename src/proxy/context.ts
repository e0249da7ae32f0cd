import type { ErrorCode } from '../core/errors.js';
import type { Hub } from '../core/hub.js';
import type { TimerWheel } from '../core/timer-wheel.js';
import type { InstructionLimits } from './instructions.js';
import type { Origin } from './origin.js';
import type { TrustProxy } from '../http/client-address.js';

/*
 * The types a proxy session shares with the proxy that runs it. session.ts
 * imports them from here and proxy.ts implements ProxyContext, so the two
 * modules never import each other.
 */

export interface ProxyErrorReport {
  readonly code: ErrorCode;
  readonly detail: string;
  readonly method: string;
  /** The client's path, without the query. */
  readonly path: string;
  /** `before-response`: answered with a problem (502/504); `mid-response`: the response was cut. */
  readonly phase: 'before-response' | 'mid-response';
}

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
  /** Proxies in front of this one whose X-Forwarded-Proto is passed on to the origin (`--trust-proxy`). */
  readonly trustProxy: TrustProxy | undefined;
  gripSig(): string;
  report(report: ProxyErrorReport): void;
}
