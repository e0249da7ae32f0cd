import { createHash } from 'node:crypto';
import { KometaError } from './errors.js';

/*
 * Idempotency keys (as in Stripe's API and the IETF draft
 * "The Idempotency-Key HTTP Header Field"): a publisher that may retry sends
 * the same key with each attempt; the first attempt publishes, every later one
 * within the window gets the first one's answer back and publishes nothing.
 *
 * A key is first *reserved* (pending, for a short time), then *completed*
 * with the answer (kept for the window). A second request that finds the key
 * pending waits for the answer; one that finds it completed replays it; one
 * whose body differs from the first is refused (422). When the publish
 * fails, the reservation is released so that a retry can publish.
 *
 * Where the keys live is a store: in memory for one process, a file in the
 * data directory for the durable store (survives a restart), Redis for
 * every node sharing it (SET NX PX).
 */

/** What a store holds under a key. */
export type KeyState =
  | { readonly state: 'pending'; readonly fingerprint: string }
  | { readonly state: 'done'; readonly fingerprint: string; readonly result: string };

export interface IdempotencyStore {
  /** Reserve `key` for `ttlMs` if no one has it: undefined when reserved now, else what is there. */
  reserve(key: string, fingerprint: string, ttlMs: number): Promise<KeyState | undefined>;
  /** Record the answer for the window (`ttlMs`); resolves once it is kept as durably as the store keeps anything. */
  complete(key: string, fingerprint: string, result: string, ttlMs: number): Promise<void>;
  /** Drop a reservation whose publish failed (a retry may then publish). */
  release(key: string): Promise<void>;
  lookup(key: string): Promise<KeyState | undefined>;
  close(): Promise<void>;
}

export interface IdempotencyOptions {
  /** How long a completed key is remembered. */
  readonly windowMs: number;
  /** How long a reservation holds while its publish runs (a node that dies mid-publish frees the key after this). */
  readonly pendingMs: number;
  /** How long a duplicate waits for a pending first attempt before it is answered 409. */
  readonly waitMs: number;
}

export const defaultIdempotencyOptions: IdempotencyOptions = { windowMs: 300_000, pendingMs: 30_000, waitMs: 10_000 };

/** 1–255 visible ASCII characters: UUIDs, ULIDs, `job-42:attempt`, … */
const KEY = /^[\x21-\x7e]{1,255}$/;

export function assertIdempotencyKey(key: string): void {
  if (!KEY.test(key))
    throw new KometaError(
      'KOMETA_ERR_IDEMPOTENCY_KEY',
      'An idempotency key is 1-255 visible ASCII characters (a UUID is a good one)',
    );
}

/** What identifies "the same request": a hash over the parts given, each length-prefixed. */
export function fingerprint(...parts: readonly (string | undefined)[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part === undefined ? '-' : `${part.length}:${part}`).update('\u0000');
  return hash.digest('base64url').slice(0, 32);
}

export interface IdempotentOutcome<T> {
  readonly value: T;
  /** True when this is the answer to an earlier request with the same key: nothing was published now. */
  readonly replayed: boolean;
}

/** Runs publishes at most once per key, across everything that shares the store. */
export class Idempotency {
  readonly options: IdempotencyOptions;
  /** Keys this process is publishing right now: a duplicate here waits on the promise instead of polling the store. */
  readonly #inflight = new Map<string, { fingerprint: string; done: Promise<unknown> }>();

  constructor(
    readonly store: IdempotencyStore,
    options: Partial<IdempotencyOptions> = {},
  ) {
    this.options = { ...defaultIdempotencyOptions, ...options };
  }

