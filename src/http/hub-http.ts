import type { IncomingMessage, ServerResponse } from 'node:http';
import { presencePath, presenceRoute } from './presence-routes.js';
import type { Socket } from 'node:net';
import { KometaError } from '../core/errors.js';
import type { Hub } from '../core/hub.js';
import { TimerWheel, type WheelTask } from '../core/timer-wheel.js';
import { wallClock } from '../core/clock.js';
import { AccessPolicy } from '../auth/access.js';
import { RateLimiter } from './rate-limit.js';
import { requestClientAddress } from './client-address.js';
import { answerFailure, sendProblem } from './problem.js';
import { answersPromptly } from './in-order.js';
import { BackendApi } from './backend-routes.js';
import { acquireBackendServices } from './backend-services.js';
import { type HubHttpOptions, defaultHubHttpOptions } from './hub-options.js';
import { HubSubscribers, asksForSse, sendSseError } from './subscribe.js';
import { publishRoute } from './publish.js';
import { channelInfoRoute, healthRoute } from './channel-routes.js';
import { ticketRoute } from './tickets.js';
import { NO_QUERY, type RouteContext } from './route-kit.js';
import { Admission, RetryHints } from './herd.js';

/** The wheel's tick: heartbeats, long-poll timeouts and credential expiry are counted in it. */
export const HUB_TICK_MS = 250;
/** How long an idle subscription may outlive its credential when the wall clock steps forward. */
const EXPIRY_RECHECK_MS = 10_000;
/** Aged history is trimmed and unused channels forgotten once a minute. */
const HOUSEKEEPING_MS = 60_000;

type Route = () => Promise<void> | void;


/**
 * The hub's HTTP routes: /sub, /pub, /channels, /tickets, /healthz and the
 * backend's (backend-routes.ts). `handle` answers a request if it is one of
 * ours and returns false otherwise, so an app can mount the hub beside its
 * own routes. Each route lives in its own file; this one routes, applies
 * what every route shares (drain, header count, origin, CORS) and reports a
 * route's failure.
 */
export class HubHttp implements RouteContext {
  readonly options: HubHttpOptions;
  /** Deadlines (heartbeats, long-poll timeouts, credential expiry) on one shared timer, none per connection. */
  readonly #wheel: TimerWheel;
  readonly #housekeeping: WheelTask;
  readonly #subscribers: HubSubscribers;
  #draining = false;
  /** Answers being worked on, so a drain can tell each to close its connection after it. */
  readonly #answering = new Set<ServerResponse>();
  /** One listener for every response's 'close', not a closure per request (`this` is the response). */
  readonly #answered: (this: ServerResponse) => void;
  readonly access: AccessPolicy;
  readonly publishLimiter: RateLimiter;
  /** Connections taken past --max-connections: they may publish and ask, not subscribe. */
  readonly reservedSockets = new WeakSet<Socket>();
  readonly backend: BackendApi;
  /** Each connection's own `retry:` and the drain's Retry-After, spread around `retryMs` (herd.ts). */
  readonly retryHints: RetryHints;
  /** New streaming subscriptions per second at most (herd.ts). */
  readonly admission: Admission;
  /** The connection a request came on (over HTTP/2, its session's socket: see tls.ts). */
  connectionOf: (req: IncomingMessage) => Socket | undefined = (req) => req.socket;

