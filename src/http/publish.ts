import type { IncomingMessage, ServerResponse } from 'node:http';
import { KometaError } from '../core/errors.js';
import { decodePublishBody, readBody } from './body.js';
import { type RouteContext, allowMethods, authorize, decodeChannel, headerValue, sendJson } from './route-kit.js';

/** POST /pub/<channel>: one message; with an Idempotency-Key, at most once per key (backend-routes.ts). */
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
  const grant = await authorize(ctx.access, req, res, url, 'publish', [channel]);
  const wait = ctx.publishLimiter.takePublish(grant, ctx.clientAddress(req));
  if (wait > 0) {
    res.setHeader('Connection', 'close');
    throw new KometaError('KOMETA_ERR_RATE_LIMITED', `At most ${ctx.options.publishRate} publishes per second`, {
      retryAfter: wait,
    });
  }
  const eventParam = url.searchParams.get('event') ?? headerValue(req.headers['kometa-event']);
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
    const { message, subscribers } = await ctx.hub.publish(channel, data, { event: eventParam ?? undefined, exclude });
    sendJson(res, 201, { channel, id: message.id, subscribers });
    return;
  }
  // At most once per key (backend-routes.ts): a repeat answers the first publish.
  const { value, replayed } = await ctx.backend.publish(channel, data, eventParam ?? undefined, key, exclude);
  if (replayed) res.setHeader('Idempotent-Replayed', 'true');
  sendJson(res, 201, replayed ? { ...value, replayed } : value);
}
