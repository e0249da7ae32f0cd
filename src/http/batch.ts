import { isUtf8 } from 'node:buffer';
import { KometaError, type ProblemDetails, toProblem } from '../core/errors.js';
import { type Idempotency, fingerprint } from '../core/idempotency.js';
import { isValidClientId } from '../core/channel-name.js';

/*
 * POST /pub: many publishes in one request (docs/backends.md#batch).
 *
 *   [{"channel": "a", "data": "…", "event"?: "…", "idempotencyKey"?: "…", "exclude"?: "<client id>"},
 *    {"channels": ["a", "b", …], "data": …}]                 one message to many channels
 *
 * as a JSON array (application/json) or one item per line
 * (application/x-ndjson). Each item is answered in the same place of the
 * answer's `results`; a bad item is answered with its error and the rest go
 * on. Not atomic: what was published stays published whatever happens to the
 * items after it. Items are published in order per channel: an item on a
 * channel is issued only once every earlier item on that channel has been
 * issued (and, when it has an idempotency key, finished).
 */

export interface ValidItem {
  readonly ok: true;
  readonly channels: readonly string[];
  /** Given as `channels` (answered with one result per channel) rather than `channel`. */
  readonly broadcast: boolean;
  readonly data: string;
  readonly event: string | undefined;
  readonly key: string | undefined;
  /** A client id whose connections do not get it live (`"exclude"`). */
  readonly exclude: string | undefined;
}

export interface InvalidItem {
  readonly ok: false;
  readonly channel: string | undefined;
  readonly error: KometaError;
}

export type BatchItem = ValidItem | InvalidItem;

export type OneResult =
  | { readonly channel: string; readonly id: string; readonly subscribers: number; readonly replayed?: true }
  | { readonly channel?: string; readonly error: ProblemDetails };

export type ItemResult = OneResult | { readonly channels: readonly OneResult[]; readonly replayed?: true };


export function parseBatch(contentType: string | undefined, body: Buffer, maxItems: number): BatchItem[] {
  const mediaType = (contentType ?? 'application/json').split(';')[0]!.trim().toLowerCase();
  const ndjson = mediaType === 'application/x-ndjson' || mediaType === 'application/jsonl';
  if (!ndjson && mediaType !== 'application/json') {
    throw new KometaError(
      'KOMETA_ERR_MEDIA_TYPE',
      'A batch is a JSON array (application/json) or one JSON item per line (application/x-ndjson)',
      { mediaType },
    );
  }
  // As decodePublishBody (body.ts): checked, then decoded, cheaper than a fatal TextDecoder.
  if (!isUtf8(body)) throw new KometaError('KOMETA_ERR_BODY_ENCODING');
  const text = body.toString('utf8');
  let raw: unknown[];
  if (ndjson) {
    raw = text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        try {
          return JSON.parse(line) as unknown;
        } catch {
          return new KometaError('KOMETA_ERR_PUBLISH_ITEM', 'This line is not JSON');
        }
      });
  } else {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new KometaError('KOMETA_ERR_BODY_JSON');
    }
    if (!Array.isArray(value))
      throw new KometaError('KOMETA_ERR_BATCH', 'A batch is a JSON array of items: [{"channel": "a", "data": "…"}, …]');
    raw = value;
  }
  if (raw.length === 0) throw new KometaError('KOMETA_ERR_BATCH', 'The batch has no items');
  const items = raw.map(parseItem);
  let publishes = 0;
  for (const item of items) publishes += item.ok ? item.channels.length : 1;
  if (publishes > maxItems) {
    throw new KometaError(
      'KOMETA_ERR_BATCH_TOO_LARGE',
      `A batch publishes at most ${maxItems} messages (a broadcast item counts one per channel); this one has ` +
        `${publishes}`,
      { limit: maxItems },
    );
  }
  return items;
}

