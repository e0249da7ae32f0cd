import type { IncomingMessage, ServerResponse } from 'node:http';
import { KometaError } from '../core/errors.js';
import type { Grant } from '../auth/grant.js';
import { decodePublishBody, readBody } from './body.js';
import {
  type RouteContext,
  allowMethods,
  authorize,
  authorizeNow,
  decodeChannel,
  headerValue,
  sendJson,
} from './route-kit.js';

/**
 * POST /pub/<channel>: one message; with an Idempotency-Key, at most once per
 * key (backend-routes.ts). With one HTTP request per message this route is
 * most of a publish's cost (docs/benchmarks.md), so what cannot apply is
 * skipped rather than run: no promise for an open policy's grant, no client
 * address for a rate limit that is off, no query lookup without a query.
 */
export async function publishRoute(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  pathChannel: string,
): Promise<void> {
  allowMethods(req, 'POST');
  const channel = decodeChannel(pathChannel);
  // Refuse a bad name or a missing right before reading a body that would be thrown away.
  const grant =
    authorizeNow(ctx.access, 'publish', channel) ?? (await authorize(ctx.access, req, res, url, 'publish', [channel]));
  rateLimit(ctx, req, res, grant);
  const eventQuery = url.search === '' ? null : url.searchParams.get('event');
  const eventParam = eventQuery ?? headerValue(req.headers['kometa-event']);
  const body = await readBody(req, ctx.options.maxBodyBytes).catch((error: unknown) => {
    // Stop reading what is left of an oversized body; the connection is not reused.
    res.setHeader('Connection', 'close');
    throw error;
  });
  const data = decodePublishBody(req.headers['content-type'], body);
  const key = headerValue(req.headers['idempotency-key']);
  // A client whose live connections skip this message, on every node (docs/backends.md#excluding-the-sender).
  const exclude = headerValue(req.headers['kometa-exclude-client']);
  if (key === undefined) {
    const options = { event: eventParam, exclude };
    // In memory nothing waits: no promise (Hub.publishNow); otherwise (on disk, Redis) the broker's.
    const { message, subscribers } =
      ctx.hub.publishNow(channel, data, options) ?? (await ctx.hub.publish(channel, data, options));
    sendPublished(res, channel, message.id, subscribers);
    return;
  }
  // At most once per key (backend-routes.ts): a repeat answers the first publish.
  const { value, replayed } = await ctx.backend.publish(channel, data, eventParam, key, exclude);
  if (replayed) res.setHeader('Idempotent-Replayed', 'true');
  sendJson(res, 201, replayed ? { ...value, replayed } : value);
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
  res.writeHead(201, [
    'Content-Type',
    'application/json; charset=utf-8',
    'Content-Length',
    String(Buffer.byteLength(body)),
    'Cache-Control',
    'no-store',
  ]);
  res.end(body);
}
