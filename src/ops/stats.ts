import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { type OpsSources, connectionCounts } from './sources.js';
import type { StatsSample } from './stats-types.js';
import type { Tally } from './tally.js';

/** Channels listed in a sample: enough for a "hot channels" table, small enough to send every second. */
const TOP_CHANNELS = 12;
/** How often the event-loop delay is sampled, in ms. */
const LOOP_RESOLUTION_MS = 10;

/**
 * Takes one StatsSample per call: counters read, rates from the difference
 * with the previous call, event-loop delay since the previous call. The
 * caller decides how often (the dashboard's stream: once a second).
 */
export class Sampler {
  readonly #sources: OpsSources;
  readonly #tally: Tally;
  readonly #loop: IntervalHistogram;
  #previous: { at: number; published: number; delivered: number; deliveredBytes: number } | undefined;

  constructor(sources: OpsSources, tally: Tally) {
    this.#sources = sources;
    this.#tally = tally;
    this.#loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    this.#loop.enable();
  }

  /**
   * `withTop`: rank the hot channels. That walks every local channel (10,000
   * of them is 1–2% of a busy hub's CPU), and only the dashboard shows the
   * ranking, so the caller asks for it only while someone follows the page.
   */
  sample(withTop = true): StatsSample {
    const { hub } = this.#sources;
    // `t` is when, for people; rates divide by elapsed time, taken on the
    // monotonic clock so a wall-clock step shows no spike or negative rate.
    const t = Date.now();
    const at = performance.now();
    const counters = hub.counters;
    const previous = this.#previous;
    const seconds = previous === undefined ? 1 : Math.max(0.001, (at - previous.at) / 1000);
    const rate = (now: number, before: number | undefined) =>
      before === undefined ? 0 : Math.max(0, now - before) / seconds;
    const rates = {
      published: rate(counters.published, previous?.published),
      delivered: rate(counters.delivered, previous?.delivered),
      deliveredBytes: rate(counters.deliveredBytes, previous?.deliveredBytes),
    };
    this.#previous = {
      at,
      published: counters.published,
      delivered: counters.delivered,
      deliveredBytes: counters.deliveredBytes,
    };

    // Hot channels: every local channel once, keeping the few busiest. Messages
    // per channel are counted from the first sample someone watches, on.
    const recent = this.#tally.takeChannelMessages();
    this.#tally.countChannels = withTop;
    const top: { name: string; subscribers: number; perSecond: number }[] = [];
    for (const channel of withTop ? hub.localChannels() : []) {
      const perSecond = (recent.get(channel.name) ?? 0) / seconds;
      if (top.length === TOP_CHANNELS && !busier(channel.subscribers, perSecond, top[top.length - 1]!)) continue;
      top.push({ name: channel.name, subscribers: channel.subscribers, perSecond });
      top.sort((a, b) => (busier(a.subscribers, a.perSecond, b) ? -1 : 1));
      if (top.length > TOP_CHANNELS) top.pop();
    }

    const memory = process.memoryUsage();
    const loop = this.#loop;
    // The histogram's values include the sampling interval itself; what is past it is the delay.
    const ms = (ns: number) =>
      Number.isFinite(ns) ? Math.max(0, Math.round((ns - LOOP_RESOLUTION_MS * 1e6) / 1e4) / 100) : 0;
    const eventLoop = { p50: ms(loop.percentile(50)), p99: ms(loop.percentile(99)), max: ms(loop.max) };
    loop.reset();
    const health = hub.broker.health();
    return {
      t,
      uptime: Math.round(process.uptime()),
      pid: process.pid,
      node: process.version,
      connections: connectionCounts(this.#sources),
      subscriptions: counters.subscriptionsOpened - counters.subscriptionsClosed,
      channels: hub.channelCount,
      published: counters.published,
      delivered: counters.delivered,
      publishedBytes: counters.publishedBytes,
      deliveredBytes: counters.deliveredBytes,
      gaps: counters.gaps,
      rates,
      slowCloses: Object.fromEntries(this.#tally.drops),
      errors: Object.fromEntries(this.#tally.errors),
      memory: { rss: memory.rss, heapUsed: memory.heapUsed, heapTotal: memory.heapTotal, external: memory.external },
      eventLoop,
      broker: health.ok ? { ok: true } : { ok: false, reason: health.reason },
      top,
    };
  }

  close(): void {
    this.#loop.disable();
  }
}

function busier(subscribers: number, perSecond: number, than: { subscribers: number; perSecond: number }): boolean {
  return subscribers > than.subscribers || (subscribers === than.subscribers && perSecond > than.perSecond);
}
