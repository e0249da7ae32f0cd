/**
 * `kometa/server`: the hub's HTTP API for Node backends (docs/backends.md).
 *
 *   const kometa = new KometaServer({ url: 'http://127.0.0.1:8080', publisherKey: process.env.KOMETA_PUBLISHER_KEY });
 *   await kometa.publish('room.42', { text: 'hi' });
 *   await kometa.publishOnce('orders', order, { idempotencyKey: `order-${order.id}` });   // retried, never twice
 *
 * Every refusal is a KometaServerError carrying the hub's problem code
 * (docs/errors.md); the hub unreachable is KometaServerError with code
 * KOMETA_CLIENT_NETWORK. Uses the global fetch; no dependencies.
 */
import { randomUUID } from 'node:crypto';
import type { GapNotice } from '../protocol/gap.js';

export interface KometaServerOptions {
  /** The hub, e.g. http://127.0.0.1:8080. */
  readonly url: string | URL;
  /** `--publisher-key` of the hub (or any token with the rights the calls need). */
  readonly publisherKey?: string;
  /** Per request; default 10 s. */
  readonly timeoutMs?: number;
  /** Retries of `publishOnce` (and of any call given an idempotency key): attempts in all, default 5; backoff from 100 ms doubling to 2 s, jittered. */
  readonly retry?: { readonly attempts?: number; readonly baseMs?: number; readonly maxMs?: number };
  readonly fetch?: typeof fetch;
}

/** Data to publish: a string is sent as is, anything else as its JSON text. */
export type PublishData = string | number | boolean | null | object;

export interface PublishOptions {
  readonly event?: string;
  /** The same key on every attempt of the same publish: a repeat within the hub's window publishes nothing and answers the first id. */
  readonly idempotencyKey?: string;
  /**
   * A client id (the `clientId` of a kometa client, `client=` of a subscriber)
   * whose live connections, on every node, do not get this message: the
   * sender's own echo. History keeps it for everyone.
   */
  readonly exclude?: string;
}

export interface Published {
  readonly channel: string;
  readonly id: string;
  readonly subscribers: number;
  /** True when the hub answered from an earlier request with the same idempotency key. */
  readonly replayed?: boolean;
}

export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly code: string;
  readonly [extension: string]: unknown;
}

export type BatchItem =
  | {
      readonly channel: string;
      readonly data: PublishData;
      readonly event?: string;
      readonly idempotencyKey?: string;
      readonly exclude?: string;
    }
  | {
      readonly channels: readonly string[];
      readonly data: PublishData;
      readonly event?: string;
      readonly idempotencyKey?: string;
      readonly exclude?: string;
    };

export type ChannelResult = Published | { readonly channel?: string; readonly error: Problem };
export type BatchResult = ChannelResult | { readonly channels: readonly ChannelResult[]; readonly replayed?: boolean };

export interface BatchAnswer {
  /** One per item, in the order of the items. */
  readonly results: readonly BatchResult[];
  readonly published: number;
  readonly failed: number;
  readonly atomic: false;
}

export interface HistoryQuery {
  readonly limit?: number;
  readonly since?: string;
  readonly before?: string;
  readonly reverse?: boolean;
}

export interface HistoryMessage {
  readonly id: string;
  readonly event?: string;
  readonly data: string;
  /** ISO 8601 publish time. */
  readonly time: string;
}

export interface HistoryPage {
  readonly channel: string;
  readonly epoch: string;
  readonly messages: readonly HistoryMessage[];
  /** The path of the next page, when there is one. */
  readonly next?: string;
  /** A gap notice (protocol/gap.ts) without the channel, which the page names already. */
  readonly gap?: Omit<GapNotice, 'channel'>;
}

/** One member of a channel: one subscription of one connection (docs/presence.md). */
export interface PresenceMember {
  readonly client: string;
  readonly user: string | null;
  readonly info: unknown;
  readonly transport: string;
  readonly since: string;
}

export interface PresencePage {
  readonly channel: string;
  /** Members (clients) in the whole cluster. */
  readonly count: number;
  /** Distinct users among them. */
  readonly users: number;
  readonly members: readonly PresenceMember[];
  /** Give it as `after` for the next page; null on the last. */
  readonly next: string | null;
}

