import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { KometaError } from '../core/errors.js';
import type { Subscription } from '../core/hub.js';
import { sendProblem } from '../http/problem.js';
import { type RawHeaders, clientResponseHeaders, mergeCookies, originRequestHeaders, overrideHeaders, setCookiesOf } from './headers.js';
import { type HeldResponse, HeldResponseSink } from './hold-response.js';
import { HeldStreamSink, type StreamOutput } from './hold-stream.js';
import { type GripChannel, type Hold, type Instructions, type NextLink, hasInstructions, parseInstructions } from './instructions.js';
import type { ProxyContext } from './proxy.js';
import { cursorFromPrevIds } from './resume.js';
import type { WheelTask } from '../core/timer-wheel.js';

/*
 * The stack trace of "the client went away" says nothing useful, and
 * thousands of clients may leave at once: one shared reason.
 */
const CLIENT_GONE = new DOMException('The client went away', 'AbortError');

function isAbort(error: unknown): boolean {
  return error === CLIENT_GONE || (typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'AbortError');
}

type StreamOutcome = 'end' | 'gone' | 'next';

/**
 * One client request through the proxy, from the first origin request to
 * the end of the client's response: pass-through, a response or stream
 * hold, or a chain of stages (Kometa-Defer, Grip-Link rel=next), in any
 * order the origin's instructions ask for.
 *
 * Whatever ends it — the response finishing, the client leaving, an origin
 * failure — the same clean-up runs: the pending timer is cancelled, the
 * hub subscription closed, an origin request in flight aborted. A client
 * that leaves mid-wait causes no further origin requests.
 */
export class ProxySession {
  readonly #ctx: ProxyContext;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #abort = new AbortController();
  #gone = false;
  /** The path of the latest origin request, which relative next URLs resolve against. */
  #path: string;
  /** The cookies later stages send: the client's, updated by each stage's Set-Cookie. */
  #cookies: string | undefined;
  #task: WheelTask | undefined;
  /** Settles whatever the session is waiting for when the client leaves. */
  #wake: (() => void) | undefined;
  #subscription: Subscription | undefined;
  #lastWriteTick = 0;
  /** Ends a hold the way a shutdown should: a stream cleanly, a long-poll with the origin's response. */
  #drain: (() => void) | undefined;

  constructor(ctx: ProxyContext, req: IncomingMessage, res: ServerResponse) {
    this.#ctx = ctx;
    this.#req = req;
    this.#res = res;
    this.#path = req.url ?? '/';
    res.once('close', () => {
      if (!res.writableFinished) this.#leave();
    });
  }

  async run(): Promise<void> {
    try {
      await this.#run();
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#cleanup();
    }
  }

  /** The server is closing: a held request is ended as if its hold were over; others may finish within the grace period. */
  drain(): void {
    this.#drain?.();
  }

  /** The proxy is closed: cut whatever is still open. */
  shutdown(): void {
    this.#res.destroy();
  }

