import { validateHeaderName, validateHeaderValue } from 'node:http';
import { assertChannelName } from '../core/channel-name.js';
import { KometaError } from '../core/errors.js';
import type { Message } from '../core/message.js';

/*
 * How a Pushpin publish item becomes a kometa message, and back.
 *
 * A Pushpin item carries one payload per transport ("formats":
 * `http-response`, `http-stream`, `ws-message`); a kometa message carries one
 * UTF-8 `data` string. So an item is stored as a message with the reserved
 * event name `grip` and, as data, the item's JSON without its channel:
 *
 *   event: grip
 *   data:  {"id":"7","prev-id":"6","formats":{"http-stream":{"content":"hi\n"}}}
 *
 * Both kinds live in the same channel and history: `POST /pub/<channel>`
 * stores plain messages, `POST /publish/` stores `grip` messages, and the
 * cursor orders them together. Held proxy requests pick the format of their
 * hold mode from a `grip` message (items without it pass them by, as in
 * Pushpin) and use the data of a plain message as the body or the chunk.
 * Hub subscribers (`/sub`, `/ws`) receive `grip` messages as they are stored,
 * event name and JSON, and can pick the format they want.
 */

export const GRIP_EVENT = 'grip';

export interface HttpResponseFormat {
  code?: number;
  reason?: string;
  /** An object, or a list of [name, value] pairs (both forms are Pushpin's). */
  headers?: Record<string, string> | [string, string][];
  body?: string;
  'body-bin'?: string;
  action?: 'send';
}

export interface HttpStreamFormat {
  content?: string;
  'content-bin'?: string;
  /** `close` ends the stream; `hint` asks the proxy to fetch the hold's next link (Pushpin's reliable streaming). */
  action?: 'send' | 'close' | 'hint';
}

export interface StoredItem {
  id?: string;
  'prev-id'?: string;
  formats: {
    'http-response'?: HttpResponseFormat;
    'http-stream'?: HttpStreamFormat;
    /** Stored for hub subscribers; the proxy does not hold WebSockets. */
    'ws-message'?: { content?: string; 'content-bin'?: string };
  };
}

export interface PublishItem {
  readonly channel: string;
  readonly item: StoredItem;
}

const MAX_ID_LENGTH = 256;
export const MAX_ITEMS_PER_PUBLISH = 256;

function bad(index: number, detail: string): KometaError {
  return new KometaError('KOMETA_ERR_PUBLISH_ITEM', `items[${index}]: ${detail}`, { item: index });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function optionalString(
  source: Record<string, unknown>,
  key: string,
  index: number,
  where: string,
): string | undefined {
  const value = source[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw bad(index, `${where}.${key} must be a string`);
  if ((key.endsWith('-bin')) && !BASE64.test(value)) throw bad(index, `${where}.${key} must be base64`);
  return value;
}

function checkHeader(name: string, value: unknown, index: number): [string, string] {
  if (typeof value !== 'string') {
    throw bad(index, `http-response header ${JSON.stringify(name.slice(0, 64))} must have a string value`);
  }
  try {
    validateHeaderName(name);
    validateHeaderValue(name, value);
  } catch {
    throw bad(index, `http-response has an invalid header ${JSON.stringify(name.slice(0, 64))}`);
  }
  return [name, value];
}

function validateResponse(raw: unknown, index: number): HttpResponseFormat {
  if (!isObject(raw)) throw bad(index, 'http-response must be an object');
  const out: HttpResponseFormat = {};
  if (raw.code !== undefined && raw.code !== null) {
    if (typeof raw.code !== 'number' || !Number.isInteger(raw.code) || raw.code < 100 || raw.code > 999) {
      throw bad(index, 'http-response.code must be a status code');
    }
    out.code = raw.code;
  }
  const reason = optionalString(raw, 'reason', index, 'http-response');
  if (reason !== undefined) {
    if (/[\r\n]/.test(reason)) throw bad(index, 'http-response.reason cannot contain CR or LF');
    out.reason = reason;
  }
  if (raw.headers !== undefined && raw.headers !== null) {
    if (Array.isArray(raw.headers)) {
      out.headers = raw.headers.map((pair: unknown) => {
        if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string') {
          throw bad(index, 'http-response.headers pairs must be [name, value]');
        }
        return checkHeader(pair[0], pair[1], index);
      });
    } else if (isObject(raw.headers)) {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(raw.headers)) headers[name] = checkHeader(name, value, index)[1];
      out.headers = headers;
    } else {
      throw bad(index, 'http-response.headers must be an object');
    }
  }
  const body = optionalString(raw, 'body', index, 'http-response');
  const bodyBin = optionalString(raw, 'body-bin', index, 'http-response');
  if (body !== undefined) out.body = body;
  if (bodyBin !== undefined) out['body-bin'] = bodyBin;
  if (raw.action !== undefined && raw.action !== 'send') {
    throw bad(index, "http-response.action: only 'send' is supported");
  }
  return out;
}

