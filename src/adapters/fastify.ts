import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type Comet, defaultComet } from '../comet/comet.js';
import type { CometHandler, CometOutput } from '../comet/types.js';
import { cutResponse, nodeRequest } from './node-http.js';

/**
 * The response goes through `reply.send(stream)`, not `reply.hijack()`, so
 * Fastify's lifecycle stays whole (onSend and onResponse hooks, request
 * logging). `send` is called only once the first chunk (or the end) is there,
 * because that is when status and headers are final; an error before it is
 * sent as problem details through `reply.send` as well.
 */
class FastifyOutput implements CometOutput {
  #stream: Readable | undefined;
  /** Resolves a writer held back by the stream's buffer being full. */
  #wake: (() => void) | undefined;

  constructor(private readonly reply: FastifyReply) {}

  open(status: number, headers: Readonly<Record<string, string>>, first: Buffer | undefined): void {
    const stream = new Readable({
      // Fastify pipes the stream into node:http, one `write` (one chunk) per push.
      read: () => this.#wakeWriter(),
      destroy: (error, callback) => {
        this.#wakeWriter();
        callback(error);
      },
    });
    this.#stream = stream;
    if (first !== undefined) stream.push(first);
    void this.reply.code(status).headers(headers).send(stream);
  }

  write(chunk: Buffer): Promise<void> | undefined {
    const stream = this.#stream;
    if (stream === undefined || stream.destroyed) return undefined;
    if (stream.push(chunk)) return undefined;
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }

  end(): void {
    this.#stream?.push(null);
  }

  cut(): void {
    // Not a stream error: before Fastify has written the head that would
    // become its own 500, and after it Fastify destroys the socket at once,
    // dropping the chunks still on their way. Instead, once Fastify has piped
    // everything pushed so far into node:http, close the connection without
    // the terminating chunk.
    const stream = this.#stream;
    const res = this.reply.raw;
    if (stream === undefined || stream.destroyed) {
      cutResponse(res);
      return;
    }
    const whenPiped = (): void => {
      if (stream.readableFlowing === true) setImmediate(() => cutResponse(res));
      else stream.once('resume', () => setImmediate(() => cutResponse(res)));
    };
    whenPiped();
  }

  fail(status: number, headers: Readonly<Record<string, string>>, body: string): void {
    void this.reply.code(status).headers(headers).send(body);
  }

  #wakeWriter(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/**
 * A Fastify 5 route handler for a comet handler: `app.get('/seed', fastifyComet(handler))`.
 * It returns the reply, which tells Fastify the response is sent later.
 */
export function fastifyComet(
  handler: CometHandler,
  comet: Comet = defaultComet,
): (request: FastifyRequest, reply: FastifyReply) => FastifyReply {
  return (request, reply) => {
    const run = comet.start(handler, nodeRequest(request.raw), new FastifyOutput(reply));
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) run.clientGone();
    });
    return reply;
  };
}
