import type { IncomingMessage, ServerResponse } from 'node:http';
import { memberOf } from './presence-routes.js';
import type { Socket } from 'node:net';
import { parseCursor } from '../core/cursor.js';
import { encodeSseError } from '../protocol/sse.js';
import { KometaError } from '../core/errors.js';
import type { Subscription } from '../core/hub.js';
import type { TimerWheel, WheelTask } from '../core/timer-wheel.js';
import { wallClock } from '../core/clock.js';
import { ChunkedStream } from '../transports/chunked.js';
import { LongPollSink } from '../transports/long-poll.js';
import { SSE_HEADERS, SSE_HEARTBEAT, SseSink, sseSlowFrame } from '../transports/sse.js';
import { STREAM_HEARTBEAT, StreamSink, streamSlowFrame } from '../transports/stream.js';
import type { Grant } from '../auth/grant.js';
import { answersPromptly } from './in-order.js';
import { clientIdOf, userOf } from './connections.js';
import { type RouteContext, allowMethods, authorize, decodeChannel, headerValue, serverFull } from './route-kit.js';
import type { Admission, RetryHints } from './herd.js';

type Transport = 'sse' | 'poll' | 'stream';
const TRANSPORTS = new Set<string>(['sse', 'poll', 'stream']);

interface StreamingSubscriber {
  readonly stream: ChunkedStream;
  readonly heartbeat: Buffer;
}

/** What the subscribe route needs from HubHttp besides the shared route context. */
export interface SubscriberHost extends RouteContext {
  /** Connections taken past --max-connections: they may publish and ask, not subscribe. */
  readonly reservedSockets: WeakSet<Socket>;
  readonly retryHints: RetryHints;
  readonly admission: Admission;
  /** The connection a request came on (over HTTP/2, its session's socket). */
  connectionOf(req: IncomingMessage): Socket | undefined;
  atExpiry(expiresAt: number, expire: () => void): () => void;
}

/**
 * GET /sub: the transport a request asks for (SSE, long-poll or NDJSON
 * stream), its subscription, and the connections that stay open for it —
 * their heartbeats and long-poll timeouts on the hub's shared timer wheel.
 */
export class HubSubscribers {
  readonly #streaming = new Set<StreamingSubscriber>();
  /** Long-polls and their timeouts on the wheel: one shared sweep, no timer per request. */
  readonly #polls = new Map<LongPollSink, WheelTask>();
  readonly #heartbeats: WheelTask;
  readonly #heartbeatTicks: number;

  constructor(
    readonly host: SubscriberHost,
    readonly wheel: TimerWheel,
  ) {
    // One entry on the wheel for every streaming connection's heartbeat, none per connection.
    this.#heartbeatTicks = Math.max(1, Math.round(host.options.heartbeatMs / wheel.tickMs));
    this.#heartbeats = wheel.every(this.#heartbeatTicks * wheel.tickMs, () => this.#heartbeat());
  }

  get pollCount(): number {
    return this.#polls.size;
  }