  async run<T>(key: string, print: string, publish: () => Promise<T>): Promise<IdempotentOutcome<T>> {
    assertIdempotencyKey(key);
    const deadline = Date.now() + this.options.waitMs;
    for (;;) {
      const local = this.#inflight.get(key);
      if (local !== undefined) {
        if (local.fingerprint !== print) throw conflict();
        await local.done.catch(() => {});
        continue;
      }
      const found = await this.store.reserve(key, print, this.options.pendingMs);
      if (found === undefined) return { value: await this.#publish(key, print, publish), replayed: false };
      if (found.fingerprint !== print) throw conflict();
      if (found.state === 'done') return { value: JSON.parse(found.result) as T, replayed: true };
      // Pending on another node (or in a previous life of this one): wait for its answer.
      if (Date.now() > deadline) {
        throw new KometaError(
          'KOMETA_ERR_IDEMPOTENCY_PENDING',
          'The first request with this key has not finished; retry with the same key shortly',
          { retryAfter: 1 },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  async #publish<T>(key: string, print: string, publish: () => Promise<T>): Promise<T> {
    const work = (async () => {
      let value: T;
      try {
        value = await publish();
      } catch (error) {
        await this.store.release(key).catch(() => {});
        throw error;
      }
      // The message is published whatever happens now: answer it. If the answer
      // cannot be recorded (disk full, Redis gone), a retry after the
      // reservation lapses may publish again; the caller cannot do better.
      await this.store.complete(key, print, JSON.stringify(value), this.options.windowMs).catch(() => {});
      return value;
    })();
    this.#inflight.set(key, { fingerprint: print, done: work });
    try {
      return await work;
    } finally {
      this.#inflight.delete(key);
    }
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

function conflict(): KometaError {
  return new KometaError(
    'KOMETA_ERR_IDEMPOTENCY_CONFLICT',
    'This idempotency key was used for a different request (another channel, event or data) within the window',
  );
}

/**
 * Keys in this process's memory, each forgotten when its time is up. Bounded:
 * past `maxKeys` a new key is refused (429) rather than an old one forgotten
 * early. 250,000 keys of a UUID and a publish answer take about 100 MB; at
 * the default window that is over 800 keyed publishes a second, sustained.
 */
export const MAX_IDEMPOTENCY_KEYS = 250_000;

export class MemoryIdempotencyStore implements IdempotencyStore {
  protected readonly entries = new Map<string, { state: KeyState; expiresAt: number }>();
  #sweptAt = 0;

  constructor(
    readonly maxKeys = MAX_IDEMPOTENCY_KEYS,
    protected readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  async reserve(key: string, print: string, ttlMs: number): Promise<KeyState | undefined> {
    return this.reserveNow(key, print, ttlMs);
  }

  protected reserveNow(key: string, print: string, ttlMs: number): KeyState | undefined {
    const now = this.now();
    const entry = this.entries.get(key);
    if (entry !== undefined && entry.expiresAt > now) return entry.state;
    if (this.entries.size >= this.maxKeys) this.sweep();
    if (this.entries.size >= this.maxKeys) {
      throw new KometaError('KOMETA_ERR_RATE_LIMITED', 'Too many idempotency keys remembered at once; retry later', {
        retryAfter: 1,
      });
    }
    this.entries.set(key, { state: { state: 'pending', fingerprint: print }, expiresAt: now + ttlMs });
    // Expired keys are dropped as new ones come, a pass at most once a second.
    if (now - this.#sweptAt > 1000) this.sweep();
    return undefined;
  }

  async complete(key: string, print: string, result: string, ttlMs: number): Promise<void> {
    this.remember(key, { state: 'done', fingerprint: print, result }, this.now() + ttlMs);
  }

  protected remember(key: string, state: KeyState, expiresAt: number): void {
    this.entries.delete(key); // re-inserted at the end: the map stays in expiry order, roughly
    this.entries.set(key, { state, expiresAt });
  }

  async release(key: string): Promise<void> {
    if (this.entries.get(key)?.state.state === 'pending') this.entries.delete(key);
  }

  async lookup(key: string): Promise<KeyState | undefined> {
    const entry = this.entries.get(key);
    return entry !== undefined && entry.expiresAt > this.now() ? entry.state : undefined;
  }

  sweep(): void {
    const now = this.now();
    this.#sweptAt = now;
    for (const [key, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(key);
  }

  async close(): Promise<void> {}
}