export interface TicketRequest {
  /** Channel patterns the ticket may subscribe to. */
  readonly subscribe: readonly string[];
  /** Session length in seconds once the ticket is spent (at most an hour). */
  readonly ttl?: number;
  /** The user the session speaks for: what `disconnect({ user })` finds. */
  readonly user?: string;
  /** Shown to the channel's other members in presence (signed inside the ticket; at most 1 KB of JSON). */
  readonly info?: unknown;
}

export type DisconnectTarget = (
  { readonly user: string; readonly client?: string } | { readonly client: string; readonly user?: string }
) & {
  /** Only what follows this channel. */
  readonly channel?: string;
  /** Told to the client in the error's detail. */
  readonly reason?: string;
};

/** The hub refused (its problem code), or could not be reached (KOMETA_CLIENT_NETWORK, status 0). */
export class KometaServerError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly problem?: Problem,
  ) {
    super(message);
    this.name = 'KometaServerError';
  }

  /** Worth trying again with the same idempotency key: the hub was unreachable, busy or unsure. */
  get retryable(): boolean {
    return this.status === 0 || this.status === 409 || this.status === 429 || this.status >= 500;
  }
}

export class KometaServer {
  readonly url: URL;
  readonly #key: string | undefined;
  readonly #timeoutMs: number;
  readonly #retry: { attempts: number; baseMs: number; maxMs: number };
  readonly #fetch: typeof fetch;

