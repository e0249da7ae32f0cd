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

type BodyMode = { kind: 'none' } | { kind: 'length'; left: number } | { kind: 'chunked' } | { kind: 'close' } | { kind: 'upgrade' };

/** Inspect one or more requests on the wire; resolves when all are answered, the socket closes, or time runs out. */
export function inspectWire(options: WireOptions): Promise<WireResult> {
  const events: WireEvent[] = [];
  const started = performance.now();
  const now = () => Math.round((performance.now() - started) * 100) / 100;
  const emit = (event: WireEvent) => {
    events.push(event);
    options.onEvent?.(event);
  };
  const maxText = options.maxText ?? 160;
  const secure = options.origin.protocol === 'https:';
  const host = options.origin.hostname.replace(/^\[|\]$/g, '');
  const port = Number(options.origin.port) || (secure ? 443 : 80);

  return new Promise<WireResult>((resolve) => {
    let socket: Socket | undefined;
    let index = 0;
    let done = false;
    let previousHeaders: readonly (readonly [string, string])[] = [];

    const finish = (complete: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket?.destroy();
      resolve({ events, complete });
    };
    const timer = setTimeout(() => {
      emit({ type: 'close', t: now(), reason: `inspector stopped after ${Math.round(options.timeoutMs / 1000)} s` });
      finish(false);
    }, options.timeoutMs);
    const onAbort = () => {
      emit({ type: 'close', t: now(), reason: 'stopped' });
      finish(false);
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });

    /** Connect, then send the current request on the fresh connection. */
    const open = () => {
      const t0 = now();
      const onConnected = () => {
        const tls = secure ? (socket as Socket & { alpnProtocol?: string | false }).alpnProtocol : undefined;
        emit({ type: 'connect', t: now(), remote: `${socket!.remoteAddress ?? host}:${socket!.remotePort ?? port}`, ms: Math.round((now() - t0) * 100) / 100, ...(secure ? { tls: `TLS, ALPN ${tls || 'none'}` } : {}) });
        send(false);
      };
      socket = secure
        ? tlsConnect({ host, port, servername: host, ALPNProtocols: ['http/1.1'] }, onConnected)
        : netConnect({ host, port }, onConnected);
      socket.setNoDelay(true);
      const current = socket;
      let buffer: Buffer = Buffer.alloc(0);
      let state: 'head' | 'body' | 'idle' = 'idle';
      let mode: BodyMode = { kind: 'none' };
      let bytes = 0;
      let chunks = 0;
      let keepAlive = true;
      let isHead = false;

      const endResponse = () => {
        emit({ type: 'end', t: now(), index, bytes, chunks, keepAlive });
        state = 'idle';
        index++;
        if (index >= options.requests.length) {
          finish(true);
          return;
        }
        if (keepAlive && !current.destroyed) send(true);
        else {
          current.destroy();
          open();
        }
      };

      const chunkEvent = (payload: Buffer, framing: 'chunked' | 'read') => {
        chunks++;
        bytes += payload.length;
        emit({ type: 'chunk', t: now(), index, framing, n: chunks, size: payload.length, ...shorten(payload, maxText) });
      };

      const parse = () => {
        for (;;) {
          if (state === 'head') {
            const end = buffer.indexOf(HEAD_END);
            if (end === -1) {
              if (buffer.length > MAX_HEAD) {
                emit({ type: 'error', t: now(), message: 'response head larger than 64 KiB' });
                finish(false);
              }
              return;
            }
            const lines = buffer.subarray(0, end).toString('latin1').split('\r\n');
            buffer = buffer.subarray(end + 4);
            const status = /^HTTP\/(\d\.\d) (\d{3}) ?(.*)$/.exec(lines[0] ?? '');
            if (status === null) {
              emit({ type: 'error', t: now(), message: `not an HTTP/1.x response: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}` });
              finish(false);
              return;
            }
            const headers: [string, string][] = [];
            for (const line of lines.slice(1)) {
              const colon = line.indexOf(':');
              if (colon > 0) headers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
            }
            const code = Number(status[2]);
            emit({ type: 'response', t: now(), index, httpVersion: status[1]!, status: code, statusText: status[3] ?? '', headers });
            if (code >= 100 && code < 200 && code !== 101) continue; // an interim response; the real one follows
            previousHeaders = headers;
            const get = (name: string) => headers.find(([n]) => n.toLowerCase() === name)?.[1];
            const connection = (get('connection') ?? '').toLowerCase();
            keepAlive = status[1] === '1.1' ? !connection.includes('close') : connection.includes('keep-alive');
            const length = get('content-length');
            if (code === 101) mode = { kind: 'upgrade' };
            else if (isHead || code === 204 || code === 304) mode = { kind: 'none' };
            else if ((get('transfer-encoding') ?? '').toLowerCase().includes('chunked')) mode = { kind: 'chunked' };
            else if (length !== undefined) mode = { kind: 'length', left: Number(length) };
            else {
              mode = { kind: 'close' };
              keepAlive = false;
            }
            state = 'body';
            if (mode.kind === 'none' || (mode.kind === 'length' && mode.left === 0)) {
              endResponse();
              return;
            }
            if (mode.kind === 'upgrade') {
              // The connection now speaks another protocol; report what follows as reads.
              mode = { kind: 'close' };
            }
            continue;
          }
          if (state !== 'body' || buffer.length === 0) return;
          if (mode.kind === 'chunked') {
            const lineEnd = buffer.indexOf(CRLF);
            if (lineEnd === -1) return;
            const size = parseInt(buffer.subarray(0, lineEnd).toString('latin1').split(';')[0]!.trim(), 16);
            if (!Number.isFinite(size)) {
              emit({ type: 'error', t: now(), message: 'bad chunk size line' });
              finish(false);
              return;
            }
            if (size === 0) {
              // The last chunk, then trailers (usually none) and an empty line.
              const trailerEnd = buffer.indexOf(CRLF, lineEnd + 2) === lineEnd + 2 ? lineEnd + 4 : buffer.indexOf(HEAD_END, lineEnd) + 4;
              if (trailerEnd < 4) return;
              buffer = buffer.subarray(trailerEnd);
              endResponse();
              return;
            }
            if (buffer.length < lineEnd + 2 + size + 2) return;
            chunkEvent(buffer.subarray(lineEnd + 2, lineEnd + 2 + size), 'chunked');
            buffer = buffer.subarray(lineEnd + 2 + size + 2);
            continue;
          }
          if (mode.kind === 'length') {
            const take = Math.min(mode.left, buffer.length);
            chunkEvent(buffer.subarray(0, take), 'read');
            buffer = buffer.subarray(take);
            mode.left -= take;
            if (mode.left === 0) {
              endResponse();
              return;
            }
            continue;
          }
          // Until the server closes.
          chunkEvent(buffer, 'read');
          buffer = Buffer.alloc(0);
          return;
        }
      };

      const send = (reused: boolean) => {
        const request = options.requests[index]!;
        const method = request.method ?? 'GET';
        isHead = method === 'HEAD';
        const headers: [string, string][] = [['Host', options.origin.host], ['User-Agent', 'kometa-wire'], ...(request.headers ?? []).map(([n, v]): [string, string] => [n, v])];
        if (!headers.some(([n]) => n.toLowerCase() === 'accept')) headers.push(['Accept', '*/*']);
        if (request.revalidate === true) {
          const etag = previousHeaders.find(([n]) => n.toLowerCase() === 'etag')?.[1];
          const modified = previousHeaders.find(([n]) => n.toLowerCase() === 'last-modified')?.[1];
          if (etag !== undefined) headers.push(['If-None-Match', etag]);
          if (modified !== undefined) headers.push(['If-Modified-Since', modified]);
        }
        const body = request.body === undefined ? undefined : Buffer.from(request.body);
        if (body !== undefined) headers.push(['Content-Length', String(body.length)]);
        const head = `${method} ${request.path} HTTP/1.1\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
        emit({ type: 'request', t: now(), index, reused, head: head.trimEnd() });
        bytes = 0;
        chunks = 0;
        state = 'head';
        current.write(body === undefined ? head : Buffer.concat([Buffer.from(head, 'latin1'), body]));
      };

      current.on('data', (data: Buffer) => {
        if (done || current !== socket) return;
        buffer = buffer.length === 0 ? data : Buffer.concat([buffer, data]);
        parse();
      });
      current.on('error', (error: Error) => {
        if (done || current !== socket) return;
        emit({ type: 'error', t: now(), message: error.message });
        finish(false);
      });
      current.on('close', () => {
        if (done || current !== socket) return;
        if (state === 'body' && mode.kind === 'close') {
          emit({ type: 'end', t: now(), index, bytes, chunks, keepAlive: false });
          emit({ type: 'close', t: now(), reason: 'the server closed the connection (end of the response)' });
          index++;
          if (index >= options.requests.length) finish(true);
          else open();
          return;
        }
        emit({ type: 'close', t: now(), reason: state === 'idle' ? 'the server closed the connection' : 'the server closed the connection in the middle of a response' });
        finish(false);
      });
    };

    if (options.requests.length === 0) finish(true);
    else open();
  });
}
