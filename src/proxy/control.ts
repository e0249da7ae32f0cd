import type { IncomingMessage, ServerResponse } from 'node:http';
import { KometaError } from '../core/errors.js';
import type { Hub } from '../core/hub.js';
import { decodePublishBody, readBody } from '../http/body.js';
import { type HubHttpOptions, type HubServer, createHubServer, sendJson } from '../http/hub-server.js';
import { sendProblem } from '../http/problem.js';
import { GRIP_EVENT, itemData, validatePublishBody } from './items.js';

export interface ControlOptions {
  /** Largest `POST /publish/` body (several items in one request). */
  readonly maxPublishBytes: number;
  readonly http?: Partial<HubHttpOptions>;
}

export const defaultControlOptions: ControlOptions = { maxPublishBytes: 1024 * 1024 };

/**
 * Pushpin's publish endpoint (EPCP): `POST /publish/` with
 * `{"items": [{"channel", "id"?, "prev-id"?, "formats": {…}}]}`, so that GRIP
 * publishers (@fanoutio/grip's Publisher, django-grip, …) work unchanged.
 * Items are checked all first (nothing is stored from a request with a bad
 * item), then stored in order; each becomes one `grip` message (see items.ts).
 * Answers 200 with the kometa id of each stored item.
 */
export async function handlePublish(
  hub: Hub,
  req: IncomingMessage,
  res: ServerResponse,
  maxBytes: number,
): Promise<void> {
  if (req.method !== 'POST') throw new KometaError('KOMETA_ERR_METHOD', 'Use POST here', { allow: 'POST' });
  const body = await readBody(req, maxBytes).catch((error: unknown) => {
    res.setHeader('Connection', 'close');
    throw error;
  });
  const contentType = req.headers['content-type'] ?? 'application/json';
  if (!/^application\/(json|[^;]*\+json)\s*(;|$)/i.test(contentType)) {
    throw new KometaError(
      'KOMETA_ERR_MEDIA_TYPE',
      'POST /publish/ takes application/json',
      { mediaType: contentType.split(';')[0]!.trim() },
    );
  }
  const items = validatePublishBody(JSON.parse(decodePublishBody(contentType, body)) as unknown);
  const datas = items.map(({ item }) => itemData(item));
  datas.forEach((data, index) => {
    if (Buffer.byteLength(data) > hub.limits.maxMessageBytes) {
      const detail = `items[${index}] is over ${hub.limits.maxMessageBytes} bytes once stored`;
      throw new KometaError('KOMETA_ERR_BODY_TOO_LARGE', detail, {
        limit: hub.limits.maxMessageBytes,
        item: index,
      });
    }
  });
  const stored: { channel: string; id: string; subscribers: number }[] = [];
  for (let i = 0; i < items.length; i++) {
    const { channel } = items[i]!;
    try {
      const { message, subscribers } = await hub.publish(channel, datas[i]!, { event: GRIP_EVENT });
      stored.push({ channel, id: message.id, subscribers });
    } catch (error) {
      // Say how far it got: the items before this one are stored.
      if (error instanceof KometaError) {
        throw new KometaError(error.code, error.message, { ...error.extra, published: stored.length });
      }
      throw error;
    }
  }
  sendJson(res, 200, { items: stored });
}

/** A request handler for `/publish/` that returns false for every other path. */
export function publishRoute(
  hub: Hub,
  options: Partial<ControlOptions> = {},
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { maxPublishBytes } = { ...defaultControlOptions, ...options };
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/publish/' && path !== '/publish') return false;
    handlePublish(hub, req, res, maxPublishBytes).catch((error: unknown) => sendProblem(res, error));
    return true;
  };
}

/**
 * The control port: the hub's routes (`POST /pub/<channel>`, `/sub`,
 * `/channels`, `/healthz`) and Pushpin's `POST /publish/`, on the same
 * channels and history. Meant for 127.0.0.1 only: it has no access control.
 */
export function createControlServer(hub: Hub, options: Partial<ControlOptions> = {}): HubServer {
  const publish = publishRoute(hub, options);
  return createHubServer(hub, { websocket: false, ...options.http }, (req, res) => {
    if (!publish(req, res)) {
      sendProblem(
        res,
        new KometaError('KOMETA_ERR_NOT_FOUND', 'The control port takes POST /publish/ and the hub routes'),
      );
    }
  });
}
