import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import { assertChannelName } from '../core/channel-name.js';
import { parseCursor } from '../core/cursor.js';
import { reportError } from '../core/diagnostics.js';
import { KometaError, wsCloseCode } from '../core/errors.js';
import type { Hub, Subscription } from '../core/hub.js';
import { TimerWheel, type WheelTask } from '../core/timer-wheel.js';
import {
  WEBSOCKET_PATH,
  type ClientFrame,
  type ErrorFrame,
  FrameError,
  type Ref,
  parseClientFrame,
} from '../protocol/websocket.js';
import { WsConnection, type WsOutput, WsSink } from '../transports/websocket.js';
import { AccessPolicy } from '../auth/access.js';
import { type Grant, allowAll } from '../auth/grant.js';
import { rawProblemResponse, sendProblem } from './problem.js';
import type { RateLimiter } from './rate-limit.js';
import { type ConnectionRegistry, clientIdOf, userOf } from './connections.js';
import type { MemberIdentity } from '../core/presence.js';
import { memberOf } from './presence-routes.js';

export interface HubWebSocketOptions {
  /** Accept upgrades at /ws. Off, the upgrade is answered 404 and clients fall back to HTTP transports. */
  readonly enabled: boolean;
  /** Accept `publish` frames. */
  readonly publish: boolean;
  /** Outgoing bytes that may queue on one connection before it is closed (4503) as a slow consumer. */
  readonly maxQueueBytes: number;
  /** Largest message data; frames may be a little larger to hold the JSON around it. */
  readonly maxMessageBytes: number;
  /** Channels one connection may follow at once. */
  readonly maxSubscriptions: number;
  /** The server pings every connection this often; one that has not answered the previous ping is cut. */
  readonly heartbeatMs: number;
  /** Who may connect, subscribe and publish; the same policy as the HTTP routes. Open when not given. */
  readonly access?: AccessPolicy;
  /** The HTTP routes' publish limiter, so a publisher has one budget whichever way it publishes. */
  readonly publishLimiter?: RateLimiter;
  /** The client's address for per-address limits (the TCP peer unless a trusted proxy says otherwise). */
  readonly clientAddress?: (req: IncomingMessage) => string;
  /** The shared timer wheel the pings run on (one entry for every connection); a wheel of its own when not given. */
  readonly wheel?: TimerWheel;
  /** Run `expire` when a credential runs out (on the server's shared sweep); returns a canceller. */
  readonly atExpiry?: (expiresAt: number, expire: () => void) => () => void;
  /** Publish at most once per idempotency key (the HTTP routes' keys: one key, one message, whichever way it came). */
  readonly publishOnce?: (
    channel: string,
    data: string,
    event: string | undefined,
    key: string,
    exclude?: string,
  ) => Promise<{ value: { id: string; subscribers: number }; replayed: boolean }>;
  /** Where POST /disconnect finds connections by user and client id. */
  readonly connections?: ConnectionRegistry;
}

/** Publishes awaiting the broker on one connection; past this the server stops reading from it. */
const MAX_INFLIGHT_PUBLISHES = 32;

/** ws's default: how long a closing handshake may take before the stream is cut. */
const WS_CLOSE_TIMEOUT_MS = 30_000;

/** ws's constructor as WebSocketServer calls it for the server side (its types know only `new WebSocket(null)`). */
const ServerSideWebSocket = WebSocket as unknown as new (
  address: null,
  protocols: undefined,
  options: { autoPong: boolean; closeTimeout: number },
) => WebSocket;

/** The part of ws's WebSocket that WebSocketServer uses to start one on a duplex (not in its published types). */
interface WsSetSocket {
  setSocket(
    socket: Http2Stream,
    head: Buffer,
    options: { allowSynchronousEvents: boolean; maxPayload: number | undefined; skipUTF8Validation: boolean },
  ): void;
}

/**
 * What an extended CONNECT must say besides its path (RFC 8441 section 4:
 * `:protocol websocket`; section 5: `sec-websocket-version` as in RFC 6455).
 * A CONNECT without `:protocol` asks for a tunnel, which the hub is not.
 */