  /** Write a heartbeat to every streaming connection that has been quiet for a whole heartbeat interval. */
  #heartbeat(): void {
    const tick = this.wheel.tick;
    const quietSince = tick - this.#heartbeatTicks;
    for (const { stream, heartbeat } of this.#streaming) {
      if (stream.lastWriteSweep <= quietSince) stream.write(heartbeat, tick);
    }
  }

  /** No more heartbeats (a drain); streams end as their subscriptions do. */
  stopHeartbeats(): void {
    this.#heartbeats.cancel();
  }

  /** A drain: every long-poll waiting answers now with what it has (its cursor). */
  answerPolls(): void {
    for (const sink of [...this.#polls.keys()]) sink.answer();
  }

  async route(req: IncomingMessage, res: ServerResponse, url: URL, pathChannel: string | undefined): Promise<void> {
    allowMethods(req, 'GET');
    const connection = this.host.connectionOf(req);
    if (connection !== undefined && this.host.reservedSockets.has(connection)) throw serverFull();
    const channels = pathChannel === undefined ? url.searchParams.getAll('channel') : [decodeChannel(pathChannel)];
    const transport = pickTransport(url.searchParams.get('transport'), req.headers.accept);
    if (transport === 'poll') answersPromptly(res);
    // Before any work (a token to verify, history to read): a storm is turned away cheaply.
    const refusal = transport === 'poll' ? undefined : this.host.admission.admit();
    if (refusal !== undefined) {
      const busy = new KometaError('KOMETA_ERR_BUSY', 'The hub is taking returning subscribers at a bounded rate', {
        retryAfter: Math.ceil(refusal.retryMs / 1000),
      });
      if (transport !== 'sse') throw busy;
      sendSseError(res, refusal.retryMs, busy);
      return;
    }
    // The header wins: EventSource sends the newest id in it when it reconnects,
    // while the query keeps whatever the page first put in the URL.
    const cursorText =
      headerValue(req.headers['last-event-id']) ??
      url.searchParams.get('lastEventId') ??
      url.searchParams.get('since') ??
      '';
    const cursor = parseCursor(cursorText.trim(), this.host.hub.limits.maxChannelsPerSubscription);
    const pollTimeoutMs = transport === 'poll' ? this.#pollTimeout(url.searchParams.get('timeout')) : 0;
    if (channels.length === 0) throw new KometaError('KOMETA_ERR_CHANNEL_MISSING');
    const grant = await authorize(this.host.access, req, res, url, 'subscribe', channels);

    let subscription: Subscription;
    try {
      const options = { presence: presenceParam(url.searchParams.get('presence')) };
      subscription = await this.host.hub.subscribe(channels, cursor, memberOf(grant, url, transport), options);
    } catch (error) {
      // EventSource treats any status but 200 as final and never reconnects
      // (WHATWG: "fail the connection"), so a passing outage would lose the
      // subscriber for good. Answer 200 with a retry hint and an error event
      // instead, and end: the browser comes back by itself.
      if (transport === 'sse' && error instanceof KometaError && error.status === 503) {
        sendSseError(res, this.host.retryHints.hintMs(), error);
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
    // A publish that excludes this client skips this subscription (docs/backends.md#excluding-the-sender).
    subscription.client = client;
    if (transport !== 'poll') {
      this.#startStreaming(res, subscription, transport, grant, client);
      return;
    }
    const untilExpiry = grant.expiresAt === undefined ? Infinity : Math.max(0, grant.expiresAt - wallClock.now());
    this.#startPoll(res, subscription, Math.min(pollTimeoutMs, untilExpiry), grant, client);
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
    const entry: StreamingSubscriber = {
      stream: new ChunkedStream(
        res,
        { maxQueueBytes: this.host.options.maxQueueBytes },
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
    const sweep = () => this.wheel.tick;
    // Each connection its own hint, so a restart does not bring them all back in the same instant.
    const retryMs = this.host.retryHints.hintMs();
    const sink =
      transport === 'sse'
        ? new SseSink(entry.stream, sweep, retryMs)
        : new StreamSink(entry.stream, sweep, retryMs);
    // A credential that expires while the stream is open ends it with a clear reason.
    let cancelExpiry = () => {};
    // POST /disconnect finds it by user or client id.
    const channels = subscription.channelNames;
    forget = this.host.backend.connections.add({
      user: userOf(grant),
      client,
      end: (channel, detail) =>
        (channel === undefined || channels.includes(channel)) && (sink.end('disconnected', detail), true),
    });
    sink.open();
    subscription.start(sink);
    if (entry.stream.closed) return;
    this.#streaming.add(entry);
    if (grant.expiresAt !== undefined)
      cancelExpiry = this.host.atExpiry(grant.expiresAt, () => sink.end('token-expired'));
  }

  #startPoll(
    res: ServerResponse,
    subscription: Subscription,
    timeoutMs: number,
    grant: Grant,
    client: string | undefined,
  ): void {
    const channels = subscription.channelNames;
    const unregister = this.host.backend.connections.add({
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
      this.wheel.schedule(timeoutMs, () => sink.answer()),
    );
  }

  #pollTimeout(value: string | null): number {
    if (value === null) return this.host.options.pollTimeoutMs;
    if (!/^\d{1,6}(\.\d{1,3})?$/.test(value)) {
      throw new KometaError('KOMETA_ERR_TIMEOUT_PARAM', 'timeout is a number of seconds, e.g. timeout=25');
    }
    return Math.min(Number(value) * 1000, this.host.options.maxPollTimeoutMs);
  }
}

/** A 503 told to EventSource: 200, a retry hint and one kometa-error event, then the end (it reconnects by itself). */
export function sendSseError(
  res: ServerResponse,
  retryMs: number,
  error: KometaError,
  headers: Record<string, string> = {},
): void {
  const body = encodeSseError(error.code, error.message, retryMs);
  res.writeHead(200, { ...SSE_HEADERS, ...headers, 'Content-Length': String(Buffer.byteLength(body)) });
  res.end(body);
}

/** Whether a request to /sub asks for SSE (a bad `transport=` is not). */
export function asksForSse(url: URL, req: IncomingMessage): boolean {
  try {
    return pickTransport(url.searchParams.get('transport'), req.headers.accept) === 'sse';
  } catch {
    return false;
  }
}

/** `transport=` when given, else the Accept header; SSE when neither says. */
export function pickTransport(param: string | null, accept: string | undefined): Transport {
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

/** `?presence=1` (or `true`): also send the channels' joins and leaves. */
function presenceParam(text: string | null): boolean {
  if (text === null || text === '0' || text === 'false') return false;
  if (text === '1' || text === 'true') return true;
  throw new KometaError('KOMETA_ERR_BAD_REQUEST', 'presence is 1 or 0');
}
