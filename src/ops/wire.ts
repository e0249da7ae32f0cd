import { type Socket, connect as netConnect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { connect as tlsConnect } from 'node:tls';
import type { WireEvent } from './stats-types.js';

/*
 * The wire inspector: HTTP/1.1 spoken by hand over one socket, so that what
 * is recorded is what was on the wire — the request as sent, the response
 * head as received, every chunk of a chunked body as the server framed it,
 * with the time it arrived. node:http (or fetch) would reassemble the body
 * and hide exactly what the seed's author wanted to see.
 */

export interface WireRequest {
  readonly method?: string;
  readonly path: string;
  readonly headers?: readonly (readonly [string, string])[];
  readonly body?: string;
  /** Send If-None-Match / If-Modified-Since from the previous response's ETag / Last-Modified. */
  readonly revalidate?: boolean;
}

export interface WireOptions {
  /** Where to connect: http:// or https:// (the path of each request is its own). */
  readonly origin: URL;
  /** Sent one after the other on one connection while the server keeps it alive (a new one otherwise). */
  readonly requests: readonly WireRequest[];
  readonly onEvent?: (event: WireEvent) => void;
  /** The whole exchange is cut after this long. */
  readonly timeoutMs: number;
  /** Longest text kept per chunk (the size is always exact). */
  readonly maxText?: number;
  readonly signal?: AbortSignal;
}

export interface WireResult {
  readonly events: WireEvent[];
  /** Did every request get a whole response? */
  readonly complete: boolean;
}

const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');
const MAX_HEAD = 64 * 1024;

/** Text for display: control characters made visible, long text cut. */
export function shorten(bytes: Buffer, max: number): { text: string; truncated: boolean } {
  const truncated = bytes.length > max;
  const text = bytes
    .subarray(0, max)
    .toString('utf8')
    .replace(/\r/g, '\\r')
    .replace(/\n/g, '\\n')
    .replace(/\t/g, '\\t')
    .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return { text, truncated };
}

type BodyMode =
  | { kind: 'none' }
  | { kind: 'length'; left: number }
  | { kind: 'chunked' }
  | { kind: 'close' }
  | { kind: 'upgrade' };

type Headers = readonly (readonly [string, string])[];

/** Inspect one or more requests on the wire; resolves when all are answered, the socket closes, or time runs out. */
export function inspectWire(options: WireOptions): Promise<WireResult> {
  return new Promise<WireResult>((resolve) => new WireInspection(options, resolve).start());
}

function headerLines(lines: readonly string[]): [string, string][] {
  const headers: [string, string][] = [];
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
  }
  return headers;
}

function headerOf(headers: Headers, name: string): string | undefined {
  return headers.find(([n]) => n.toLowerCase() === name)?.[1];
}

/** A request's head (and body) as it goes on the wire; revalidation uses the previous response's validators. */
function requestBytes(request: WireRequest, origin: URL, previous: Headers): { head: string; body?: Buffer } {
  const method = request.method ?? 'GET';
  const headers: [string, string][] = [
    ['Host', origin.host],
    ['User-Agent', 'kometa-wire'],
    ...(request.headers ?? []).map(([n, v]): [string, string] => [n, v]),
  ];
  if (!headers.some(([n]) => n.toLowerCase() === 'accept')) headers.push(['Accept', '*/*']);
  if (request.revalidate === true) {
    const etag = headerOf(previous, 'etag');
    const modified = headerOf(previous, 'last-modified');
    if (etag !== undefined) headers.push(['If-None-Match', etag]);
    if (modified !== undefined) headers.push(['If-Modified-Since', modified]);
  }
  const body = request.body === undefined ? undefined : Buffer.from(request.body);
  if (body !== undefined) headers.push(['Content-Length', String(body.length)]);
  const lines = headers.map(([n, v]) => `${n}: ${v}\r\n`).join('');
  return { head: `${method} ${request.path} HTTP/1.1\r\n${lines}\r\n`, body };
}

