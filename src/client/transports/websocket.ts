import {
  type ServerFrame,
  WEBSOCKET_PATH,
  WS_CLOSE,
  encodeClientFrame,
  isHubErrorCloseCode,
  parseServerFrame,
} from '../../protocol/websocket.js';
import { parseId } from '../positions.js';
import {
  type ClientTransport,
  KometaClientError,
  type PublishResult,
  type TransportClose,
  type TransportConnection,
  type TransportHost,
  type TransportTimings,
  withTicket,
} from '../transport.js';

/**
 * The part of the WebSocket API the client uses: the browser's WebSocket, the
 * global one of newer Node versions, and the `ws` package all fit it.
 * Listeners are declared as methods so that implementations with richer event
 * types are accepted.
 */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open', listener: () => void): void;
  addEventListener(type: 'message', listener: (event: { readonly data: unknown }) => void): void;
  addEventListener(type: 'close', listener: (event: { readonly code: number; readonly reason: string }) => void): void;
  addEventListener(type: 'error', listener: () => void): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

const OPEN = 1;

const PROTOCOL_ERRORS: ReadonlySet<number> = new Set([
  WS_CLOSE.badFrame, WS_CLOSE.unsupportedData, WS_CLOSE.invalidPayload, WS_CLOSE.tooBig, WS_CLOSE.protocolError,
]);

/** What a close code from the hub means for reconnecting (docs/websocket.md). */
function closeReason(code: number): TransportClose['reason'] {
  if (code === WS_CLOSE.goingAway) return 'server-shutdown';
  if (code === WS_CLOSE.disconnected) return 'server-disconnect';
  if (code === WS_CLOSE.slowConsumer) return 'slow-consumer';
  if (PROTOCOL_ERRORS.has(code)) return 'protocol-error';
  if (isHubErrorCloseCode(code)) return 'server-error';
  return 'network';
}

/** WebSocket to the hub's /ws: one connection, one subscribe frame per channel, publishes acknowledged by ref. */
export function websocketTransport(implementation?: WebSocketConstructor): ClientTransport {
  const resolve = (): WebSocketConstructor | undefined =>
    implementation ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  return {
    name: 'websocket',
    available: () => resolve() !== undefined,
    open: (host, timings) => new WebSocketConnection(resolve()!, host, timings),
  };
}