function parseItem(value: unknown): BatchItem {
  if (value instanceof KometaError) return { ok: false, channel: undefined, error: value };
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return invalid(undefined, 'An item is a JSON object');
  const item = value as Record<string, unknown>;
  const channel = typeof item.channel === 'string' ? item.channel : undefined;
  if (item.channel !== undefined && item.channels !== undefined)
    return invalid(channel, 'An item has "channel" or "channels", not both');
  let channels: string[];
  if (item.channels !== undefined) {
    if (
      !Array.isArray(item.channels) ||
      item.channels.length === 0 ||
      !item.channels.every((c) => typeof c === 'string')
    ) {
      return invalid(undefined, '"channels" is a non-empty array of channel names');
    }
    channels = [...new Set(item.channels as string[])];
  } else if (channel !== undefined) {
    channels = [channel];
  } else {
    return invalid(undefined, 'An item needs "channel" (or "channels")');
  }
  if (item.data === undefined)
    return invalid(channel, 'An item needs "data": a string, or any JSON value (published as its JSON text)');
  const data = typeof item.data === 'string' ? item.data : JSON.stringify(item.data);
  if (item.event !== undefined && item.event !== null && typeof item.event !== 'string')
    return invalid(channel, '"event" is a string');
  if (item.idempotencyKey !== undefined && typeof item.idempotencyKey !== 'string')
    return invalid(channel, '"idempotencyKey" is a string');
  if (item.exclude !== undefined && (typeof item.exclude !== 'string' || !isValidClientId(item.exclude)))
    return invalid(channel, '"exclude" is a client id: 1-64 characters of A-Z a-z 0-9 _ . : @ -');
  return {
    ok: true,
    channels,
    broadcast: item.channels !== undefined,
    data,
    event: typeof item.event === 'string' ? item.event : undefined,
    key: item.idempotencyKey as string | undefined,
    exclude: item.exclude as string | undefined,
  };
}

function invalid(channel: string | undefined, detail: string): InvalidItem {
  return { ok: false, channel, error: new KometaError('KOMETA_ERR_PUBLISH_ITEM', detail) };
}

interface Published {
  readonly channel: string;
  readonly id: string;
  readonly subscribers: number;
}

export interface BatchDeps {
  /** Refuse an item (bad names, no right to publish) before anything of it is published. */
  check(item: ValidItem): Promise<void>;
  /** The same check without a promise, when the access policy can decide at once (no application hook). */
  readonly checkNow?: (item: ValidItem) => void;
  publish(channel: string, item: ValidItem): Promise<Published>;
  /** `publish` without a promise where the hub can (Hub.publishNow); undefined when it cannot. */
  readonly publishNow?: (channel: string, item: ValidItem) => Published | undefined;
  readonly idempotency: Idempotency;
  readonly maxMessageBytes: number;
}

export async function publishBatch(items: readonly BatchItem[], deps: BatchDeps): Promise<ItemResult[]> {
  /**
   * Per channel: settles once the latest item on it has been issued (or, with
   * a key, finished). Only items that wait are here: one issued at once needs
   * no tail, since what comes after it in the batch is issued after it.
   */
  const tails = new Map<string, Promise<unknown>>();
  // An answer known in the loop is kept as it is: a batch of items that all
  // publish at once (in memory) then needs no promise per item.
  const answers = items.map((item): ItemResult | Promise<ItemResult> => {
    if (!item.ok) return failure(item.channel, item.error);
    // Nothing waits yet (the common batch): no list of what this item waits for.
    const before = tails.size === 0 ? NOTHING : waitsFor(item, tails);
    // The common batch (no keys, an access policy that decides at once): each
    // item is checked and issued in this loop, so in item order, with a
    // promise or two per message instead of a chain of them.
    if (before.length === 0 && item.key === undefined && deps.checkNow !== undefined) {
      try {
        deps.checkNow(item);
        checkSize(item, deps.maxMessageBytes);
      } catch (error) {
        return failure(item.broadcast ? undefined : item.channels[0], error);
      }
      return publishItemNow(item, deps) ?? publishItem(item, deps);
    }
    const ready = before.length === 0 ? Promise.resolve() : before.length === 1 ? before[0]! : Promise.all(before);
    let answer!: Promise<ItemResult>;
    const issued = ready.then(async () => {
      try {
        await deps.check(item);
        checkSize(item, deps.maxMessageBytes);
      } catch (error) {
        answer = Promise.resolve(failure(item.broadcast ? undefined : item.channels[0], error));
        return;
      }
      answer = item.key === undefined ? publishItem(item, deps) : publishKeyed(item, item.key, deps);
      // An item with a key is checked against the store before it publishes: later items on its channels wait for it.
      if (item.key !== undefined) await answer.catch(() => {});
    });
    for (const channel of item.channels) tails.set(channel, issued);
    return issued.then(() => answer);
  });
  return anyPromise(answers) ? Promise.all(answers) : (answers as ItemResult[]);
}

