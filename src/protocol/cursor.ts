/*
 * The cursor and message ids, the one place they are written or read.
 *
 * A message id is `channel~epoch~seq`; a cursor is such entries joined by
 * `,`. Channel names cannot hold `~` or `,` (CHANNEL_NAME_PATTERN) and epochs
 * are alphanumeric, so the separators never need escaping. The server reads
 * cursors strictly (parseCursorText: anything else is refused); the client
 * reads ids leniently (parseId: it only needs channel, epoch and seq back).
 */

/** The channel-name rule of the hub: safe as a path segment and inside a cursor. */
export const CHANNEL_NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,127}$/;
export const MAX_CHANNEL_NAME_LENGTH = 128;
export const MAX_CURSOR_LENGTH = 16_384;

const ENTRY_SEPARATOR = ',';
const FIELD_SEPARATOR = '~';
const EPOCH = /^[A-Za-z0-9]{1,32}$/;
const SEQ = /^(0|[1-9][0-9]{0,15})$/;

/** One cursor entry: a channel's epoch and the sequence number of the last message seen (0 = none yet). */
export interface CursorEntry {
  readonly channel: string;
  readonly epoch: string;
  readonly seq: number;
}

export function isValidChannelName(name: string): boolean {
  return CHANNEL_NAME_PATTERN.test(name);
}

export function formatId(channel: string, epoch: string, seq: number): string {
  return `${channel}${FIELD_SEPARATOR}${epoch}${FIELD_SEPARATOR}${seq}`;
}

/** A cursor from positions by channel (the form core keeps). */
export function formatCursor(positions: ReadonlyMap<string, { readonly epoch: string; readonly seq: number }>): string {
  let text = '';
  for (const [channel, position] of positions) {
    if (text !== '') text += ENTRY_SEPARATOR;
    text += formatId(channel, position.epoch, position.seq);
  }
  return text;
}

/** Join ids (one-entry cursors) or whole cursors into one cursor. */
export function joinCursor(ids: Iterable<string>): string {
  return [...ids].filter((id) => id !== '').join(ENTRY_SEPARATOR);
}

/** The channel an id or cursor entry names, without checking the rest of it. */
export function idChannel(id: string): string {
  const end = id.indexOf(FIELD_SEPARATOR);
  return end === -1 ? id : id.slice(0, end);
}

/** The sequence-number part of an id, as text (the whole id when it has no separator). */
export function idSeqText(id: string): string {
  return id.slice(id.lastIndexOf(FIELD_SEPARATOR) + 1);
}

/** The raw entries of a cursor, unparsed. */
export function cursorEntryTexts(cursor: string): string[] {
  return cursor === '' ? [] : cursor.split(ENTRY_SEPARATOR);
}

/** Lenient: an id the client can use, or undefined. Channel names and epochs are not checked against the rules. */
export function parseId(id: string): (CursorEntry & { readonly id: string }) | undefined {
  const parts = id.split(FIELD_SEPARATOR);
  if (parts.length !== 3) return undefined;
  const [channel, epoch, seqText] = parts as [string, string, string];
  const seq = Number(seqText);
  if (channel === '' || epoch === '' || !Number.isSafeInteger(seq) || seq < 0) return undefined;
  return { channel, epoch, seq, id };
}

/** Why a cursor was refused; the server turns it into a 400 (or a WebSocket error frame). */
export class CursorSyntaxError extends Error {}

/** Strict: exactly the documented form, each channel once, or a CursorSyntaxError saying why not. */
export function parseCursorText(text: string, maxEntries = 256): Map<string, { epoch: string; seq: number }> {
  const cursor = new Map<string, { epoch: string; seq: number }>();
  if (text === '') return cursor;
  if (text.length > MAX_CURSOR_LENGTH) throw new CursorSyntaxError('the cursor is too long');
  const entries = text.split(ENTRY_SEPARATOR);
  if (entries.length > maxEntries) throw new CursorSyntaxError(`the cursor has more than ${maxEntries} entries`);
  for (const entry of entries) {
    const parts = entry.split(FIELD_SEPARATOR);
    if (parts.length !== 3) throw new CursorSyntaxError('each entry must be channel~epoch~seq');
    const [channel, epoch, seqText] = parts as [string, string, string];
    if (!isValidChannelName(channel)) throw new CursorSyntaxError('an entry names an invalid channel');
    if (!EPOCH.test(epoch)) throw new CursorSyntaxError('an entry has an invalid epoch');
    if (!SEQ.test(seqText)) throw new CursorSyntaxError('an entry has an invalid sequence number');
    const seq = Number(seqText);
    if (!Number.isSafeInteger(seq)) throw new CursorSyntaxError('an entry has an invalid sequence number');
    if (cursor.has(channel)) throw new CursorSyntaxError('a channel appears twice');
    cursor.set(channel, { epoch, seq });
  }
  return cursor;
}
