import { formatId } from '../../protocol/cursor.js';
import { type PollBody, parsePollBody } from '../../protocol/long-poll.js';
import { parseCursorEntries, parseId } from '../positions.js';
import {
  type ClientTransport,
  type KometaGap,
  type TransportClose,
  type TransportConnection,
  type TransportHost,
  type TransportTimings,
  authHeaders,
  closeForResponse,
  refuseChannels,
  subscribeQuery,
  withTicket,
} from '../transport.js';

/**
 * Long-poll: `GET /sub?channel=…&transport=poll&since=<cursor>&timeout=<s>`
 * in a loop, each request resuming from the positions the last one reached.
 * The first request asks for `timeout=0`, so the connection counts as open
 * as soon as the hub answers, not after the first hold.
 */
export function pollTransport(): ClientTransport {
  return {
    name: 'poll',
    available: () => typeof globalThis.fetch === 'function',
    open: (host, timings) => new PollConnection(host, timings),
  };
}

class PollConnection implements TransportConnection {
  #controller: AbortController | undefined;
  #generation = 0;
  #opened = false;
  #done = false;

  constructor(
    private readonly host: TransportHost,
    private readonly timings: TransportTimings,
  ) {
    this.update();
  }

  update(): void {
    if (this.#done) return;
    this.#controller?.abort();
    const generation = ++this.#generation;
    this.#loop(generation).catch((error: unknown) => {
      if (generation !== this.#generation || this.#done) return;
      this.#finish({ reason: 'network', opened: this.#opened, detail: String(error) });
    });
  }

  async #loop(generation: number): Promise<void> {
    let first = true;
    while (generation === this.#generation) {
      const controller = new AbortController();
      this.#controller = controller;
      const channels = this.host.channels();
      const headers = await authHeaders(this.host, 'application/json');
      if (generation !== this.#generation) return;
      const holdSeconds = first ? 0 : this.timings.pollTimeoutSeconds;
      // A hold that lasts well past what was asked for means the connection is dead.
      const timer = setTimeout(() => controller.abort(), holdSeconds * 1000 + this.timings.connectTimeoutMs);
      let response: Response;
      try {
        if (channels.size === 0) {
          response = await this.host.fetch(new URL('/healthz', this.host.base), {
            headers,
            signal: controller.signal,
            cache: 'no-store',
          });
          await response.body?.cancel();
          if (generation !== this.#generation) return;
          if (!response.ok) {
            this.#finish({ reason: 'server-error', opened: this.#opened, detail: String(response.status) });
            return;
          }
          this.#markOpen();
          return; // idle until the channel set changes
        }
        const query = subscribeQuery(channels, 'poll', this.host.clientId, (c) => this.host.presence(c));
        query.set('timeout', String(holdSeconds));
        response = await this.host.fetch(await withTicket(this.host, new URL(`/sub?${query}`, this.host.base)), {
          headers,
          signal: controller.signal,
          cache: 'no-store',
        });
        if (generation !== this.#generation) return;
        if (!response.ok) {
          const close = await closeForResponse(response, this.#opened);
          if (generation !== this.#generation) return;
          if (!refuseChannels(this.host, close, channels, response.status)) this.#finish(close);
          return;
        }
        const body = parsePollBody(await response.text());
        if (generation !== this.#generation) return;
        this.#markOpen();
        this.#deliver(body);
      } catch (error) {
        if (generation !== this.#generation) return;
        const timedOut = controller.signal.aborted;
        this.#finish({
          reason: timedOut && this.#opened ? 'idle-timeout' : 'network',
          opened: this.#opened,
          detail: String(error),
        });
        return;
      } finally {
        clearTimeout(timer);
      }
      first = false;
    }
  }

  #markOpen(): void {
    if (this.#opened) return;
    this.#opened = true;
    this.host.opened();
  }

  /*
   * A body lists gaps apart from messages. A gap comes before the messages of
   * its channel that are in its epoch and after what it reports missing, so
   * each gap is delivered just before the first such message.
   */
  #deliver(body: PollBody): void {
    const gaps = [...(body.gaps ?? [])];
    const takeGapsBefore = (channel: string, epoch: string, seq: number) => {
      for (let i = 0; i < gaps.length; i++) {
        const gap = gaps[i]!;
        const before = gap.missed !== undefined && seq <= gap.missed.to;
        if (gap.channel !== channel || gap.epoch !== epoch || before) continue;
        gaps.splice(i--, 1);
        this.#gap(gap);
      }
    };
    for (const item of body.messages) {
      // With several channels the id is the joined cursor; the message's own id is its channel's entry.
      const entry = parseCursorEntries(item.id).find((e) => e.channel === item.channel) ?? parseId(item.id);
      if (entry === undefined) continue;
      takeGapsBefore(entry.channel, entry.epoch, entry.seq);
      this.host.message(
        item.event === undefined
          ? {
              channel: item.channel,
              id: entry.id,
              data: item.data,
            }
          : { channel: item.channel, id: entry.id, event: item.event, data: item.data },
      );
    }
    for (const gap of gaps) this.#gap(gap);
    for (const entry of parseCursorEntries(body.cursor)) this.host.position(entry);
  }

  #gap(gap: Omit<KometaGap, 'id'> & { id: string }): void {
    const entry = parseCursorEntries(gap.id).find((e) => e.channel === gap.channel);
    this.host.gap({ ...gap, id: entry?.id ?? formatId(gap.channel, gap.epoch, 0) });
  }

  close(): void {
    this.#finish(undefined);
  }

  #finish(close: TransportClose | undefined): void {
    if (this.#done) return;
    this.#done = true;
    this.#generation++;
    this.#controller?.abort();
    if (close !== undefined) this.host.closed(close);
  }
}