function extendedConnectRefusal(req: IncomingMessage): KometaError | undefined {
  const protocol = req.headers[':protocol'];
  if (protocol === undefined)
    return new KometaError('KOMETA_ERR_METHOD', 'CONNECT is accepted only with :protocol websocket (RFC 8441)');
  if (protocol !== 'websocket') {
    const named = String(protocol).slice(0, 40);
    return new KometaError('KOMETA_ERR_BAD_REQUEST', `Unsupported :protocol ${named}; only websocket`);
  }
  if (req.headers['sec-websocket-version'] !== '13')
    return new KometaError('KOMETA_ERR_BAD_REQUEST', 'Missing or invalid sec-websocket-version (13)');
  return undefined;
}

/** One client connection and the channels it follows. */
class Session {
  grant: Grant = allowAll;
  request!: IncomingMessage;
  cancelExpiry: () => void = () => {};
  unregister: () => void = () => {};
  /** `null` while the subscription is being resolved against history. */
  readonly subscriptions = new Map<string, Subscription | null>();
  inflight = 0;
  closed = false;
  connection!: WsConnection;
  /** The connection's presence member: one client id for every channel it follows. */
  member!: MemberIdentity;
  /** The client id its subscriptions carry: its `client=`, or one of its own (so `"exclude": true` can name it). */
  self = '';
}

/**
 * The hub's WebSocket endpoint: upgrades at /ws, turns client frames into hub
 * calls, and gives each subscription a sink on the connection. One connection
 * follows many channels, each as its own single-channel hub subscription, so
 * every WebSocket subscriber of a channel shares one encoded frame per message.
 */
export class HubWebSocket {
  readonly #wss: WebSocketServer;
  readonly #access: AccessPolicy;
  /** Session cookies to set on the handshake response (a ticket was spent). */
  readonly #cookies = new WeakMap<IncomingMessage, string>();
  readonly #sessions = new Set<Session>();
  readonly #pings: WheelTask;
  #draining = false;

