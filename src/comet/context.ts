import { validateHeaderName, validateHeaderValue } from 'node:http';
import { KometaError, toProblem } from '../core/errors.js';
import type { Hub } from '../core/hub.js';
import type {
  Chunk,
  CometContext,
  CometErrorReport,
  CometHandler,
  CometOutput,
  CometRequest,
  NextOptions,
  NextResult,
} from './types.js';
import { type CancelSet, waitForMessages } from './wait.js';

/** Running totals of one Comet runtime; `active`, `sleeping` and `waiting` return to zero when nothing is in flight. */
export interface CometCounters {
  /** Handlers running now. */
  active: number;
  /** `sleep()` calls pending now (one timer each). */
  sleeping: number;
  /** `next()` calls pending now (one hub subscription each, plus a timer if it has a timeout). */
  waiting: number;
  started: number;
  /** Handlers that finished and whose response ended cleanly. */
  completed: number;
  /** Handlers whose client went away before they finished. */
  aborted: number;
  /** Handlers that threw (other than because their client went away). */
  failed: number;
}

/** What a run needs from its runtime. */
export interface RunEnvironment {
  readonly hub: Hub | undefined;
  readonly counters: CometCounters;
  report(report: CometErrorReport): void;
}

const DEFAULT_HEADERS: ReadonlyArray<readonly [string, string]> = [
  ['Content-Type', 'text/html; charset=utf-8'],
  // no-transform: proxies must not compress (a compressor holds chunks back).
  ['Cache-Control', 'no-cache, no-transform'],
  // nginx (and proxies that copy it) would otherwise buffer the response.
  ['X-Accel-Buffering', 'no'],
];

const RESOLVED: Promise<void> = Promise.resolve();
/*
 * The abort reasons are shared: a stack trace says nothing about which
 * client left, and building one per request is a measurable cost when
 * thousands leave at once.
 */
const CLIENT_GONE = new DOMException('The client went away', 'AbortError');
const HANDLER_RETURNED = new DOMException('The handler has returned', 'AbortError');
const noop = (): void => {};
const MAX_TIMER_MS = 2_147_483_647;

/**
 * A rejected promise that is already marked handled: a handler that does not
 * await it (say, the loser of a `Promise.race`) must not crash the process
 * with an unhandled rejection when its client leaves.
 */
function rejected<T>(reason: unknown): Promise<T> {
  const promise = Promise.reject<T>(reason);
  promise.catch(noop);
  return promise;
}

function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(noop);
  return promise;
}

function toBuffer(chunk: Chunk): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk);
  if (Buffer.isBuffer(chunk)) return chunk;
  return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

function isAsyncIterable(value: unknown): value is AsyncIterable<Chunk> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

function isAbortError(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'AbortError';
}

type State = 'idle' | 'open' | 'ended';

/**
 * One response being produced by one handler: the context it sees, and the
 * bookkeeping that makes sure every timer and subscription it started is gone
 * when the client leaves or the handler returns.
 */
export class CometRun implements CometContext {
  /** Made on first use of `signal`: most handlers never look at it, and 10,000 idle ones should not pay for it. */
  #controller: AbortController | undefined;
  #gone = false;
  readonly #headers = new Map<string, readonly [string, string]>();
  readonly #pending: CancelSet = new Set();
  #status = 200;
  #state: State = 'idle';
  #running = true;

