import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { reportDrop } from '../core/diagnostics.js';

const CRLF = Buffer.from('\r\n');
export const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/**
 * One HTTP/1.1 chunk (`size CRLF payload CRLF`) in a single Buffer, so it can
 * be shared by many sockets. Text is framed as text and encoded straight into
 * the Buffer with one write: one allocation per frame and no temporary
 * Buffer (a burst of large messages is otherwise twice the garbage, see
 * docs/benchmarks.md), and one call into node's buffer code instead of a
 * write and two copies (with one subscriber per channel, this runs once per
 * delivery).
 */
export function chunk(payload: string | Buffer): Buffer {
  if (typeof payload === 'string') {
    const length = Buffer.byteLength(payload);
    const size = length.toString(16);
    const out = Buffer.allocUnsafe(size.length + 2 + length + 2);
    out.write(`${size}\r\n${payload}\r\n`);
    return out;
  }
  const size = payload.length.toString(16);
  const out = Buffer.allocUnsafe(size.length + 2 + payload.length + 2);
  out.write(size, 0, 'latin1');
  CRLF.copy(out, size.length);
  payload.copy(out, size.length + 2);
  CRLF.copy(out, size.length + 2 + payload.length);
  return out;
}

/**
 * The payloads of one or more complete chunks, without their framing: for an
 * HTTP/1.0 peer, which must not get chunked encoding (RFC 9112 section 6.1).
 * A single chunk costs no copy (a view into the shared Buffer).
 */
