import type { IncomingMessage, ServerResponse } from 'node:http';
import { presenceKindOf } from '../protocol/presence.js';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { AccessPolicy } from '../auth/access.js';
import type { Grant } from '../auth/grant.js';
import { assertChannelName, assertEventName, isValidClientId } from '../core/channel-name.js';
import type { ControlBus } from '../core/control.js';
import { parseCursor } from '../core/cursor.js';
import { KometaError } from '../core/errors.js';
import type { Hub } from '../core/hub.js';
import { Idempotency, type IdempotencyStore, fingerprint } from '../core/idempotency.js';
import type { GapNotice, Message } from '../core/message.js';
import { readBody } from './body.js';
import { sendJson } from './send-json.js';
import { type ItemResult, type ValidItem, parseBatch, publishBatch } from './batch.js';
import { ConnectionRegistry, type DisconnectOrder } from './connections.js';
import type { RateLimiter } from './rate-limit.js';
import type { Revocation } from '../auth/revocations.js';
import type { RevocationStore } from '../brokers/revocation-stores.js';

/*
 * The backend's API beside the hub's publish route (docs/backends.md):
 *   POST /pub                         batch and broadcast publish
 *   GET  /channels/<c>/history        history, paged
 *   POST /disconnect                  end a user's or a client's connections on every node
 * and idempotency keys for POST /pub/<channel> and batch items.
 */

export interface BackendOptions {
  /** How long an idempotency key is remembered. */
  readonly idempotencyWindowMs: number;
  /** Messages one POST /pub may publish (a broadcast item counts one per channel). */
  readonly maxBatchItems: number;
  /** Largest POST /pub body. */
  readonly maxBatchBytes: number;
  /** The operator's admin token, also accepted by POST /disconnect. */
  readonly adminToken: string | undefined;
}

export const defaultBackendOptions: BackendOptions = {
  idempotencyWindowMs: 300_000,
  maxBatchItems: 1000,
  maxBatchBytes: 1024 * 1024,
  adminToken: undefined,
};

/** Where idempotency keys are kept and how disconnect orders reach the other nodes. */
export interface BackendServices {
  readonly idempotency: IdempotencyStore | Promise<IdempotencyStore>;
  readonly control: ControlBus;
  /** Where revocations outlive this process (Redis, the data directory); in memory only when absent. */
  readonly revocations?: RevocationStore;
}

/** `"revoke": true` keeps a revocation this long (tokens are meant to be short-lived well within it). */
export const DEFAULT_REVOKE_SECONDS = 24 * 60 * 60;

export interface BackendDeps {
  readonly access: AccessPolicy;
  readonly limiter: RateLimiter;
  /**
   * Who is publishing, for the rate limit of anonymous publishers (the peer, or X-Forwarded-For from a trusted
   * proxy).
   */
  readonly clientAddress: (req: IncomingMessage) => string | undefined;
  readonly services: BackendServices;
  /** Called on close instead of closing the services (they may be shared with another server of this process). */
  readonly release?: () => Promise<void>;
}

/** One published message as POST /pub/<channel> and batch items answer it. */
export interface PublishAnswer {
  readonly channel: string;
  readonly id: string;
  readonly subscribers: number;
}

/** Largest page of a history read. */
export const MAX_HISTORY_LIMIT = 1000;

export class BackendApi {
  readonly options: BackendOptions;
  readonly connections = new ConnectionRegistry();
  readonly idempotency: Idempotency;
  readonly #control: ControlBus;
  /** Disconnect orders this node sent carry its id, so that it does not act on its own order twice. */
  readonly #node = randomBytes(8).toString('base64url');
  readonly #adminToken: Buffer | undefined;
  readonly #unlisten: () => void;

