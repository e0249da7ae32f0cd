import { CursorSyntaxError, parseCursorText } from '../protocol/cursor.js';
import { KometaError } from './errors.js';

/**
 * A position in one channel: the channel's epoch (changes whenever its history
 * is lost) and the sequence number of the last message seen (0 = none yet).
 */
export interface Position {
  readonly epoch: string;
  readonly seq: number;
}

/**
 * A cursor is the position a subscriber has reached in each channel it follows.
 *
 * Wire form: entries `channel~epoch~seq` joined by `,`. A message's id is the
 * one-entry cursor for its channel, so "resume with the last id you saw" works
 * for every transport, and a client that follows several channels one by one
 * (as the WebSocket client does) can join their ids into one cursor.
 * Clients should treat the string as opaque; the form is documented only so
 * that it can be debugged on the wire.
 */
export type Cursor = ReadonlyMap<string, Position>;

export { MAX_CURSOR_LENGTH, formatCursor, formatId } from '../protocol/cursor.js';

/** Parse a cursor from a client. Anything that is not exactly the documented form is a 400. */
export function parseCursor(text: string, maxEntries = 256): Map<string, Position> {
  try {
    return parseCursorText(text, maxEntries);
  } catch (error) {
    if (error instanceof CursorSyntaxError) throw malformed(error.message);
    throw error;
  }
}

function malformed(why: string): KometaError {
  return new KometaError('KOMETA_ERR_CURSOR', `Malformed cursor: ${why}`);
}
