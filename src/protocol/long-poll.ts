import { type GapWithId, gapWithId, parseGapNotice } from './gap.js';

/*
 * The long-poll answer: one JSON body,
 *   { "messages": [ { "channel", "id", "event"?, "data" } ], "cursor", "gaps"? }
 * The server encodes each item once per fan-out and shares it between every
 * waiting poll, so items are written with a leading comma (batches then
 * concatenate without re-encoding) and the body is assembled from
 * POLL_BODY_OPEN, the items with the first comma dropped, and pollBodyTail.
 * encodePollBody does the same for a whole body at once. Being JSON, any
 * string survives, lone surrogates included (written as `\udXXX` escapes).
 */

export const POLL_CONTENT_TYPE = 'application/json; charset=utf-8';

export interface PollItem {
  readonly channel: string;
  readonly id: string;
  readonly event?: string;
  readonly data: string;
}

export interface PollBody {
  readonly messages: readonly PollItem[];
  readonly cursor: string;
  readonly gaps?: readonly GapWithId[];
}

export const POLL_BODY_OPEN = '{"messages":[';

/** One item, with its leading comma. */
export function encodePollItem(channel: string, id: string, event: string | undefined, data: string): string {
  const eventPart = event === undefined ? '' : `,"event":${JSON.stringify(event)}`;
  const head = `,{"channel":${JSON.stringify(channel)},"id":${JSON.stringify(id)}`;
  return `${head}${eventPart},"data":${JSON.stringify(data)}}`;
}

/** What follows the items: the cursor, and the gaps when there were any. */
export function pollBodyTail(cursor: string, gaps: readonly GapWithId[]): string {
  const gapPart = gaps.length > 0 ? `,"gaps":${JSON.stringify(gaps)}` : '';
  return `],"cursor":${JSON.stringify(cursor)}${gapPart}}`;
}

export function encodePollBody(body: PollBody): string {
  const items = body.messages.map((m) => encodePollItem(m.channel, m.id, m.event, m.data)).join('');
  return `${POLL_BODY_OPEN}${items.slice(1)}${pollBodyTail(body.cursor, body.gaps ?? [])}`;
}

/** Why a body could not be read. */
export class PollBodyError extends Error {}

export function parsePollBody(text: string): PollBody {
  const value: unknown = JSON.parse(text);
  if (typeof value !== 'object' || value === null) throw new PollBodyError('the body is one JSON object');
  const { messages, cursor, gaps } = value as Record<string, unknown>;
  if (!Array.isArray(messages) || typeof cursor !== 'string') {
    throw new PollBodyError('messages and cursor are required');
  }
  const items = messages.map((item: unknown): PollItem => {
    const { channel, id, event, data } = (item ?? {}) as Record<string, unknown>;
    if (typeof channel !== 'string' || typeof id !== 'string' || typeof data !== 'string') {
      throw new PollBodyError('each message has a string channel, id and data');
    }
    if (event !== undefined && typeof event !== 'string') throw new PollBodyError('an event is a string');
    return event === undefined ? { channel, id, data } : { channel, id, event, data };
  });
  if (gaps === undefined) return { messages: items, cursor };
  if (!Array.isArray(gaps)) throw new PollBodyError('gaps is a list');
  const notices = gaps.map((gap: unknown) => {
    const notice = parseGapNotice(gap);
    const id = (gap as { id?: unknown }).id;
    if (notice === undefined || typeof id !== 'string') throw new PollBodyError('each gap is a gap notice with an id');
    return gapWithId(notice, id);
  });
  return { messages: items, cursor, gaps: notices };
}