  /** `wheel`: the timer wheel to share (createHubServer gives /ws the same one); a new one when not given. */
  constructor(
    readonly hub: Hub,
    options: Partial<HubHttpOptions> = {},
    wheel = new TimerWheel(HUB_TICK_MS),
  ) {
    this.#wheel = wheel;
    this.options = { ...defaultHubHttpOptions, ...options };
    const answering = this.#answering;
    this.#answered = function (this: ServerResponse) {
      answering.delete(this);
    };
    this.access = this.options.access ?? AccessPolicy.open();
    this.retryHints = new RetryHints(this.options.retryMs, Math.min(1, this.options.retryJitter));
    this.admission = new Admission(this.options.admitRate, this.retryHints);
    // With a shared store (Redis), a ticket spent on one node is spent on all.
    const claimOnce = hub.broker.claimOnce?.bind(hub.broker);
    if (claimOnce !== undefined) this.access.tickets.useSharedSpending((id, ttlMs) => claimOnce(`ticket:${id}`, ttlMs));
    this.publishLimiter = new RateLimiter(this.options.publishRate);
    const given = this.options.backend.services;
    const { services, release } =
      given === undefined ? acquireBackendServices(hub.broker) : { services: given, release: async () => {} };
    this.backend = new BackendApi(
      hub,
      {
        access: this.access,
        limiter: this.publishLimiter,
        clientAddress: (req) => this.clientAddress(req),
        services,
        release,
      },
      this.options.backend,
    );
    this.#subscribers = new HubSubscribers(this, this.#wheel);
    this.#housekeeping = this.#wheel.every(HOUSEKEEPING_MS, () => {
      this.hub.housekeeping();
      this.publishLimiter.prune();
      this.access.tickets.sweep();
    });
  }

  get pollCount(): number {
    return this.#subscribers.pollCount;
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

  /** Returns false when the request is not for the hub. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const raw = req.url ?? '/';
    // Route on the path as sent: WHATWG URL parsing would resolve `/sub/..`
    // to `/` and hide a path trick instead of rejecting it.
    const queryAt = raw.indexOf('?');
    const path = queryAt === -1 ? raw : raw.slice(0, queryAt);
    // Most requests (every publish of a backend) have no query: they share one parsed empty URL.
    const url = queryAt === -1 ? NO_QUERY : new URL(raw.slice(queryAt), 'http://kometa.invalid');
    const route = this.#routeFor(req, res, url, path);
    if (route === undefined) return false;
    this.#answering.add(res);
    res.on('close', this.#answered);
    // Only a streamed subscription stays open; see InOrder.
    if (!path.startsWith('/sub')) answersPromptly(res);
    if (this.#refused(req, res, url, path)) return true;
    this.#run(route, res);
    return true;
  }

  #routeFor(req: IncomingMessage, res: ServerResponse, url: URL, path: string): Route | undefined {
    // POST /pub, GET /channels/<c>/history, POST /disconnect: backend-routes.ts
    const backend = this.backend.route(req, res, url, path);
    if (backend !== undefined) return backend;
    if (path === '/sub' || path.startsWith('/sub/'))
      return () => this.#subscribers.route(req, res, url, path === '/sub' ? undefined : path.slice(5));
    if (path.startsWith('/pub/')) return () => publishRoute(this, req, res, url, path.slice(5));
    const presenceOf = presencePath(path);
    if (presenceOf !== undefined) return () => presenceRoute(this, req, res, url, presenceOf);
    if (path.startsWith('/channels/')) return () => channelInfoRoute(this, req, res, url, path.slice(10));
    if (path === '/healthz') return () => healthRoute(this, req, res);
    if (path === '/tickets') return () => ticketRoute(this, req, res, url);
    return undefined;
  }

  /** What every route shares before it runs: a drain, too many headers, a foreign origin, a CORS preflight. */
  #refused(req: IncomingMessage, res: ServerResponse, url: URL, path: string): boolean {
    if (this.#draining) {
      const draining = new KometaError('KOMETA_ERR_DRAINING');
      // EventSource never reconnects after a 503: an SSE subscribe gets 200 + kometa-error (docs/protocol.md).
      if (path.startsWith('/sub') && req.method === 'GET' && asksForSse(url, req)) {
        sendSseError(res, this.retryHints.hintMs(), draining, { Connection: 'close' });
      } else {
        const retryAfter = String(this.retryHints.retryAfterSeconds());
        sendProblem(res, draining, { Connection: 'close', 'Retry-After': retryAfter });
      }
      return true;
    }
    if (req.rawHeaders.length / 2 > this.options.maxHeaderCount) {
      const error = new KometaError(
        'KOMETA_ERR_HEADERS_TOO_LARGE',
        `At most ${this.options.maxHeaderCount} request headers`,
      );
      sendProblem(res, error, { Connection: 'close' });
      return true;
    }
    if (!this.access.originAllowed(req)) {
      sendProblem(res, new KometaError('KOMETA_ERR_ORIGIN', 'This hub does not accept requests from that origin'));
      return true;
    }
    this.access.corsHeaders(req, res);
    if (req.method !== 'OPTIONS') return false;
    // A CORS preflight for an allowed origin.
    res.writeHead(204, {
      'Access-Control-Allow-Methods': 'GET, POST',
      'Access-Control-Allow-Headers': 'Authorization, Content-Type, Last-Event-ID, Kometa-Event, Idempotency-Key',
      'Access-Control-Max-Age': '600',
    });
    res.end();
    return true;
  }

  /**
   * Run a route and answer its failure as problem details. A KometaError is
   * the route refusing on purpose; anything else is a bug or a broken
   * dependency: a 500 that says nothing of it to the client, while the
   * `kometa:error` event (and the CLI's log line) carries the cause.
   */
  #run(route: Route, res: ServerResponse): void {
    let running: Promise<void> | void;
    try {
      running = route();
    } catch (error) {
      answerFailure(res, error);
      return;
    }
    // A route that finished (or took over its own failures: the publish path without promises) returns nothing.
    running?.catch((error: unknown) => answerFailure(res, error));
  }

  /**
   * Stop taking requests (they get 503), let those already read finish (a
   * publish the broker is storing gets its 201) with `Connection: close`,
   * deliver what was accepted, end every subscription with a retry hint, and
   * stop the heartbeats and housekeeping.
   */
  async drain(): Promise<void> {
    this.#draining = true;
    for (const res of this.#answering) if (!res.headersSent) res.setHeader('Connection', 'close');
    this.#subscribers.stopHeartbeats();
    this.#housekeeping.cancel();
    await this.hub.drain();
    this.#subscribers.answerPolls();
    this.#wheel.clear();
    this.backend.close().catch(() => {});
  }
}
