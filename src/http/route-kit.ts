import type { IncomingMessage, ServerResponse } from 'node:http';
import { assertChannelName } from '../core/channel-name.js';
import { KometaError } from '../core/errors.js';
import type { Hub } from '../core/hub.js';
import type { AccessPolicy } from '../auth/access.js';
import type { Grant } from '../auth/grant.js';
import type { BackendApi } from './backend-routes.js';
import type { HubHttpOptions } from './hub-options.js';
import type { RateLimiter } from './rate-limit.js';

export { sendJson } from './send-json.js';

/**
 * The URL every query-less request is routed with. Routes only read it (its
 * search params are empty), so one shared instance is safe, and a route can
 * tell "no query" by identity without asking the URL.
 */
export const NO_QUERY: URL = new URL('/', 'http://kometa.invalid');

/** What the hub's route handlers share: HubHttp hands itself to each as this. */
export interface RouteContext {
  readonly hub: Hub;
  readonly options: HubHttpOptions;
  readonly access: AccessPolicy;
  readonly backend: BackendApi;
  readonly publishLimiter: RateLimiter;
  clientAddress(req: IncomingMessage): string;
}

/** Authenticate and check a request for channels; sets the session cookie when a ticket was spent. */
export async function authorize(
  access: AccessPolicy,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  action: 'subscribe' | 'publish',
  channels: readonly string[],
): Promise<Grant> {
  for (const channel of channels) assertChannelName(channel);
  const { grant, setCookie } = await access.authenticate(req, url);
  await access.require(req, grant, action, channels);
  if (setCookie !== undefined) res.setHeader('Set-Cookie', setCookie);
  return grant;
}

/**
 * `authorize` without a promise when the policy needs nothing from the request
 * (no credentials configured, no hook); undefined when the caller must await
 * `authorize`. Same checks, same errors.
 */
export function authorizeNow(
  access: AccessPolicy,
  action: 'subscribe' | 'publish',
  channel: string,
): Grant | undefined {
  const grant = access.openGrant;
  if (grant === undefined) return undefined;
  assertChannelName(channel);
  access.requireNow(grant, action, [channel]);
  return grant;
}

export function serverFull(): KometaError {
  return new KometaError(
    'KOMETA_ERR_TOO_MANY_CONNECTIONS',
    'The hub is full of subscribers; this connection may publish but not subscribe',
  );
}

export function allowMethods(req: IncomingMessage, method: 'GET' | 'POST'): void {
  if (req.method === method) return;
  throw new KometaError('KOMETA_ERR_METHOD', `Use ${method} here`, { allow: method });
}

export function decodeChannel(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new KometaError('KOMETA_ERR_CHANNEL_NAME', 'The channel is not valid percent-encoding');
  }
}

export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export function sanitizePath(url: string | undefined): string {
  return (url ?? '/')
    .split('?')[0]!
    .slice(0, 100)
    .replace(/[^\x21-\x7e]/g, '?');
}
