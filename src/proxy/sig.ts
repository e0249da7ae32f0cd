import { createHmac } from 'node:crypto';

/*
 * GRIP: "`Grip-Sig`: A JSON Web Token signed with a key known between the
 * proxy and the backend server. … The JWT claim SHOULD contain an `iss`
 * field … The JWT claim MUST contain an `exp` field."
 *
 * kometa signs with HS256. GRIP libraries (serve-grip, django-grip) take a
 * request that carries the header as proxied when they have no verify key,
 * and check the signature when they have one.
 */

const LIFETIME_S = 3600;
/** A cached token is replaced once it has less than this left, so the origin never sees one about to expire. */
const RENEW_BEFORE_S = 600;

function base64url(value: string | Buffer): string {
  return Buffer.from(value).toString('base64url');
}

export function signGripSig(key: string | Buffer, iss: string, nowSeconds: number): string {
  const header = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const claims = base64url(JSON.stringify({ iss, exp: nowSeconds + LIFETIME_S }));
  const signature = createHmac('sha256', key).update(`${header}.${claims}`).digest('base64url');
  return `${header}.${claims}.${signature}`;
}

/** One token shared by all requests until it nears expiry: no HMAC per request. */
export class GripSigner {
  #token = '';
  #expires = 0;

  constructor(
    private readonly key: string | Buffer,
    private readonly iss: string,
  ) {}

  token(nowMs: number = Date.now()): string {
    const now = Math.floor(nowMs / 1000);
    if (now + RENEW_BEFORE_S >= this.#expires) {
      this.#token = signGripSig(this.key, this.iss, now);
      this.#expires = now + LIFETIME_S;
    }
    return this.#token;
  }
}