  #leave(): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#abort.abort(CLIENT_GONE);
    this.#cleanup();
  }

  #cleanup(): void {
    this.#task?.cancel();
    this.#task = undefined;
    this.#subscription?.close();
    this.#subscription = undefined;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async #run(): Promise<void> {
    const ctx = this.#ctx;
    const req = this.#req;
    if (!this.#path.startsWith('/')) throw new KometaError('KOMETA_ERR_BAD_REQUEST', 'The proxy takes origin-form request targets (/path)');
    const length = req.headers['content-length'];
    const hasBody = length !== undefined ? length !== '0' : req.headers['transfer-encoding'] !== undefined;
    let response = await ctx.origin.request(
      req.method ?? 'GET',
      this.#path,
      originRequestHeaders(req, { gripSig: ctx.gripSig(), trustProxy: ctx.trustProxy }, { stage: false }),
      hasBody ? req : undefined,
      this.#abort.signal,
    );
    let first = true;
    let stages = 0;
    for (;;) {
      let instructions: Instructions | undefined;
      let nextPath: string | undefined;
      let deferPath: string | undefined;
      try {
        if (!first && (response.statusCode ?? 502) >= 400) {
          throw new KometaError('KOMETA_ERR_ORIGIN_INSTRUCTION', `the stage ${this.#path.split('?')[0]} answered ${response.statusCode}`);
        }
        instructions = hasInstructions(response.headers) ? parseInstructions(response.headers, ctx.limits) : undefined;
        // Check where the next links lead before anything is sent, so a bad one is still a clean 502.
        if (instructions?.next !== undefined) nextPath = ctx.origin.resolve(instructions.next.url, this.#path);
        if (instructions?.defer !== undefined) deferPath = ctx.origin.resolve(instructions.defer.url, this.#path);
      } catch (error) {
        response.resume();
        throw error;
      }
      if (first && (instructions === undefined || (instructions.hold === undefined && instructions.next === undefined && instructions.defer === undefined))) {
        await this.#passThrough(response, instructions?.status);
        return;
      }
      if (instructions === undefined) {
        // A later stage without instructions: its body is the last part.
        this.#collectCookies(response.rawHeaders);
        await this.#copyBody(response);
        this.#finish();
        return;
      }
      const hold = instructions.hold;
      if (hold?.mode === 'response') {
        if (!first) {
          response.resume();
          throw new KometaError('KOMETA_ERR_ORIGIN_INSTRUCTION', 'Grip-Hold: response from a later stage, after the response has begun');
        }
        await this.#holdResponse(response, hold, instructions.status);
        return;
      }
      if (first) this.#open(response, instructions.status);
      this.#collectCookies(response.rawHeaders);
      // Subscribe before copying the body, so nothing published meanwhile is missed.
      const subscribing = hold?.mode === 'stream' ? this.#subscribe(hold.channels) : undefined;
      subscribing?.catch(() => {});
      await this.#copyBody(response);
      if (this.#gone) return;

      let link: { path: string; delayMs: number } | undefined;
      if (hold?.mode === 'stream') {
        const outcome = await this.#holdStream(await subscribing!, hold, instructions.next);
        if (outcome !== 'next') return;
        link = { path: nextPath!, delayMs: 0 };
      } else if (instructions.defer !== undefined) {
        link = { path: deferPath!, delayMs: instructions.defer.delayMs };
      } else if (nextPath !== undefined) {
        link = { path: nextPath, delayMs: 0 };
      }
      if (link === undefined) {
        this.#finish();
        return;
      }
      if (++stages > ctx.maxStages) throw new KometaError('KOMETA_ERR_ORIGIN_INSTRUCTION', `more than ${ctx.maxStages} stages for one request`);
      const path = link.path;
      if (link.delayMs > 0 && !(await this.#sleep(link.delayMs))) return;
      if (this.#gone) return;
      ctx.counters.stages++;
      response = await ctx.origin.request(
        'GET',
        path,
        originRequestHeaders(req, { gripSig: ctx.gripSig(), trustProxy: ctx.trustProxy }, { stage: true, cookie: this.#cookies ?? '' }),
        undefined,
        this.#abort.signal,
      );
      this.#path = path;
      first = false;
    }
  }

  /** No instructions: the origin's response as it is, streamed, Content-Length and all. */
  async #passThrough(response: IncomingMessage, status: Instructions['status']): Promise<void> {
    this.#ctx.counters.passedThrough++;
    this.#res.writeHead(
      status?.code ?? response.statusCode ?? 502,
      status?.reason ?? (response.statusMessage || undefined),
      clientResponseHeaders(response.rawHeaders, true),
    );
    try {
      await pipeline(response, this.#res);
    } catch (error) {
      if (this.#gone || isAbort(error)) return;
      throw new KometaError('KOMETA_ERR_ORIGIN_UNAVAILABLE', 'The origin connection broke in the middle of a body');
    }
  }

  /** Status and headers of the first response, for a body kometa goes on writing. */
  #open(response: IncomingMessage, status: Instructions['status']): void {
    const res = this.#res;
    res.writeHead(
      status?.code ?? response.statusCode ?? 502,
      status?.reason ?? (response.statusMessage || undefined),
      clientResponseHeaders(response.rawHeaders, false),
    );
    // Each part must reach the client when it is written, not when Nagle decides.
    res.socket?.setNoDelay(true);
    res.flushHeaders();
  }

  #collectCookies(raw: readonly string[]): void {
    const set = setCookiesOf(raw);
    if (this.#cookies === undefined || set.length > 0) this.#cookies = mergeCookies(this.#cookies ?? this.#req.headers.cookie, set);
  }

  #write(bytes: Buffer): boolean {
    this.#lastWriteTick = this.#ctx.wheel.tick;
    return this.#res.write(bytes);
  }

  #drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.#res.off('drain', done);
        this.#res.off('close', done);
        resolve();
      };
      this.#res.on('drain', done);
      this.#res.on('close', done);
    });
  }

  /** Append an origin body to the client's response as it arrives, each piece one chunk. */
  async #copyBody(response: IncomingMessage): Promise<void> {
    try {
      for await (const piece of response as AsyncIterable<Buffer>) {
        if (this.#gone) {
          response.destroy();
          return;
        }
        if (!this.#write(piece)) await this.#drained();
      }
    } catch (error) {
      if (this.#gone || isAbort(error)) return;
      throw new KometaError('KOMETA_ERR_ORIGIN_UNAVAILABLE', 'The origin connection broke in the middle of a body');
    }
  }

  async #readBody(response: IncomingMessage): Promise<Buffer> {
    const limit = this.#ctx.maxHeldBodyBytes;
    const pieces: Buffer[] = [];
    let total = 0;
    try {
      for await (const piece of response as AsyncIterable<Buffer>) {
        total += piece.length;
        if (total > limit) {
          response.destroy();
          throw new KometaError('KOMETA_ERR_ORIGIN_INSTRUCTION', `the body of a Grip-Hold: response is limited to ${limit} bytes`, { limit });
        }
        pieces.push(piece);
      }
    } catch (error) {
      if (error instanceof KometaError || isAbort(error)) throw error;
      throw new KometaError('KOMETA_ERR_ORIGIN_UNAVAILABLE', 'The origin connection broke in the middle of a body');
    }
    return Buffer.concat(pieces, total);
  }

  #finish(): void {
    if (!this.#gone && !this.#res.writableEnded) this.#res.end();
  }

  /** Resolves true after `ms`, or false as soon as the client leaves. */
  #sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      this.#task = this.#ctx.wheel.schedule(ms, () => {
        this.#task = undefined;
        this.#wake = undefined;
        resolve(true);
      });
      this.#wake = () => resolve(false);
    });
  }

  async #subscribe(channels: readonly GripChannel[]): Promise<Subscription> {
    const hub = this.#ctx.hub;
    let subscription: Subscription;
    try {
      subscription = await hub.subscribe(
        channels.map((c) => c.name),
        await cursorFromPrevIds(hub, channels),
      );
    } catch (error) {
      if (error instanceof KometaError && (error.code === 'KOMETA_ERR_CURSOR_AHEAD' || error.code === 'KOMETA_ERR_CURSOR')) {
        throw new KometaError('KOMETA_ERR_ORIGIN_INSTRUCTION', `Grip-Channel prev-id: ${error.message}`);
      }
      throw error;
    }
    if (this.#gone) {
      subscription.close();
      throw CLIENT_GONE;
    }
    this.#subscription = subscription;
    return subscription;
  }

  /**
   * GRIP `Grip-Hold: response`: keep the origin's response (the answer if
   * nothing comes within Grip-Timeout), and answer with the first message
   * that has an `http-response` format instead.
   */
  async #holdResponse(response: IncomingMessage, hold: Hold, status: Instructions['status']): Promise<void> {
    const ctx = this.#ctx;
    ctx.counters.heldResponses++;
    const subscribing = this.#subscribe(hold.channels);
    subscribing.catch(() => {});
    const body = await this.#readBody(response);
    const subscription = await subscribing;
    const code = status?.code ?? response.statusCode ?? 200;
    const reason = status?.reason ?? (response.statusMessage || undefined);
    const base = clientResponseHeaders(response.rawHeaders, false);
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.#task?.cancel();
        this.#task = undefined;
        this.#wake = undefined;
        this.#drain = undefined;
        subscription.close();
        this.#subscription = undefined;
        resolve();
      };
      const answerWithOrigin = (): void => {
        done();
        this.#respond(code, reason, base, body);
      };
      const answerWithMessage = (message: HeldResponse): void => {
        done();
        this.#respond(message.code, message.reason, overrideHeaders(base, message.headers), message.body);
      };
      this.#wake = resolve;
      this.#drain = answerWithOrigin;
      this.#task = ctx.wheel.schedule(hold.timeoutMs, answerWithOrigin);
      // May answer at once, from what history holds after a prev-id.
      subscription.start(new HeldResponseSink(answerWithMessage, answerWithOrigin));
    });
  }

  /**
   * Runs inside the hub's fan-out for message answers, so it must not throw:
   * a header the client's response cannot carry cuts this response only.
   */
  #respond(code: number, reason: string | undefined, headers: RawHeaders, body: Buffer): void {
    if (this.#gone) return;
    try {
      this.#res.writeHead(code, reason, [...headers, 'Content-Length', String(body.length)]);
      this.#res.end(body);
    } catch (error) {
      this.#fail(error);
    }
  }

  /**
   * GRIP `Grip-Hold: stream`: after the origin's body, every message's
   * `http-stream` content, until an item closes the stream, the client
   * leaves, or the origin must be asked again through its next link (the
   * link's timeout passed, or a gap in the items' sequence ids).
   */
  #holdStream(subscription: Subscription, hold: Hold, next: NextLink | undefined): Promise<StreamOutcome> {
    const ctx = this.#ctx;
    const res = this.#res;
    ctx.counters.heldStreams++;
    return new Promise((resolve) => {
      let settled = false;
      let keepAliveTask: WheelTask | undefined;
      let nextTask: WheelTask | undefined;
      const settle = (outcome: StreamOutcome): void => {
        if (settled) return;
        settled = true;
        keepAliveTask?.cancel();
        nextTask?.cancel();
        subscription.close();
        this.#subscription = undefined;
        this.#wake = undefined;
        this.#drain = undefined;
        resolve(outcome);
      };
      const output: StreamOutput = {
        write: (bytes) => {
          if (settled || this.#gone) return;
          this.#write(bytes);
          // A client that does not read would make kometa buffer without bound: cut it.
          if (res.writableLength > ctx.maxQueueBytes) res.destroy();
        },
        end: () => {
          settle('end');
          this.#finish();
        },
        recover: () => settle('next'),
      };
      this.#wake = () => settle('gone');
      this.#drain = output.end;

      const keepAlive = hold.keepAlive;
      if (keepAlive !== undefined) {
        const wheel = ctx.wheel;
        const ticks = Math.max(1, Math.round(keepAlive.timeoutMs / wheel.tickMs));
        const fire = (): void => {
          if (settled) return;
          const idle = wheel.tick - this.#lastWriteTick;
          if (keepAlive.mode === 'interval' || idle >= ticks) {
            output.write(keepAlive.data);
            keepAliveTask = wheel.schedule(keepAlive.timeoutMs, fire);
          } else {
            keepAliveTask = wheel.schedule((ticks - idle) * wheel.tickMs, fire);
          }
        };
        keepAliveTask = wheel.schedule(keepAlive.timeoutMs, fire);
        // The origin's body was the last write.
        this.#lastWriteTick = wheel.tick;
      }
      if (next !== undefined) nextTask = ctx.wheel.schedule(next.timeoutMs, () => settle('next'));
      subscription.start(new HeldStreamSink(output, hold.channels, next !== undefined));
    });
  }

  #fail(error: unknown): void {
    if (this.#gone || isAbort(error)) return;
    const known = error instanceof KometaError ? error : new KometaError('KOMETA_ERR_INTERNAL', 'The proxy failed to handle the request');
    const res = this.#res;
    this.#ctx.report({
      code: known.code,
      detail: known.code === 'KOMETA_ERR_INTERNAL' ? String(error) : known.message,
      method: this.#req.method ?? 'GET',
      path: (this.#req.url ?? '/').split('?')[0]!.slice(0, 200),
      phase: res.headersSent ? 'mid-response' : 'before-response',
    });
    // Before the head: a problem-details answer. After it, the status is
    // spent; cutting the connection (no last chunk) is how the client learns
    // the response is incomplete.
    if (!res.headersSent) sendProblem(res, known);
    else res.destroy();
  }
}
