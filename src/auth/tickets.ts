import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { KometaError } from '../core/errors.js';
import { type KometaClaim, isKometaClaim } from './grant.js';

export interface TicketLimits {
  /** How long a ticket may wait to be used. */
  readonly ticketTtlMs: number;
  /** How long the session a ticket opens lasts, at most. */
  readonly sessionTtlMs: number;
  /** Spent tickets remembered at most by one process (each only until it would have expired anyway). */
  readonly maxSpent: number;
}

export const defaultTicketLimits: TicketLimits = {
  ticketTtlMs: 60_000,
  sessionTtlMs: 60 * 60_000,
  maxSpent: 1_000_000,
};

export interface TicketSession {
  readonly claim: KometaClaim;
  readonly expiresAt: number;
  readonly subject: string;
}

/**
 * Marks a ticket as spent: true the first time, false if it was spent before.
 * The in-memory default covers one process; with Redis every node shares it
 * (the hub plugs in the broker's `claimOnce`), so a ticket is single-use
 * across the whole deployment.
 */
export type SpendOnce = (ticketId: string, ttlMs: number) => Promise<boolean>;

/** Claims in a ticket travel in a URL: keep them short. */
const MAX_CLAIM_BYTES = 2048;

/**
 * Subscribe tickets: a backend mints one (POST /tickets) and puts only the
 * ticket in the browser's URL. The first request that presents it spends it
 * and gets a session cookie in exchange, so EventSource reconnects (which
 * repeat the same URL, spent ticket included) authenticate with the cookie,
 * and the URL never carries a credential that still works.
 *
 * Tickets and sessions are signed (HMAC-SHA256), not stored: any kometa
 * process with the same secret accepts them, so they work behind a load
 * balancer with no sticky sessions. Only "this ticket was spent" is state,
 * kept until the ticket would have expired anyway.
 */
export class TicketIssuer {
  readonly #secret: Buffer;
  readonly #spentHere = new Map<string, number>();
  #spendOnce: SpendOnce;

  constructor(
    secret: string | Buffer,
    readonly limits: TicketLimits = defaultTicketLimits,
    private readonly now: () => number = Date.now,
  ) {
    this.#secret = typeof secret === 'string' ? Buffer.from(secret) : secret;
    this.#spendOnce = (id, ttlMs) => Promise.resolve(this.#spendLocally(id, ttlMs));
  }

  /** Share "spent" between processes (the hub passes its broker's claimOnce when it has one). */
  useSharedSpending(spendOnce: SpendOnce): void {
    this.#spendOnce = spendOnce;
  }

  mint(
    claim: KometaClaim,
    subject: string,
    sessionTtlMs = this.limits.sessionTtlMs,
  ): { ticket: string; expiresAt: number } {
    const expiresAt = this.now() + this.limits.ticketTtlMs;
    const payload = {
      c: claim,
      e: expiresAt,
      s: subject.slice(0, 128),
      t: Math.min(sessionTtlMs, this.limits.sessionTtlMs),
      j: randomBytes(12).toString('base64url'),
    };
    if (Buffer.byteLength(JSON.stringify(claim)) > MAX_CLAIM_BYTES) {
      throw new KometaError('KOMETA_ERR_PATTERN', `A ticket's patterns are limited to ${MAX_CLAIM_BYTES} bytes`);
    }
    return { ticket: this.#sign('ticket', payload), expiresAt };
  }

  /** Spend a ticket: returns a signed session (the cookie's value) and what it allows, or throws KOMETA_ERR_TICKET. */
  async redeem(ticket: string): Promise<{ session: string; entry: TicketSession }> {
    type Payload = { c?: unknown; e?: unknown; s?: unknown; t?: unknown; j?: unknown };
    const payload = this.#open('ticket', ticket) as Payload | undefined;
    if (
      payload === undefined ||
      !isKometaClaim(payload.c) ||
      typeof payload.e !== 'number' ||
      typeof payload.t !== 'number' ||
      typeof payload.s !== 'string' ||
      typeof payload.j !== 'string' ||
      payload.e < this.now()
    ) {
      throw new KometaError('KOMETA_ERR_TICKET');
    }
    if (!(await this.#spendOnce(payload.j, payload.e - this.now() + 1000))) {
      throw new KometaError('KOMETA_ERR_TICKET', 'The ticket was already used');
    }
    const entry: TicketSession = { claim: payload.c, expiresAt: this.now() + payload.t, subject: payload.s };
    return { session: this.#sign('session', { c: entry.claim, e: entry.expiresAt, s: entry.subject }), entry };
  }

  /** The session a cookie value stands for, if it is genuine and current. */
  session(value: string): TicketSession | undefined {
    const payload = this.#open('session', value) as { c?: unknown; e?: unknown; s?: unknown } | undefined;
    if (
      payload === undefined ||
      !isKometaClaim(payload.c) ||
      typeof payload.e !== 'number' ||
      typeof payload.s !== 'string'
    ) {
      return undefined;
    }
    if (payload.e < this.now()) return undefined;
    return { claim: payload.c, expiresAt: payload.e, subject: payload.s };
  }

  /** Forget spent tickets that have expired anyway. */
  sweep(): void {
    const now = this.now();
    for (const [id, until] of this.#spentHere) if (until < now) this.#spentHere.delete(id);
  }

  #spendLocally(id: string, ttlMs: number): boolean {
    if (this.#spentHere.has(id)) return false;
    if (this.#spentHere.size >= this.limits.maxSpent) {
      this.sweep();
      if (this.#spentHere.size >= this.limits.maxSpent) {
        throw new KometaError('KOMETA_ERR_RATE_LIMITED', 'Too many tickets in flight', { retryAfter: 60 });
      }
    }
    this.#spentHere.set(id, this.now() + ttlMs);
    return true;
  }

  // `kind` is signed too, so a session cookie cannot be passed off as a ticket or the other way round.
  #sign(kind: 'ticket' | 'session', payload: object): string {
    const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
    return `${body}.${this.#mac(kind, body).toString('base64url')}`;
  }

  #open(kind: 'ticket' | 'session', value: string): unknown {
    if (value.length > 4096) return undefined;
    const dot = value.indexOf('.');
    if (dot <= 0) return undefined;
    const body = value.slice(0, dot);
    const given = Buffer.from(value.slice(dot + 1), 'base64url');
    const expected = this.#mac(kind, body);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    try {
      return JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as unknown;
    } catch {
      return undefined;
    }
  }

  #mac(kind: string, body: string): Buffer {
    return createHmac('sha256', this.#secret).update(kind).update('.').update(body).digest();
  }
}
