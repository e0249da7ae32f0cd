import { channel } from 'node:diagnostics_channel';
import type { ErrorCode } from './errors.js';

/*
 * What the library tells whoever is watching, without printing anything
 * (node:diagnostics_channel: a publish with no subscriber costs one boolean
 * check). The operator's view (src/ops/: /metrics, the dashboard) and the
 * CLI's logs subscribe; an application may too.
 */

/** Once per fan-out of a channel's pending messages (not per subscriber). */
export interface FanOutEvent {
  readonly channel: string;
  /** Messages fanned out together. */
  readonly messages: number;
  /** Live subscribers they went to in this process. */
  readonly subscribers: number;
  /** Bytes handed to sockets, all subscribers together. */
  readonly bytes: number;
  /** Publish time of the first message (ms since 1970, the broker's clock). */
  readonly publishedAt: number;
  /** When the fan-out began (ms since 1970, this process's clock). */
  readonly startedAt: number;
  /** How long encoding and writing to every subscriber took, in ms. */
  readonly durationMs: number;
}
export const fanOutChannel = channel('kometa:fanout');

/** A subscriber connection closed by the server because it could not keep up. */
export interface SubscriberDropEvent {
  readonly transport: string;
  readonly reason: 'slow-consumer';
  /** Bytes that were waiting on the connection when it was closed. */
  readonly queuedBytes: number;
  readonly remoteAddress: string | undefined;
}
export const subscriberDropChannel = channel('kometa:subscriber:drop');

/** An error answered to a client (HTTP problem details, or a WebSocket error frame or close). */
export interface ErrorEvent {
  readonly code: ErrorCode;
  readonly status: number;
  readonly transport: 'http' | 'websocket';
  /**
   * What was thrown, when it was not a KometaError (a bug, or a dependency
   * that failed): the client gets a bare 500, the watcher gets the cause.
   */
  readonly cause?: unknown;
}
export const errorChannel = channel('kometa:error');

export function reportError(event: ErrorEvent): void {
  if (errorChannel.hasSubscribers) errorChannel.publish(event);
}

export function reportDrop(event: SubscriberDropEvent): void {
  if (subscriberDropChannel.hasSubscribers) subscriberDropChannel.publish(event);
}

/** A member joined or left a channel, or a channel got its first member or lost its last (once per cluster). */
export const presenceChannel = channel('kometa:presence');
