/**
 * Users whose current tokens are refused (`POST /disconnect {"user", "revoke": true}`):
 * a token for the user issued at or before the revocation (its `iat`; a token
 * without `iat` counts as issued before) is refused until the revocation
 * lapses, so that the tokens it was meant for have expired by then. Tokens
 * issued afterwards are accepted.
 */
export interface Revocation {
  readonly user: string;
  /** When it was revoked (ms since 1970): tokens issued up to then are refused. */
  readonly at: number;
  /** When the revocation lapses (ms since 1970). */
  readonly until: number;
}
