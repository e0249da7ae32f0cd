import { formatId } from '../../protocol/cursor.js';
import { type SseEvent, SseParser, parseKometaEvent } from '../../protocol/sse.js';
import { type ChannelPosition, isAhead, parseCursorEntries, parseId } from '../positions.js';
import {
  type ClientTransport,
  KometaClientError,
  type TransportClose,
  type TransportConnection,
  type TransportHost,
  type TransportTimings,
  authHeaders,
  closeForResponse,
  fetchChannelInfo,
  refuseChannels,
  subscribeQuery,
  withTicket,
} from '../transport.js';

/**
 * Server-Sent Events over fetch, so that the client sees every event whatever
 * its name (an EventSource only dispatches names it was told in advance),
 * can send an Authorization header, and works the same in browsers and in
 * Node without an EventSource implementation. Parsing follows the WHATWG
 * "event stream interpretation" steps.
 *
 * All channels share one request: `GET /sub?channel=a&channel=b`, re-opened
 * with the joined cursor when the set changes.
 */
export function sseTransport(): ClientTransport {
  return {
    name: 'sse',
    available: () => typeof globalThis.fetch === 'function' && typeof TextDecoder === 'function',
    open: (host, timings) => new SseConnection(host, timings),
  };
}

export { SseParser };

class SseConnection implements TransportConnection {
  #controller: AbortController | undefined;
  #generation = 0;
  #opened = false;
  #done = false;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  /** Where this stream stands per channel, to tell which channel each message belongs to. */
  readonly #positions = new Map<string, ChannelPosition>();

  constructor(
    private readonly host: TransportHost,
    private readonly timings: TransportTimings,
  ) {
    this.update();
  }

