import type { GapNotice, Message } from '../core/message.js';

/** What a chunk may be: text is sent as UTF-8. */
export type Chunk = string | Uint8Array;

/** The request as every framework can describe it. */
export interface CometRequest {
  readonly method: string;
  readonly url: URL;
  /** A request header by name (case-insensitive); repeated headers are joined with ", ". */
  header(name: string): string | undefined;
}

export interface NextOptions {
  /**
   * Resume after this cursor (a previous result's `cursor`, or a message's
   * `id`): messages already in history after it are returned at once. Without
   * it, only messages published from now on count.
   */
  readonly since?: string | undefined;
  /**
   * Milliseconds to wait before resolving with `timedOut: true`. Without it, wait until a message or the client
   * leaves.
   */
  readonly timeout?: number | undefined;
}

export interface NextResult {
  /** The messages that arrived together (one or more), oldest first; empty on a timeout. */
  readonly messages: readonly Message[];
  /** Messages after `since` that are gone from history (told before anything else, never silent). */
  readonly gaps: readonly GapNotice[];
  /** Where to resume: pass it as `since` to the next call so nothing published in between is missed. */
  readonly cursor: string;
  readonly timedOut: boolean;
}

/**
 * What a comet handler gets. Status and headers may be set until the first
 * chunk is written (as in the seed, the first stage decides them); every
 * write is one HTTP chunk, sent at once.
 */
export interface CometContext {
  readonly request: CometRequest;
  /** Fires when the client goes away; every pending `sleep` and `next` is then rejected with its reason. */
  readonly signal: AbortSignal;
  /** 200 unless set; settable until the first write. */
  status: number;
  /** Set a response header; throws once the first chunk has gone out. */
  setHeader(name: string, value: string): void;
  /** True once status and headers are on the wire. */
  readonly headersSent: boolean;
  /**
   * Send one chunk now. Resolves when more may be written (the connection's
   * buffer has room); rejects once the client has gone. An empty chunk is not
   * sent (on the wire it would end the response).
   */
  write(chunk: Chunk): Promise<void>;
  /** Defer in time (the seed's `defer_in_time`). Rejects with `signal.reason` if the client leaves first. */
  sleep(ms: number): Promise<void>;
  /** Defer until a message is published on one of `channels` (long-poll inside a handler), or the timeout passes. */
  next(channels: string | readonly string[], options?: NextOptions): Promise<NextResult>;
  /** Finish the response, optionally with a last chunk. Returning from the handler does the same. */
  end(chunk?: Chunk): void;
}

/**
 * A comet handler: an async function that writes through the context, or an
 * async generator whose every `yield` is one chunk. The same function runs
 * unchanged under every adapter.
 */
export type CometHandler = (ctx: CometContext) => Promise<void> | void | AsyncIterable<Chunk>;

/**
 * The one thing an adapter implements: bytes out on its framework's response.
 * The runtime calls `open` once, then `write` for each later chunk, then
 * exactly one of `end` or `cut`; or only `fail` when nothing was sent.
 */
export interface CometOutput {
  /** Status, headers and the first chunk (none when the response ends without a body). */
  open(status: number, headers: Readonly<Record<string, string>>, first: Buffer | undefined): void;
  /** One more chunk. Returns a promise when the caller should wait before writing again. */
  write(chunk: Buffer): Promise<void> | undefined;
  /** The terminating chunk: the response is complete. */
  end(): void;
  /** Close the connection without the terminating chunk, so the client sees a truncated response. */
  cut(): void;
  /** Nothing was sent yet and the handler failed: answer with this body instead. */
  fail(status: number, headers: Readonly<Record<string, string>>, body: string): void;
}

/**
 * What the runtime reports when a handler fails (through `onError` and the `kometa:comet:error` diagnostics
 * channel).
 */
export interface CometErrorReport {
  readonly error: unknown;
  /** `before-first-chunk`: answered with problem details; `after-first-chunk`: the response was cut. */
  readonly phase: 'before-first-chunk' | 'after-first-chunk';
  readonly method: string;
  readonly path: string;
}
