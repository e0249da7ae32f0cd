import type { IncomingMessage, ServerResponse } from 'node:http';
import { KometaError } from '../core/errors.js';
import { MAX_INFO_BYTES, isKometaClaim } from '../auth/grant.js';
import { compilePatterns } from '../auth/patterns.js';
import { decodePublishBody, readBody } from './body.js';
import { type RouteContext, allowMethods, sendJson } from './route-kit.js';

/**
 * POST /tickets with a publisher credential and `{"subscribe": ["room.*"], "ttl": 3600}`:
 * a single-use ticket, valid for a minute, that a browser trades for a
 * session cookie on its first subscribe (`?ticket=`).
 */
export async function ticketRoute(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  allowMethods(req, 'POST');
  const { grant } = await ctx.access.authenticate(req, url);
  if (!grant.tickets) {
    throw new KometaError(
      grant.kind === 'anonymous' ? 'KOMETA_ERR_UNAUTHORIZED' : 'KOMETA_ERR_FORBIDDEN',
      'Minting tickets needs the publisher key or a token with "tickets": true',
    );
  }
  const body = decodePublishBody('application/json', await readBody(req, ctx.options.maxBodyBytes));
  const request = JSON.parse(body) as { subscribe?: unknown; ttl?: unknown; user?: unknown; info?: unknown };
  // `info` is shown to the channel's members in presence: signed inside the ticket, never taken from the client.
  if (request.info !== undefined && (JSON.stringify(request.info) ?? '').length > MAX_INFO_BYTES) {
    throw new KometaError('KOMETA_ERR_PATTERN', `A ticket's info is at most ${MAX_INFO_BYTES} bytes of JSON`);
  }
  const claim = { subscribe: request.subscribe, info: request.info };
  if (!isKometaClaim(claim) || claim.subscribe === undefined || claim.subscribe.length === 0) {
    throw new KometaError(
      'KOMETA_ERR_PATTERN',
      'Give the channels the ticket may subscribe to: {"subscribe": ["room.42"]}',
    );
  }
  compilePatterns(claim.subscribe); // refuse a bad pattern now, not when the ticket is used
  const ttl = typeof request.ttl === 'number' && request.ttl > 0 ? request.ttl * 1000 : undefined;
  // A ticket may speak for a user: POST /disconnect {"user"} then finds its session.
  const user =
    typeof request.user === 'string' && request.user.length > 0 && request.user.length <= 128
      ? request.user
      : undefined;
  const { ticket, expiresAt } = ctx.access.tickets.mint(
    claim,
    user === undefined ? grant.subject : `user:${user}`,
    ttl,
  );
  sendJson(res, 201, { ticket, expiresAt: new Date(expiresAt).toISOString() });
}
