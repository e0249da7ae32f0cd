import { createHmac, randomUUID } from 'node:crypto';
import type { Hub } from '../core/hub.js';
import type { PresenceEvent } from '../core/presence.js';

/*
 * Lifecycle webhooks (docs/presence.md): the hub's presence events POSTed to
 * the application as signed JSON. Each event is emitted once per cluster (by
 * the node whose change made it, see core/presence.ts), so only that node
 * sends it. Delivery is at least once while this process lives: a failed POST
 * is retried with backoff until it succeeds, and events wait in one bounded
 * queue in the order they happened, so a channel's events never overtake
 * each other. A full queue drops the newest event (counted, and reported to
 * `onDrop`); the presence endpoint lets the backend catch up.
 */

export type WebhookEventName = 'channel.occupied' | 'channel.vacated' | 'member.join' | 'member.leave';

export const webhookEventNames: readonly WebhookEventName[] = [
  'channel.occupied',
  'channel.vacated',
  'member.join',
  'member.leave',
];

export interface WebhookOptions {
  readonly url: string;
  /** HMAC-SHA256 key of `Kometa-Signature`; empty: requests are not signed. */
  readonly secret: string;
  readonly events: readonly WebhookEventName[];
  /** Events waiting at most; past it the newest is dropped. */
  readonly maxQueue?: number;
  /** First retry after this; doubles up to maxBackoffMs. */
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** One POST that takes longer than this is a failure (and retried). */
  readonly timeoutMs?: number;
  readonly onDrop?: (event: WebhookBody) => void;
  readonly onFailure?: (event: WebhookBody, reason: string) => void;
}

export interface WebhookBody {
  readonly id: string;
  readonly time: string;
  readonly event: WebhookEventName;
  readonly channel: string;
  readonly user?: string | null;
  readonly client?: string;
}

export interface WebhookCounters {
  sent: number;
  failures: number;
  dropped: number;
}

/** `sha256=<hex>` of the raw body: what `Kometa-Signature` carries. */
export function signWebhook(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

const EVENT_NAMES: Record<PresenceEvent['event'], WebhookEventName> = {
  occupied: 'channel.occupied',
  vacated: 'channel.vacated',
  join: 'member.join',
  leave: 'member.leave',
};

export class WebhookSender {
  readonly counters: WebhookCounters = { sent: 0, failures: 0, dropped: 0 };
  readonly #queue: { body: string; event: WebhookBody }[] = [];
  readonly #maxQueue: number;
  readonly #minBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #timeoutMs: number;
  readonly #wanted: Set<WebhookEventName>;
  readonly #listener = (event: PresenceEvent) => this.#onPresence(event);
  #sending = false;
  #closed = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #wakeRetry: (() => void) | undefined;

  constructor(
    private readonly hub: Hub,
    readonly options: WebhookOptions,
  ) {
    this.#maxQueue = options.maxQueue ?? 10_000;
    this.#minBackoffMs = options.minBackoffMs ?? 500;
    this.#maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#wanted = new Set(options.events);
    for (const name of ['join', 'leave', 'occupied', 'vacated'] as const) hub.on(name, this.#listener);
  }

  get queued(): number {
    return this.#queue.length;
  }

  #onPresence(event: PresenceEvent): void {
    const name = EVENT_NAMES[event.event];
    if (!this.#wanted.has(name) || this.#closed) return;
    const body: WebhookBody = {
      id: randomUUID(),
      time: new Date().toISOString(),
      event: name,
      channel: event.channel,
      ...(event.member === undefined ? {} : { user: event.member.user, client: event.member.client }),
    };
    if (this.#queue.length >= this.#maxQueue) {
      this.counters.dropped++;
      this.options.onDrop?.(body);
      return;
    }
    this.#queue.push({ body: JSON.stringify(body), event: body });
    if (!this.#sending) void this.#run();
  }

  async #run(): Promise<void> {
    this.#sending = true;
    let backoff = this.#minBackoffMs;
    while (this.#queue.length > 0 && !this.#closed) {
      const head = this.#queue[0]!;
      const failure = await this.#post(head.body);
      if (failure === undefined) {
        this.#queue.shift();
        this.counters.sent++;
        backoff = this.#minBackoffMs;
        continue;
      }
      this.counters.failures++;
      this.options.onFailure?.(head.event, failure);
      // The same event again, after a while: the ones behind it wait, so a channel's order holds.
      await new Promise<void>((resolve) => {
        this.#wakeRetry = resolve;
        this.#retryTimer = setTimeout(resolve, backoff * (0.75 + Math.random() / 2));
      });
      backoff = Math.min(backoff * 2, this.#maxBackoffMs);
    }
    this.#sending = false;
  }

  /** undefined when the receiver took it (2xx), else why not. */
  async #post(body: string): Promise<string | undefined> {
    const headers: Record<string, string> = { 'Content-Type': 'application/json', 'User-Agent': 'kometa-webhook' };
    if (this.options.secret !== '') headers['Kometa-Signature'] = signWebhook(this.options.secret, body);
    try {
      const response = await fetch(this.options.url, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      await response.arrayBuffer().catch(() => undefined);
      return response.ok ? undefined : `status ${response.status}`;
    } catch (error) {
      return (error as Error).message;
    }
  }

  /** On shutdown: give the queue up to `timeoutMs` to empty (the last members' events are in it), then close. */
  async drain(timeoutMs: number): Promise<void> {
    const until = performance.now() + timeoutMs;
    // The hub's members leave as it closes; their events must be queued before "empty" means done.
    await this.hub.presence?.close();
    while ((this.#queue.length > 0 || this.#sending) && performance.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    this.close();
  }

  close(): void {
    this.#closed = true;
    for (const name of ['join', 'leave', 'occupied', 'vacated'] as const) this.hub.off(name, this.#listener);
    clearTimeout(this.#retryTimer);
    this.#wakeRetry?.();
  }
}

/** The event list of `--webhook-events`, or why it is not one. */
export function parseWebhookEvents(text: string): WebhookEventName[] | string {
  const names = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const name of names) {
    if (!webhookEventNames.includes(name as WebhookEventName)) {
      return `unknown webhook event "${name}"; use ${webhookEventNames.join(', ')}`;
    }
  }
  return names as WebhookEventName[];
}
