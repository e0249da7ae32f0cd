import type { AccessPolicy } from '../auth/access.js';
import type { BackendOptions, BackendServices } from './backend-routes.js';
import type { TrustProxy } from './client-address.js';

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
  /** Idle keep-alive connections are closed after this; over TLS also HTTP/2 sessions with no open stream (GOAWAY). */
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
  /**
   * Publishes per second per publisher (token subject, or client address when anonymous; the publisher key is not
   * limited); 0 = no limit.
   */
  readonly publishRate: number;
  /** Request headers allowed at most (node:http alone would silently drop the rest). */
  readonly maxHeaderCount: number;
  /** Open connections at most (0 = no limit); past it new connections get a 429 and are closed. */
  readonly maxConnections: number;
  /**
   * Open connections per client address at most (0 = no limit; behind a load balancer every client shares its
   * address).
   */
  readonly maxConnectionsPerIp: number;
  /** Proxies whose X-Forwarded-For names the client (`--trust-proxy`, see client-address.ts); none when not given. */
  readonly trustProxy: TrustProxy | undefined;
  /**
   * Batch publish, idempotency keys, history reads and disconnects (backend-routes.ts); services follow the broker
   * unless given.
   */
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
