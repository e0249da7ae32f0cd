import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { Http2SecureServer } from 'node:http2';
import { Server as NetServer, type Socket } from 'node:net';
import { parseCursor } from '../core/cursor.js';
import { assertChannelName } from '../core/channel-name.js';
import { KometaError } from '../core/errors.js';
import type { Hub, Subscription } from '../core/hub.js';
import { ChunkedStream } from '../transports/chunked.js';
import { LongPollSink } from '../transports/long-poll.js';
import { SSE_HEADERS, SSE_HEARTBEAT, SseSink, sseSlowFrame } from '../transports/sse.js';
import { STREAM_HEARTBEAT, StreamSink, streamSlowFrame } from '../transports/stream.js';
import { AccessPolicy } from '../auth/access.js';
import type { Grant } from '../auth/grant.js';
import { isKometaClaim } from '../auth/grant.js';
import { compilePatterns } from '../auth/patterns.js';
import { decodePublishBody, readBody } from './body.js';
import { RateLimiter } from './rate-limit.js';
import { type TrustProxy, requestClientAddress } from './client-address.js';
import { TimerWheel, type WheelTask } from '../core/timer-wheel.js';
import { wallClock } from '../core/clock.js';
import { serveClientScript } from './web.js';
import { HubWebSocket } from './websocket.js';
import { rawProblemResponse, sendProblem } from './problem.js';
import { InOrder, answersPromptly } from './in-order.js';
import { answerMalformedRequests, listen } from './server-setup.js';
import { BackendApi, type BackendOptions, type BackendServices } from './backend-routes.js';
import { acquireBackendServices } from './backend-services.js';
import { clientIdOf, userOf } from './connections.js';
import { Admission, RetryHints } from './herd.js';
import { type SecureListener, type TlsMaterial, createSecureListener, sessionOf } from './tls.js';

export interface HubHttpOptions {
  /** Heartbeat on quiet SSE and stream connections, so proxies do not cut them as idle. */
  readonly heartbeatMs: number;
  /** The middle of the `retry:` hints sent to EventSource clients. */
  readonly retryMs: number;
  /** Each hint is drawn from retryMs × (1 ± this), and the drain's Retry-After likewise (herd.ts); 0 = fixed. */
  readonly retryJitter: number;
  /** New SSE and stream subscriptions admitted per second at most (herd.ts); 0 = no limit. */
  readonly admitRate: number;
  /** How long a long-poll is held when nothing comes, unless the request asks for less. */
  readonly pollTimeoutMs: number;
  /** The most a request may ask a long-poll to be held (`timeout=`, seconds). */
  readonly maxPollTimeoutMs: number;
  /** Outgoing bytes that may queue on one connection before it is closed as a slow consumer. */
  readonly maxQueueBytes: number;
  /** Largest publish body. */
  readonly maxBodyBytes: number;
  /** Time allowed to receive a request's headers (slowloris). */
  readonly headersTimeoutMs: number;
  /** Time allowed to receive a whole request, body included. */
  readonly requestTimeoutMs: number;
  /** Idle keep-alive connections are closed after this. */
  readonly keepAliveTimeoutMs: number;
  /** Largest request head (request line and headers). */
  readonly maxHeaderBytes: number;
  /** On shutdown, connections still open after this are cut. */
  readonly shutdownGraceMs: number;
  /** Accept WebSocket upgrades at /ws (off: answered 404, clients fall back to SSE or long-poll). */
  readonly websocket: boolean;
  /** Accept `publish` frames on WebSocket connections. */
  readonly websocketPublish: boolean;
  /** Who may do what (tokens, publisher key, tickets, CORS origins). Open when not given. */
  readonly access: AccessPolicy | undefined;
  /** Publishes per second per publisher (token subject, or client address when anonymous; the publisher key is not limited); 0 = no limit. */
  readonly publishRate: number;
  /** Request headers allowed at most (node:http alone would silently drop the rest). */
  readonly maxHeaderCount: number;
  /** Open connections at most (0 = no limit); past it new connections get a 429 and are closed. */
  readonly maxConnections: number;
  /** Open connections per client address at most (0 = no limit; behind a load balancer every client shares its address). */
  readonly maxConnectionsPerIp: number;
  /** Proxies whose X-Forwarded-For names the client (`--trust-proxy`, see client-address.ts); none when not given. */
  readonly trustProxy: TrustProxy | undefined;
  /** Batch publish, idempotency keys, history reads and disconnects (backend-routes.ts); services follow the broker unless given. */
  readonly backend: Partial<BackendOptions> & { readonly services?: BackendServices };
}