  constructor(
    readonly hub: Hub,
    readonly options: HubWebSocketOptions,
  ) {
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      // JSON escaping can at most double ordinary text; the hub checks the exact data size.
      maxPayload: options.maxMessageBytes * 2 + 16 * 1024,
    });
    this.#access = options.access ?? AccessPolicy.open();
    this.#wss.on('headers', (headers, req) => {
      const cookie = this.#cookies.get(req);
      if (cookie !== undefined) headers.push(`Set-Cookie: ${cookie}`);
    });
    this.#pings = (options.wheel ?? new TimerWheel(250)).every(options.heartbeatMs, () => this.#sweep());
  }

  get connectionCount(): number {
    return this.#sessions.size;
  }

  /** For `server.on('upgrade')`. Upgrades elsewhere than /ws, or when turned off, are answered with problem details. */
  handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const refusal = this.#refusal(req);
    if (refusal !== undefined) {
      socket.end(rawProblemResponse(refusal));
      return;
    }
    this.#access.authenticate(req, new URL(req.url ?? '/', 'http://kometa.invalid')).then(
      ({ grant, setCookie }) => {
        if (socket.destroyed) return;
        if (setCookie !== undefined) this.#cookies.set(req, setCookie);
        // ws answers a malformed handshake with 400 itself ("abortHandshake").
        this.#wss.handleUpgrade(req, socket, head, (ws) => {
          socket.setNoDelay(true);
          this.#open(ws, socket, req, grant);
        });
      },
      (error: unknown) => {
        const known = error instanceof KometaError ? error : new KometaError('KOMETA_ERR_INTERNAL');
        socket.end(rawProblemResponse(known));
      },
    );
  }

  /**
   * RFC 8441: a WebSocket over one HTTP/2 stream. The client sends an extended
   * CONNECT (`:method CONNECT`, `:protocol websocket`, `:path /ws`); "a 2xx
   * series status code" accepts it (section 5, no Sec-WebSocket-Key/Accept
   * over HTTP/2), and from then on the stream's DATA frames carry the same
   * RFC 6455 frames an upgraded socket would. Same refusals, access policy and
   * protocol as handleUpgrade; refusals are problem details on the stream.
   */
  handleExtendedConnect(req: IncomingMessage, res: ServerResponse): void {
    const refusal = extendedConnectRefusal(req) ?? this.#refusal(req);
    if (refusal !== undefined) {
      sendProblem(res, refusal);
      return;
    }
    const stream = (res as unknown as { stream: Http2Stream }).stream;
    this.#access.authenticate(req, new URL(req.url ?? '/', 'http://kometa.invalid')).then(
      ({ grant, setCookie }) => {
        if (stream.destroyed || stream.closed) return;
        if (setCookie !== undefined) res.setHeader('Set-Cookie', setCookie);
        res.writeHead(200);
        res.flushHeaders();
        const ws = new ServerSideWebSocket(null, undefined, { autoPong: true, closeTimeout: WS_CLOSE_TIMEOUT_MS });
        // ws's own way of running a server-side WebSocket on a duplex once a
        // handshake is done (WebSocketServer.completeUpgrade calls it); an
        // Http2Stream is such a duplex, with setTimeout and without setNoDelay,
        // both of which ws only calls when present.
        (ws as unknown as WsSetSocket).setSocket(stream, Buffer.alloc(0), {
          allowSynchronousEvents: true,
          maxPayload: this.#wss.options.maxPayload,
          skipUTF8Validation: false,
        });
        stream.on('error', () => stream.destroy());
        this.#open(ws, stream, req, grant);
      },
      (error: unknown) => sendProblem(res, error),
    );
  }

  /** Why an upgrade is refused before its credentials are looked at, if it is. */
  #refusal(req: IncomingMessage): KometaError | undefined {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== WEBSOCKET_PATH)
      return new KometaError('KOMETA_ERR_NOT_FOUND', `WebSocket is served at ${WEBSOCKET_PATH}`);
    if (!this.options.enabled) return new KometaError('KOMETA_ERR_NOT_FOUND', 'WebSocket is turned off on this hub');
    if (this.#draining) return new KometaError('KOMETA_ERR_DRAINING');
    // Cross-site WebSocket hijacking: a page on another origin must not ride on the user's cookies.
    if (!this.#access.originAllowed(req))
      return new KometaError('KOMETA_ERR_ORIGIN', 'This hub does not accept WebSocket connections from that origin');
    return undefined;
  }

  #open(ws: WebSocket, out: WsOutput, req: IncomingMessage, grant: Grant): void {
    const session = new Session();
    session.grant = grant;
    session.request = req;
    session.member = memberOf(grant, new URL(req.url ?? '/', 'http://kometa.invalid'), 'ws');
    session.connection = new WsConnection(ws, out, { maxQueueBytes: this.options.maxQueueBytes }, () =>
      this.#closeSession(session),
    );
    if (this.#draining) {
      session.connection.close(wsCloseCode('KOMETA_ERR_DRAINING'), 'KOMETA_ERR_DRAINING');
      return;
    }
    this.#sessions.add(session);
    if (grant.expiresAt !== undefined && this.options.atExpiry !== undefined) {
      session.cancelExpiry = this.options.atExpiry(grant.expiresAt, () =>
        session.connection.close(wsCloseCode('KOMETA_ERR_TOKEN_EXPIRED'), 'KOMETA_ERR_TOKEN_EXPIRED'),
      );
    }
    const client = clientIdOf(new URL(req.url ?? '/', 'http://kometa.invalid'));
    // One id for presence and for `"exclude": true`: its `client=`, or the member id made up for it.
    session.self = session.member.client;
    if (this.options.connections !== undefined) {
      session.unregister = this.options.connections.add({
        user: userOf(grant),
        client,
        end: (channel, detail) => this.#disconnect(session, channel, detail),
      });
    }
    ws.on('message', (data, isBinary) => this.#onFrame(session, data, isBinary));
    ws.on('pong', () => {
      session.connection.alive = true;
    });
    // Protocol errors (bad UTF-8, an oversized frame) are answered by ws with
    // 1007 / 1009 and a close; nothing more to do than not crash.
    ws.on('error', () => {});
  }

  #onFrame(session: Session, data: RawData, isBinary: boolean): void {
    const connection = session.connection;
    connection.alive = true;
    if (connection.closing) return;
    if (isBinary) {
      this.#fail(session, new KometaError('KOMETA_ERR_WS_BINARY', 'Send JSON in text frames'));
      return;
    }
    let frame: ClientFrame;
    try {
      frame = readClientFrame(rawText(data));
    } catch (error) {
      this.#fail(session, error);
      return;
    }
    switch (frame.type) {
      case 'subscribe':
        this.#subscribe(session, frame.channel, frame.cursor, frame.ref, frame.presence === true).catch(
          (error: unknown) => this.#fail(session, error),
        );
        break;
      case 'unsubscribe': {
        const subscription = session.subscriptions.get(frame.channel);
        session.subscriptions.delete(frame.channel);
        subscription?.close();
        // Idempotent: the client's view after this frame is "not subscribed", whatever it was before.
        connection.send(withRef({ type: 'unsubscribed', channel: frame.channel }, frame.ref));
        break;
      }
      case 'publish':
        this.#publish(session, frame.channel, frame.data, frame.event, frame.ref, frame.idempotencyKey, frame.exclude);
        break;
      case 'ping':
        connection.send(withRef({ type: 'pong' }, frame.ref));
        break;
    }
  }

  async #subscribe(
    session: Session,
    channel: string,
    cursorText: string | undefined,
    ref: Ref | undefined,
    presence: boolean,
  ): Promise<void> {
    const connection = session.connection;
    let subscription: Subscription;
    try {
      assertChannelName(channel);
      if (session.subscriptions.has(channel))
        throw new KometaError('KOMETA_ERR_ALREADY_SUBSCRIBED', `Already subscribed to ${channel}`);
      if (session.subscriptions.size >= this.options.maxSubscriptions) {
        throw new KometaError(
          'KOMETA_ERR_TOO_MANY_CHANNELS',
          `At most ${this.options.maxSubscriptions} channels per connection`,
          {
            limit: this.options.maxSubscriptions,
          },
        );
      }
      const cursor =
        cursorText === undefined ? null : parseCursor(cursorText.trim(), this.hub.limits.maxChannelsPerSubscription);
      await this.#access.require(session.request, session.grant, 'subscribe', [channel]);
      // Checked again: another subscribe to this channel may have started while access was checked.
      if (session.subscriptions.has(channel))
        throw new KometaError('KOMETA_ERR_ALREADY_SUBSCRIBED', `Already subscribed to ${channel}`);
      session.subscriptions.set(channel, null);
      try {
        subscription = await this.hub.subscribe([channel], cursor, session.member, { presence });
      } catch (error) {
        if (session.subscriptions.get(channel) === null) session.subscriptions.delete(channel);
        throw error;
      }
    } catch (error) {
      connection.send(errorFrame(error, channel, ref));
      return;
    }
    // Unsubscribed (or disconnected) while history was being read.
    if (session.closed || session.subscriptions.get(channel) !== null) {
      subscription.close();
      return;
    }
    session.subscriptions.set(channel, subscription);
    subscription.expiresAt = session.grant.expiresAt;
    subscription.client = session.self;
    connection.send(withRef({ type: 'subscribed', channel, cursor: subscription.cursor() }, ref));
    subscription.start(new WsSink(connection));
  }

  #publish(
    session: Session,
    channel: string,
    data: string,
    event: string | undefined,
    ref: Ref | undefined,
    key?: string,
    excludeFrame?: true | string,
  ): void {
    const connection = session.connection;
    const exclude = excludeFrame === true ? session.self : excludeFrame;
    if (!this.options.publish) {
      connection.send(errorFrame(new KometaError('KOMETA_ERR_PUBLISH_DISABLED'), channel, ref));
      return;
    }
    const wait =
      this.options.publishLimiter?.takePublish(
        session.grant,
        this.options.clientAddress?.(session.request) ?? session.request.socket.remoteAddress,
      ) ?? 0;
    if (wait > 0) {
      connection.send(
        errorFrame(
          new KometaError('KOMETA_ERR_RATE_LIMITED', 'Too many publishes', { retryAfter: wait }),
          channel,
          ref,
        ),
      );
      return;
    }
    session.inflight++;
    connection.publishStarted();
    // Backpressure on the way in: a client that publishes faster than the
    // broker stores is not read from until it catches up.
    if (session.inflight === MAX_INFLIGHT_PUBLISHES) connection.ws.pause();
    this.#access
      .require(session.request, session.grant, 'publish', [channel])
      .then(async () => {
        if (key !== undefined && this.options.publishOnce !== undefined) {
          const { value, replayed } = await this.options.publishOnce(channel, data, event, key, exclude);
          return { id: value.id, subscribers: value.subscribers, replayed };
        }
        const { message, subscribers } = await this.hub.publish(channel, data, { event, exclude });
        return { id: message.id, subscribers, replayed: false };
      })
      .then(
        ({ id, subscribers, replayed }) =>
          connection.send(
            withRef({ type: 'published', channel, id, subscribers, ...(replayed ? { replayed: true } : {}) }, ref),
          ),
        (error: unknown) => connection.send(errorFrame(error, channel, ref)),
      )
      .finally(() => {
        session.inflight--;
        connection.publishAnswered();
        if (session.inflight === MAX_INFLIGHT_PUBLISHES / 2 && connection.ws.isPaused) connection.ws.resume();
      })
      .catch(() => {});
  }

  /** A frame that breaks the protocol: say why, then close with the code for it. */
  #fail(session: Session, error: unknown): void {
    const known =
      error instanceof KometaError
        ? error
        : new KometaError('KOMETA_ERR_INTERNAL', 'The server failed to handle the frame');
    session.connection.send(errorFrame(known));
    session.connection.close(wsCloseCode(known.code), known.code);
  }

  /** POST /disconnect: the whole connection (close 4410), or one channel's subscription (an error frame for it). */
  #disconnect(session: Session, channel: string | undefined, detail: string): boolean {
    const error = new KometaError('KOMETA_ERR_DISCONNECTED', detail);
    if (channel === undefined) {
      session.connection.send(errorFrame(error));
      session.connection.close(wsCloseCode(error.code), error.code);
      return true;
    }
    if (!session.subscriptions.has(channel)) return false;
    const subscription = session.subscriptions.get(channel);
    session.subscriptions.delete(channel);
    subscription?.close();
    session.connection.send(errorFrame(error, channel));
    return true;
  }

  #closeSession(session: Session): void {
    if (session.closed) return;
    session.closed = true;
    session.cancelExpiry();
    session.unregister();
    this.#sessions.delete(session);
    for (const subscription of session.subscriptions.values()) subscription?.close();
    session.subscriptions.clear();
  }

  #sweep(): void {
    for (const session of this.#sessions) {
      const connection = session.connection;
      if (!connection.alive) {
        connection.terminate();
        continue;
      }
      connection.alive = false;
      if (!connection.closing) connection.ws.ping();
    }
  }

  /** Refuse new upgrades (503); open connections carry on until `close`. */
  stopAccepting(): void {
    this.#draining = true;
  }

  /**
   * Refuse new upgrades and close every connection with 1001 once its publishes are answered (clients reconnect and
   * resume).
   */
  close(): void {
    this.#draining = true;
    this.#pings.cancel();
    for (const session of [...this.#sessions])
      session.connection.closeGracefully(wsCloseCode('KOMETA_ERR_DRAINING'), 'KOMETA_ERR_DRAINING');
  }

  /** Cut every connection without a closing handshake (tests use it to simulate a network failure). */
  terminateAll(): void {
    for (const session of [...this.#sessions]) session.connection.terminate();
  }
}

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

function withRef<T extends object>(frame: T, ref: Ref | undefined): T & { ref?: Ref } {
  return ref === undefined ? frame : { ...frame, ref };
}

function errorFrame(error: unknown, channel?: string, ref?: Ref): ErrorFrame {
  const known =
    error instanceof KometaError
      ? error
      : new KometaError('KOMETA_ERR_INTERNAL', 'The server failed to handle the request');
  reportError({ code: known.code, status: known.status, transport: 'websocket' });
  const frame: ErrorFrame = {
    type: 'error',
    code: known.code,
    status: known.status,
    title: known.title,
    detail: known.message,
    ...known.extra,
  };
  return withRef(channel === undefined ? frame : { ...frame, channel }, ref);
}

/** Validate a client frame's shape. Anything not exactly a known request is a protocol error (4400). */
function readClientFrame(text: string): ClientFrame {
  try {
    return parseClientFrame(text);
  } catch (error) {
    if (error instanceof FrameError) throw new KometaError('KOMETA_ERR_WS_FRAME', `Malformed frame: ${error.message}`);
    throw error;
  }
}