  /** (Re-)open the one request for the current channel set. */
  update(): void {
    if (this.#done) return;
    this.#controller?.abort();
    const generation = ++this.#generation;
    const controller = new AbortController();
    this.#controller = controller;
    this.#run(generation, controller).catch((error: unknown) => {
      if (generation !== this.#generation || this.#done) return;
      const opened = this.#opened;
      // The look-up of a channel's head needs the same rights as the stream: a channel refused there is refused.
      if (error instanceof KometaClientError && error.status === 403 && error.channel !== undefined) {
        this.host.channelError(error.channel, error);
        return;
      }
      this.#finish(error instanceof KometaClientError && error.status === 401
        ? { reason: 'unauthorized', opened, detail: error.message, code: error.code }
        : { reason: 'network', opened, detail: String(error) });
    });
  }

  async #run(generation: number, controller: AbortController): Promise<void> {
    const channels = await this.#channelsWithStart(generation, controller.signal);
    if (channels === undefined) return;
    const headers = await authHeaders(this.host, 'text/event-stream');
    if (generation !== this.#generation) return;
    this.#armIdle(generation, this.timings.connectTimeoutMs);
    if (channels.size === 0) {
      await this.#checkHub(generation, headers, controller.signal);
      return;
    }
    this.#positions.clear();
    for (const [channel, position] of channels) if (position !== undefined) this.#positions.set(channel, position);
    const query = subscribeQuery(channels, 'sse', this.host.clientId, (c) => this.host.presence(c));
    const url = await withTicket(this.host, new URL(`/sub?${query}`, this.host.base));
    const response = await this.host.fetch(url, { headers, signal: controller.signal, cache: 'no-store' });
    if (generation !== this.#generation) return;
    if (!response.ok || response.body === null) {
      await this.#refused(generation, response, channels);
      return;
    }
    this.#markOpen();
    this.#armIdle(generation, this.timings.idleTimeoutMs);
    await this.#read(generation, response.body.getReader());
  }

  /**
   * The channel set, every channel with a known start; undefined when a newer
   * run took over. A message on a multi-channel stream is told apart by the
   * one cursor entry that moves, so every channel needs a known start:
   * channels followed "from now" start at their current head. (This also
   * means "now" is when subscribe() was called, not when the request got
   * through.)
   */
  async #channelsWithStart(
    generation: number,
    signal: AbortSignal,
  ): Promise<ReturnType<TransportHost['channels']> | undefined> {
    const channels = this.host.channels();
    const unknown = [...channels].filter(([, position]) => position === undefined).map(([channel]) => channel);
    if (unknown.length === 0) return channels;
    const heads = await Promise.all(unknown.map((channel) => fetchChannelInfo(this.host, channel, signal)));
    if (generation !== this.#generation) return undefined;
    heads.forEach((head, i) => {
      const position = parseId(formatId(unknown[i]!, head.epoch, head.headSeq));
      if (position !== undefined) this.host.position(position);
    });
    return this.host.channels();
  }

  /** Nothing to follow: make sure the hub is there, then wait for channels. */
  async #checkHub(generation: number, headers: Record<string, string>, signal: AbortSignal): Promise<void> {
    const healthz = new URL('/healthz', this.host.base);
    const health = await this.host.fetch(healthz, { headers, signal, cache: 'no-store' });
    await health.body?.cancel();
    if (generation !== this.#generation) return;
    clearTimeout(this.#idleTimer);
    this.#markOpen();
  }

  /** The hub answered with an error instead of a stream. */
  async #refused(
    generation: number,
    response: Response,
    channels: ReturnType<TransportHost['channels']>,
  ): Promise<void> {
    const close = await closeForResponse(response, this.#opened);
    if (generation !== this.#generation) return;
    // The client calls update() to go on with what is left.
    if (!refuseChannels(this.host, close, channels, response.status)) this.#finish(close);
  }

  /** Read the event stream until it ends, the connection is replaced, or an event ends it. */
  async #read(generation: number, reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    const parser = new SseParser();
    for (;;) {
      const { done, value } = await reader.read();
      if (generation !== this.#generation) return;
      if (done) break;
      this.#armIdle(generation, this.timings.idleTimeoutMs);
      let ended: TransportClose | undefined;
      parser.feed(decoder.decode(value, { stream: true }), (event) => {
        if (ended === undefined && generation === this.#generation) ended = this.#dispatch(event);
      });
      if (ended !== undefined) {
        await reader.cancel().catch(() => {});
        this.#finish(ended);
        return;
      }
    }
    this.#finish({ reason: 'network', opened: true, detail: 'the event stream ended' });
  }

  #markOpen(): void {
    if (this.#opened) return;
    this.#opened = true;
    this.host.opened();
  }

  /** Returns how the connection ends, when the event says it does. */
  #dispatch(event: SseEvent): TransportClose | undefined {
    const own = parseKometaEvent(event);
    if (own?.kind === 'shutdown') {
      const retry = own.retryMs !== undefined ? { retryAfterMs: own.retryMs } : {};
      return { reason: 'server-shutdown', opened: true, ...retry };
    }
    if (own?.kind === 'error') {
      const reason =
        own.code === 'KOMETA_ERR_SLOW_CONSUMER'
          ? 'slow-consumer'
          : own.code === 'KOMETA_ERR_DISCONNECTED'
            ? 'server-disconnect'
            : 'server-error';
      return { reason, opened: true, detail: own.detail ?? '' };
    }
    const entries = event.id === undefined ? [] : parseCursorEntries(event.id);
    if (own?.kind === 'gap') {
      const notice = own.gap;
      const entry = entries.find((e) => e.channel === notice.channel);
      this.#advance(entries);
      this.host.gap({ ...notice, id: entry?.id ?? formatId(notice.channel, notice.epoch, 0) });
      return undefined;
    }
    if (!event.hasData) {
      // An id-only event: where the subscription starts.
      this.#advance(entries);
      return undefined;
    }
    // A message: its channel is the one entry of the cursor that moved.
    // Prefer a channel whose known position moved over one seen for the first time.
    const moved =
      entries.find((e) => this.#positions.has(e.channel) && isAhead(this.#positions.get(e.channel), e)) ??
      entries.find((e) => !this.#positions.has(e.channel));
    if (moved !== undefined) {
      const { channel, id } = moved;
      const data = event.data;
      this.host.message(event.type === 'message' ? { channel, id, data } : { channel, id, event: event.type, data });
    }
    this.#advance(entries);
    return undefined;
  }

  #advance(entries: readonly ChannelPosition[]): void {
    for (const entry of entries) {
      if (!isAhead(this.#positions.get(entry.channel), entry)) continue;
      this.#positions.set(entry.channel, entry);
      this.host.position(entry);
    }
  }

  /* The hub sends a heartbeat on quiet streams; silence for longer than the
   * idle timeout means the connection is dead even if no error says so. */
  #armIdle(generation: number, ms: number): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      if (generation === this.#generation) {
        const opened = this.#opened;
        this.#finish({ reason: opened ? 'idle-timeout' : 'network', opened, detail: 'no data in time' });
      }
    }, ms);
  }

  close(): void {
    this.#finish(undefined);
  }

  #finish(close: TransportClose | undefined): void {
    if (this.#done) return;
    this.#done = true;
    this.#generation++;
    clearTimeout(this.#idleTimer);
    this.#controller?.abort();
    if (close !== undefined) this.host.closed(close);
  }
}
