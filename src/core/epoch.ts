import { randomBytes } from 'node:crypto';

/** A fresh epoch: random, so that two lifetimes of a channel never share one. */
export function newEpoch(): string {
  // 8 characters of base36 from 6 random bytes; A-Za-z0-9 only, as cursors require.
  return BigInt(`0x${randomBytes(6).toString('hex')}`).toString(36).padStart(8, '0').slice(-8);
}
