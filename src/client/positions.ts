/*
 * Message ids and cursors as the client reads them. The hub documents the
 * form (`channel~epoch~seq`, entries joined by `,`) and the client relies on
 * it for two things only: de-duplicating by (epoch, seq) per channel, and
 * telling which channel a message of a multi-channel SSE stream belongs to
 * (the one entry whose position moved).
 */
export interface ChannelPosition {
  readonly channel: string;
  readonly epoch: string;
  readonly seq: number;
  /** The entry as text, to send back as (part of) a cursor. */
  readonly id: string;
}

export function parseId(id: string): ChannelPosition | undefined {
  const parts = id.split('~');
  if (parts.length !== 3) return undefined;
  const [channel, epoch, seqText] = parts as [string, string, string];
  const seq = Number(seqText);
  if (channel === '' || epoch === '' || !Number.isSafeInteger(seq) || seq < 0) return undefined;
  return { channel, epoch, seq, id };
}

export function parseCursorEntries(cursor: string): ChannelPosition[] {
  const out: ChannelPosition[] = [];
  if (cursor === '') return out;
  for (const entry of cursor.split(',')) {
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
export const CHANNEL_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,127}$/;
