import type { IncomingMessage, ServerResponse } from 'node:http';
import { formatId } from '../protocol/cursor.js';
import { type RouteContext, allowMethods, authorize, decodeChannel, sendJson } from './route-kit.js';

/** GET /channels/<channel>: its newest id, subscriber count and history bounds. */
export async function channelInfoRoute(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  pathChannel: string,
): Promise<void> {
  allowMethods(req, 'GET');
  const channel = decodeChannel(pathChannel);
  // A channel's last id and subscriber count are for those who may read it.
  await authorize(ctx.access, req, res, url, 'subscribe', [channel]);
  const info = await ctx.hub.channelInfo(channel);
  sendJson(res, 200, {
    channel,
    subscribers: info.subscribers,
    epoch: info.epoch,
    last: info.headSeq === 0 ? null : formatId(channel, info.epoch, info.headSeq),
    history: { messages: info.messages, bytes: info.bytes, oldestSeq: info.messages === 0 ? null : info.oldestSeq },
  });
}

/** GET /healthz: 200 while the broker is reachable, 503 (and why) while it is not. */
export async function healthRoute(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  allowMethods(req, 'GET');
  const broker = ctx.hub.broker.health();
  sendJson(res, broker.ok ? 200 : 503, { status: broker.ok ? 'ok' : 'degraded', broker });
}