export const defaultHubHttpOptions: HubHttpOptions = {
  heartbeatMs: 15_000,
  retryMs: 2_000,
  retryJitter: 0.5,
  admitRate: 0,
  pollTimeoutMs: 30_000,
  maxPollTimeoutMs: 120_000,
  maxQueueBytes: 1024 * 1024,
  maxBodyBytes: 64 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxHeaderBytes: 16 * 1024,
  shutdownGraceMs: 5_000,
  websocket: true,
  websocketPublish: true,
  access: undefined,
  publishRate: 1000,
  maxHeaderCount: 100,
  maxConnections: 0,
  maxConnectionsPerIp: 0,
  trustProxy: undefined,
  backend: {},
};

/** The sweep runs this often; heartbeats and long-poll timeouts are counted in its ticks. */
const TICK_MS = 250;
/** How long an idle subscription may outlive its credential when the wall clock steps forward. */
const EXPIRY_RECHECK_MS = 10_000;
/** Aged history is trimmed and unused channels forgotten once a minute. */
const HOUSEKEEPING_TICKS = 240;

type Transport = 'sse' | 'poll' | 'stream';
const TRANSPORTS = new Set<string>(['sse', 'poll', 'stream']);

interface StreamingSubscriber {
  readonly stream: ChunkedStream;
  readonly heartbeat: Buffer;
}

/**
 * The hub's HTTP routes: /sub, /pub, /channels, /healthz. `handle` answers a
 * request if it is one of ours and returns false otherwise, so an app can
 * mount the hub beside its own routes.
 */
export class HubHttp {
  readonly options: HubHttpOptions;
  #tick = 0;
  readonly #streaming = new Set<StreamingSubscriber>();
  /** Long-polls by the tick at which they time out: one shared sweep, no timer per request. */
  readonly #polls = new Map<LongPollSink, WheelTask>();
  /** Deadlines (long-poll timeouts, credential expiry) on one shared timer, none per connection. */
  readonly #wheel = new TimerWheel(TICK_MS);
  readonly #timer: NodeJS.Timeout;
  #draining = false;
  /** Answers being worked on, so a drain can tell each to close its connection after it. */
  readonly #answering = new Set<ServerResponse>();
  readonly access: AccessPolicy;
  readonly #publishLimiter: RateLimiter;
  /** Connections taken past --max-connections: they may publish and ask, not subscribe. */
  readonly reservedSockets = new WeakSet<Socket>();
  /** The connection a request came on (over HTTP/2, its session's socket: see tls.ts). */
  connectionOf: (req: IncomingMessage) => Socket | undefined = (req) => req.socket;
  readonly backend: BackendApi;
  readonly retryHints: RetryHints;
  readonly admission: Admission;

  constructor(
    readonly hub: Hub,
    options: Partial<HubHttpOptions> = {},
  ) {
    this.options = { ...defaultHubHttpOptions, ...options };
    this.access = this.options.access ?? AccessPolicy.open();
    this.retryHints = new RetryHints(this.options.retryMs, Math.min(1, this.options.retryJitter));
    this.admission = new Admission(this.options.admitRate, this.retryHints);
    // With a shared store (Redis), a ticket spent on one node is spent on all.
    const claimOnce = hub.broker.claimOnce?.bind(hub.broker);
    if (claimOnce !== undefined) this.access.tickets.useSharedSpending((id, ttlMs) => claimOnce(`ticket:${id}`, ttlMs));
    this.#publishLimiter = new RateLimiter(this.options.publishRate);
    const given = this.options.backend.services;
    const { services, release } =
      given === undefined ? acquireBackendServices(hub.broker) : { services: given, release: async () => {} };
    this.backend = new BackendApi(
      hub,
      {
        access: this.access,
        limiter: this.#publishLimiter,
        clientAddress: (req) => this.clientAddress(req),
        services,
        release,
      },
      this.options.backend,
    );
    this.#timer = setInterval(() => this.#sweep(), TICK_MS);
    this.#timer.unref();
  }

  get pollCount(): number {
    return this.#polls.size;
  }

  /**
   * Run `expire` on the shared sweep when a credential runs out (`expiresAt`
   * is wall-clock time); returns a canceller. The wheel counts monotonic
   * time, so the wall clock is asked again at each wake-up, at least every
   * EXPIRY_RECHECK_MS: stepped back, nothing ends early; stepped forward, an
   * idle subscription ends within that bound (one that receives messages
   * ends at its next message, see Hub).
   */
  atExpiry(expiresAt: number, expire: () => void): () => void {
    let task: WheelTask | undefined;
    const check = () => {
      const left = expiresAt - wallClock.now();
      if (left <= 0) expire();
      else task = this.#wheel.schedule(Math.min(left, EXPIRY_RECHECK_MS), check);
    };
    check();
    return () => task?.cancel();
  }

  /** The client's address: the TCP peer, or what a trusted proxy says in X-Forwarded-For. */
  clientAddress(req: IncomingMessage): string {
    return requestClientAddress(req, this.options.trustProxy);
  }

  get publishLimiter(): RateLimiter {
    return this.#publishLimiter;
  }

