import type { Hub, Subscription } from '../core/hub.js';
import type { Sink } from '../core/sink.js';
import type { HubHttp } from '../http/hub-server.js';
import type { HubWebSocket } from '../http/websocket.js';
import type { WebhookSender } from '../http/webhooks.js';
import { SseSink } from '../transports/sse.js';
import { StreamSink } from '../transports/stream.js';
import type { Socket } from 'node:net';

/** What the operator's view reads: the hub, and the servers in front of it when there are any. */
export interface OpsSources {
  readonly hub: Hub;
  readonly http?: HubHttp | undefined;
  readonly webSocket?: HubWebSocket | undefined;
  /** Lifecycle webhooks, when --webhook-url is given. */
  readonly webhooks?: WebhookSender | undefined;
}

export interface ConnectionCounts {
  /** Open SSE responses. */
  sse: number;
  /** Open chunked-stream (NDJSON) responses. */
  stream: number;
  /** Long-polls being held. */
  poll: number;
  /** WebSocket connections (one may follow many channels). */
  ws: number;
}

/**
 * Connections by transport, read when asked (once a second, or at a
 * scrape), so the fan-out path never counts anything for it. HTTP
 * subscriptions are counted from the hub's live set, by their encoder.
 */
export function connectionCounts(sources: OpsSources): ConnectionCounts {
  const counts: ConnectionCounts = {
    sse: 0,
    stream: 0,
    poll: sources.http?.pollCount ?? 0,
    ws: sources.webSocket?.connectionCount ?? 0,
  };
  for (const subscription of sources.hub.liveSubscriptions) {
    const name = subscription.sink?.encoder.name;
    if (name === 'sse') counts.sse++;
    else if (name === 'stream') counts.stream++;
  }
  return counts;
}

/** The socket under a subscriber's chunked response (SSE or stream); other transports do not say. */
export function socketOf(sink: Sink | undefined): Socket | undefined {
  if (sink instanceof SseSink || sink instanceof StreamSink) return sink.stream.socket ?? undefined;
  return undefined;
}

/** Subscribers get a small number when first listed, so the dashboard can point at one. */
const ids = new WeakMap<Subscription, number>();
let nextId = 1;
export function subscriptionId(subscription: Subscription): number {
  let id = ids.get(subscription);
  if (id === undefined) {
    id = nextId++;
    ids.set(subscription, id);
  }
  return id;
}
