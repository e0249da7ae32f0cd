import { type GapNotice, parseGapNotice } from './gap.js';
import { PRESENCE_EVENTS } from './presence.js';

/*
 * Server-Sent Events (WHATWG HTML, "Server-sent events"): the encoder the hub
 * writes with and the parser the client reads with.
 *
 * "Lines must be separated by either a U+000D CARRIAGE RETURN U+000A LINE FEED
 *  (CRLF) character pair, a single U+000A LINE FEED (LF) character, or a single
 *  U+000D CARRIAGE RETURN (CR) character" — so data is split on all three and
 * each line gets its own `data:` field, and a reader joins them with LF: data
 * comes back with every CR and CRLF turned into LF (the format cannot carry
 * them). Ids and event names never contain CR, LF or NUL (cursors and event
 * names are validated; the encoder refuses them), so framing cannot be broken
 * by what is published. The stream is UTF-8: a lone surrogate in data becomes
 * U+FFFD when the text is encoded to bytes.
 *
 * The hub's own events are named `kometa-*` (publishers may not use the
 * prefix); KOMETA_EVENTS lists them, and parseKometaEvent reads them back.
 * A new one is added in both, here.
 */

export const SSE_CONTENT_TYPE = 'text/event-stream; charset=utf-8';

/** The hub's named events. */
export const KOMETA_EVENTS = {
  gap: 'kometa-gap',
  error: 'kometa-error',
  shutdown: 'kometa-shutdown',
  // In-band presence (protocol/presence.ts): sent only to subscribers that asked, framed as messages.
  join: PRESENCE_EVENTS.join,
  leave: PRESENCE_EVENTS.leave,
} as const;

/** The fields of one event, written in the order given (an event is one block ending in a blank line). */
export interface SseFields {
  readonly retry?: number;
  readonly id?: string;
  readonly event?: string;
  readonly data?: string;
}

const LINE_BREAK = /\r\n|\r|\n/;
const UNSAFE_IN_FIELD = /[\r\n\u0000]/;

function dataLines(data: string): string {
  if (!data.includes('\n') && !data.includes('\r')) return `data: ${data}\n`;
  let out = '';
  for (const line of data.split(LINE_BREAK)) out += `data: ${line}\n`;
  return out;
}

/** One event block. */
export function encodeSseEvent(fields: SseFields): string {
  let out = '';
  for (const [field, value] of Object.entries(fields) as [keyof SseFields, string | number | undefined][]) {
    if (value === undefined) continue;
    if (field === 'data') {
      out += dataLines(value as string);
      continue;
    }
    const text = String(value);
    if (UNSAFE_IN_FIELD.test(text)) throw new RangeError(`an SSE ${field} cannot contain CR, LF or NUL`);
    out += `${field}: ${text}\n`;
  }
  return `${out}\n`;
}

/** A comment block: readers ignore it (the heartbeat). */
export function encodeSseComment(text = ''): string {
  if (LINE_BREAK.test(text)) throw new RangeError('an SSE comment is one line');
  return `:${text}\n\n`;
}

/**
 * A message: the hot path of fan-out, so it is written directly (same bytes as
 * encodeSseEvent({ id, event, data })). `id` is the subscriber's cursor and
 * `event` a validated name: neither holds a line break.
 */
export function encodeSseMessage(id: string, event: string | undefined, data: string): string {
  const eventLine = event === undefined ? '' : `event: ${event}\n`;
  return `id: ${id}\n${eventLine}${dataLines(data)}\n`;
}

export function encodeSseGap(notice: GapNotice, id: string): string {
  return encodeSseEvent({ event: KOMETA_EVENTS.gap, id, data: JSON.stringify(notice) });
}

/** An error that ends the stream (`{"code","detail"}`), with a reconnect hint when the client should come back. */
export function encodeSseError(code: string, detail: string, retryMs?: number): string {
  return encodeSseEvent({ retry: retryMs, event: KOMETA_EVENTS.error, data: JSON.stringify({ code, detail }) });
}

