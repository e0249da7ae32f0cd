import { isValidChannelName } from './channel-name.js';
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

const EPOCH = /^[A-Za-z0-9]{1,32}$/;
const SEQ = /^(0|[1-9][0-9]{0,15})$/;
export const MAX_CURSOR_LENGTH = 16_384;

export function formatId(channel: string, epoch: string, seq: number): string {
  return `${channel}~${epoch}~${seq}`;
}

export function formatCursor(cursor: Cursor): string {
  let text = '';
  for (const [channel, position] of cursor) {
    if (text !== '') text += ',';
    text += formatId(channel, position.epoch, position.seq);
  }
  return text;
}

/** Parse a cursor from a client. Anything that is not exactly the documented form is a 400. */
export function parseCursor(text: string, maxEntries = 256): Map<string, Position> {
  const cursor = new Map<string, Position>();
  if (text === '') return cursor;
  if (text.length > MAX_CURSOR_LENGTH) throw malformed('the cursor is too long');
  const entries = text.split(',');
  if (entries.length > maxEntries) throw malformed(`the cursor has more than ${maxEntries} entries`);
  for (const entry of entries) {
    const parts = entry.split('~');
    if (parts.length !== 3) throw malformed('each entry must be channel~epoch~seq');
    const [channel, epoch, seqText] = parts as [string, string, string];
    if (!isValidChannelName(channel)) throw malformed('an entry names an invalid channel');
    if (!EPOCH.test(epoch)) throw malformed('an entry has an invalid epoch');
    if (!SEQ.test(seqText)) throw malformed('an entry has an invalid sequence number');
    const seq = Number(seqText);
    if (!Number.isSafeInteger(seq)) throw malformed('an entry has an invalid sequence number');
    if (cursor.has(channel)) throw malformed('a channel appears twice');
    cursor.set(channel, { epoch, seq });
  }
  return cursor;
}

function malformed(why: string): KometaError {
  return new KometaError('KOMETA_ERR_CURSOR', `Malformed cursor: ${why}`);
}
