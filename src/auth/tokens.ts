import { createPublicKey } from 'node:crypto';
import { type JWTPayload, type JWTVerifyGetKey, createLocalJWKSet, errors as joseErrors, importSPKI, importX509, jwtVerify } from 'jose';
import { wallClock } from '../core/clock.js';
import { KometaError } from '../core/errors.js';

export interface TokenKeys {
  /** HS256 shared secret. */
  readonly secret?: string | undefined;
  /** RS256/ES256 public key: PEM (SPKI or certificate) or a JWKS document (JSON text). */
  readonly publicKey?: string | undefined;
}

export type TokenVerifier = (token: string) => Promise<JWTPayload>;

/**
 * Seconds of clock difference tolerated between the token issuer and this
 * host: for `nbf` and `exp` alike, on every way in (see AccessPolicy, which
 * adds it to the grant's end, so that the handshake, each request and each
 * open subscription agree on when a token stops working).
 */
export const CLOCK_TOLERANCE_S = 5;

/**
 * Verify JWTs with jose against the configured keys. The accepted algorithms
 * are fixed by the key that is configured, never taken from the token:
 * `alg: none`, HS256 signed with a public key, and the like are refused.
 */
export async function createTokenVerifier(keys: TokenKeys): Promise<TokenVerifier | undefined> {
  const secret = keys.secret === undefined || keys.secret === '' ? undefined : new TextEncoder().encode(keys.secret);
  let publicKey: { key: JWTVerifyGetKey; algorithms: string[] } | undefined;
  const text = keys.publicKey?.trim();
  if (text !== undefined && text !== '') {
    if (text.startsWith('{')) {
      let jwks: unknown;
      try {
        jwks = JSON.parse(text);
      } catch {
        throw new Error('the JWT public key looks like JSON but does not parse as a JWKS document');
      }
      publicKey = { key: createLocalJWKSet(jwks as Parameters<typeof createLocalJWKSet>[0]), algorithms: ['RS256', 'ES256'] };
    } else {
      const isCertificate = text.includes('BEGIN CERTIFICATE');
      const nodeKey = createPublicKey(text);
      const algorithm = nodeKey.asymmetricKeyType === 'rsa' ? 'RS256' : nodeKey.asymmetricKeyType === 'ec' ? 'ES256' : undefined;
      if (algorithm === undefined) throw new Error(`unsupported public key type ${nodeKey.asymmetricKeyType}; use RSA (RS256) or EC P-256 (ES256)`);
      const imported = isCertificate ? await importX509(text, algorithm) : await importSPKI(text, algorithm);
      publicKey = { key: async () => imported, algorithms: [algorithm] };
    }
  }
  if (secret === undefined && publicKey === undefined) return undefined;

  return async (token: string) => {
    try {
      const header = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8')) as { alg?: unknown };
      if (header.alg === 'HS256' && secret !== undefined) {
        return (await jwtVerify(token, secret, { algorithms: ['HS256'], clockTolerance: CLOCK_TOLERANCE_S, currentDate: new Date(wallClock.now()) })).payload;
      }
      if (publicKey !== undefined) {
        return (await jwtVerify(token, publicKey.key, { algorithms: publicKey.algorithms, clockTolerance: CLOCK_TOLERANCE_S, currentDate: new Date(wallClock.now()) })).payload;
      }
      throw new KometaError('KOMETA_ERR_UNAUTHORIZED', 'The token is signed with an algorithm this hub does not accept');
    } catch (error) {
      if (error instanceof KometaError) throw error;
      if (error instanceof joseErrors.JWTExpired) throw new KometaError('KOMETA_ERR_TOKEN_EXPIRED', 'The token has expired');
      throw new KometaError('KOMETA_ERR_UNAUTHORIZED', 'The token is not valid for this hub');
    }
  };
}
