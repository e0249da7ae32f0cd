import { type ChannelMatcher, compilePatterns } from './patterns.js';

/** What one credential allows. Built once per request (or per WebSocket connection), checked per channel. */
export interface Grant {
  readonly subscribe: ChannelMatcher;
  readonly publish: ChannelMatcher;
  /** May mint subscribe tickets (POST /tickets). */
  readonly tickets: boolean;
  /** May see the operator's dashboard and metrics. */
  readonly admin: boolean;
  /** When the credential stops being valid (ms since 1970); open subscriptions end then. */
  readonly expiresAt: number | undefined;
  /** Who it is, for rate limits and logs: the token's `sub`, or "publisher-key", or "anonymous". */
  readonly subject: string;
  /** How the caller authenticated. */
  readonly kind: 'anonymous' | 'token' | 'publisher-key' | 'ticket' | 'hook';
  /** What the credential says about its holder for presence (`kometa.info`); signed, so others may trust it. */
  readonly info?: unknown;
}

export const allowAll: Grant = {
  subscribe: () => true,
  publish: () => true,
  tickets: true,
  admin: true,
  expiresAt: undefined,
  subject: 'anyone',
  kind: 'anonymous',
};

/**
 * The `kometa` claim of a token:
 *   { "kometa": { "subscribe": ["room.*"], "publish": ["room.42"], "tickets": true, "admin": false } }
 * Anything missing allows nothing. Malformed claims are refused by the caller.
 */
export interface KometaClaim {
  subscribe?: string[];
  publish?: string[];
  tickets?: boolean;
  admin?: boolean;
  /** Shown to the channel's other members in presence (any JSON, at most MAX_INFO_BYTES). */
  info?: unknown;
}

/** Largest `kometa.info`, as JSON: it is stored and listed for every member of every channel. */
export const MAX_INFO_BYTES = 1024;

export function isKometaClaim(value: unknown): value is KometaClaim {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const claim = value as Record<string, unknown>;
  const list = (v: unknown) =>
    v === undefined || (Array.isArray(v) && v.length <= 256 && v.every((p) => typeof p === 'string'));
  const flag = (v: unknown) => v === undefined || typeof v === 'boolean';
  const info = (v: unknown) => v === undefined || (JSON.stringify(v) ?? '').length <= MAX_INFO_BYTES;
  return list(claim.subscribe) && list(claim.publish) && flag(claim.tickets) && flag(claim.admin) && info(claim.info);
}

export function grantFromClaim(claim: KometaClaim, meta: Pick<Grant, 'expiresAt' | 'subject' | 'kind'>): Grant {
  return {
    subscribe: compilePatterns(claim.subscribe ?? []),
    publish: compilePatterns(claim.publish ?? []),
    tickets: claim.tickets === true,
    admin: claim.admin === true,
    info: claim.info ?? null,
    ...meta,
  };
}
