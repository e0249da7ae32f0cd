import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { wallClock } from '../core/clock.js';
import { KometaError } from '../core/errors.js';
import { RevocationList } from './revocations.js';
import { type Grant, allowAll, grantFromClaim, isKometaClaim } from './grant.js';
import { compilePatterns } from './patterns.js';
import { TicketIssuer, type TicketLimits, defaultTicketLimits } from './tickets.js';
import { CLOCK_TOLERANCE_S, type TokenKeys, type TokenVerifier, createTokenVerifier } from './tokens.js';

export type Action = 'subscribe' | 'publish';

/**
 * Library mode: an app with its own sessions decides. Called for every
 * subscribe and publish (and every WebSocket subscribe) with the request that
 * carried it; return false (or throw a KometaError) to refuse.
 */
export type AuthorizeHook = (
  request: IncomingMessage,
  access: { action: Action; channels: readonly string[] },
) => boolean | Promise<boolean>;

export interface AccessOptions {
  readonly tokens?: TokenKeys;
  /** A shared secret for backends: `Authorization: Bearer <key>` may publish anywhere and mint tickets. */
  readonly publisherKey?: string | undefined;
  /** Channel patterns anyone may subscribe to without a credential once access control is on. */
  readonly publicSubscribe?: readonly string[];
  /** Channel patterns anyone may publish to without a credential once access control is on. */
  readonly publicPublish?: readonly string[];
  /** Cookie that may carry a token (for browsers, where EventSource cannot set headers). */
  readonly tokenCookie?: string;
  /** Accept `?token=` on subscribe URLs (EventSource's other way in; see docs/security.md for the risks). */
  readonly allowQueryToken?: boolean;
  /** Browser origins allowed to use the hub cross-origin (CORS and WebSocket Origin check); `*` for any. */
  readonly allowedOrigins?: readonly string[];
  readonly tickets?: Partial<TicketLimits>;
  /**
   * Signs tickets and session cookies. Every process that should accept the
   * same tickets needs the same one. Default: derived from the publisher key
   * or the JWT secret (so nodes configured alike agree), else random for this
   * process.
   */
  readonly ticketSecret?: string | undefined;
  readonly authorize?: AuthorizeHook;
}

export const SESSION_COOKIE = 'kometa_session';

export interface Authentication {
  readonly grant: Grant;
  /** A cookie to set on the response (a ticket was just spent for a session). */
  readonly setCookie?: string;
}

/**
 * Who may do what. With no key, secret or hook configured the hub is open
 * (every request gets allowAll). Once one is configured, nothing is
 * anonymous except the public patterns.
 */
export class AccessPolicy {
  readonly enabled: boolean;
  readonly tickets: TicketIssuer;
  /** Users whose current tokens are refused (POST /disconnect with "revoke"). */
  readonly revocations = new RevocationList();
  readonly #verifier: TokenVerifier | undefined;
  readonly #publisherKey: Buffer | undefined;
  readonly #anonymous: Grant;
  readonly #tokenCookie: string;
  readonly #allowQueryToken: boolean;
  readonly #origins: ReadonlySet<string> | 'any' | 'same-origin';
  readonly #authorize: AuthorizeHook | undefined;

  private constructor(options: AccessOptions, verifier: TokenVerifier | undefined) {
    this.#verifier = verifier;
    this.#publisherKey = options.publisherKey ? Buffer.from(options.publisherKey) : undefined;
    this.#authorize = options.authorize;
    this.enabled = verifier !== undefined || this.#publisherKey !== undefined || this.#authorize !== undefined;
    this.#anonymous = this.enabled
      ? {
          subscribe: compilePatterns(options.publicSubscribe ?? []),
          publish: compilePatterns(options.publicPublish ?? []),
          tickets: false,
          admin: false,
          expiresAt: undefined,
          subject: 'anonymous',
          kind: 'anonymous',
        }
      : allowAll;
    this.#tokenCookie = options.tokenCookie ?? 'kometa_token';
    this.#allowQueryToken = options.allowQueryToken ?? true;
    const origins = options.allowedOrigins ?? [];
    // An open hub has nothing to protect with CORS; a protected one is
    // same-origin only until origins are listed.
    const any = origins.includes('*') || (origins.length === 0 && !this.enabled);
    this.#origins = any ? 'any' : origins.length === 0 ? 'same-origin' : new Set(origins);
    this.tickets = new TicketIssuer(ticketSecret(options), { ...defaultTicketLimits, ...options.tickets });
  }

