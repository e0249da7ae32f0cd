import { randomBytes } from 'node:crypto';
import { KometaError } from '../core/errors.js';
import type { KometaClaim } from './grant.js';

export interface TicketLimits {
  /** How long a ticket may wait to be used. */
  readonly ticketTtlMs: number;
  /** How long the session a ticket opens lasts. */
  readonly sessionTtlMs: number;
  /** Outstanding tickets and sessions kept at most; minting past it is a 429. */
  readonly maxOutstanding: number;
}

export const defaultTicketLimits: TicketLimits = {
  ticketTtlMs: 60_000,
  sessionTtlMs: 60 * 60_000,
  maxOutstanding: 100_000,
};

interface Entry {
  readonly claim: KometaClaim;
  readonly expiresAt: number;
  readonly subject: string;
}

interface TicketEntry extends Entry {
  readonly sessionTtlMs: number;
}

/**
 * Subscribe tickets: a backend mints one (POST /tickets) and puts only the
 * opaque ticket in the browser's URL. The first request that presents it
 * spends it and gets a session cookie in exchange, so EventSource reconnects
 * (which repeat the same URL, spent ticket included) authenticate with the
 * cookie, and the URL never carries a credential that still works.
 *
 * Kept in this process's memory: with several processes, mint and redeem
 * through the same one, or use tokens.
 */
export class TicketStore {
  readonly #tickets = new Map<string, TicketEntry>();
  readonly #sessions = new Map<string, Entry>();

  constructor(
    readonly limits: TicketLimits = defaultTicketLimits,
    private readonly now: () => number = Date.now,
  ) {}

  mint(claim: KometaClaim, subject: string, sessionTtlMs = this.limits.sessionTtlMs): { ticket: string; expiresAt: number } {
    if (this.#tickets.size + this.#sessions.size >= this.limits.maxOutstanding) {
      this.sweep();
      if (this.#tickets.size + this.#sessions.size >= this.limits.maxOutstanding) {
        throw new KometaError('KOMETA_ERR_RATE_LIMITED', 'Too many outstanding tickets', { retryAfter: 60 });
      }
    }
    const ticket = randomBytes(24).toString('base64url');
    const expiresAt = this.now() + this.limits.ticketTtlMs;
    this.#tickets.set(ticket, { claim, expiresAt, subject, sessionTtlMs: Math.min(sessionTtlMs, this.limits.sessionTtlMs) });
    return { ticket, expiresAt };
  }

  /** Spend a ticket: returns a new session id and what it allows, or throws KOMETA_ERR_TICKET. */
  redeem(ticket: string): { session: string; entry: Entry } {
    const entry = this.#tickets.get(ticket);
    this.#tickets.delete(ticket);
    if (entry === undefined || entry.expiresAt < this.now()) throw new KometaError('KOMETA_ERR_TICKET');
    const session = randomBytes(24).toString('base64url');
    const sessionEntry: Entry = { claim: entry.claim, expiresAt: this.now() + entry.sessionTtlMs, subject: entry.subject };
    this.#sessions.set(session, sessionEntry);
    return { session, entry: sessionEntry };
  }

  session(id: string): Entry | undefined {
    const entry = this.#sessions.get(id);
    if (entry === undefined) return undefined;
    if (entry.expiresAt < this.now()) {
      this.#sessions.delete(id);
      return undefined;
    }
    return entry;
  }

  sweep(): void {
    const now = this.now();
    for (const [key, entry] of this.#tickets) if (entry.expiresAt < now) this.#tickets.delete(key);
    for (const [key, entry] of this.#sessions) if (entry.expiresAt < now) this.#sessions.delete(key);
  }

  get size(): number {
    return this.#tickets.size + this.#sessions.size;
  }
}