export function encodeSseShutdown(retryMs: number): string {
  return encodeSseEvent({ retry: retryMs, event: KOMETA_EVENTS.shutdown, data: JSON.stringify({ retryMs }) });
}

/** One dispatched event, as the WHATWG "event stream interpretation" produces it. */
export interface SseEvent {
  /** The event name; `message` when the block had no `event:` field. */
  type: string;
  data: string;
  /** False for an event with no data line at all (an id-only event), which is not a message. */
  hasData: boolean;
  id: string | undefined;
}

/** Incremental parser for text/event-stream: feed decoded text, get whole events. */
export class SseParser {
  #buffer = '';
  #data: string[] = [];
  #type = '';
  #id: string | undefined;
  #pendingCr = false;

  feed(text: string, dispatch: (event: SseEvent) => void): void {
    let input = text;
    // "a single U+000D CARRIAGE RETURN" or CRLF end a line: a CR at the end of
    // one chunk and an LF at the start of the next are one line break.
    if (this.#pendingCr && input.startsWith('\n')) input = input.slice(1);
    this.#pendingCr = false;
    this.#buffer += input;
    let start = 0;
    for (;;) {
      const match = LINE_BREAK.exec(this.#buffer.slice(start));
      if (match === null) break;
      const end = start + match.index;
      if (match[0] === '\r' && end + 1 === this.#buffer.length) {
        this.#pendingCr = true;
      }
      this.#line(this.#buffer.slice(start, end), dispatch);
      start = end + match[0].length;
    }
    this.#buffer = this.#buffer.slice(start);
  }

  #line(line: string, dispatch: (event: SseEvent) => void): void {
    // "If the line is empty (a blank line): Dispatch the event".
    if (line === '') {
      if (this.#data.length > 0 || this.#id !== undefined) {
        const hasData = this.#data.length > 0;
        dispatch({ type: this.#type || 'message', data: this.#data.join('\n'), hasData, id: this.#id });
      }
      this.#data = [];
      this.#type = '';
      this.#id = undefined;
      return;
    }
    // "If the line starts with a U+003A COLON character (:): Ignore the line."
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.#data.push(value);
    else if (field === 'event') this.#type = value;
    else if (field === 'id' && !value.includes('\u0000')) this.#id = value;
  }
}

/** Parse a whole event-stream text (a convenience over SseParser; a trailing incomplete block is dropped). */
export function parseSse(text: string): SseEvent[] {
  const events: SseEvent[] = [];
  new SseParser().feed(text, (event) => events.push(event));
  return events;
}

/** What one of the hub's own events says. */
export type KometaSseEvent =
  | { readonly kind: 'gap'; readonly gap: GapNotice; readonly id: string | undefined }
  | { readonly kind: 'error'; readonly code: string | undefined; readonly detail: string | undefined }
  | { readonly kind: 'shutdown'; readonly retryMs: number | undefined };

/** Read a `kometa-*` event; undefined for a message (or an id-only event). Malformed JSON data throws. */
export function parseKometaEvent(event: SseEvent): KometaSseEvent | undefined {
  switch (event.type) {
    case KOMETA_EVENTS.shutdown: {
      const retryMs = Number((JSON.parse(event.data || '{}') as { retryMs?: number }).retryMs);
      return { kind: 'shutdown', retryMs: retryMs > 0 ? retryMs : undefined };
    }
    case KOMETA_EVENTS.error: {
      const error = JSON.parse(event.data || '{}') as { code?: string; detail?: string };
      return { kind: 'error', code: error.code, detail: error.detail };
    }
    case KOMETA_EVENTS.gap: {
      const gap = parseGapNotice(JSON.parse(event.data));
      if (gap === undefined) throw new SyntaxError('a kometa-gap event holds a gap notice');
      return { kind: 'gap', gap, id: event.id };
    }
    default:
      return undefined;
  }
}