  constructor(
    readonly hub: Hub,
    private readonly deps: BackendDeps,
    options: Partial<BackendOptions> = {},
  ) {
    this.options = { ...defaultBackendOptions, ...options };
    this.#adminToken = this.options.adminToken ? Buffer.from(this.options.adminToken) : undefined;
    this.idempotency = new Idempotency(lazyStore(deps.services.idempotency), {
      windowMs: this.options.idempotencyWindowMs,
    });
    this.#control = deps.services.control;
    this.#unlisten = this.#control.listen((payload) => this.#onOrder(payload));
    // Revocations made before this process started (on any node sharing the store).
    deps.services.revocations?.load().then(
      (list) => list.forEach((revocation) => deps.access.revocations.add(revocation)),
      () => {},
    );
  }

  /** The route for a request of ours, or undefined. */
  route(req: IncomingMessage, res: ServerResponse, url: URL, path: string): (() => Promise<void>) | undefined {
    if (path === '/pub') return () => this.#batchRoute(req, res, url);
    if (path === '/disconnect') return () => this.#disconnectRoute(req, res, url);
    if (path.startsWith('/channels/') && path.endsWith('/history')) {
      const segment = path.slice('/channels/'.length, -'/history'.length);
      if (segment !== '' && !segment.includes('/')) return () => this.#historyRoute(req, res, url, segment);
    }
    return undefined;
  }

  /**
   * One publish, at most once per idempotency key when one is given. The
   * excluded client is not part of the key's fingerprint: a replay delivers
   * nothing, to anyone.
   */
  async publish(
    channel: string,
    data: string,
    event: string | undefined,
    key: string | undefined,
    exclude?: string,
  ): Promise<{ value: PublishAnswer; replayed: boolean }> {
    const publish = async (): Promise<PublishAnswer> => {
      const { message, subscribers } = await this.hub.publish(channel, data, { event, exclude });
      return { channel, id: message.id, subscribers };
    };
    if (key === undefined) return { value: await publish(), replayed: false };
    // Check what can be checked before the key is taken, so a refused publish leaves no trace.
    this.#check(channel, data, event, exclude);
    return this.idempotency.run(key, fingerprint('one', channel, event, data), publish);
  }

