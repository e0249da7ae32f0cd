import { CHANNEL_NAME_PATTERN, type CursorEntry, cursorEntryTexts, parseId } from '../protocol/cursor.js';

/*
 * Message ids and cursors as the client reads them (protocol/cursor.ts has
 * the form). The client relies on it for two things only: de-duplicating by
 * (epoch, seq) per channel, and telling which channel a message of a
 * multi-channel SSE stream belongs to (the one entry whose position moved).
 */
export interface ChannelPosition extends CursorEntry {
  /** The entry as text, to send back as (part of) a cursor. */
  readonly id: string;
}

export { parseId };

export function parseCursorEntries(cursor: string): ChannelPosition[] {
  const out: ChannelPosition[] = [];
  for (const entry of cursorEntryTexts(cursor)) {
    const position = parseId(entry);
    if (position !== undefined) out.push(position);
  }
  return out;
}

/** True when `next` is past `current` (or in another epoch, which only a gap or a restart can bring). */
export function isAhead(current: ChannelPosition | undefined, next: ChannelPosition): boolean {
  if (current === undefined) return true;
  if (current.epoch !== next.epoch) return true;
  return next.seq > current.seq;
}

/** The channel-name rule of the hub, checked before anything is sent. */
export const CHANNEL_PATTERN = CHANNEL_NAME_PATTERN;
