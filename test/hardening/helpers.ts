import { SignJWT } from 'jose';
import { AccessPolicy } from '../../src/auth/access.js';

export const SECRET = 'hardening-secret-long-enough-for-hs256';
export const PUBLISHER_KEY = 'hardening-publisher-key';

/** A policy with tokens and a publisher key, as `kometa serve --jwt-secret … --publisher-key …` builds it. */
export function tokenPolicy(): Promise<AccessPolicy> {
  return AccessPolicy.create({ tokens: { secret: SECRET }, publisherKey: PUBLISHER_KEY });
}

/** An HS256 token that may subscribe to `patterns`, expiring at `expSeconds` (seconds since 1970). */
export function token(patterns: string[], expSeconds: number): Promise<string> {
  return new SignJWT({ kometa: { subscribe: patterns, publish: patterns } })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('hardening')
    .setExpirationTime(expSeconds)
    .sign(new TextEncoder().encode(SECRET));
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