  /** A 503 told to EventSource: 200, a retry hint and one kometa-error event, then the end (it reconnects by itself). */
  #sseError(
    res: ServerResponse,
    error: KometaError,
    headers: Record<string, string> = {},
    retryMs = this.retryHints.hintMs(),
  ): void {
    const body = `retry: ${retryMs}\nevent: kometa-error\ndata: ${JSON.stringify({ code: error.code, detail: error.message })}\n\n`;
    res.writeHead(200, { ...SSE_HEADERS, ...headers, 'Content-Length': String(Buffer.byteLength(body)) });
    res.end(body);
  }

  /** Returns false when the request is not for the hub. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const raw = req.url ?? '/';
    // Route on the path as sent: WHATWG URL parsing would resolve `/sub/..`
    // to `/` and hide a path trick instead of rejecting it.
    const queryAt = raw.indexOf('?');
    const path = queryAt === -1 ? raw : raw.slice(0, queryAt);
    const url = new URL(queryAt === -1 ? '/' : raw.slice(queryAt), 'http://kometa.invalid');
    let route = this.backend.route(req, res, url, path);
    if (route !== undefined) {
      // POST /pub, GET /channels/<c>/history, POST /disconnect: backend-routes.ts
    } else if (path === '/sub' || path.startsWith('/sub/')) {
      route = () => this.#subscribeRoute(req, res, url, path === '/sub' ? undefined : path.slice(5));
    } else if (path.startsWith('/pub/')) {
      route = () => this.#publishRoute(req, res, url, path.slice(5));
    } else if (path.startsWith('/channels/')) {
      route = () => this.#channelRoute(req, res, url, path.slice(10));
    } else if (path === '/healthz') {
      route = () => this.#healthRoute(req, res);
    } else if (path === '/tickets') {
      route = () => this.#ticketRoute(req, res, url);
    }
    if (route === undefined) return false;
    this.#answering.add(res);
    res.once('close', () => this.#answering.delete(res));
    // Only a streamed subscription stays open; see InOrder.
    if (!path.startsWith('/sub')) answersPromptly(res);
    if (this.#draining) {
      const draining = new KometaError('KOMETA_ERR_DRAINING');
      // EventSource never reconnects after a 503: an SSE subscribe gets 200 + kometa-error (docs/protocol.md).
      if (path.startsWith('/sub') && req.method === 'GET' && isSse(url, req))
        this.#sseError(res, draining, { Connection: 'close' });
      else sendProblem(res, draining, { Connection: 'close', 'Retry-After': String(this.retryHints.retryAfterSeconds()) });
      return true;
    }
    if (req.rawHeaders.length / 2 > this.options.maxHeaderCount) {
      sendProblem(
        res,
        new KometaError('KOMETA_ERR_HEADERS_TOO_LARGE', `At most ${this.options.maxHeaderCount} request headers`),
        { Connection: 'close' },
      );
      return true;
    }
    if (!this.access.originAllowed(req)) {
      sendProblem(res, new KometaError('KOMETA_ERR_ORIGIN', 'This hub does not accept requests from that origin'));
      return true;
    }
    this.access.corsHeaders(req, res);
    if (req.method === 'OPTIONS') {
      // A CORS preflight for an allowed origin.
      res.writeHead(204, {
        'Access-Control-Allow-Methods': 'GET, POST',
        'Access-Control-Allow-Headers': 'Authorization, Content-Type, Last-Event-ID, Kometa-Event, Idempotency-Key',
        'Access-Control-Max-Age': '600',
      });
      res.end();
      return true;
    }
    route().catch((error: unknown) => {
      const retryAfter = error instanceof KometaError ? error.extra?.retryAfter : undefined;
      sendProblem(res, error, retryAfter === undefined ? {} : { 'Retry-After': String(retryAfter) });
    });
    return true;
  }

  /** Authenticate and check a request for channels; sets the session cookie when a ticket was spent. */
  async #authorize(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    action: 'subscribe' | 'publish',
    channels: readonly string[],
  ): Promise<Grant> {
    for (const channel of channels) assertChannelName(channel);
    const { grant, setCookie } = await this.access.authenticate(req, url);
    await this.access.require(req, grant, action, channels);
    if (setCookie !== undefined) res.setHeader('Set-Cookie', setCookie);
    return grant;
  }

  async #subscribeRoute(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    pathChannel: string | undefined,
  ): Promise<void> {
    allowMethods(req, 'GET');
    const connection = this.connectionOf(req);
    if (connection !== undefined && this.reservedSockets.has(connection)) throw serverFull();
    const channels = pathChannel === undefined ? url.searchParams.getAll('channel') : [decodeChannel(pathChannel)];
    const transport = pickTransport(url.searchParams.get('transport'), req.headers.accept);
    if (transport === 'poll') answersPromptly(res);
    // Before any work (a token to verify, history to read): a storm is turned away cheaply.
    const refusal = transport === 'poll' ? undefined : this.admission.admit();
    if (refusal !== undefined) {
      const busy = new KometaError('KOMETA_ERR_BUSY', 'The hub is taking returning subscribers at a bounded rate', {
        retryAfter: Math.ceil(refusal.retryMs / 1000),
      });
      if (transport !== 'sse') throw busy;
      this.#sseError(res, busy, {}, refusal.retryMs);
      return;
    }
    // The header wins: EventSource sends the newest id in it when it reconnects,
    // while the query keeps whatever the page first put in the URL.
    const cursorText =
      headerValue(req.headers['last-event-id']) ??
      url.searchParams.get('lastEventId') ??
      url.searchParams.get('since') ??
      '';
    const cursor = parseCursor(cursorText.trim(), this.hub.limits.maxChannelsPerSubscription);
    const pollTimeoutMs = transport === 'poll' ? this.#pollTimeout(url.searchParams.get('timeout')) : 0;
    if (channels.length === 0) throw new KometaError('KOMETA_ERR_CHANNEL_MISSING');
    const grant = await this.#authorize(req, res, url, 'subscribe', channels);

    let subscription: Subscription;
    try {
      subscription = await this.hub.subscribe(channels, cursor);
    } catch (error) {
      // EventSource treats any status but 200 as final and never reconnects
      // (WHATWG: "fail the connection"), so a passing outage would lose the
      // subscriber for good. Answer 200 with a retry hint and an error event
      // instead, and end: the browser comes back by itself.
      if (transport === 'sse' && error instanceof KometaError && error.status === 503) {
        this.#sseError(res, error);
        return;
      }
      throw error;
    }
    if (req.socket.destroyed || res.destroyed) {
      subscription.close();
      return;
    }
    subscription.expiresAt = grant.expiresAt;
    const client = clientIdOf(url);
    if (transport === 'poll')
      this.#startPoll(
        req,
        res,
        subscription,
        Math.min(
          pollTimeoutMs,
          grant.expiresAt === undefined ? Infinity : Math.max(0, grant.expiresAt - wallClock.now()),
        ),
        grant,
        client,
      );
    else this.#startStreaming(res, subscription, transport, grant, client);
  }

  #startStreaming(
    res: ServerResponse,
    subscription: Subscription,
    transport: 'sse' | 'stream',
    grant: Grant,
    client?: string,
  ): void {
    if (res.socket === null) {
      // A pipelined request: node:http hands this response its socket only
      // when the responses before it are done. Until then the subscription
      // buffers what is published, and starts writing once it has the socket.
      const cancel = () => subscription.close();
      res.once('close', cancel);
      res.once('socket', () => {
        res.off('close', cancel);
        if (subscription.state !== 'closed') this.#startStreaming(res, subscription, transport, grant, client);
      });
      return;
    }
    let forget = () => {};
    const entry: { stream: ChunkedStream; heartbeat: Buffer } = {
      stream: new ChunkedStream(
        res,
        { maxQueueBytes: this.options.maxQueueBytes },
        () => {
          this.#streaming.delete(entry);
          cancelExpiry();
          forget();
          subscription.close();
        },
        transport === 'sse' ? sseSlowFrame : streamSlowFrame,
      ),
      heartbeat: transport === 'sse' ? SSE_HEARTBEAT : STREAM_HEARTBEAT,
    };
    const sweep = () => this.#tick;
    // Each connection its own hint, so a restart does not bring them all back in the same instant.
    const retryMs = this.retryHints.hintMs();
    const sink =
      transport === 'sse'
        ? new SseSink(entry.stream, sweep, retryMs)
        : new StreamSink(entry.stream, sweep, retryMs);
    // A credential that expires while the stream is open ends it with a clear reason.
    let cancelExpiry = () => {};
    // POST /disconnect finds it by user or client id.
    const channels = subscription.channelNames;
    forget = this.backend.connections.add({
      user: userOf(grant),
      client,
      end: (channel, detail) =>
        (channel === undefined || channels.includes(channel)) && (sink.end('disconnected', detail), true),
    });
    sink.open();
    subscription.start(sink);
    if (entry.stream.closed) return;
    this.#streaming.add(entry);
    if (grant.expiresAt !== undefined) cancelExpiry = this.atExpiry(grant.expiresAt, () => sink.end('token-expired'));
  }

  #startPoll(
    req: IncomingMessage,
    res: ServerResponse,
    subscription: Subscription,
    timeoutMs: number,
    grant: Grant,
    client: string | undefined,
  ): void {
    const channels = subscription.channelNames;
    const unregister = this.backend.connections.add({
      user: userOf(grant),
      client,
      end: (channel, detail) =>
        (channel === undefined || channels.includes(channel)) && (sink.end('disconnected', detail), true),
    });
    const forget = () => {
      unregister();
      this.#polls.get(sink)?.cancel();
      this.#polls.delete(sink);
    };
    const sink = new LongPollSink(res, subscription.cursor(), () => {
      forget();
      subscription.close();
    });
    res.once('close', () => {
      if (!sink.answered) {
        forget();
        subscription.close();
      }
    });
    subscription.start(sink);
    if (sink.answered) return;
    if (timeoutMs === 0) {
      sink.answer();
      return;
    }
    this.#polls.set(
      sink,
      this.#wheel.schedule(timeoutMs, () => sink.answer()),
    );
    void req;
  }

  #pollTimeout(value: string | null): number {
    if (value === null) return this.options.pollTimeoutMs;
    if (!/^\d{1,6}(\.\d{1,3})?$/.test(value)) {
      throw new KometaError('KOMETA_ERR_TIMEOUT_PARAM', 'timeout is a number of seconds, e.g. timeout=25');
    }
    return Math.min(Number(value) * 1000, this.options.maxPollTimeoutMs);
  }

  async #publishRoute(req: IncomingMessage, res: ServerResponse, url: URL, pathChannel: string): Promise<void> {
    allowMethods(req, 'POST');
    const channel = decodeChannel(pathChannel);
    // Refuse a bad name or a missing right before reading a body that would be thrown away.
    const grant = await this.#authorize(req, res, url, 'publish', [channel]);
    const wait = this.#publishLimiter.takePublish(grant, this.clientAddress(req));
    if (wait > 0) {
      res.setHeader('Connection', 'close');
      throw new KometaError('KOMETA_ERR_RATE_LIMITED', `At most ${this.options.publishRate} publishes per second`, {
        retryAfter: wait,
      });
    }
    const eventParam = url.searchParams.get('event') ?? headerValue(req.headers['kometa-event']);
    const body = await readBody(req, this.options.maxBodyBytes).catch((error: unknown) => {
      // Stop reading what is left of an oversized body; the connection is not reused.
      res.setHeader('Connection', 'close');
      throw error;
    });
    const data = decodePublishBody(req.headers['content-type'], body);
    const key = headerValue(req.headers['idempotency-key']);
    if (key === undefined) {
      const { message, subscribers } = await this.hub.publish(channel, data, { event: eventParam ?? undefined });
      sendJson(res, 201, { channel, id: message.id, subscribers });
      return;
    }
    // At most once per key (backend-routes.ts): a repeat answers the first publish.
    const { value, replayed } = await this.backend.publish(channel, data, eventParam ?? undefined, key);
    if (replayed) res.setHeader('Idempotent-Replayed', 'true');
    sendJson(res, 201, replayed ? { ...value, replayed } : value);
  }

  async #channelRoute(req: IncomingMessage, res: ServerResponse, url: URL, pathChannel: string): Promise<void> {
    allowMethods(req, 'GET');
    const channel = decodeChannel(pathChannel);
    // A channel's last id and subscriber count are for those who may read it.
    await this.#authorize(req, res, url, 'subscribe', [channel]);
    const info = await this.hub.channelInfo(channel);
    sendJson(res, 200, {
      channel,
      subscribers: info.subscribers,
      epoch: info.epoch,
      last: info.headSeq === 0 ? null : `${channel}~${info.epoch}~${info.headSeq}`,
      history: { messages: info.messages, bytes: info.bytes, oldestSeq: info.messages === 0 ? null : info.oldestSeq },
    });
  }

  /**
   * POST /tickets with a publisher credential and `{"subscribe": ["room.*"], "ttl": 3600}`:
   * a single-use ticket, valid for a minute, that a browser trades for a
   * session cookie on its first subscribe (`?ticket=`).
   */
  async #ticketRoute(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    allowMethods(req, 'POST');
    const { grant } = await this.access.authenticate(req, url);
    if (!grant.tickets) {
      throw new KometaError(
        grant.kind === 'anonymous' ? 'KOMETA_ERR_UNAUTHORIZED' : 'KOMETA_ERR_FORBIDDEN',
        'Minting tickets needs the publisher key or a token with "tickets": true',
      );
    }
    const body = decodePublishBody('application/json', await readBody(req, this.options.maxBodyBytes));
    const request = JSON.parse(body) as { subscribe?: unknown; ttl?: unknown; user?: unknown };
    const claim = { subscribe: request.subscribe };
    if (!isKometaClaim(claim) || claim.subscribe === undefined || claim.subscribe.length === 0) {
      throw new KometaError(
        'KOMETA_ERR_PATTERN',
        'Give the channels the ticket may subscribe to: {"subscribe": ["room.42"]}',
      );
    }
    compilePatterns(claim.subscribe); // refuse a bad pattern now, not when the ticket is used
    const ttl = typeof request.ttl === 'number' && request.ttl > 0 ? request.ttl * 1000 : undefined;
    // A ticket may speak for a user: POST /disconnect {"user"} then finds its session.
    const user =
      typeof request.user === 'string' && request.user.length > 0 && request.user.length <= 128
        ? request.user
        : undefined;
    const { ticket, expiresAt } = this.access.tickets.mint(
      claim,
      user === undefined ? grant.subject : `user:${user}`,
      ttl,
    );
    sendJson(res, 201, { ticket, expiresAt: new Date(expiresAt).toISOString() });
  }

  async #healthRoute(req: IncomingMessage, res: ServerResponse): Promise<void> {
    allowMethods(req, 'GET');
    const broker = this.hub.broker.health();
    sendJson(res, broker.ok ? 200 : 503, { status: broker.ok ? 'ok' : 'degraded', broker });
  }

  #sweep(): void {
    this.#tick++;
    const heartbeatTicks = Math.max(1, Math.round(this.options.heartbeatMs / TICK_MS));
    if (this.#tick % heartbeatTicks === 0) {
      const quietSince = this.#tick - heartbeatTicks;
      for (const { stream, heartbeat } of this.#streaming) {
        if (stream.lastWriteSweep <= quietSince) stream.write(heartbeat, this.#tick);
      }
    }
    if (this.#tick % HOUSEKEEPING_TICKS === 0) {
      this.hub.housekeeping();
      this.#publishLimiter.prune();
      this.access.tickets.sweep();
    }
  }

  /**
   * Stop taking requests (they get 503), let those already read finish (a
   * publish the broker is storing gets its 201) with `Connection: close`,
   * deliver what was accepted, end every subscription with a retry hint, and
   * stop the sweep.
   */
  async drain(): Promise<void> {
    this.#draining = true;
    for (const res of this.#answering) if (!res.headersSent) res.setHeader('Connection', 'close');
    clearInterval(this.#timer);
    await this.hub.drain();
    for (const sink of [...this.#polls.keys()]) sink.answer();
    this.#wheel.clear();
    this.backend.close().catch(() => {});
  }
}

export interface HubServer<S extends Server | Http2SecureServer = Server> {
  /** node:http's server, or (createSecureHubServer) node:http2's, which also speaks HTTP/1.1. */
  readonly server: S;
  readonly http: HubHttp;
  readonly webSocket: HubWebSocket;
  listen(port: number, host: string): Promise<{ port: number; host: string }>;
  /** Graceful stop: no new connections, subscribers told to retry, everything closed within the grace period. */
  close(): Promise<void>;
}

/** A node:http server for the hub, with its timeouts and malformed-request answers set. */
export function createHubServer(
  hub: Hub,
  options: Partial<HubHttpOptions> = {},
  fallback?: (req: IncomingMessage, res: ServerResponse) => void,
): HubServer {
  return buildHubServer(hub, undefined, options, fallback) as HubServer;
}

/** The same hub over HTTPS: HTTP/2 and HTTP/1.1 on one port, chosen by ALPN (tls.ts). */
export function createSecureHubServer(
  hub: Hub,
  tls: TlsMaterial,
  options: Partial<HubHttpOptions> = {},
  fallback?: (req: IncomingMessage, res: ServerResponse) => void,
): HubServer<Http2SecureServer> {
  return buildHubServer(hub, tls, options, fallback) as HubServer<Http2SecureServer>;
}

function buildHubServer(
  hub: Hub,
  tls: TlsMaterial | undefined,
  options: Partial<HubHttpOptions>,
  fallback: ((req: IncomingMessage, res: ServerResponse) => void) | undefined,
): HubServer<Server | Http2SecureServer> {
  const http = new HubHttp(hub, options);
  const rejected = new WeakSet<Socket>();
  const inOrder = new InOrder();
  const forwarded = new ForwardedConnections(http.options.maxConnectionsPerIp, http.options.trustProxy);
  const handler = inOrder.requests((req, res) => {
      const connection = http.connectionOf(req);
      if (connection !== undefined && rejected.has(connection)) {
        answerRejectedStream(req, res);
        return;
      }
      const overLimit = forwarded.admit(req, res);
      if (overLimit !== undefined) {
        res.setHeader('Connection', 'close');
        sendProblem(res, overLimit);
        return;
      }
      if (http.handle(req, res)) return;
      if (serveClientScript(req, res)) return;
      if (fallback !== undefined) fallback(req, res);
      else
        sendProblem(
          res,
          new KometaError('KOMETA_ERR_NOT_FOUND', `No route for ${req.method} ${sanitizePath(req.url)}`),
        );
    });
  const { server, secure } = createListener(http, tls, handler);
  const webSocket = new HubWebSocket(hub, {
    enabled: http.options.websocket,
    publish: http.options.websocketPublish,
    maxQueueBytes: http.options.maxQueueBytes,
    maxMessageBytes: hub.limits.maxMessageBytes,
    maxSubscriptions: hub.limits.maxChannelsPerSubscription,
    heartbeatMs: http.options.heartbeatMs,
    access: http.access,
    publishLimiter: http.publishLimiter,
    clientAddress: (req) => http.clientAddress(req),
    atExpiry: (expiresAt, expire) => http.atExpiry(expiresAt, expire),
    connections: http.backend.connections,
    publishOnce: (channel, data, event, key) => http.backend.publish(channel, data, event, key),
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const overLimit = rejected.has(socket) ? undefined : forwarded.admit(req, socket);
    if (rejected.has(socket)) socket.destroy();
    else if (overLimit !== undefined) socket.end(rawProblemResponse(overLimit));
    else if (http.reservedSockets.has(socket)) socket.end(rawProblemResponse(serverFull()));
    else inOrder.upgrade(socket, () => webSocket.handleUpgrade(req, socket, head));
  });
  limitConnections(
    server,
    secure !== undefined,
    http.options.maxConnections,
    http.options.maxConnectionsPerIp,
    rejected,
    http.reservedSockets,
    http.options.trustProxy,
  );
  // With allowHTTP1 node's HTTP/2 server runs node:http's HTTP/1.1 code, which reads these from it too.
  const timeouts = server as Server;
  timeouts.headersTimeout = http.options.headersTimeoutMs;
  timeouts.requestTimeout = http.options.requestTimeoutMs;
  timeouts.keepAliveTimeout = http.options.keepAliveTimeoutMs;
  answerMalformedRequests(server as Server);

  return {
    server,
    http,
    webSocket,
    listen: (port, host) => listen(server as Server, port, host),
    close: () => drainServer(server, secure, http, webSocket),
  };
}

/** node:http's server, or with a certificate node:http2's that speaks both (tls.ts). */
function createListener(
  http: HubHttp,
  tls: TlsMaterial | undefined,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): { server: Server | Http2SecureServer; secure: SecureListener | undefined } {
  if (tls !== undefined) {
    const limits = { maxHeaderBytes: http.options.maxHeaderBytes, maxStreams: SECURE_MAX_STREAMS };
    const secure = createSecureListener(tls, limits, handler);
    http.connectionOf = secure.connectionOf;
    return { server: secure.server, secure };
  }
  const server = createServer(
    {
      maxHeaderSize: http.options.maxHeaderBytes,
      // node:http only checks header and request timeouts this often (30 s by
      // default), which would let a slowloris client hold a socket far longer
      // than headersTimeout says.
      connectionsCheckingInterval: Math.min(1000, http.options.headersTimeoutMs),
    },
    handler,
  );
  return { server, secure: undefined };
}

/** Streams at most open at once on one HTTP/2 connection: room for many tabs' subscriptions (browsers use ~100). */
const SECURE_MAX_STREAMS = 256;

/**
 * A request on an HTTP/2 connection taken past the connection limits: the
 * limit is said on the stream (an HTTP/1.1 connection was told before any
 * request, in limitConnections) and the connection is wound down.
 */
function answerRejectedStream(req: IncomingMessage, res: ServerResponse): void {
  const session = sessionOf(req);
  if (session === undefined) return;
  sendProblem(res, new KometaError('KOMETA_ERR_TOO_MANY_CONNECTIONS', 'The hub has too many connections open'));
  session.close();
}

/** How long an idle keep-alive connection is left open once a drain has delivered what it had. */
const DRAIN_LINGER_MS = 1000;

/**
 * Graceful stop. No new connections; requests that arrive on open ones get
 * 503 with `Connection: close`; what was read is answered; what was accepted
 * is delivered; then streams end. Idle keep-alive connections are not cut at
 * once (node's server.close() would, resetting a request already on its way
 * on one): they get DRAIN_LINGER_MS to send it and have it answered 503.
 * Whatever is still open after the grace period is cut.
 */
function drainServer(
  server: Server | Http2SecureServer,
  secure: SecureListener | undefined,
  http: HubHttp,
  webSocket: HubWebSocket,
): Promise<void> {
  return new Promise<void>((resolve) => {
    let linger: NodeJS.Timeout | undefined;
    const grace = setTimeout(() => {
      if (secure === undefined) (server as Server).closeAllConnections();
      else for (const socket of secure.sockets) socket.destroy();
      // Upgraded sockets are no longer node:http's to close.
      webSocket.terminateAll();
    }, http.options.shutdownGraceMs);
    grace.unref();
    // net's close: stop listening, leave open connections alone.
    NetServer.prototype.close.call(server, () => {
      clearTimeout(grace);
      clearTimeout(linger);
      resolve();
    });
    webSocket.stopAccepting();
    void http.drain().then(() => {
      // Sessions whose subscriptions did not end them (none, or only publishing).
      webSocket.close();
      linger = setTimeout(() => server.close(), Math.min(DRAIN_LINGER_MS, http.options.shutdownGraceMs));
      linger.unref();
    });
  });
}

/**
 * Connection limits, in total and per client address, checked as each TCP
 * connection arrives: the one over the limit is told why (429 problem
 * details) and closed, and no request on it is read.
 */
function limitConnections(
  server: Server | Http2SecureServer,
  secure: boolean,
  maxTotal: number,
  maxPerIp: number,
  rejected: WeakSet<Socket>,
  reserved: WeakSet<Socket>,
  trustProxy: TrustProxy | undefined,
): void {
  if (maxTotal <= 0 && maxPerIp <= 0) return;
  let total = 0;
  const perIp = new Map<string, number>();
  // Past the limit a few connections are still taken, for short requests
  // only: a hub full of subscribers must still let its backends publish.
  const reserve = maxTotal > 0 ? Math.max(16, Math.ceil(maxTotal / 100)) : 0;
  // Over TLS a connection is counted once its handshake is done: only then can it be answered in its protocol.
  server.prependListener(secure ? 'secureConnection' : 'connection', (socket: Socket) => {
    const ip = socket.remoteAddress ?? '';
    // A trusted proxy speaks for many clients: each is counted per request, by its forwarded address (ForwardedConnections).
    const fromIp = trustProxy?.trusts(ip) === true ? 0 : (perIp.get(ip) ?? 0) + 1;
    if ((maxTotal > 0 && total + 1 > maxTotal + reserve) || (maxPerIp > 0 && fromIp > maxPerIp)) {
      const error = new KometaError(
        'KOMETA_ERR_TOO_MANY_CONNECTIONS',
        maxPerIp > 0 && fromIp > maxPerIp
          ? `At most ${maxPerIp} connections per address`
          : `At most ${maxTotal} connections`,
      );
      // node:http attaches its parser to this socket too; the request handler
      // ignores whatever it parses from a rejected one.
      rejected.add(socket);
      socket.on('error', () => socket.destroy());
      // HTTP/2 is answered on its first stream (answerRejectedStream).
      if ((socket as Socket & { alpnProtocol?: string | false }).alpnProtocol === 'h2') {
        setTimeout(() => socket.destroy(), 1000).unref();
        return;
      }
      socket.end(rawProblemResponse(error));
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    total++;
    if (maxTotal > 0 && total > maxTotal) reserved.add(socket);
    if (fromIp > 0) perIp.set(ip, fromIp);
    socket.once('close', () => {
      total--;
      if (fromIp === 0) return;
      const left = (perIp.get(ip) ?? 1) - 1;
      if (left === 0) perIp.delete(ip);
      else perIp.set(ip, left);
    });
  });
}

/**
 * --max-connections-per-ip behind a trusted proxy: the proxy's connections
 * carry many clients, so each request (a subscription, an upgrade) on one is
 * counted against the client address the proxy forwarded, until it ends.
 */
class ForwardedConnections {
  readonly #perClient = new Map<string, number>();

  constructor(
    readonly max: number,
    readonly trust: TrustProxy | undefined,
  ) {}

  /** Count this request, or return the 429 to answer when its client already has too many open. */
  admit(req: IncomingMessage, until: { once(event: 'close', listener: () => void): unknown }): KometaError | undefined {
    if (this.max <= 0 || this.trust === undefined || !this.trust.trusts(req.socket.remoteAddress)) return undefined;
    const client = requestClientAddress(req, this.trust);
    const open = (this.#perClient.get(client) ?? 0) + 1;
    if (open > this.max)
      return new KometaError('KOMETA_ERR_TOO_MANY_CONNECTIONS', `At most ${this.max} connections per address`);
    this.#perClient.set(client, open);
    until.once('close', () => {
      const left = (this.#perClient.get(client) ?? 1) - 1;
      if (left === 0) this.#perClient.delete(client);
      else this.#perClient.set(client, left);
    });
    return undefined;
  }
}

function serverFull(): KometaError {
  return new KometaError(
    'KOMETA_ERR_TOO_MANY_CONNECTIONS',
    'The hub is full of subscribers; this connection may publish but not subscribe',
  );
}

function allowMethods(req: IncomingMessage, method: 'GET' | 'POST'): void {
  if (req.method === method) return;
  throw new KometaError('KOMETA_ERR_METHOD', `Use ${method} here`, { allow: method });
}

function decodeChannel(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new KometaError('KOMETA_ERR_CHANNEL_NAME', 'The channel is not valid percent-encoding');
  }
}

function isSse(url: URL, req: IncomingMessage): boolean {
  try {
    return pickTransport(url.searchParams.get('transport'), req.headers.accept) === 'sse';
  } catch {
    return false;
  }
}

function pickTransport(param: string | null, accept: string | undefined): Transport {
  if (param !== null) {
    if (!TRANSPORTS.has(param)) {
      throw new KometaError('KOMETA_ERR_TRANSPORT', 'transport is one of sse, poll, stream (ws has its own endpoint)', {
        transport: param.slice(0, 32),
      });
    }
    return param as Transport;
  }
  if (accept === undefined) return 'sse';
  if (accept.includes('text/event-stream')) return 'sse';
  if (accept.includes('application/x-ndjson')) return 'stream';
  if (accept.includes('application/json')) return 'poll';
  return 'sse';
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function sanitizePath(url: string | undefined): string {
  return (url ?? '/')
    .split('?')[0]!
    .slice(0, 100)
    .replace(/[^\x21-\x7e]/g, '?');
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(body)),
    'Cache-Control': 'no-store',
  });
  res.end(body);
}
