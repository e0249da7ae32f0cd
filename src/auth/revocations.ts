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

export class RevocationList {
  readonly #byUser = new Map<string, Revocation>();

  constructor(private readonly now: () => number = Date.now) {}

  add(revocation: Revocation): void {
    const known = this.#byUser.get(revocation.user);
    if (known !== undefined && known.at >= revocation.at && known.until >= revocation.until) return;
    this.#byUser.set(revocation.user, known === undefined ? revocation : { user: revocation.user, at: Math.max(known.at, revocation.at), until: Math.max(known.until, revocation.until) });
  }

  /** Is a token of `user` issued at `issuedAt` (ms; undefined when the token does not say) refused? */
  isRevoked(user: string, issuedAt: number | undefined): boolean {
    if (this.#byUser.size === 0) return false;
    const revocation = this.#byUser.get(user);
    if (revocation === undefined) return false;
    if (revocation.until <= this.now()) {
      this.#byUser.delete(user);
      return false;
    }
    return issuedAt === undefined || issuedAt <= revocation.at;
  }

  /** The revocations still in force. */
  list(): Revocation[] {
    const now = this.now();
    return [...this.#byUser.values()].filter((revocation) => revocation.until > now);
  }

  get size(): number {
    return this.#byUser.size;
  }
}
