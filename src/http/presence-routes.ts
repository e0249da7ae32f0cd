import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Grant } from '../auth/grant.js';
import { KometaError } from '../core/errors.js';
import type { Hub } from '../core/hub.js';
import { type MemberIdentity, newClientId } from '../core/presence.js';
import { clientIdOf, userOf } from './connections.js';
import { type RouteContext, allowMethods, authorize, decodeChannel, sendJson } from './route-kit.js';

/*
 * GET /channels/<c>/presence: who is in a channel, across every node and
 * worker sharing the broker (docs/presence.md). Behind the same right as
 * subscribing to the channel.
 */

/** The member a subscription request stands for: its client id (given or made up), user and signed info. */
export function memberOf(grant: Grant, url: URL, transport: string): MemberIdentity {
  return {
    client: clientIdOf(url) ?? newClientId(),
    user: userOf(grant) ?? null,
    info: grant.info ?? null,
    transport,
  };
}

/** The channel segment of `/channels/<c>/presence`, or undefined for another path. */
export function presencePath(path: string): string | undefined {
  if (!path.startsWith('/channels/') || !path.endsWith('/presence')) return undefined;
  const segment = path.slice('/channels/'.length, -'/presence'.length);
  return segment !== '' && !segment.includes('/') ? segment : undefined;
}

/** GET /channels/<c>/presence, behind the subscribe right. */
export async function presenceRoute(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  pathChannel: string,
): Promise<void> {
  allowMethods(req, 'GET');
  const channel = decodeChannel(pathChannel);
  await authorize(ctx.access, req, res, url, 'subscribe', [channel]);
  await answerPresence(ctx.hub, res, req, url, channel, sendJson);
}

/**
 * Answer a presence read once the caller is known to be allowed: one page of
 * members (`limit`, default and most the hub's page size), `after` the
 * previous page's `next`.
 */
export async function answerPresence(
  hub: Hub,
  res: ServerResponse,
  req: IncomingMessage,
  url: URL,
  channel: string,
  send: (res: ServerResponse, status: number, value: unknown) => void,
): Promise<void> {
  if (hub.presence === undefined) {
    throw new KometaError('KOMETA_ERR_NOT_FOUND', 'Presence is off on this hub (--presence false)');
  }
  const pageSize = hub.presence.options.pageSize;
  const limitText = url.searchParams.get('limit');
  let limit = pageSize;
  if (limitText !== null) {
    if (!/^\d{1,6}$/.test(limitText) || Number(limitText) < 1 || Number(limitText) > pageSize) {
      throw new KometaError('KOMETA_ERR_PRESENCE_PARAM', `limit is a whole number from 1 to ${pageSize}`);
    }
    limit = Number(limitText);
  }
  const after = url.searchParams.get('after');
  if (after !== null && (after.length === 0 || after.length > 80)) {
    throw new KometaError('KOMETA_ERR_PRESENCE_PARAM', "after is the previous page's next");
  }
  let snapshot;
  try {
    snapshot = await hub.presence.store.snapshot(channel, limit, after);
  } catch (error) {
    if (error instanceof KometaError) throw error;
    throw new KometaError('KOMETA_ERR_BROKER_UNAVAILABLE', 'The presence store is unreachable; try again shortly');
  }
  void req;
  send(res, 200, snapshot);
}