  #check(channel: string, data: string, event: string | undefined, exclude: string | undefined): void {
    assertChannelName(channel);
    if (event !== undefined) assertEventName(event);
    if (exclude !== undefined && !isValidClientId(exclude))
      throw new KometaError('KOMETA_ERR_EXCLUDE_CLIENT', 'A client id is 1-64 characters of A-Z a-z 0-9 _ . : @ -');
    const limit = this.hub.limits.maxMessageBytes;
    if (Buffer.byteLength(data) > limit)
      throw new KometaError('KOMETA_ERR_BODY_TOO_LARGE', `Messages are limited to ${limit} bytes`, { limit });
  }

  async #batchRoute(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    allow(req, 'POST');
    const { grant, setCookie } = await this.deps.access.authenticate(req, url);
    if (setCookie !== undefined) res.setHeader('Set-Cookie', setCookie);
    const body = await readBody(req, this.options.maxBatchBytes).catch((error: unknown) => {
      res.setHeader('Connection', 'close');
      if (error instanceof KometaError && error.code === 'KOMETA_ERR_BODY_TOO_LARGE') {
        throw new KometaError('KOMETA_ERR_BATCH_TOO_LARGE', `A batch is at most ${this.options.maxBatchBytes} bytes`, {
          limit: this.options.maxBatchBytes,
        });
      }
      throw error;
    });
    const items = parseBatch(req.headers['content-type'], body, this.options.maxBatchItems);
    let publishes = 0;
    for (const item of items) if (item.ok) publishes += item.channels.length;
    // Off (--publish-rate 0): no bucket to take from, so no client address to work out.
    const address = this.deps.limiter.perSecond > 0 ? this.deps.clientAddress(req) : undefined;
    for (let i = 0; i < publishes && address !== undefined; i++) {
      const wait = this.deps.limiter.takePublish(grant, address);
      if (wait > 0) {
        throw new KometaError(
          'KOMETA_ERR_RATE_LIMITED',
          `At most ${this.deps.limiter.perSecond} publishes per second; this batch holds ${publishes}`,
          { retryAfter: wait },
        );
      }
    }
    const access = this.deps.access;
    const checkNames = (item: ValidItem) => {
      for (const channel of item.channels) assertChannelName(channel);
      if (item.event !== undefined) assertEventName(item.event);
    };
    const results = await publishBatch(items, {
      check: async (item: ValidItem) => {
        checkNames(item);
        await access.require(req, grant, 'publish', item.channels);
      },
      checkNow: access.decidesNow
        ? (item) => {
            checkNames(item);
            access.requireNow(grant, 'publish', item.channels);
          }
        : undefined,
      publish: (channel, item) =>
        this.hub
          .publish(channel, item.data, { event: item.event, exclude: item.exclude })
          .then(({ message, subscribers }) => ({ channel, id: message.id, subscribers })),
      publishNow: (channel, item) => {
        const published = this.hub.publishNow(channel, item.data, { event: item.event, exclude: item.exclude });
        return published && { channel, id: published.message.id, subscribers: published.subscribers };
      },
      idempotency: this.idempotency,
      maxMessageBytes: this.hub.limits.maxMessageBytes,
    });
    let published = 0;
    let failed = 0;
    const count = (result: ItemResult, replayed = false) => {
      if ('channels' in result) for (const one of result.channels) count(one, result.replayed === true);
      else if ('error' in result) failed++;
      else if (result.replayed !== true && !replayed) published++;
    };
    for (const result of results) count(result);
    sendJson(res, 200, { results, published, failed, atomic: false });
  }

  /**
   * GET /channels/<c>/history?limit=&since=&before=&reverse=
   * Without `since`: the newest `limit` messages (before `before`, if given),
   * and `next` pages towards older ones. With `since`: the oldest `limit`
   * after it, and `next` pages towards newer ones. `reverse=true` lists a
   * page newest first and pages from the newest down.
   */
  async #historyRoute(req: IncomingMessage, res: ServerResponse, url: URL, segment: string): Promise<void> {
    allow(req, 'GET');
    const channel = decode(segment);
    assertChannelName(channel);
    const { grant, setCookie } = await this.deps.access.authenticate(req, url);
    await this.deps.access.require(req, grant, 'subscribe', [channel]);
    if (setCookie !== undefined) res.setHeader('Set-Cookie', setCookie);
    const params = url.searchParams;
    const limitText = params.get('limit');
    if (limitText !== null && !/^\d{1,4}$/.test(limitText))
      throw historyParam(`limit is a whole number from 1 to ${MAX_HISTORY_LIMIT}`);
    const limit = limitText === null ? 100 : Number(limitText);
    if (limit < 1 || limit > MAX_HISTORY_LIMIT)
      throw historyParam(`limit is a whole number from 1 to ${MAX_HISTORY_LIMIT}`);
    const reverseText = params.get('reverse');
    if (reverseText !== null && !['true', 'false', '1', '0'].includes(reverseText))
      throw historyParam('reverse is true or false');
    const reverse = reverseText === 'true' || reverseText === '1';
    const since = position(params.get('since'), channel, 'since');
    const before = position(params.get('before'), channel, 'before');

    let read = await this.hub.broker.read(channel, since?.seq ?? 0);
    let gap: Omit<GapNotice, 'channel'> | undefined;
    if (since !== undefined && since.epoch !== read.epoch) {
      // The history `since` points into was lost: say so, and start from what there is.
      gap = { reason: 'epoch-changed', epoch: read.epoch };
      read = await this.hub.broker.read(channel, 0);
    } else if (since !== undefined && since.seq > read.headSeq) {
      throw new KometaError('KOMETA_ERR_CURSOR_AHEAD', `Channel ${channel} has no message ${since.seq} yet`);
    } else if (since !== undefined && since.seq < read.oldestSeq - 1) {
      gap = { reason: 'history-truncated', epoch: read.epoch, missed: { from: since.seq + 1, to: read.oldestSeq - 1 } };
    }
    if (before !== undefined && before.epoch !== read.epoch)
      throw historyParam('before is from an earlier epoch of this channel: its history is gone');
    // Joins and leaves are live signals, not the channel's content: history leaves them out.
    let range: readonly Message[] = read.messages.filter((message) => presenceKindOf(message.event) === undefined);
    if (before !== undefined) {
      const end = range.findIndex((message) => message.seq >= before.seq);
      if (end !== -1) range = range.slice(0, end);
    }
    const forward = since !== undefined && !reverse;
    const page = forward ? range.slice(0, limit) : range.slice(Math.max(0, range.length - limit));
    const answer: Record<string, unknown> = {
      channel,
      epoch: read.epoch,
      messages: (reverse ? [...page].reverse() : page).map((message) => ({
        id: message.id,
        ...(message.event === undefined ? {} : { event: message.event }),
        data: message.data,
        time: new Date(message.time).toISOString(),
      })),
    };
    if (range.length > limit && page.length > 0) {
      const next = new URLSearchParams();
      next.set('limit', String(limit));
      if (forward) {
        next.set('since', page[page.length - 1]!.id);
        if (before !== undefined) next.set('before', params.get('before')!);
      } else {
        if (since !== undefined && gap === undefined) next.set('since', params.get('since')!);
        next.set('before', page[0]!.id);
      }
      if (reverse) next.set('reverse', 'true');
      answer.next = `/channels/${encodeURIComponent(channel)}/history?${next.toString()}`;
    }
    if (gap !== undefined) answer.gap = gap;
    sendJson(res, 200, answer);
  }

  /** POST /disconnect {"user"} | {"client"} [, "channel"] [, "reason"], with the publisher key or the admin token. */
  async #disconnectRoute(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    allow(req, 'POST');
    if (!this.#isAdminToken(req)) {
      const { grant } = await this.deps.access.authenticate(req, url);
      if (!mayControl(grant)) {
        throw new KometaError(
          grant.kind === 'anonymous' ? 'KOMETA_ERR_UNAUTHORIZED' : 'KOMETA_ERR_FORBIDDEN',
          'Disconnecting needs the publisher key, the admin token or a token with "admin": true',
        );
      }
    }
    const text = (await readBody(req, 16 * 1024)).toString('utf8');
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new KometaError('KOMETA_ERR_BODY_JSON');
    }
    const { revoke, ...order } = parseOrder(body);
    let revocation: Revocation | undefined;
    if (revoke !== undefined) {
      if (order.user === undefined) throw target('"revoke" needs "user": it refuses that user\'s tokens');
      const at = Date.now();
      revocation = { user: order.user, at, until: at + revoke * 1000 };
      // Kept first (Redis, the data directory), so a node that starts later refuses the tokens too.
      await this.deps.services.revocations?.save(revocation);
      this.deps.access.revocations.add(revocation);
    }
    // Every node (this one included) hears the order on the control bus; this
    // node acts on it at once as well, so its own connections do not wait for
    // the round trip through Redis.
    await this.#control.send(
      JSON.stringify({ ...order, ...(revocation === undefined ? {} : { revoke: revocation }), from: this.#node }),
    );
    const disconnected = this.connections.disconnect(order);
    sendJson(res, 200, {
      disconnected,
      scope: 'cluster',
      ...(revocation === undefined ? {} : { revokedUntil: new Date(revocation.until).toISOString() }),
    });
  }

  #onOrder(payload: string): void {
    let order: DisconnectOrder & { from?: unknown; revoke?: Revocation };
    try {
      order = JSON.parse(payload) as typeof order;
    } catch {
      return;
    }
    if (order.from === this.#node) return;
    if (order.revoke !== undefined) this.deps.access.revocations.add(order.revoke);
    this.connections.disconnect(order);
  }

  #isAdminToken(req: IncomingMessage): boolean {
    const key = this.#adminToken;
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
    if (key === undefined || bearer === undefined) return false;
    const given = Buffer.from(bearer);
    return given.length === key.length && timingSafeEqual(given, key);
  }

  close(): Promise<void> {
    this.#unlisten();
    if (this.deps.release !== undefined) return this.deps.release();
    return Promise.all([this.idempotency.close(), this.#control.close()]).then(() => {});
  }
}

function mayControl(grant: Grant): boolean {
  return grant.kind === 'publisher-key' || grant.admin;
}

function parseOrder(body: Record<string, unknown>): DisconnectOrder & { reason?: string; revoke?: number } {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw target('The body is a JSON object: {"user": "u1"} or {"client": "…"}');
  const { user, client, channel, reason, revoke } = body;
  if (
    revoke !== undefined &&
    revoke !== false &&
    revoke !== true &&
    !(typeof revoke === 'number' && revoke > 0 && revoke <= 30 * 24 * 3600)
  ) {
    throw target('revoke is true (for 24 hours) or a number of seconds up to 30 days');
  }
  if (user !== undefined && (typeof user !== 'string' || user.length === 0 || user.length > 128))
    throw target('user is a string of 1-128 characters');
  if (client !== undefined && (typeof client !== 'string' || !/^[A-Za-z0-9_.:@-]{1,64}$/.test(client)))
    throw target('client is an id of 1-64 characters of A-Z a-z 0-9 _ . : @ -');
  if (user === undefined && client === undefined)
    throw target('Name whom to disconnect: {"user": "u1"} or {"client": "…"}');
  if (channel !== undefined) {
    if (typeof channel !== 'string') throw target('channel is a channel name');
    assertChannelName(channel);
  }
  if (reason !== undefined && (typeof reason !== 'string' || reason.length > 200))
    throw target('reason is a string of at most 200 characters');
  return {
    ...(user === undefined ? {} : { user: user as string }),
    ...(client === undefined ? {} : { client: client as string }),
    ...(channel === undefined ? {} : { channel: channel as string }),
    ...(reason === undefined ? {} : { reason: reason as string }),
    ...(revoke === true ? { revoke: DEFAULT_REVOKE_SECONDS } : typeof revoke === 'number' ? { revoke } : {}),
  };
}

function target(detail: string): KometaError {
  return new KometaError('KOMETA_ERR_DISCONNECT_TARGET', detail);
}

function position(text: string | null, channel: string, name: string): { epoch: string; seq: number } | undefined {
  if (text === null || text === '') return undefined;
  const entry = parseCursor(text.trim()).get(channel);
  if (entry === undefined) throw historyParam(`${name} is a message id of this channel (${channel}~epoch~seq)`);
  return entry;
}

function historyParam(detail: string): KometaError {
  return new KometaError('KOMETA_ERR_HISTORY_PARAM', detail);
}

function allow(req: IncomingMessage, method: 'GET' | 'POST'): void {
  if (req.method !== method) throw new KometaError('KOMETA_ERR_METHOD', `Use ${method} here`, { allow: method });
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new KometaError('KOMETA_ERR_CHANNEL_NAME', 'The channel is not valid percent-encoding');
  }
}

/** A store that may still be opening (the durable store's file is read at start). */
function lazyStore(store: IdempotencyStore | Promise<IdempotencyStore>): IdempotencyStore {
  if (!(store instanceof Promise)) return store;
  store.catch(() => {});
  return {
    reserve: (...args) => store.then((s) => s.reserve(...args)),
    complete: (...args) => store.then((s) => s.complete(...args)),
    release: (...args) => store.then((s) => s.release(...args)),
    lookup: (...args) => store.then((s) => s.lookup(...args)),
    close: () =>
      store.then(
        (s) => s.close(),
        () => {},
      ),
  };
}
