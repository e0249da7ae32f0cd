import { type GapNotice, type GapWithId, gapWithId, parseGapNotice } from './gap.js';

/*
 * The chunked stream: newline-delimited JSON, one object per line, each with
 * a `type`. `message` and `gap` lines carry `id`, the cursor to resume from.
 * JSON escapes CR, LF and every control character, so any data fits on one
 * line; JSON.stringify writes a lone surrogate as a `\udXXX` escape, so even
 * that survives the trip through UTF-8 bytes. A new line type is added to
 * StreamLine and to parseStreamLine, here.
 */

export const NDJSON_CONTENT_TYPE = 'application/x-ndjson; charset=utf-8';

export interface StreamMessageLine {
  readonly type: 'message';
  readonly channel: string;
  readonly id: string;
  readonly event?: string;
  readonly data: string;
}

export type StreamLine =
  | StreamMessageLine
  | ({ readonly type: 'gap' } & GapWithId)
  | { readonly type: 'live'; readonly cursor: string }
  | { readonly type: 'heartbeat' }
  | { readonly type: 'shutdown'; readonly retryMs: number }
  | { readonly type: 'error'; readonly code: string; readonly detail: string };

/**
 * A message line: the hot path of fan-out, written directly (same bytes as
 * encodeStreamLine of a StreamMessageLine, keys in the same order).
 */
export function encodeStreamMessage(channel: string, id: string, event: string | undefined, data: string): string {
  const eventPart = event === undefined ? '' : `,"event":${JSON.stringify(event)}`;
  const head = `{"type":"message","channel":${JSON.stringify(channel)},"id":${JSON.stringify(id)}`;
  return `${head}${eventPart},"data":${JSON.stringify(data)}}\n`;
}

export function encodeStreamLine(line: StreamLine): string {
  if (line.type === 'message') return encodeStreamMessage(line.channel, line.id, line.event, line.data);
  return `${JSON.stringify(line)}\n`;
}

export function encodeStreamGap(notice: GapNotice, id: string): string {
  return encodeStreamLine({ type: 'gap', ...gapWithId(notice, id) });
}

/** Why a line could not be read. */
export class StreamLineError extends Error {}

/** Read one line (with or without its `\n`). */
export function parseStreamLine(text: string): StreamLine {
  const value: unknown = JSON.parse(text);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new StreamLineError('a line is one JSON object');
  }
  const line = value as Record<string, unknown>;
  const str = (name: string): string => {
    if (typeof line[name] !== 'string') throw new StreamLineError(`a ${String(line.type)} line needs a string ${name}`);
    return line[name];
  };
  switch (line.type) {
    case 'message': {
      const event = line.event === undefined ? {} : { event: str('event') };
      return { type: 'message', channel: str('channel'), id: str('id'), ...event, data: str('data') };
    }
    case 'gap': {
      const gap = parseGapNotice(line);
      if (gap === undefined) throw new StreamLineError('a gap line holds a gap notice');
      return { type: 'gap', ...gapWithId(gap, str('id')) };
    }
    case 'live':
      return { type: 'live', cursor: str('cursor') };
    case 'heartbeat':
      return { type: 'heartbeat' };
    case 'shutdown':
      if (typeof line.retryMs !== 'number') throw new StreamLineError('a shutdown line needs retryMs');
      return { type: 'shutdown', retryMs: line.retryMs };
    case 'error':
      return { type: 'error', code: str('code'), detail: str('detail') };
    default:
      throw new StreamLineError(`unknown line type ${JSON.stringify(line.type)}`);
  }
}
