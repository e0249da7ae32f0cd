/*
 * The WebSocket protocol of the hub (`GET /ws`), as types shared by the
 * server and the client. Every frame is a text frame holding one JSON object
 * with a `type`. docs/websocket.md describes it for people writing clients.
 *
 * Requests from the client may carry `ref` (a number or short string of the
 * client's choosing); the answer to that request (`subscribed`,
 * `unsubscribed`, `published`, `pong` or `error`) echoes it, so a client can
 * match answers to requests without counting.
 */

export type Ref = number | string;

export interface SubscribeFrame {
  readonly type: 'subscribe';
  readonly channel: string;
  /** Resume after this position: a message id of the channel, or any cursor that has an entry for it. */
  readonly cursor?: string;
  readonly ref?: Ref;
}

export interface UnsubscribeFrame {
  readonly type: 'unsubscribe';
  readonly channel: string;
  readonly ref?: Ref;
}

export interface PublishFrame {
  readonly type: 'publish';
  readonly channel: string;
  readonly data: string;
  readonly event?: string;
  /** As `Idempotency-Key` on HTTP: a repeat within the window publishes nothing and is answered like the first (`replayed: true`). */
  readonly idempotencyKey?: string;
  readonly ref?: Ref;
}

export interface PingFrame {
  readonly type: 'ping';
  readonly ref?: Ref;
}

export type ClientFrame = SubscribeFrame | UnsubscribeFrame | PublishFrame | PingFrame;

export interface MessageFrame {
  readonly type: 'message';
  readonly channel: string;
  /** The message's id (`channel~epoch~seq`): resume the channel with it. */
  readonly id: string;
  readonly event?: string;
  readonly data: string;
}

export interface GapFrame {
  readonly type: 'gap';
  readonly channel: string;
  readonly reason: 'history-truncated' | 'epoch-changed';
  readonly epoch: string;
  readonly missed?: { readonly from: number; readonly to: number };
  /** The channel's position after the gap: resume with it. */
  readonly id: string;
}

export interface SubscribedFrame {
  readonly type: 'subscribed';
  readonly channel: string;
  /** Where delivery starts (messages after this follow); resume with it if nothing else arrives. */
  readonly cursor: string;
  readonly ref?: Ref;
}

export interface UnsubscribedFrame {
  readonly type: 'unsubscribed';
  readonly channel: string;
  readonly ref?: Ref;
}

export interface PublishedFrame {
  readonly type: 'published';
  readonly channel: string;
  readonly id: string;
  readonly subscribers: number;
  /** The answer to an earlier publish with the same idempotency key: nothing new was published. */
  readonly replayed?: true;
  readonly ref?: Ref;
}

export interface PongFrame {
  readonly type: 'pong';
  readonly ref?: Ref;
}

export interface ErrorFrame {
  readonly type: 'error';
  /** A stable code from the hub's error table (docs/errors.md), e.g. KOMETA_ERR_CHANNEL_NAME. */
  readonly code: string;
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  /** The channel the failed request named, if any. */
  readonly channel?: string;
  readonly ref?: Ref;
  readonly [extension: string]: unknown;
}

export type ServerFrame =
  MessageFrame | GapFrame | SubscribedFrame | UnsubscribedFrame | PublishedFrame | PongFrame | ErrorFrame;

/** The path the hub serves WebSocket on. */
export const WEBSOCKET_PATH = '/ws';
