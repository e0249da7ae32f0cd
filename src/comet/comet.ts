import { channel } from 'node:diagnostics_channel';
import type { Hub } from '../core/hub.js';
import { type CometCounters, CometRun } from './context.js';
import type { CometErrorReport, CometHandler, CometOutput, CometRequest } from './types.js';

/**
 * Handler failures are published here (a `CometErrorReport`), whether or not
 * an `onError` is given: the library never prints by itself, the app decides.
 */
export const cometErrorChannel = channel('kometa:comet:error');

export interface CometOptions {
  /** The hub that `ctx.next()` waits on. Without one, `next()` rejects. */
  readonly hub?: Hub | undefined;
  /** Called once per failed handler (never for a client that merely went away). */
  readonly onError?: ((report: CometErrorReport) => void) | undefined;
}

/**
 * The runtime that comet handlers run in: it knows the hub, reports failures,
 * and counts what is in flight, so that a test (or /metrics) can see that a
 * client that left took its timers and subscriptions with it.
 */
export class Comet {
  readonly hub: Hub | undefined;
  readonly counters: CometCounters = {
    active: 0,
    sleeping: 0,
    waiting: 0,
    started: 0,
    completed: 0,
    aborted: 0,
    failed: 0,
  };
  readonly #onError: ((report: CometErrorReport) => void) | undefined;

  constructor(options: CometOptions = {}) {
    this.hub = options.hub;
    this.#onError = options.onError;
  }

  /**
   * Start a handler on an adapter's output. The adapter calls `clientGone()`
   * on the returned run when the connection closes before the response ends.
   */
  start(handler: CometHandler, request: CometRequest, output: CometOutput): CometRun {
    const run = new CometRun(request, output, this);
    void run.run(handler);
    return run;
  }

  report(report: CometErrorReport): void {
    if (cometErrorChannel.hasSubscribers) cometErrorChannel.publish(report);
    if (this.#onError === undefined) return;
    try {
      this.#onError(report);
    } catch {
      // A failing error hook must not take the server down with it.
    }
  }
}

/** The runtime adapters use when none is given: no hub, failures only on the diagnostics channel. */
export const defaultComet = new Comet();