const NOTHING: readonly Promise<unknown>[] = [];

/**
 * A plain loop: `some` with a callback, inlined into the batch route, was
 * where V8 first threw the route's optimized code away (a map it had not
 * seen); one cause less of compiling it again (docs/benchmarks.md).
 */
function anyPromise(answers: readonly (ItemResult | Promise<ItemResult>)[]): boolean {
  for (let i = 0; i < answers.length; i++) if (answers[i] instanceof Promise) return true;
  return false;
}

/** The tails of the item's channels: what must be issued before it. */
function waitsFor(item: ValidItem, tails: ReadonlyMap<string, Promise<unknown>>): Promise<unknown>[] {
  return item.channels.map((channel) => tails.get(channel)).filter((tail) => tail !== undefined);
}

function checkSize(item: ValidItem, maxMessageBytes: number): void {
  if (Buffer.byteLength(item.data) > maxMessageBytes) {
    throw new KometaError('KOMETA_ERR_BODY_TOO_LARGE', `Messages are limited to ${maxMessageBytes} bytes`, {
      limit: maxMessageBytes,
    });
  }
}

/**
 * The item published without a promise (Hub.publishNow), or undefined when
 * the hub cannot publish that way (then nothing was published and the caller
 * uses publishItem). A channel's failure is its result, as in publishItem.
 */
function publishItemNow(item: ValidItem, deps: BatchDeps): ItemResult | undefined {
  const publishNow = deps.publishNow;
  if (publishNow === undefined) return undefined;
  const each: OneResult[] = [];
  for (const channel of item.channels) {
    let result: OneResult | undefined;
    try {
      result = publishNow(channel, item);
    } catch (error) {
      result = failure(channel, error);
    }
    // The hub decides this once (by its broker and presence store), so this is the first channel or none.
    if (result === undefined) return undefined;
    each.push(result);
  }
  return item.broadcast ? { channels: each } : each[0]!;
}

/** Publish to each channel of the item at once (same turn), so each channel sees items in order. */
function publishItem(item: ValidItem, deps: BatchDeps): Promise<ItemResult> {
  const each = item.channels.map((channel) =>
    deps.publish(channel, item).catch((error: unknown) => failure(channel, error)),
  );
  if (!item.broadcast) return each[0]!;
  return Promise.all(each).then((channels) => ({ channels }));
}

async function publishKeyed(item: ValidItem, key: string, deps: BatchDeps): Promise<ItemResult> {
  const print = item.broadcast
    ? fingerprint('many', item.channels.join(','), item.event, item.data)
    : fingerprint('one', item.channels[0], item.event, item.data);
  try {
    const outcome = await deps.idempotency.run(key, print, async () => {
      const result = await publishItem(item, deps);
      // Nothing was published: release the key (by failing), so that a retry can publish.
      if ('error' in result) throw errorOf(result);
      if ('channels' in result && result.channels.every((one) => 'error' in one)) throw errorOf(result.channels[0]!);
      return result;
    });
    return outcome.replayed ? { ...outcome.value, replayed: true } : outcome.value;
  } catch (error) {
    return failure(item.broadcast ? undefined : item.channels[0], error);
  }
}

function errorOf(result: OneResult): KometaError {
  const problem = (result as { error: ProblemDetails }).error;
  const { code, detail, type: _type, title: _title, status: _status, ...extra } = problem;
  return new KometaError(code, detail, extra);
}

function failure(channel: string | undefined, error: unknown): OneResult {
  const known =
    error instanceof KometaError
      ? error
      : new KometaError('KOMETA_ERR_INTERNAL', 'The server failed to publish this item');
  const problem = toProblem(known);
  return channel === undefined ? { error: problem } : { channel, error: problem };
}
