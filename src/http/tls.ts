import { readFileSync } from 'node:fs';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import {
  Http2ServerResponse,
  type Http2SecureServer,
  type Http2ServerRequest,
  type ServerHttp2Session,
  type ServerHttp2Stream,
  createSecureServer,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

/** The certificate chain and private key the hub serves HTTPS with (PEM). */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** Read `--tls-cert` and `--tls-key`; a file that cannot be read is said by name. */
export function readTlsFiles(certPath: string, keyPath: string): TlsMaterial {
  const read = (path: string, what: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new Error(`cannot read the TLS ${what} ${path}: ${(error as Error).message}`, { cause: error });
    }
  };
  return { cert: read(certPath, 'certificate'), key: read(keyPath, 'key') };
}

/** Whether a request came over HTTP/2 (the compat API, which mirrors node:http's but has no socket of its own). */
export function isHttp2(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 2;
}

/**
 * RFC 9113 section 8.2.2: connection-specific header fields are malformed in
 * HTTP/2, and node throws on them. The hub's routes say `Connection: close`
 * (drain, oversized body, rate limit) and `Transfer-Encoding: chunked` for
 * HTTP/1.1; over HTTP/2 each request is its own stream, so these are dropped
 * here, in one place, instead of at every `writeHead`.
 */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

function withoutConnectionHeaders(headers: unknown): unknown {
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) return headers;
  const kept: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers as OutgoingHttpHeaders)) {
    if (!CONNECTION_SPECIFIC.has(name.toLowerCase())) kept[name] = value;
  }
  return kept;
}

/** node's HTTP/2 compat response, minus the HTTP/1 connection headers the hub sets for HTTP/1.1 clients. */
export class Http2HubResponse extends Http2ServerResponse {
  override setHeader(name: string, value: number | string | readonly string[]): void {
    if (!CONNECTION_SPECIFIC.has(name.toLowerCase())) super.setHeader(name, value);
  }

  override writeHead(statusCode: number, ...rest: unknown[]): this {
    const args = rest.map(withoutConnectionHeaders);
    (super.writeHead as (status: number, ...more: unknown[]) => unknown).call(this, statusCode, ...args);
    return this;
  }
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export interface SecureListener {
  readonly server: Http2SecureServer;
  /** The TLS connection a request came on: its own socket over HTTP/1.1, its session's over HTTP/2. */
  connectionOf(req: IncomingMessage): Socket | undefined;
  /** Every open TLS connection, to cut those still open when a drain's grace runs out. */
  readonly sockets: ReadonlySet<TLSSocket>;
}

export interface SecureListenerOptions {
  readonly maxHeaderBytes: number;
  /** Requests at most in flight on one HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly maxStreams: number;
  /** An HTTP/2 connection with no open stream for this long is sent GOAWAY and closed; 0: never. */
  readonly idleSessionMs: number;
}

/**
 * HTTPS on one port for both protocols: ALPN picks HTTP/2 where the client
 * offers it (every browser does) and HTTP/1.1 otherwise (`allowHTTP1`), so
 * curl, old proxies and the `ws` client's upgrade keep working. HTTP/2
 * requests go to the same handler as HTTP/1.1 ones through node's compat API,
 * whose request and response mirror node:http's; the places that differ (no
 * socket to write to, no connection headers, no pipelining) ask `isHttp2`.
 */
export function createSecureListener(
  tls: TlsMaterial,
  options: SecureListenerOptions,
  handle: Handler,
): SecureListener {
  const sockets = new Set<TLSSocket>();
  const sessionSockets = new WeakMap<ServerHttp2Session, Socket>();
  let lastSecured: TLSSocket | undefined;
  const idle = new IdleSessions(options.idleSessionMs);
  const server = createSecureServer(
    {
      cert: tls.cert,
      key: tls.key,
      allowHTTP1: true,
      settings: {
        maxConcurrentStreams: options.maxStreams,
        maxHeaderListSize: options.maxHeaderBytes,
        // RFC 8441 section 3: SETTINGS_ENABLE_CONNECT_PROTOCOL lets a client open a WebSocket on a stream.
        enableConnectProtocol: true,
      },
      Http2ServerResponse: Http2HubResponse as typeof Http2ServerResponse,
    },
    // The compat objects are used as node:http's: see the comment above.
    (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) =>
      handle(req as IncomingMessage, res as ServerResponse),
  );
  // node creates a connection's HTTP/2 session inside its own 'secureConnection'
  // listener, which runs after this prepended one: the session seen next is this socket's.
  server.prependListener('secureConnection', (socket: TLSSocket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    lastSecured = socket;
  });
  server.on('session', (session: ServerHttp2Session) => {
    if (lastSecured !== undefined) sessionSockets.set(session, lastSecured);
    lastSecured = undefined;
    // A peer gone mid-write must only end its streams, never crash the process.
    session.on('error', () => session.destroy());
    idle.track(session);
  });
  return {
    server,
    sockets,
    connectionOf: (req) =>
      isHttp2(req) ? sessionSockets.get(sessionOf(req)!) : req.socket,
  };
}

/** The HTTP/2 session a request came on, if it did. */
export function sessionOf(req: IncomingMessage): ServerHttp2Session | undefined {
  if (!isHttp2(req)) return undefined;
  return ((req as unknown as Http2ServerRequest).stream.session as ServerHttp2Session | undefined) ?? undefined;
}

/**
 * HTTP/2's keep-alive timeout. A browser keeps a connection open as long as
 * the server does; one with nothing on it for `idleMs` is sent GOAWAY
 * (session.close(): no new streams, the connection closes once the open ones
 * end, and here there are none). A session with any stream open, such as a
 * subscription that gets no message for hours, is never idle. One shared
 * sweep checks the idle sessions, and runs only while there are some.
 */
class IdleSessions {
  /** Sessions with no open stream, and since when (ms). */
  readonly #since = new Map<ServerHttp2Session, number>();
  #sweep: NodeJS.Timeout | undefined;

  constructor(readonly idleMs: number) {}

  track(session: ServerHttp2Session): void {
    if (this.idleMs <= 0) return;
    let open = 0;
    this.#idle(session);
    session.on('stream', (stream: ServerHttp2Stream) => {
      open++;
      this.#since.delete(session);
      stream.once('close', () => {
        if (--open === 0) this.#idle(session);
      });
    });
    session.once('close', () => this.#since.delete(session));
  }

  #idle(session: ServerHttp2Session): void {
    if (session.closed || session.destroyed) return;
    this.#since.set(session, Date.now());
    if (this.#sweep !== undefined) return;
    this.#sweep = setInterval(() => this.#check(), Math.min(1000, Math.max(50, this.idleMs / 4)));
    this.#sweep.unref();
  }

  #check(): void {
    const now = Date.now();
    for (const [session, since] of this.#since) {
      if (now - since < this.idleMs) continue;
      this.#since.delete(session);
      session.close();
    }
    if (this.#since.size === 0) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }
}