class WebSocketConnection implements TransportConnection {
  #socket: WebSocketLike | undefined;
  #opened = false;
  #done = false;
  /** Detail of a connection-level error frame, for the close that follows it. */
  #closingDetail: string | undefined;
  /** Channels subscribed (or being subscribed) on this socket, each with whether it asked for joins and leaves. */
  readonly #subscribed = new Map<string, boolean>();
  readonly #pending = new Map<number, { resolve: (r: PublishResult) => void; reject: (e: Error) => void }>();
  #nextRef = 1;
  /** Monotonic (performance.now): a wall-clock step must not look like silence, nor hide it. */
  #lastSeen = performance.now();
  #timer: ReturnType<typeof setInterval> | undefined;
  #connectTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly Implementation: WebSocketConstructor,
    private readonly host: TransportHost,
    private readonly timings: TransportTimings,
  ) {
    this.#start().catch((error: unknown) => this.#finish({ reason: 'network', opened: false, detail: String(error) }));
  }

  async #start(): Promise<void> {
    const url = new URL(WEBSOCKET_PATH, this.host.base);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const token = await this.host.token();
    // Browsers cannot set headers on a WebSocket handshake, so a token travels in the query.
    if (token !== undefined) url.searchParams.set('token', token);
    url.searchParams.set('client', this.host.clientId);
    await withTicket(this.host, url);
    if (this.#done) return;
    const socket = new this.Implementation(url.href);
    this.#socket = socket;
    this.#connectTimer = setTimeout(() => {
      this.#finish({ reason: 'network', opened: false, detail: 'WebSocket did not open in time' });
    }, this.timings.connectTimeoutMs);
    socket.addEventListener('open', () => {
      if (this.#done) return;
      clearTimeout(this.#connectTimer);
      this.#opened = true;
      this.#lastSeen = performance.now();
      this.#timer = setInterval(() => this.#heartbeat(), this.timings.pingIntervalMs);
      this.host.opened();
      this.update();
    });
    socket.addEventListener('message', (event) => {
      if (this.#done) return;
      this.#lastSeen = performance.now();
      this.#onFrame(typeof event.data === 'string' ? event.data : String(event.data));
    });
    socket.addEventListener('close', (event) => {
      // The error frame sent before a close says more than the close reason can (123 bytes).
      const said = `${event.code} ${event.reason}`;
      const detail = this.#closingDetail === undefined ? said : `${said}: ${this.#closingDetail}`;
      this.#finish({ reason: closeReason(event.code), opened: this.#opened, detail: detail.trim() });
    });
    // A failed handshake (refused upgrade, no server) fires error and then close.
    socket.addEventListener('error', () => {});
  }

  #onFrame(text: string): void {
    let frame: ServerFrame;
    try {
      frame = parseServerFrame(text);
    } catch {
      return;
    }
    switch (frame.type) {
      case 'message':
        this.host.message(
          frame.event === undefined
            ? { channel: frame.channel, id: frame.id, data: frame.data }
            : { channel: frame.channel, id: frame.id, event: frame.event, data: frame.data },
        );
        break;
      case 'gap':
        this.host.gap({
          channel: frame.channel,
          reason: frame.reason,
          epoch: frame.epoch,
          id: frame.id,
          ...(frame.missed === undefined ? {} : { missed: frame.missed }),
        });
        break;
      case 'subscribed': {
        const position = parseId(frame.cursor);
        if (position !== undefined) this.host.position(position);
        break;
      }
      case 'published': {
        const waiter = typeof frame.ref === 'number' ? this.#pending.get(frame.ref) : undefined;
        if (waiter !== undefined) {
          this.#pending.delete(frame.ref as number);
          waiter.resolve({ channel: frame.channel, id: frame.id, subscribers: frame.subscribers });
        }
        break;
      }
      case 'error': {
        const error = new KometaClientError(frame.code, frame.detail, frame.status, frame.channel);
        const waiter = typeof frame.ref === 'number' ? this.#pending.get(frame.ref) : undefined;
        if (waiter !== undefined) {
          this.#pending.delete(frame.ref as number);
          waiter.reject(error);
        } else if (frame.channel !== undefined && this.#subscribed.has(frame.channel)) {
          this.#subscribed.delete(frame.channel);
          this.host.channelError(frame.channel, error);
        } else if (frame.channel === undefined) {
          this.#closingDetail = frame.detail;
        }
        break;
      }
      case 'unsubscribed':
      case 'pong':
        break;
    }
  }

  update(): void {
    const socket = this.#socket;
    if (socket === undefined || !this.#opened || this.#done || socket.readyState !== OPEN) return;
    const wanted = this.host.channels();
    for (const [channel, presence] of [...this.#subscribed]) {
      // Presence asked for or given up: subscribe again, from where the channel stands (the hub reads frames in order).
      if (wanted.has(channel) && presence === this.host.presence(channel)) continue;
      this.#subscribed.delete(channel);
      socket.send(encodeClientFrame({ type: 'unsubscribe', channel }));
    }
    for (const [channel, position] of wanted) {
      if (this.#subscribed.has(channel)) continue;
      const presence = this.host.presence(channel);
      this.#subscribed.set(channel, presence);
      socket.send(encodeClientFrame({
        type: 'subscribe',
        channel,
        ...(position === undefined ? {} : { cursor: position.id }),
        ...(presence ? { presence } : {}),
      }));
    }
  }

  publish(channel: string, data: string, event: string | undefined): Promise<PublishResult> | undefined {
    const socket = this.#socket;
    if (socket === undefined || !this.#opened || this.#done || socket.readyState !== OPEN) return undefined;
    const ref = this.#nextRef++;
    return new Promise<PublishResult>((resolve, reject) => {
      this.#pending.set(ref, { resolve, reject });
      socket.send(encodeClientFrame(event === undefined ? {
        type: 'publish',
        channel,
        data,
        ref,
      } : { type: 'publish', channel, data, event, ref }));
    });
  }

  /* Browsers answer the hub's pings without telling the page, so the client
   * sends its own and treats silence as a dead connection. */
  #heartbeat(): void {
    if (performance.now() - this.#lastSeen > this.timings.pingIntervalMs * 2) {
      this.#finish({ reason: 'idle-timeout', opened: true, detail: 'no answer to ping' });
      return;
    }
    if (this.#socket?.readyState === OPEN) this.#socket.send(encodeClientFrame({ type: 'ping' }));
  }

  close(): void {
    this.#finish(undefined);
  }

  #finish(close: TransportClose | undefined): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#connectTimer);
    clearInterval(this.#timer);
    const socket = this.#socket;
    if (socket !== undefined && socket.readyState <= OPEN) socket.close(WS_CLOSE.normal);
    for (const waiter of this.#pending.values()) {
      // The hub may or may not have stored it: at most once, so the caller decides whether to retry.
      waiter.reject(new KometaClientError(
        'KOMETA_CLIENT_DISCONNECTED',
        'The connection closed before the hub acknowledged the publish',
      ));
    }
    this.#pending.clear();
    if (close !== undefined) this.host.closed(close);
  }
}
