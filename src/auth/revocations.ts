import type { Revocation } from '../core/revocation.js';

export type { Revocation };

export class RevocationList {
  readonly #byUser = new Map<string, Revocation>();

  constructor(private readonly now: () => number = Date.now) {}

  add(revocation: Revocation): void {
    const known = this.#byUser.get(revocation.user);
    if (known !== undefined && known.at >= revocation.at && known.until >= revocation.until) return;
    this.#byUser.set(
      revocation.user,
      known === undefined
        ? revocation
        : {
            user: revocation.user,
            at: Math.max(known.at, revocation.at),
            until: Math.max(known.until, revocation.until),
          },
    );
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