/**
 * One inspection: the requests in order, on one connection while the server
 * keeps it alive (a new one otherwise), every event recorded with its time.
 * Events of a connection that has been replaced are ignored.
 */
class WireInspection {
  readonly #events: WireEvent[] = [];
  readonly #started = performance.now();
  readonly #options: WireOptions;
  readonly #resolve: (result: WireResult) => void;
  readonly #maxText: number;
  readonly #secure: boolean;
  readonly #host: string;
  readonly #port: number;
  #timer: NodeJS.Timeout | undefined;
  #socket: Socket | undefined;
  #index = 0;
  #done = false;
  #previousHeaders: Headers = [];
  // The current connection and its current response.
  #buffer: Buffer = Buffer.alloc(0);
  #state: 'head' | 'body' | 'idle' = 'idle';
  #mode: BodyMode = { kind: 'none' };
  #bytes = 0;
  #chunks = 0;
  #keepAlive = true;
  #isHead = false;

  constructor(options: WireOptions, resolve: (result: WireResult) => void) {
    this.#options = options;
    this.#resolve = resolve;
    this.#maxText = options.maxText ?? 160;
    this.#secure = options.origin.protocol === 'https:';
    this.#host = options.origin.hostname.replace(/^\[|\]$/g, '');
    this.#port = Number(options.origin.port) || (this.#secure ? 443 : 80);
  }

  start(): void {
    this.#timer = setTimeout(() => {
      const reason = `inspector stopped after ${Math.round(this.#options.timeoutMs / 1000)} s`;
      this.#emit({ type: 'close', t: this.#now(), reason });
      this.#finish(false);
    }, this.#options.timeoutMs);
    this.#options.signal?.addEventListener('abort', this.#onAbort, { once: true });
    if (this.#options.requests.length === 0) this.#finish(true);
    else this.#open();
  }

