/*
 * The gap notice: what a subscriber is told, before anything else, when
 * messages after its cursor are gone. Loss is never silent. Every transport
 * carries the same fields (SSE as the data of a `kometa-gap` event, NDJSON and
 * WebSocket as a `gap` object, long-poll in `gaps`), each with `id`, the
 * channel's position after the gap.
 */

/** Why a subscriber did not get every message after its cursor. */
export type GapReason = 'history-truncated' | 'epoch-changed';

export interface GapNotice {
  readonly channel: string;
  readonly reason: GapReason;
  /** The epoch the channel is in now. */
  readonly epoch: string;
  /** For `history-truncated`: the sequence numbers that were lost (inclusive). */
  readonly missed?: { readonly from: number; readonly to: number };
}

/** A gap notice as it is sent: with the cursor to resume from. */
export interface GapWithId extends GapNotice {
  readonly id: string;
}

/** The notice with its id, in the field order every transport sends. */
export function gapWithId(notice: GapNotice, id: string): GapWithId {
  return { ...notice, id };
}

/** Read a notice back from its JSON (any transport); undefined when it is not one. */
export function parseGapNotice(value: unknown): GapNotice | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { channel, reason, epoch, missed } = value as Record<string, unknown>;
  if (typeof channel !== 'string' || typeof epoch !== 'string') return undefined;
  if (reason !== 'history-truncated' && reason !== 'epoch-changed') return undefined;
  const notice: GapNotice = { channel, reason, epoch };
  if (typeof missed !== 'object' || missed === null) return notice;
  const { from, to } = missed as Record<string, unknown>;
  return typeof from === 'number' && typeof to === 'number' ? { ...notice, missed: { from, to } } : notice;
}