export function unchunk(framed: Buffer): Buffer {
  const payloads: Buffer[] = [];
  let at = 0;
  while (at < framed.length) {
    const lineEnd = framed.indexOf(CRLF, at);
    const size = Number.parseInt(framed.toString('latin1', at, lineEnd), 16);
    payloads.push(framed.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
  return payloads.length === 1 ? payloads[0]! : Buffer.concat(payloads);
}

/*
 * The hub hands the same frame Buffer to every subscriber of a channel in
 * turn; over HTTP/2 (and to HTTP/1.0 peers) each would unframe it again, one
 * parse and one Buffer view per subscriber per message. The last frame's
 * payload is kept instead, so only the first subscriber pays (a CPU profile
 * of 1,000 HTTP/2 subscribers showed unchunk at a tenth of the JS delivery path).
 */
let lastFramed: Buffer | undefined;
let lastUnframed: Buffer = Buffer.alloc(0);

function unchunkShared(framed: Buffer): Buffer {
  if (framed !== lastFramed) {
    lastUnframed = unchunk(framed);
    lastFramed = framed;
  }
  return lastUnframed;
}

export interface StreamLimits {
  /** Bytes that may wait in a connection's outgoing queue before it is closed as too slow. */
  readonly maxQueueBytes: number;
}

/**
 * A long-lived chunked response written straight to its socket.
 *
 * After the headers go out through node:http, every frame is a pre-built
 * chunk Buffer that the hub shares between all subscribers, written with
 * `socket.write`: no per-subscriber chunk framing, no copy, no extra writes
 * through ServerResponse. The wire stays valid HTTP/1.1 chunked encoding.
 *
 * An HTTP/1.0 request gets the same bytes without the framing, and the end
 * of the body is the end of the connection. Either way the response says
 * `Connection: close`: it ends only when the server ends it, so nothing
 * pipelined behind it could ever be answered on this connection.
 *
 * Over HTTP/2 the same payloads, unframed, go to the request's own stream
 * (DATA frames; the connection stays open for the other streams). The
 * stream's `writableLength` grows when the peer's flow-control window is
 * shut, so a slow consumer is found and closed the same way.
 */
export class ChunkedStream {
  /** The TCP socket (HTTP/1.x) or the HTTP/2 stream the body is written to. */
  #out: Writable | null = null;
  /** The TCP socket over HTTP/1.x; none over HTTP/2 (a session's socket is shared by its streams). */
  #socket: Socket | null = null;
  #closed = false;
  /** HTTP/1.0 and HTTP/2: no chunked encoding (HTTP/1.0: the body ends with the connection). */
  #unframed = false;
  #http2 = false;
  /** Only to name the transport when the connection is dropped as too slow. */
  #contentType = '';
  /** Sweep generation of the last write, so heartbeats skip connections that were just written to. */
  lastWriteSweep = 0;

  constructor(
    readonly res: ServerResponse,
    private readonly limits: StreamLimits,
    private readonly onClose: () => void,
    private readonly onSlow: () => Buffer,
  ) {}

  get closed(): boolean {
    return this.#closed;
  }

  /** The TCP socket this response has to itself; null over HTTP/2, where the connection is shared. */
  get socket(): Socket | null {
    return this.#socket;
  }

  /** What the client sees as the remote end, for reports. */
  get remoteAddress(): string | undefined {
    return this.#socket?.remoteAddress ?? this.res.req.socket?.remoteAddress;
  }

  /** Send status and headers now; later writes go to the socket directly. */
  open(headers: Record<string, string>): void {
    const res = this.res;
    this.#contentType = headers['Content-Type'] ?? '';
    this.#http2 = res.req.httpVersionMajor === 2;
    this.#unframed = this.#http2 || (res.req.httpVersionMajor === 1 && res.req.httpVersionMinor === 0);
    if (this.#http2) {
      this.#openHttp2(headers);
      return;
    }
    res.writeHead(200, {
      ...headers,
      Connection: 'close',
      ...(this.#unframed ? {} : { 'Transfer-Encoding': 'chunked' }),
    });
    res.flushHeaders();
    const socket = res.socket;
    if (socket === null || socket.destroyed) {
      this.#finish();
      return;
    }
    this.#socket = socket;
    this.#out = socket;
    socket.setNoDelay(true);
    socket.once('close', () => this.#finish());
    // node:http's own error listener leaves when a request pipelined behind
    // this one is an upgrade (the socket is handed over, see InOrder); a peer
    // gone mid-write must still only close the stream, never crash.
    socket.on('error', () => socket.destroy());
  }

  /** HTTP/2: headers on the stream now, then DATA frames straight to it (see the class comment). */
  #openHttp2(headers: Record<string, string>): void {
    const res = this.res;
    res.writeHead(200, headers);
    res.flushHeaders();
    const stream = (res as unknown as { stream?: Writable }).stream;
    if (stream === undefined || stream.destroyed) {
      this.#finish();
      return;
    }
    this.#out = stream;
    res.once('close', () => this.#finish());
    stream.on('error', () => stream.destroy());
  }

  write(bytes: Buffer, sweep: number): void {
    const out = this.#out;
    if (out === null || this.#closed) return;
    this.lastWriteSweep = sweep;
    out.write(this.#unframed ? unchunkShared(bytes) : bytes);
    if (out.writableLength > this.limits.maxQueueBytes) {
      // The subscriber is not reading. Tell it why (it may never read this) and
      // let it resume from history on a fresh connection.
      reportDrop({
        transport: transportOf(this.#contentType),
        reason: 'slow-consumer',
        queuedBytes: out.writableLength,
        remoteAddress: this.remoteAddress,
      });
      this.end(this.onSlow());
    }
  }

  /** Finish the response cleanly with an optional last frame, then close the connection (over HTTP/2, the stream). */
  end(lastFrame?: Buffer): void {
    const out = this.#out;
    if (out === null || this.#closed) return;
    if (lastFrame !== undefined) out.write(this.#unframed ? unchunk(lastFrame) : lastFrame);
    if (this.#unframed) out.end();
    else out.end(LAST_CHUNK);
    // A peer that never reads would keep the socket (or stream) half-closed forever.
    setTimeout(() => out.destroy(), 5000).unref();
    this.#finish();
  }

  destroy(): void {
    this.#out?.destroy();
    this.#finish();
  }

  #finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.onClose();
  }
}

/** Which transport a chunked response carries, from its Content-Type (only asked when one is dropped). */
function transportOf(type: string): string {
  if (type.startsWith('text/event-stream')) return 'sse';
  if (type.startsWith('application/x-ndjson')) return 'stream';
  return 'http-stream';
}
