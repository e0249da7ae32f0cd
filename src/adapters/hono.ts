import { ServerResponse } from 'node:http';
import type { Context } from 'hono';
import { type Comet, defaultComet } from '../comet/comet.js';
import type { CometHandler, CometOutput } from '../comet/types.js';
import { cutResponse } from './node-http.js';

/** The node:http response behind a Hono context, when it runs on `@hono/node-server`. */
interface NodeBindings {
  readonly outgoing: ServerResponse;
}

function nodeBindings(env: unknown): NodeBindings | undefined {
  if (typeof env !== 'object' || env === null || !('outgoing' in env)) return undefined;
  return env.outgoing instanceof ServerResponse ? { outgoing: env.outgoing } : undefined;
}

const HIGH_WATER_BYTES = 16 * 1024;

/**
 * A Fetch `Response` whose body is a `ReadableStream`; one enqueued chunk per
 * write, which `@hono/node-server` writes to node:http as one HTTP chunk. The
 * Response is handed to Hono only when the first chunk (or the end, or an
 * error) is there, because that is when status and headers are final.
 */
class HonoOutput implements CometOutput {
  readonly response: Promise<Response>;
  #respond!: (response: Response) => void;
  #controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  #closed = false;
  #wake: (() => void) | undefined;
  /** A cut waiting for @hono/node-server to take the chunks still queued. */
  #afterPull: (() => void) | undefined;

  constructor(
    private readonly node: NodeBindings | undefined,
    private readonly onCancel: () => void,
  ) {
    this.response = new Promise((resolve) => {
      this.#respond = resolve;
    });
  }

  open(status: number, headers: Readonly<Record<string, string>>, first: Buffer | undefined): void {
    const body = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller;
          if (first !== undefined) controller.enqueue(first);
        },
        pull: () => {
          this.#wakeWriter();
          const afterPull = this.#afterPull;
          this.#afterPull = undefined;
          afterPull?.();
        },
        cancel: () => {
          this.#closed = true;
          this.#wakeWriter();
          this.onCancel();
        },
      },
      { highWaterMark: HIGH_WATER_BYTES, size: (chunk) => chunk.byteLength },
    );
    // Said outright, so @hono/node-server streams at once instead of reading
    // ahead to work out a Content-Length.
    // Not to an HTTP/1.0 client, which must not get chunked encoding (RFC
    // 9112 section 6.1): node:http then sends the body unframed and closes.
    const framing: Record<string, string> = this.node === undefined || this.node.outgoing.req.httpVersion === '1.0' ? {} : { 'Transfer-Encoding': 'chunked' };
    this.#respond(new Response(body, { status, headers: { ...headers, ...framing } }));
  }

  write(chunk: Buffer): Promise<void> | undefined {
    const controller = this.#controller;
    if (controller === undefined || this.#closed) return undefined;
    controller.enqueue(chunk);
    if ((controller.desiredSize ?? 1) > 0) return undefined;
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }

  end(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#controller?.close();
  }

  cut(): void {
    if (this.#closed) return;
    this.#closed = true;
    const node = this.node;
    const controller = this.#controller;
    if (node !== undefined && controller !== undefined) {
      // Erroring the stream would make @hono/node-server print the error and
      // write it into the body. Instead, once it has taken every queued chunk
      // (it writes each to node:http as soon as it reads it), close the
      // connection without the terminating chunk.
      const whenTaken = (): void => {
        if ((controller.desiredSize ?? 0) >= HIGH_WATER_BYTES) setImmediate(() => cutResponse(node.outgoing));
        else this.#afterPull = whenTaken;
      };
      whenTaken();
    } else {
      this.#controller?.error(new Error('kometa: the handler failed after the first chunk'));
    }
  }

  fail(status: number, headers: Readonly<Record<string, string>>, body: string): void {
    this.#closed = true;
    this.#respond(new Response(body, { status, headers }));
  }

  #wakeWriter(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/** A Hono 4 handler for a comet handler: `app.get('/seed', honoComet(handler))`. */
export function honoComet(handler: CometHandler, comet: Comet = defaultComet): (c: Context) => Promise<Response> {
  return (c) => {
    let gone = (): void => {};
    const output = new HonoOutput(nodeBindings(c.env), () => gone());
    const run = comet.start(handler, { method: c.req.method, url: new URL(c.req.url), header: (name) => c.req.header(name) }, output);
    gone = () => run.clientGone();
    c.req.raw.signal.addEventListener('abort', gone, { once: true });
    return output.response;
  };
}
