/** Injectable time source, so history age and timeouts can be tested without sleeping. */
export interface Clock {
  now(): number;
}

/**
 * Two clocks, for two kinds of question. The wall clock (ms since 1970) is
 * for facts shared with the world: a token's `exp`/`nbf`, a ticket's end, a
 * message's `time`. It steps (NTP, a VM resume, an operator). The monotonic
 * clock never steps; every duration, timeout, rate and sweep is measured on
 * it, so a step of the wall clock cannot lock anyone out or stall anything.
 */
export const wallClock: Clock = { now: () => Date.now() };
export const monotonicClock: Clock = { now: () => performance.now() };

export const systemClock: Clock = wallClock;