  constructor(
    readonly request: CometRequest,
    private readonly output: CometOutput,
    private readonly env: RunEnvironment,
  ) {
    for (const [name, value] of DEFAULT_HEADERS) this.#headers.set(name.toLowerCase(), [name, value]);
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#gone) this.#controller.abort(CLIENT_GONE);
    }
    return this.#controller.signal;
  }

  get status(): number {
    return this.#status;
  }

  set status(value: number) {
    this.#assertHeadersOpen();
    if (!Number.isInteger(value) || value < 200 || value > 599) {
      throw new RangeError(`status must be an integer from 200 to 599, got ${String(value)}`);
    }
    this.#status = value;
  }

  get headersSent(): boolean {
    return this.#state !== 'idle';
  }

  setHeader(name: string, value: string): void {
    this.#assertHeadersOpen();
    // Checked here, where the mistake is, rather than when the first chunk goes out.
    validateHeaderName(name);
    validateHeaderValue(name, value);
    this.#headers.set(name.toLowerCase(), [name, value]);
  }

  write(chunk: Chunk): Promise<void> {
    if (this.#gone) return rejected(CLIENT_GONE);
    if (this.#state === 'ended') return rejected(new Error('kometa: write() after the response ended'));
    const bytes = toBuffer(chunk);
    if (bytes.length === 0) return RESOLVED;
    if (this.#state === 'idle') {
      this.output.open(this.#status, this.#headerRecord(), bytes);
      this.#state = 'open';
      return RESOLVED;
    }
    return this.output.write(bytes) ?? RESOLVED;
  }

  sleep(ms: number): Promise<void> {
    if (!(Number.isFinite(ms) && ms >= 0 && ms <= MAX_TIMER_MS)) {
      return rejected(new RangeError(`sleep(): ms must be between 0 and ${MAX_TIMER_MS}, got ${String(ms)}`));
    }
    if (this.#gone) return rejected(CLIENT_GONE);
    const counters = this.env.counters;
    const pending = this.#pending;
    return handled(
      new Promise<void>((resolve, reject) => {
        const cancel = (reason: unknown): void => {
          clearTimeout(timer);
          pending.delete(cancel);
          counters.sleeping--;
          reject(reason);
        };
        const timer = setTimeout(() => {
          pending.delete(cancel);
          counters.sleeping--;
          resolve();
        }, ms);
        counters.sleeping++;
        pending.add(cancel);
      }),
    );
  }

  next(channels: string | readonly string[], options: NextOptions = {}): Promise<NextResult> {
    if (this.#gone) return rejected(CLIENT_GONE);
    const hub = this.env.hub;
    if (hub === undefined) {
      return rejected(new Error('kometa: next() needs a hub: create the runtime with new Comet({ hub })'));
    }
    try {
      return handled(waitForMessages(hub, channels, options, this.#pending, this.env.counters));
    } catch (error) {
      return rejected(error);
    }
  }

  end(chunk?: Chunk): void {
    if (this.#gone || this.#state === 'ended') return;
    const bytes = chunk === undefined ? undefined : toBuffer(chunk);
    const last = bytes !== undefined && bytes.length > 0 ? bytes : undefined;
    if (this.#state === 'idle') {
      this.output.open(this.#status, this.#headerRecord(), last);
    } else if (last !== undefined) {
      // Backpressure no longer matters: end() queues the rest and finishes.
      void this.output.write(last);
    }
    this.#state = 'ended';
    this.output.end();
  }

  /** The adapter saw the connection close before the response ended. */
  clientGone(): void {
    // After end() (or a cut) the close is ours, not the client's.
    if (this.#gone || !this.#running || this.#state === 'ended') return;
    this.env.counters.aborted++;
    this.#gone = true;
    this.#controller?.abort(CLIENT_GONE);
    this.#cancelAll(CLIENT_GONE);
  }

  /** Run the handler to the end; never rejects (failures are answered, cut or reported). */
  async run(handler: CometHandler): Promise<void> {
    const counters = this.env.counters;
    counters.started++;
    counters.active++;
    try {
      const result = handler(this);
      if (isAsyncIterable(result)) {
        for await (const chunk of result) {
          if (this.#state === 'ended') throw new Error('kometa: a generator handler yielded after end()');
          await this.write(chunk);
          // Leaving the loop closes the generator (its finally blocks run).
          if (this.#gone) break;
        }
      } else {
        await result;
      }
      if (this.#gone) {
        this.output.cut();
        return;
      }
      this.end();
      counters.completed++;
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#running = false;
      counters.active--;
      // Whatever the handler started and did not wait for (the loser of a
      // race, say) must not outlive it.
      this.#cancelAll(HANDLER_RETURNED);
    }
  }

  #fail(error: unknown): void {
    if (this.#gone && (error === CLIENT_GONE || isAbortError(error))) {
      // The client left and the handler stopped because of it: nothing to report.
      this.output.cut();
      return;
    }
    this.env.counters.failed++;
    const phase = this.#state === 'idle' ? 'before-first-chunk' : 'after-first-chunk';
    if (this.#gone) {
      this.output.cut();
    } else if (this.#state === 'idle') {
      this.#state = 'ended';
      // Unknown errors become a 500 whose body says nothing about them.
      const known = error instanceof KometaError ? error : new KometaError(
        'KOMETA_ERR_INTERNAL',
        'The handler failed before sending anything',
      );
      this.output.fail(
        known.status,
        { 'Content-Type': 'application/problem+json', 'Cache-Control': 'no-store' },
        JSON.stringify(toProblem(known)),
      );
    } else if (this.#state === 'open') {
      this.#state = 'ended';
      this.output.cut();
    }
    this.env.report({ error, phase, method: this.request.method, path: this.request.url.pathname });
  }

  #cancelAll(reason: unknown): void {
    if (this.#pending.size === 0) return;
    for (const cancel of [...this.#pending]) cancel(reason);
  }

  #assertHeadersOpen(): void {
    if (this.#state !== 'idle') {
      throw new Error('kometa: status and headers go out with the first chunk; set them before the first write');
    }
  }

  #headerRecord(): Record<string, string> {
    const record: Record<string, string> = {};
    for (const [name, value] of this.#headers.values()) record[name] = value;
    return record;
  }
}
