import type { IncomingMessage, ServerResponse } from 'node:http';
import { KometaError } from '../core/errors.js';
import type { Grant } from '../auth/grant.js';
import { decodePublishBody, readBodyThen } from './body.js';
import { answerFailure } from './problem.js';
import { sendJsonText } from './send-json.js';
import {
  type RouteContext,
  allowMethods,
  authorize,
  authorizeNow,
  decodeChannel,
  headerValue,
  NO_QUERY,
  sendJson,
} from './route-kit.js';

/**
 * POST /pub/<channel>: one message; with an Idempotency-Key, at most once per
 * key (backend-routes.ts). With one HTTP request per message this route is
 * most of a publish's cost (docs/benchmarks.md), so what cannot apply is
 * skipped rather than run: no promise for an open policy's grant, none for
 * the body or for a broker that stores at once (memory), no client address
 * for a rate limit that is off, no query lookup without a query. Returns a
 * promise only while it awaits the credentials; after that it answers its
 * own failures.
 */
export function publishRoute(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  pathChannel: string,
): Promise<void> | void {
  allowMethods(req, 'POST');
  const channel = decodeChannel(pathChannel);
  // Refuse a bad name or a missing right before reading a body that would be thrown away.
  const grant = authorizeNow(ctx.access, 'publish', channel);
  if (grant === undefined) return publishAuthorized(ctx, req, res, url, channel);
  publishWith(ctx, req, res, url, channel, grant);
}

async function publishAuthorized(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  channel: string,
): Promise<void> {
  const grant = await authorize(ctx.access, req, res, url, 'publish', [channel]);
  publishWith(ctx, req, res, url, channel, grant);
}

/** Throws what it refuses before the body is read; answers whatever goes wrong after. */
function publishWith(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  channel: string,
  grant: Grant,
): void {
  rateLimit(ctx, req, res, grant);
  const eventQuery = url === NO_QUERY ? null : url.searchParams.get('event');
  const event = eventQuery ?? headerValue(req.headers['kometa-event']);
  readBodyThen(req, ctx.options.maxBodyBytes, (error, body) => {
    if (error !== undefined) {
      // Stop reading what is left of an oversized body; the connection is not reused.
      res.setHeader('Connection', 'close');
      answerFailure(res, error);
      return;
    }
    try {
      publishBody(ctx, req, res, channel, event, body!);
    } catch (failure) {
      answerFailure(res, failure);
    }
  });
}

function publishBody(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  channel: string,
  event: string | undefined,
  body: Buffer,
): void {
  const data = decodePublishBody(req.headers['content-type'], body);
  const key = headerValue(req.headers['idempotency-key']);
  // A client whose live connections skip this message, on every node (docs/backends.md#excluding-the-sender).
  const exclude = headerValue(req.headers['kometa-exclude-client']);
  if (key === undefined) {
    const options = { event, exclude };
    // In memory nothing waits: no promise (Hub.publishNow); otherwise (on disk, Redis) the broker's.
    const now = ctx.hub.publishNow(channel, data, options);
    if (now !== undefined) {
      sendPublished(res, channel, now.message.id, now.subscribers);
      return;
    }
    ctx.hub.publish(channel, data, options).then(
      ({ message, subscribers }) => sendPublished(res, channel, message.id, subscribers),
      (failure: unknown) => answerFailure(res, failure),
    );
    return;
  }
  // At most once per key (backend-routes.ts): a repeat answers the first publish.
  ctx.backend.publish(channel, data, event, key, exclude).then(
    ({ value, replayed }) => {
      if (replayed) res.setHeader('Idempotent-Replayed', 'true');
      sendJson(res, 201, replayed ? { ...value, replayed } : value);
    },
    (failure: unknown) => answerFailure(res, failure),
  );
}

function rateLimit(ctx: RouteContext, req: IncomingMessage, res: ServerResponse, grant: Grant): void {
  // Off (--publish-rate 0): no bucket to take from, so no client address to work out.
  if (ctx.publishLimiter.perSecond <= 0) return;
  const wait = ctx.publishLimiter.takePublish(grant, ctx.clientAddress(req));
  if (wait <= 0) return;
  res.setHeader('Connection', 'close');
  throw new KometaError('KOMETA_ERR_RATE_LIMITED', `At most ${ctx.options.publishRate} publishes per second`, {
    retryAfter: wait,
  });
}

/**
 * The 201 `{"channel", "id", "subscribers"}`, as sendJson writes it (same
 * headers, same bytes) without building and stringifying an object per publish.
 */
function sendPublished(res: ServerResponse, channel: string, id: string, subscribers: number): void {
  const body = `{"channel":${JSON.stringify(channel)},"id":${JSON.stringify(id)},"subscribers":${subscribers}}`;
  sendJsonText(res, 201, body);
}
