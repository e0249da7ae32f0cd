import { Counter, Gauge, type Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { errorCodes } from '../core/errors.js';
import { type OpsSources, connectionCounts } from './sources.js';
import type { Tally } from './tally.js';

/**
 * /metrics in the Prometheus text format, with prom-client. Everything the
 * hub already counts is read at scrape time (gauges and counters with a
 * `collect`), so serving metrics adds nothing to the fan-out path; the two
 * latency histograms are observed once per fan-out, from kometa:fanout.
 * Its own registry, so several hubs in one process (tests) do not clash.
 */
export function createMetrics(sources: OpsSources, tally: Tally): Registry {
  const registry = new Registry();
  const registers = [registry];
  gauges(sources, registers);
  totals(sources, registers);
  tallyCounters(tally, registers);
  new Gauge({
    name: 'kometa_broker_up',
    help: '1 when the message store answers, 0 while it is unreachable (publishes get 503)',
    registers,
    collect() {
      this.set(sources.hub.broker.health().ok ? 1 : 0);
    },
  });
  storeGauges(sources, registers);
  fanOutHistograms(tally, registers);
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** The durable store's data directory; duck-typed so that ops imports no engine. */
function storeGauges(sources: OpsSources, registers: Registry[]): void {
  const store = sources.hub.broker as { readonly diskBytes?: number; readonly segments?: readonly unknown[] };
  if (typeof store.diskBytes !== 'number') return;
  new Gauge({
    name: 'kometa_store_disk_bytes',
    help: 'Bytes of segment files in the data directory (bounded by --history-total-bytes plus a segment)',
    registers,
    collect() {
      this.set(store.diskBytes ?? 0);
    },
  });
  new Gauge({
    name: 'kometa_store_segments',
    help: 'Segment files in the data directory',
    registers,
    collect() {
      this.set(store.segments?.length ?? 0);
    },
  });
}

type Registers = Registry[];

/** What is open now: connections, subscriptions, channels. */
function gauges(sources: OpsSources, registers: Registers): void {
  const { hub } = sources;
  new Gauge({
    name: 'kometa_connections',
    help: 'Open subscriber connections by transport (sse, stream, poll: held requests; ws: WebSocket connections)',
    labelNames: ['transport'] as const,
    registers,
    collect() {
      const counts = connectionCounts(sources);
      for (const [transport, value] of Object.entries(counts)) this.set({ transport }, value);
    },
  });
  new Gauge({
    name: 'kometa_subscriptions',
    help: 'Subscriptions open in this process (one per channel set; a WebSocket has one per channel)',
    registers,
    collect() {
      this.set(hub.counters.subscriptionsOpened - hub.counters.subscriptionsClosed);
    },
  });
  new Gauge({
    name: 'kometa_channels',
    help: 'Channels with at least one subscriber in this process',
    registers,
    collect() {
      this.set(hub.channelCount);
    },
  });
}

/** Totals the hub keeps; a counter is advanced by what changed since the last scrape. */
function totals(sources: OpsSources, registers: Registers): void {
  const { hub } = sources;
  const total = (name: string, help: string, read: () => number) => {
    let seen = 0;
    new Counter({
      name,
      help,
      registers,
      collect() {
        const now = read();
        if (now > seen) this.inc(now - seen);
        seen = now;
      },
    });
  };
  total(
    'kometa_messages_published_total',
    'Messages accepted by publish in this process',
    () => hub.counters.published,
  );
  total(
    'kometa_messages_delivered_total',
    'Messages handed to subscribers (one per subscriber per message)',
    () => hub.counters.delivered,
  );
  total('kometa_published_bytes_total', 'Bytes of message data accepted by publish', () => hub.counters.publishedBytes);
  total(
    'kometa_delivered_bytes_total',
    'Bytes written to subscriber connections by live fan-out',
    () => hub.counters.deliveredBytes,
  );
  total('kometa_subscriptions_opened_total', 'Subscriptions opened', () => hub.counters.subscriptionsOpened);
  total('kometa_gaps_total', 'Gap notices sent (messages a subscriber could not get)', () => hub.counters.gaps);
  // With --webhook-url only (their absence says webhooks are off).
  const webhooks = sources.webhooks;
  if (webhooks === undefined) return;
  total('kometa_webhooks_sent_total', 'Webhook events the receiver took (2xx)', () => webhooks.counters.sent);
  const failures = () => webhooks.counters.failures;
  total('kometa_webhook_failures_total', 'Webhook POSTs that failed and were retried', failures);
  total(
    'kometa_webhooks_dropped_total',
    'Webhook events dropped because the queue was full (the backend catches up from the presence endpoint)',
    () => webhooks.counters.dropped,
  );
  new Gauge({
    name: 'kometa_webhook_queue',
    help: 'Webhook events waiting to be sent',
    registers,
    collect() {
      this.set(webhooks.queued);
    },
  });
}

/** Errors and slow-consumer closes, counted from the diagnostics channels by the tally. */
function tallyCounters(tally: Tally, registers: Registers): void {
  const errors = new Counter({
    name: 'kometa_errors_total',
    help: 'Errors answered to clients, by stable code (see docs/errors.md)',
    labelNames: ['code'] as const,
    registers,
    collect() {
      for (const [code, count] of tally.errors) {
        const before = reported.get(code) ?? 0;
        if (count > before) this.inc({ code }, count - before);
        reported.set(code, count);
      }
    },
  });
  const reported = new Map<string, number>();
  // Every code is present from the start (at 0), so rate() works from the first error on.
  for (const code of Object.keys(errorCodes)) errors.inc({ code }, 0);

  const slowReported = new Map<string, number>();
  const slow = new Counter({
    name: 'kometa_slow_consumer_closes_total',
    help: 'Subscriber connections closed because they could not keep up, by transport',
    labelNames: ['transport'] as const,
    registers,
    collect() {
      for (const [transport, count] of tally.drops) {
        const before = slowReported.get(transport) ?? 0;
        if (count > before) this.inc({ transport }, count - before);
        slowReported.set(transport, count);
      }
    },
  });
  for (const transport of ['sse', 'stream', 'ws']) slow.inc({ transport }, 0);
}

/** The two latency histograms, observed once per fan-out (kometa:fanout). */
function fanOutHistograms(tally: Tally, registers: Registry[]): void {
  const fanOut = new BucketHistogram(
    'kometa_fanout_duration_seconds',
    'Time to encode and write one fan-out (a channel\'s pending messages to all its subscribers here)',
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
    registers,
  );
  const latency = new BucketHistogram(
    'kometa_publish_to_deliver_seconds',
    'From publish (the broker\'s clock) to the end of the fan-out here, per fan-out',
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  );
  tally.onFanOut((event) => {
    fanOut.observe(event.durationMs / 1000);
    // Clocks of different machines (Redis TIME vs ours) may disagree a little; never observe below zero.
    latency.observe(Math.max(0, event.startedAt + event.durationMs - event.publishedAt) / 1000);
  });
}

/**
 * A label-less histogram observed on the fan-out path: an observation is a
 * bucket increment (prom-client's Histogram hashes labels and validates on
 * each one, a few percent of a fan-out of one message). The registry reads
 * it through `get()` in prom-client's format, so /metrics and the
 * --workers aggregation treat it like any histogram.
 */
interface BucketHistogramData {
  readonly name: string;
  readonly help: string;
  readonly type: 'histogram';
  readonly aggregator: 'sum';
  readonly values: { labels: { le?: number | string }; value: number; metricName: string }[];
}

class BucketHistogram {
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  readonly #counts: Float64Array;
  #sum = 0;
  #count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly upperBounds: readonly number[],
    registers: Registry[],
  ) {
    this.#counts = new Float64Array(upperBounds.length);
    for (const registry of registers) registry.registerMetric(this as unknown as Histogram);
  }

  observe(value: number): void {
    const bounds = this.upperBounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.#counts[i]!++;
        break;
      }
    }
    this.#sum += value;
    this.#count++;
  }

  get(): Promise<BucketHistogramData> {
    const values: BucketHistogramData['values'] = [];
    let cumulative = 0;
    this.upperBounds.forEach((le, i) => {
      cumulative += this.#counts[i]!;
      values.push({ labels: { le }, value: cumulative, metricName: `${this.name}_bucket` });
    });
    values.push({ labels: { le: '+Inf' }, value: this.#count, metricName: `${this.name}_bucket` });
    values.push({ labels: {}, value: this.#sum, metricName: `${this.name}_sum` });
    values.push({ labels: {}, value: this.#count, metricName: `${this.name}_count` });
    const { name, help, aggregator } = this;
    return Promise.resolve({ name, help, type: 'histogram', aggregator, values });
  }

  reset(): void {
    this.#counts.fill(0);
    this.#sum = 0;
    this.#count = 0;
  }
}