function validateStream(raw: unknown, index: number): HttpStreamFormat {
  if (!isObject(raw)) throw bad(index, 'http-stream must be an object');
  const out: HttpStreamFormat = {};
  const content = optionalString(raw, 'content', index, 'http-stream');
  const contentBin = optionalString(raw, 'content-bin', index, 'http-stream');
  if (content !== undefined) out.content = content;
  if (contentBin !== undefined) out['content-bin'] = contentBin;
  const action = raw.action;
  if (action !== undefined && action !== null) {
    if (action !== 'send' && action !== 'close' && action !== 'hint') {
      throw bad(index, "http-stream.action must be 'send', 'close' or 'hint'");
    }
    out.action = action;
  }
  if (out.action !== 'close' && out.action !== 'hint' && content === undefined && contentBin === undefined) {
    throw bad(index, 'http-stream needs content or content-bin');
  }
  return out;
}

/** Check one item of a Pushpin `{ "items": [...] }` body; channel names follow kometa's rule. */
export function validateItem(raw: unknown, index: number): PublishItem {
  if (!isObject(raw)) throw bad(index, 'each item must be an object');
  if (typeof raw.channel !== 'string') throw bad(index, 'channel is required');
  try {
    assertChannelName(raw.channel);
  } catch (error) {
    throw error instanceof KometaError ? bad(index, error.message) : error;
  }
  const item: StoredItem = { formats: {} };
  for (const key of ['id', 'prev-id'] as const) {
    const value = optionalString(raw, key, index, 'item');
    if (value === undefined) continue;
    if (value === '' || value.length > MAX_ID_LENGTH) throw bad(index, `${key} must be 1-${MAX_ID_LENGTH} characters`);
    item[key] = value;
  }
  // Pushpin nests formats under "formats"; the older EPCP form puts them on the item itself.
  const formats = isObject(raw.formats) ? raw.formats : raw;
  if (formats['http-response'] !== undefined) {
    item.formats['http-response'] = validateResponse(formats['http-response'], index);
  }
  if (formats['http-stream'] !== undefined) item.formats['http-stream'] = validateStream(formats['http-stream'], index);
  const ws = formats['ws-message'];
  if (ws !== undefined) {
    if (!isObject(ws)) throw bad(index, 'ws-message must be an object');
    const content = optionalString(ws, 'content', index, 'ws-message');
    const contentBin = optionalString(ws, 'content-bin', index, 'ws-message');
    item.formats['ws-message'] =
      content !== undefined ? { content } : contentBin !== undefined ? { 'content-bin': contentBin } : {};
  }
  if (Object.keys(item.formats).length === 0) throw bad(index, 'no http-response, http-stream or ws-message format');
  return { channel: raw.channel, item };
}