  constructor(options: KometaServerOptions) {
    this.url = new URL(options.url);
    this.#key = options.publisherKey;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#retry = {
      attempts: options.retry?.attempts ?? 5,
      baseMs: options.retry?.baseMs ?? 100,
      maxMs: options.retry?.maxMs ?? 2000,
    };
    this.#fetch = options.fetch ?? globalThis.fetch;
  }

  /** One message (POST /pub/<channel>); once only if given an idempotency key, with no retry. */
  async publish(channel: string, data: PublishData, options: PublishOptions = {}): Promise<Published> {
    const query = options.event === undefined ? '' : `?event=${encodeURIComponent(options.event)}`;
    const headers: Record<string, string> = {
      'Content-Type': typeof data === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    };
    if (options.idempotencyKey !== undefined) headers['Idempotency-Key'] = options.idempotencyKey;
    if (options.exclude !== undefined) headers['Kometa-Exclude-Client'] = options.exclude;
    return this.#request<Published>(
      'POST',
      `/pub/${encodeURIComponent(channel)}${query}`,
      typeof data === 'string' ? data : JSON.stringify(data),
      headers,
    );
  }

  /**
   * Publish exactly once, retrying on failures that may or may not have
   * published (unreachable hub, 5xx, 409 in progress, 429): every attempt
   * carries the same idempotency key (a new UUID unless given), so the hub
   * publishes it at most once and every attempt answers the same id.
   */
  async publishOnce(channel: string, data: PublishData, options: PublishOptions = {}): Promise<Published> {
    const idempotencyKey = options.idempotencyKey ?? randomUUID();
    return this.#retrying(() => this.publish(channel, data, { ...options, idempotencyKey }));
  }

  /** Many messages in one request (POST /pub): one result per item, in order; not atomic. */
  async batch(items: readonly BatchItem[]): Promise<BatchAnswer> {
    return this.#request<BatchAnswer>('POST', '/pub', JSON.stringify(items), { 'Content-Type': 'application/json' });
  }

  /** One message to many channels, each with its own id. */
  async broadcast(
    channels: readonly string[],
    data: PublishData,
    options: PublishOptions = {},
  ): Promise<readonly ChannelResult[]> {
    const item = {
      channels,
      data,
      ...(options.event === undefined ? {} : { event: options.event }),
      ...(options.idempotencyKey === undefined ? {} : { idempotencyKey: options.idempotencyKey }),
      ...(options.exclude === undefined ? {} : { exclude: options.exclude }),
    };
    const answer = await this.batch([item]);
    const result = answer.results[0]!;
    if ('error' in result) throw fromProblem(result.error);
    return 'channels' in result ? result.channels : [result];
  }

  /** A single-use subscribe ticket for a browser (POST /tickets). */
  async mintTicket(request: TicketRequest): Promise<{ ticket: string; expiresAt: string }> {
    return this.#request('POST', '/tickets', JSON.stringify(request), { 'Content-Type': 'application/json' });
  }

  /** One page of a channel's history (GET /channels/<c>/history). */
  async history(channel: string, query: HistoryQuery = {}): Promise<HistoryPage> {
    const params = new URLSearchParams();
    if (query.limit !== undefined) params.set('limit', String(query.limit));
    if (query.since !== undefined) params.set('since', query.since);
    if (query.before !== undefined) params.set('before', query.before);
    if (query.reverse === true) params.set('reverse', 'true');
    const text = params.toString();
    return this.#request('GET', `/channels/${encodeURIComponent(channel)}/history${text === '' ? '' : `?${text}`}`);
  }

  /** Every page, following `next`, yielding messages in the order the pages list them. */
  async *historyAll(channel: string, query: HistoryQuery = {}): AsyncGenerator<HistoryMessage> {
    let page = await this.history(channel, query);
    for (;;) {
      yield* page.messages;
      if (page.next === undefined) return;
      page = await this.#request<HistoryPage>('GET', page.next);
    }
  }

  /** Who is in a channel, across the cluster (GET /channels/<c>/presence); one page of members. */
  async presence(channel: string, query: { limit?: number; after?: string } = {}): Promise<PresencePage> {
    const params = new URLSearchParams();
    if (query.limit !== undefined) params.set('limit', String(query.limit));
    if (query.after !== undefined) params.set('after', query.after);
    const text = params.toString();
    return this.#request('GET', `/channels/${encodeURIComponent(channel)}/presence${text === '' ? '' : `?${text}`}`);
  }

  /** End a user's or a client's connections on every node (POST /disconnect). */
  async disconnect(target: DisconnectTarget): Promise<{ disconnected: number }> {
    return this.#request('POST', '/disconnect', JSON.stringify(target), { 'Content-Type': 'application/json' });
  }

  async #retrying<T>(attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (error) {
        if (!(error instanceof KometaServerError) || !error.retryable || n >= this.#retry.attempts) throw error;
        const ceiling = Math.min(this.#retry.maxMs, this.#retry.baseMs * 2 ** (n - 1));
        const hinted = typeof error.problem?.retryAfter === 'number' ? error.problem.retryAfter * 1000 : 0;
        await new Promise((resolve) =>
          setTimeout(resolve, Math.max(hinted, ceiling / 2 + Math.random() * (ceiling / 2))),
        );
      }
    }
  }

  async #request<T>(
    method: 'GET' | 'POST',
    path: string,
    body?: string,
    headers: Record<string, string> = {},
  ): Promise<T> {
    const url = new URL(path, this.url);
    const all: Record<string, string> = { Accept: 'application/json', ...headers };
    if (this.#key !== undefined) all.Authorization = `Bearer ${this.#key}`;
    let response: Response;
    let text: string;
    try {
      response = await this.#fetch(url, {
        method,
        headers: all,
        ...(body === undefined ? {} : { body }),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new KometaServerError(
        'KOMETA_CLIENT_NETWORK',
        `${method} ${url.pathname}: ${cause?.code ?? cause?.message ?? (error as Error).message}`,
        0,
      );
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new KometaServerError(
        'KOMETA_CLIENT_HTTP',
        `${method} ${url.pathname} answered ${response.status} with a body that is not JSON`,
        response.status,
      );
    }
    if (!response.ok) {
      const problem = value as Problem;
      if (typeof problem.code === 'string') throw fromProblem(problem);
      throw new KometaServerError(
        'KOMETA_CLIENT_HTTP',
        `${method} ${url.pathname} answered ${response.status}`,
        response.status,
      );
    }
    if (response.headers.get('idempotent-replayed') === 'true' && typeof value === 'object' && value !== null)
      return { ...value, replayed: true } as T;
    return value as T;
  }
}

function fromProblem(problem: Problem): KometaServerError {
  return new KometaServerError(problem.code, problem.detail ?? problem.title, problem.status, problem);
}