  readonly #onAbort = () => {
    this.#emit({ type: 'close', t: this.#now(), reason: 'stopped' });
    this.#finish(false);
  };

  #now(): number {
    return Math.round((performance.now() - this.#started) * 100) / 100;
  }

  #emit(event: WireEvent): void {
    this.#events.push(event);
    this.#options.onEvent?.(event);
  }

  #finish(complete: boolean): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#timer);
    this.#options.signal?.removeEventListener('abort', this.#onAbort);
    this.#socket?.destroy();
    this.#resolve({ events: this.#events, complete });
  }

  /** Connect, then send the current request on the fresh connection. */
  #open(): void {
    const t0 = this.#now();
    const host = this.#host;
    const port = this.#port;
    const onConnected = () => this.#connected(socket, t0);
    const socket: Socket = this.#secure
      ? tlsConnect({ host, port, servername: host, ALPNProtocols: ['http/1.1'] }, onConnected)
      : netConnect({ host, port }, onConnected);
    socket.setNoDelay(true);
    this.#socket = socket;
    this.#buffer = Buffer.alloc(0);
    this.#state = 'idle';
    this.#mode = { kind: 'none' };
    this.#bytes = 0;
    this.#chunks = 0;
    this.#keepAlive = true;
    this.#isHead = false;
    socket.on('data', (data: Buffer) => {
      if (this.#done || socket !== this.#socket) return;
      this.#buffer = this.#buffer.length === 0 ? data : Buffer.concat([this.#buffer, data]);
      this.#parse();
    });
    socket.on('error', (error: Error) => {
      if (this.#done || socket !== this.#socket) return;
      this.#emit({ type: 'error', t: this.#now(), message: error.message });
      this.#finish(false);
    });
    socket.on('close', () => {
      if (this.#done || socket !== this.#socket) return;
      this.#closed();
    });
  }

  #connected(socket: Socket, t0: number): void {
    const alpn = this.#secure ? (socket as Socket & { alpnProtocol?: string | false }).alpnProtocol : undefined;
    const remote = `${socket.remoteAddress ?? this.#host}:${socket.remotePort ?? this.#port}`;
    const ms = Math.round((this.#now() - t0) * 100) / 100;
    const tls = this.#secure ? { tls: `TLS, ALPN ${alpn || 'none'}` } : {};
    this.#emit({ type: 'connect', t: this.#now(), remote, ms, ...tls });
    this.#send(false);
  }

  #send(reused: boolean): void {
    const request = this.#options.requests[this.#index]!;
    this.#isHead = (request.method ?? 'GET') === 'HEAD';
    const { head, body } = requestBytes(request, this.#options.origin, this.#previousHeaders);
    this.#emit({ type: 'request', t: this.#now(), index: this.#index, reused, head: head.trimEnd() });
    this.#bytes = 0;
    this.#chunks = 0;
    this.#state = 'head';
    this.#socket!.write(body === undefined ? head : Buffer.concat([Buffer.from(head, 'latin1'), body]));
  }

  #endResponse(): void {
    const { bytes, chunks, keepAlive } = { bytes: this.#bytes, chunks: this.#chunks, keepAlive: this.#keepAlive };
    this.#emit({ type: 'end', t: this.#now(), index: this.#index, bytes, chunks, keepAlive });
    this.#state = 'idle';
    this.#index++;
    if (this.#index >= this.#options.requests.length) {
      this.#finish(true);
      return;
    }
    const socket = this.#socket!;
    if (this.#keepAlive && !socket.destroyed) this.#send(true);
    else {
      socket.destroy();
      this.#open();
    }
  }

  #chunk(payload: Buffer, framing: 'chunked' | 'read'): void {
    this.#chunks++;
    this.#bytes += payload.length;
    const { text, truncated } = shorten(payload, this.#maxText);
    const size = payload.length;
    this.#emit({ type: 'chunk', t: this.#now(), index: this.#index, framing, n: this.#chunks, size, text, truncated });
  }

  #parse(): void {
    for (;;) {
      if (this.#state === 'head') {
        if (!this.#parseHead()) return;
        continue;
      }
      if (this.#state !== 'body' || this.#buffer.length === 0) return;
      if (this.#mode.kind === 'chunked') {
        if (!this.#parseChunk()) return;
        continue;
      }
      if (this.#mode.kind === 'length') {
        if (!this.#parseLength(this.#mode)) return;
        continue;
      }
      // Until the server closes.
      this.#chunk(this.#buffer, 'read');
      this.#buffer = Buffer.alloc(0);
      return;
    }
  }

  /** The response head, when all of it is there; false when parsing stops for now. */
  #parseHead(): boolean {
    const end = this.#buffer.indexOf(HEAD_END);
    if (end === -1) {
      if (this.#buffer.length > MAX_HEAD) {
        this.#emit({ type: 'error', t: this.#now(), message: 'response head larger than 64 KiB' });
        this.#finish(false);
      }
      return false;
    }
    const lines = this.#buffer.subarray(0, end).toString('latin1').split('\r\n');
    this.#buffer = this.#buffer.subarray(end + 4);
    const status = /^HTTP\/(\d\.\d) (\d{3}) ?(.*)$/.exec(lines[0] ?? '');
    if (status === null) {
      const message = `not an HTTP/1.x response: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`;
      this.#emit({ type: 'error', t: this.#now(), message });
      this.#finish(false);
      return false;
    }
    const headers = headerLines(lines.slice(1));
    const code = Number(status[2]);
    const httpVersion = status[1]!;
    const statusText = status[3] ?? '';
    const index = this.#index;
    this.#emit({ type: 'response', t: this.#now(), index, httpVersion, status: code, statusText, headers });
    if (code >= 100 && code < 200 && code !== 101) return true; // an interim response; the real one follows
    this.#previousHeaders = headers;
    this.#mode = this.#bodyMode(httpVersion, code, headers);
    this.#state = 'body';
    if (this.#mode.kind === 'none' || (this.#mode.kind === 'length' && this.#mode.left === 0)) {
      this.#endResponse();
      return false;
    }
    // After a 101 the connection speaks another protocol; report what follows as reads.
    if (this.#mode.kind === 'upgrade') this.#mode = { kind: 'close' };
    return true;
  }

  /** How the body is delimited (RFC 9112 section 6.3), and whether the connection stays open after it. */
  #bodyMode(httpVersion: string, code: number, headers: Headers): BodyMode {
    const connection = (headerOf(headers, 'connection') ?? '').toLowerCase();
    this.#keepAlive = httpVersion === '1.1' ? !connection.includes('close') : connection.includes('keep-alive');
    const length = headerOf(headers, 'content-length');
    if (code === 101) return { kind: 'upgrade' };
    if (this.#isHead || code === 204 || code === 304) return { kind: 'none' };
    if ((headerOf(headers, 'transfer-encoding') ?? '').toLowerCase().includes('chunked')) return { kind: 'chunked' };
    if (length !== undefined) return { kind: 'length', left: Number(length) };
    this.#keepAlive = false;
    return { kind: 'close' };
  }

  /** One chunk of a chunked body, as the server framed it; false when parsing stops for now. */
  #parseChunk(): boolean {
    const buffer = this.#buffer;
    const lineEnd = buffer.indexOf(CRLF);
    if (lineEnd === -1) return false;
    const size = parseInt(buffer.subarray(0, lineEnd).toString('latin1').split(';')[0]!.trim(), 16);
    if (!Number.isFinite(size)) {
      this.#emit({ type: 'error', t: this.#now(), message: 'bad chunk size line' });
      this.#finish(false);
      return false;
    }
    if (size === 0) {
      // The last chunk, then trailers (usually none) and an empty line.
      const noTrailers = buffer.indexOf(CRLF, lineEnd + 2) === lineEnd + 2;
      const trailerEnd = noTrailers ? lineEnd + 4 : buffer.indexOf(HEAD_END, lineEnd) + 4;
      if (trailerEnd < 4) return false;
      this.#buffer = buffer.subarray(trailerEnd);
      this.#endResponse();
      return false;
    }
    if (buffer.length < lineEnd + 2 + size + 2) return false;
    this.#chunk(buffer.subarray(lineEnd + 2, lineEnd + 2 + size), 'chunked');
    this.#buffer = buffer.subarray(lineEnd + 2 + size + 2);
    return true;
  }

  /** What is there of a body with a Content-Length; false when parsing stops for now. */
  #parseLength(mode: { kind: 'length'; left: number }): boolean {
    const take = Math.min(mode.left, this.#buffer.length);
    this.#chunk(this.#buffer.subarray(0, take), 'read');
    this.#buffer = this.#buffer.subarray(take);
    mode.left -= take;
    if (mode.left === 0) {
      this.#endResponse();
      return false;
    }
    return true;
  }

  /** The server closed the connection: the end of a body delimited by the close, or a response cut short. */
  #closed(): void {
    if (this.#state === 'body' && this.#mode.kind === 'close') {
      const { bytes, chunks } = { bytes: this.#bytes, chunks: this.#chunks };
      this.#emit({ type: 'end', t: this.#now(), index: this.#index, bytes, chunks, keepAlive: false });
      this.#emit({ type: 'close', t: this.#now(), reason: 'the server closed the connection (end of the response)' });
      this.#index++;
      if (this.#index >= this.#options.requests.length) this.#finish(true);
      else this.#open();
      return;
    }
    const reason =
      this.#state === 'idle'
        ? 'the server closed the connection'
        : 'the server closed the connection in the middle of a response';
    this.#emit({ type: 'close', t: this.#now(), reason });
    this.#finish(false);
  }
}