/** The body of `POST /publish/`. */
export function validatePublishBody(body: unknown): PublishItem[] {
  if (!isObject(body) || !Array.isArray(body.items)) {
    throw new KometaError('KOMETA_ERR_PUBLISH_ITEM', 'The body must be {"items": [...]}');
  }
  if (body.items.length === 0) throw new KometaError('KOMETA_ERR_PUBLISH_ITEM', 'items is empty');
  if (body.items.length > MAX_ITEMS_PER_PUBLISH) {
    throw new KometaError(
      'KOMETA_ERR_PUBLISH_ITEM',
      `At most ${MAX_ITEMS_PER_PUBLISH} items per request`,
      { limit: MAX_ITEMS_PER_PUBLISH },
    );
  }
  return body.items.map((raw: unknown, index: number) => validateItem(raw, index));
}

/** What a held request needs from one message, decoded once per message and shared by every held request. */
export interface ProxyItem {
  /** `grip`: stored from a Pushpin item; `plain`: any other message, its data used as body and chunk. */
  readonly kind: 'grip' | 'plain';
  /** The item's GRIP id, or the kometa id of a plain message. */
  readonly id: string | undefined;
  readonly prevId: string | undefined;
  readonly response:
    | {
        readonly code: number;
        readonly reason: string | undefined;
        readonly headers: readonly [string, string][];
        readonly body: Buffer;
      }
    | undefined;
  readonly stream: { readonly content: Buffer; readonly action: 'send' | 'close' | 'hint' } | undefined;
}

const cache = new WeakMap<Message, ProxyItem>();
const EMPTY = Buffer.alloc(0);

/**
 * The item a message carries. Messages are immutable and shared, so the
 * decoding is cached per message object: one JSON parse per message, not per
 * held request.
 */
export function itemOf(message: Message): ProxyItem {
  let item = cache.get(message);
  if (item === undefined) {
    item = (message.event === GRIP_EVENT ? decodeGrip(message) : undefined) ?? plainItem(message);
    cache.set(message, item);
  }
  return item;
}

function plainItem(message: Message): ProxyItem {
  const bytes = Buffer.from(message.data);
  return {
    kind: 'plain',
    id: message.id,
    prevId: undefined,
    response: { code: 200, reason: undefined, headers: [], body: bytes },
    stream: { content: bytes, action: 'send' },
  };
}

/** A `grip` message that is not a valid stored item (say, `POST /pub/x?event=grip` with any text) is taken as plain. */
function decodeGrip(message: Message): ProxyItem | undefined {
  let stored: PublishItem;
  try {
    stored = validateItem({ ...(JSON.parse(message.data) as object), channel: message.channel }, 0);
  } catch {
    return undefined;
  }
  const { item } = stored;
  const response = item.formats['http-response'];
  const stream = item.formats['http-stream'];
  return {
    kind: 'grip',
    id: item.id,
    prevId: item['prev-id'],
    response:
      response === undefined
        ? undefined
        : {
            code: response.code ?? 200,
            reason: response.reason,
            headers: headerPairs(response.headers),
            body: bytesOf(response['body-bin'], response.body),
          },
    stream:
      stream === undefined
        ? undefined
        : { content: bytesOf(stream['content-bin'], stream.content), action: stream.action ?? 'send' },
  };
}

/** GRIP's binary form (base64) wins over its text form; neither is an empty body. */
function bytesOf(base64: string | undefined, text: string | undefined): Buffer {
  if (base64 !== undefined) return Buffer.from(base64, 'base64');
  return text !== undefined ? Buffer.from(text) : EMPTY;
}

type HeaderList = readonly [string, string][];

function headerPairs(headers: HeaderList | Record<string, string> | undefined): HeaderList {
  if (headers === undefined) return [];
  return Array.isArray(headers) ? headers : Object.entries(headers);
}

/** The message data for a validated item: its JSON without the channel (the message has its own). */
export function itemData(item: StoredItem): string {
  return JSON.stringify(item);
}
