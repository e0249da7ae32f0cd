import { type GapNotice, type GapWithId, gapWithId, parseGapNotice } from './gap.js';

/*
 * The WebSocket protocol of the hub (`GET /ws`): frames in both directions,
 * their encoders and parsers, close codes and the path, shared by the server
 * and the client. Every frame is a text frame holding one JSON object with a
 * `type`; JSON carries any string (CR, LF, lone surrogates as `\udXXX`).
 * docs/websocket.md describes it for people writing clients. A new frame type
 * is a new interface in ClientFrame or ServerFrame and a case in its parser,
 * both in this file.
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
  /** Also send this channel's joins and leaves (`kometa-join` / `kometa-leave` message frames). */
  readonly presence?: boolean;
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
  /**
   * As `Idempotency-Key` on HTTP: a repeat within the window publishes nothing
   * and is answered like the first (`replayed: true`).
   */
  readonly idempotencyKey?: string;
  /**
   * A client whose connections do not get this message live, on every node:
   * `true` for this connection (its `client=` id, or one of its own), or a
   * client id (docs/backends.md#excluding-the-sender).
   */
  readonly exclude?: true | string;
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

export interface GapFrame extends GapWithId {
  readonly type: 'gap';
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

/*
 * Close codes the hub ends a connection with (docs/websocket.md). Errors
 * that end a connection use 4000 + their HTTP status (core's wsCloseCode);
 * these are the ones a client acts on.
 */
export const WS_CLOSE = {
  /** The client is done. */
  normal: 1000,
  /** The hub is draining or shutting down: reconnect and resume. */
  goingAway: 1001,
  protocolError: 1002,
  /** A binary frame: the protocol is text. */
  unsupportedData: 1003,
  invalidPayload: 1007,
  tooBig: 1009,
  internalError: 1011,
  /** A malformed frame (KOMETA_ERR_WS_FRAME). */
  badFrame: 4400,
  /** Disconnected by the application (KOMETA_ERR_DISCONNECTED): do not come back by yourself. */
  disconnected: 4410,
  /** The client did not read fast enough (KOMETA_ERR_SLOW_CONSUMER): resume from history. */
  slowConsumer: 4503,
} as const;

/** The close code of an error that ends a connection: 4000 + its HTTP status (RFC 6455: 4000-4999 are private). */
export function hubErrorCloseCode(status: number): number {
  return 4000 + status;
}

/** Codes 4000-4999 are the hub's errors (4000 + an HTTP status). */
export function isHubErrorCloseCode(code: number): boolean {
  return code >= 4000 && code < 5000;
}

/**
 * A message frame: the hot path of fan-out, written directly (same JSON as
 * encodeServerFrame of a MessageFrame, keys in the same order).
 */
export function encodeMessageFrame(channel: string, id: string, event: string | undefined, data: string): string {
  const eventPart = event === undefined ? '' : `,"event":${JSON.stringify(event)}`;
  const head = `{"type":"message","channel":${JSON.stringify(channel)},"id":${JSON.stringify(id)}`;
  return `${head}${eventPart},"data":${JSON.stringify(data)}}`;
}

export function encodeServerFrame(frame: ServerFrame): string {
  if (frame.type === 'message') return encodeMessageFrame(frame.channel, frame.id, frame.event, frame.data);
  return JSON.stringify(frame);
}

export function gapFrame(notice: GapNotice, id: string): GapFrame {
  return { type: 'gap', ...gapWithId(notice, id) };
}

export function encodeClientFrame(frame: ClientFrame): string {
  return JSON.stringify(frame);
}

/** Why a frame could not be read; the server answers it with KOMETA_ERR_WS_FRAME (4400). */
export class FrameError extends Error {}

const MAX_REF_LENGTH = 64;

type Fields = Record<string, unknown>;

function jsonObject(text: string): Fields {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new FrameError('a frame is one JSON object');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FrameError('a frame is one JSON object');
  }
  return value as Fields;
}

function stringField(frame: Fields, name: string): string {
  const value = frame[name];
  if (typeof value !== 'string') throw new FrameError(`${String(frame.type)} needs a string "${name}"`);
  return value;
}

function optionalStringField(frame: Fields, name: string): string | undefined {
  if (frame[name] === undefined || frame[name] === null) return undefined;
  return stringField(frame, name);
}

function refOf(frame: Fields): { ref?: Ref } {
  const ref = frame.ref;
  if (ref === undefined) return {};
  if ((typeof ref === 'number' && Number.isFinite(ref)) || (typeof ref === 'string' && ref.length <= MAX_REF_LENGTH)) {
    return { ref };
  }
  throw new FrameError(`ref is a number or a string of at most ${MAX_REF_LENGTH} characters`);
}

/** A client frame, exactly as documented; anything else is a FrameError. */
export function parseClientFrame(text: string): ClientFrame {
  const frame = jsonObject(text);
  const refPart = refOf(frame);
  switch (frame.type) {
    case 'subscribe': {
      const channel = stringField(frame, 'channel');
      const cursor = optionalStringField(frame, 'cursor');
      const presence = frame.presence;
      if (presence !== undefined && typeof presence !== 'boolean') throw new FrameError('presence is true or false');
      return {
        type: 'subscribe',
        channel,
        ...(cursor === undefined ? {} : { cursor }),
        ...(presence === true ? { presence } : {}),
        ...refPart,
      };
    }
    case 'unsubscribe':
      return { type: 'unsubscribe', channel: stringField(frame, 'channel'), ...refPart };
    case 'publish': {
      const event = optionalStringField(frame, 'event');
      const idempotencyKey = optionalStringField(frame, 'idempotencyKey');
      const exclude = frame.exclude === true ? true : optionalStringField(frame, 'exclude');
      return {
        type: 'publish',
        channel: stringField(frame, 'channel'),
        data: stringField(frame, 'data'),
        ...(event === undefined ? {} : { event }),
        ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
        ...(exclude === undefined ? {} : { exclude }),
        ...refPart,
      };
    }
    case 'ping':
      return { type: 'ping', ...refPart };
    default:
      throw new FrameError('type is one of subscribe, unsubscribe, publish, ping');
  }
}

const SERVER_FRAME_TYPES: ReadonlySet<string> = new Set<ServerFrame['type']>([
  'message', 'gap', 'subscribed', 'unsubscribed', 'published', 'pong', 'error',
]);

/**
 * A frame from the hub. The client trusts the hub for the fields of each type
 * (it reads them as declared) but checks that the frame is an object of a
 * known type, and that a gap is a gap notice.
 */
export function parseServerFrame(text: string): ServerFrame {
  const frame = jsonObject(text);
  if (typeof frame.type !== 'string' || !SERVER_FRAME_TYPES.has(frame.type)) {
    throw new FrameError(`unknown frame type ${JSON.stringify(frame.type)}`);
  }
  if (frame.type === 'gap') {
    const notice = parseGapNotice(frame);
    if (notice === undefined) throw new FrameError('a gap frame holds a gap notice');
    return gapFrame(notice, stringField(frame, 'id'));
  }
  return frame as unknown as ServerFrame;
}