  static async create(options: AccessOptions = {}): Promise<AccessPolicy> {
    return new AccessPolicy(options, await createTokenVerifier(options.tokens ?? {}));
  }

  static open(): AccessPolicy {
    return new AccessPolicy({}, undefined);
  }

  /** Find and check the request's credential. Throws 401 for a credential that is present but bad. */
  async authenticate(req: IncomingMessage, url: URL): Promise<Authentication> {
    if (!this.enabled || this.#authorize !== undefined) {
      return { grant: this.#authorize !== undefined ? hookGrant : this.#anonymous };
    }
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
    if (bearer !== undefined) return { grant: await this.#fromSecret(bearer) };
    const cookies = parseCookies(req.headers.cookie);
    const session = cookies.get(SESSION_COOKIE);
    const ticket = url.searchParams.get('ticket');
    if (session !== undefined) {
      const entry = this.tickets.session(session);
      if (entry !== undefined) return { grant: grantFromClaim(entry.claim, { expiresAt: entry.expiresAt, subject: entry.subject, kind: 'ticket' }) };
      // Present but invalid or expired: a 401, never a fall-through to weaker
      // credentials or anonymous access — unless a ticket comes along to replace it.
      if (ticket === null) throw new KometaError('KOMETA_ERR_UNAUTHORIZED', 'The kometa_session cookie is invalid or has expired; get a new ticket');
    }
    if (ticket !== null) {
      const { session: id, entry } = await this.tickets.redeem(ticket);
      const maxAge = Math.max(1, Math.floor((entry.expiresAt - wallClock.now()) / 1000));
      return {
        grant: grantFromClaim(entry.claim, { expiresAt: entry.expiresAt, subject: entry.subject, kind: 'ticket' }),
        setCookie: `${SESSION_COOKIE}=${id}; Max-Age=${maxAge}; Path=/; HttpOnly; SameSite=Lax`,
      };
    }
    const cookieToken = cookies.get(this.#tokenCookie);
    if (cookieToken !== undefined) return { grant: await this.#fromToken(cookieToken) };
    const queryToken = this.#allowQueryToken ? url.searchParams.get('token') : null;
    if (queryToken !== null) return { grant: await this.#fromToken(queryToken) };
    return { grant: this.#anonymous };
  }

  async #fromSecret(secret: string): Promise<Grant> {
    const key = this.#publisherKey;
    if (key !== undefined) {
      const given = Buffer.from(secret);
      if (given.length === key.length && timingSafeEqual(given, key)) return publisherGrant;
    }
    return this.#fromToken(secret);
  }

  async #fromToken(token: string): Promise<Grant> {
    if (this.#verifier === undefined || token.length > 8192) {
      throw new KometaError('KOMETA_ERR_UNAUTHORIZED', 'This hub does not accept that credential');
    }
    const payload = await this.#verifier(token);
    if (!isKometaClaim(payload.kometa)) {
      throw new KometaError('KOMETA_ERR_UNAUTHORIZED', 'The token has no valid "kometa" claim');
    }
    const subject = typeof payload.sub === 'string' ? payload.sub.slice(0, 128) : undefined;
    const issuedAt = typeof payload.iat === 'number' ? payload.iat * 1000 : undefined;
    if (subject !== undefined && this.revocations.isRevoked(subject, issuedAt)) {
      throw new KometaError('KOMETA_ERR_TOKEN_REVOKED', 'This token was revoked by the application; get a new one');
    }
    try {
      return grantFromClaim(payload.kometa, {
        // The skew jose allowed at verification stays allowed afterwards: one end for every check.
        expiresAt: typeof payload.exp === 'number' ? (payload.exp + CLOCK_TOLERANCE_S) * 1000 : undefined,
        subject: typeof payload.sub === 'string' ? `token:${payload.sub.slice(0, 128)}` : 'token',
        kind: 'token',
      });
    } catch (error) {
      if (error instanceof KometaError) {
        throw new KometaError('KOMETA_ERR_UNAUTHORIZED', `The token's claim is invalid: ${error.message}`);
      }
      throw error;
    }
  }

  /** Refuse unless the grant covers every channel: 401 for anonymous callers (they should log in), 403 otherwise. */
  async require(req: IncomingMessage, grant: Grant, action: Action, channels: readonly string[]): Promise<void> {
    if (this.#authorize !== undefined) {
      if (!(await this.#authorize(req, { action, channels }))) {
        throw new KometaError('KOMETA_ERR_FORBIDDEN', `Not allowed to ${action} here`);
      }
      return;
    }
    this.requireNow(grant, action, channels);
  }

  /** True when `requireNow` decides alone: no application hook that may answer later. */
  get decidesNow(): boolean {
    return this.#authorize === undefined;
  }

  /** `require` without a promise, for a policy that `decidesNow` (a batch checks each of its items with it). */
  requireNow(grant: Grant, action: Action, channels: readonly string[]): void {
    if (this.#authorize !== undefined) throw new Error('requireNow: an authorize hook answers asynchronously');
    const allowed = grant[action];
    for (const channel of channels) {
      if (!allowed(channel)) {
        if (grant.kind === 'anonymous') {
          throw new KometaError('KOMETA_ERR_UNAUTHORIZED', `A credential is needed to ${action} ${channel}`);
        }
        throw new KometaError('KOMETA_ERR_FORBIDDEN', `This credential may not ${action} ${channel}`, { channel });
      }
    }
    if (grant.expiresAt !== undefined && grant.expiresAt <= wallClock.now()) throw new KometaError('KOMETA_ERR_TOKEN_EXPIRED');
  }

  /**
   * Is the request's Origin allowed? Requests without Origin (not from a
   * browser) are; a browser page on the hub's own origin is. Others only when
   * listed. Refusing (rather than just leaving out CORS headers) matters: a
   * cross-site page could otherwise publish with the user's cookies.
   */
  originAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (origin === undefined || this.#origins === 'any') return true;
    if (isSameOrigin(origin, req)) return true;
    return this.#origins !== 'same-origin' && this.#origins.has(origin);
  }

  /** CORS response headers for an allowed cross-origin request. */
  corsHeaders(req: IncomingMessage, res: ServerResponse): void {
    const origin = req.headers.origin;
    if (origin === undefined || isSameOrigin(origin, req)) return;
    if (this.#origins === 'any' && !this.enabled) {
      res.setHeader('Access-Control-Allow-Origin', '*');
    } else {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Vary', 'Origin');
    }
  }
}

/** The publisher key: publish anywhere, read anywhere, mint tickets. */
const publisherGrant: Grant = { ...allowAll, admin: false, subject: 'publisher-key', kind: 'publisher-key' };
/** With an authorize hook, the hook decides per request; the grant itself allows everything. */
const hookGrant: Grant = { ...allowAll, admin: false, subject: 'hook', kind: 'hook' };

function ticketSecret(options: AccessOptions): Buffer {
  if (options.ticketSecret) return Buffer.from(options.ticketSecret);
  const base = options.publisherKey || options.tokens?.secret;
  // A derived key, never the credential itself: a ticket's signature says nothing about the key.
  if (base) return createHmac('sha256', base).update('kometa subscribe tickets').digest();
  return randomBytes(32);
}

function isSameOrigin(origin: string, req: IncomingMessage): boolean {
  const host = req.headers.host;
  return host !== undefined && (origin === `http://${host}` || origin === `https://${host}`);
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  if (header === undefined) return cookies;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    const name = part.slice(0, eq).trim();
    if (!cookies.has(name)) cookies.set(name, part.slice(eq + 1).trim());
  }
  return cookies;
}
