import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { AccessPolicy, parseCookies } from '../auth/access.js';
import { wallClock } from '../core/clock.js';
import { KometaError } from '../core/errors.js';

/** The cookie a browser keeps the admin credential in after `/_kometa/?token=…`. */
export const ADMIN_COOKIE = 'kometa_admin';

export type AdminScope = 'dashboard' | 'metrics';

export interface AdminGateOptions {
  /** `Authorization: Bearer <adminToken>` opens the dashboard and /metrics. */
  readonly adminToken?: string | undefined;
  /** A second secret that opens /metrics only (for a Prometheus scraper), never the dashboard. */
  readonly metricsToken?: string | undefined;
  /** The hub's access policy: a token whose claim has `"admin": true` is an admin too. */
  readonly access?: AccessPolicy | undefined;
}

/**
 * Who may see the operator's view. Unlike the hub's routes, this is never
 * open: an open hub lets anyone subscribe and publish, but the dashboard
 * shows every channel, its subscribers' addresses and its messages, so it
 * always wants a credential — the admin token, or a token with the admin
 * claim. With neither configured, nothing gets in.
 */
export class AdminGate {
  readonly #admin: Buffer | undefined;
  readonly #metrics: Buffer | undefined;
  readonly #access: AccessPolicy | undefined;

  constructor(options: AdminGateOptions) {
    this.#admin = options.adminToken ? Buffer.from(options.adminToken) : undefined;
    this.#metrics = options.metricsToken ? Buffer.from(options.metricsToken) : undefined;
    // An open policy grants everyone "admin"; only a policy that checks tokens can vouch for one.
    this.#access = options.access?.enabled === true ? options.access : undefined;
  }

  get configured(): boolean {
    return this.#admin !== undefined || this.#metrics !== undefined || this.#access !== undefined;
  }

  /** The credential a request carries: its bearer token, else the admin cookie. */
  credential(req: IncomingMessage): string | undefined {
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
    return bearer ?? parseCookies(req.headers.cookie).get(ADMIN_COOKIE);
  }

  /** Resolve when `secret` opens `scope`; throw 401 (missing or bad) or 403 (valid, but not an admin). */
  async check(secret: string | undefined, scope: AdminScope): Promise<void> {
    if (secret === undefined || secret === '') {
      throw new KometaError('KOMETA_ERR_UNAUTHORIZED', 'The operator\'s view needs the admin token (Authorization: Bearer, or /_kometa/?token=)');
    }
    const given = Buffer.from(secret);
    if (same(given, this.#admin)) return;
    if (scope === 'metrics' && same(given, this.#metrics)) return;
    if (this.#access !== undefined && secret.split('.').length === 3) {
      // A JWT: the hub's own verifier decides, and its claim must say admin.
      const fake = { headers: { authorization: `Bearer ${secret}` } } as unknown as IncomingMessage;
      const { grant } = await this.#access.authenticate(fake, new URL('http://kometa.invalid/'));
      if (grant.admin && grant.kind === 'token') {
        if (grant.expiresAt !== undefined && grant.expiresAt <= wallClock.now()) throw new KometaError('KOMETA_ERR_TOKEN_EXPIRED');
        return;
      }
      throw new KometaError('KOMETA_ERR_FORBIDDEN', 'This token has no "admin": true in its kometa claim');
    }
    if (scope === 'dashboard' && same(given, this.#metrics)) throw new KometaError('KOMETA_ERR_FORBIDDEN', 'The metrics token opens /metrics only');
    throw new KometaError('KOMETA_ERR_UNAUTHORIZED', 'That is not the admin token');
  }

  /** Set after a successful `?token=` login; scoped to the operator's pages, never sent cross-site. */
  static cookie(secret: string): string {
    return `${ADMIN_COOKIE}=${secret}; Path=/_kometa; HttpOnly; SameSite=Strict; Max-Age=${12 * 3600}`;
  }
}

function same(given: Buffer, expected: Buffer | undefined): boolean {
  return expected !== undefined && given.length === expected.length && timingSafeEqual(given, expected);
}
