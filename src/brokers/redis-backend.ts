import { KometaError } from '../core/errors.js';
import type { ControlBus } from '../core/control.js';
import type { IdempotencyStore, KeyState } from '../core/idempotency.js';
import type { RedisCommandLink, RedisSubscriberLink } from './redis.js';

/*
 * What the backend API keeps in Redis beside the broker's channels, on the
 * broker's own two connections: idempotency keys (one key each, `SET NX PX`
 * for the reservation, then the answer for the window) and the control
 * channel that carries disconnect orders to every node.
 */

/** GET the key; if absent, SET it (NX, PX) as pending. Returns what was there, or nil when reserved now. */
const RESERVE =
  "local v = redis.call('GET', KEYS[1]) if v then return v end redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], " +
    "'NX') return false";
/** Drop a reservation only while it is still pending (never someone's completed answer). */
const RELEASE =
  "local v = redis.call('GET', KEYS[1]) if v and string.sub(v, 1, 7) == '{\"s\":\"p' then redis.call('DEL', " +
    "KEYS[1]) end return 1";
const COMPLETE = "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1";
const GET = "return redis.call('GET', KEYS[1])";
const PUBLISH = "return redis.call('PUBLISH', KEYS[1], ARGV[1])";

export class RedisIdempotencyStore implements IdempotencyStore {
  constructor(
    private readonly commands: RedisCommandLink,
    private readonly prefix: string,
  ) {}

  #key(key: string): string {
    return `${this.prefix}idem:${key}`;
  }

  async #eval(script: string, key: string, ...args: (string | number)[]): Promise<unknown> {
    if (this.commands.status !== 'ready') throw unavailable();
    try {
      return await this.commands.eval(script, 1, this.#key(key), ...args);
    } catch {
      throw unavailable();
    }
  }

  async reserve(key: string, print: string, ttlMs: number): Promise<KeyState | undefined> {
    const found = await this.#eval(RESERVE, key, JSON.stringify({ s: 'p', f: print }), Math.max(1, Math.ceil(ttlMs)));
    return parseState(found);
  }

  async complete(key: string, print: string, result: string, ttlMs: number): Promise<void> {
    await this.#eval(COMPLETE, key, JSON.stringify({ s: 'd', f: print, r: result }), Math.max(1, Math.ceil(ttlMs)));
  }

  async release(key: string): Promise<void> {
    await this.#eval(RELEASE, key);
  }

  async lookup(key: string): Promise<KeyState | undefined> {
    return parseState(await this.#eval(GET, key));
  }

  /** The broker owns the connection. */
  async close(): Promise<void> {}
}

function parseState(value: unknown): KeyState | undefined {
  if (typeof value !== 'string') return undefined;
  const parsed = JSON.parse(value) as { s: string; f: string; r?: string };
  return parsed.s === 'd'
    ? { state: 'done', fingerprint: parsed.f, result: parsed.r ?? 'null' }
    : { state: 'pending', fingerprint: parsed.f };
}

function unavailable(): KometaError {
  return new KometaError(
    'KOMETA_ERR_BROKER_UNAVAILABLE',
    'Redis is unavailable; retry with the same idempotency key shortly',
  );
}

/** Control orders over one Redis pub/sub channel, `<prefix>control`, on the broker's subscriber connection. */
export class RedisControlBus implements ControlBus {
  readonly #name: string;
  readonly #listeners = new Set<(payload: string) => void>();

  constructor(
    private readonly commands: RedisCommandLink,
    private readonly subscriber: RedisSubscriberLink,
    prefix: string,
  ) {
    // Not `<prefix>{…}`: the broker's own channels all look like that, and it ignores anything else.
    this.#name = `${prefix}control`;
    const subscribe = () => {
      if (this.subscriber.status === 'ready') this.subscriber.subscribe(this.#name).catch(() => {});
    };
    subscribe();
    // The broker resubscribes its channels after a reconnect; this channel is ours to resubscribe.
    this.subscriber.on('ready', subscribe);
    this.subscriber.on('message', (channel, payload) => {
      if (channel === this.#name) for (const listener of this.#listeners) listener(payload);
    });
  }

  async send(payload: string): Promise<void> {
    if (this.commands.status !== 'ready') throw unavailable();
    await this.commands.eval(PUBLISH, 1, this.#name, payload);
  }

  listen(listener: (payload: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async close(): Promise<void> {}
}
