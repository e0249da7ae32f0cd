import { WS_CLOSE, hubErrorCloseCode } from '../protocol/websocket.js';

/**
 * Every error kometa reports to a client has a stable code from this table.
 * The HTTP layer turns a KometaError into RFC 9457 problem details; the
 * WebSocket layer into a close code and an error frame. docs/errors.md lists
 * every code, and a test keeps the two in step.
 */
export const errorCodes = {
  KOMETA_ERR_CHANNEL_NAME: { status: 400, title: 'Invalid channel name' },
  KOMETA_ERR_CHANNEL_MISSING: { status: 400, title: 'No channel given' },
  KOMETA_ERR_TOO_MANY_CHANNELS: { status: 400, title: 'Too many channels in one subscription' },
  KOMETA_ERR_CURSOR: { status: 400, title: 'Malformed cursor' },
  KOMETA_ERR_CURSOR_AHEAD: { status: 400, title: 'Cursor points past the end of the channel' },
  KOMETA_ERR_TRANSPORT: { status: 400, title: 'Unknown transport' },
  KOMETA_ERR_EVENT_NAME: { status: 400, title: 'Invalid event name' },
  KOMETA_ERR_TIMEOUT_PARAM: { status: 400, title: 'Invalid timeout' },
  KOMETA_ERR_BODY_ENCODING: { status: 400, title: 'Body is not valid UTF-8' },
  KOMETA_ERR_BODY_JSON: { status: 400, title: 'Body is not valid JSON' },
  KOMETA_ERR_BAD_REQUEST: { status: 400, title: 'Malformed HTTP request' },
  KOMETA_ERR_PATTERN: { status: 400, title: 'Invalid channel pattern' },
  KOMETA_ERR_PRESENCE_EVENTS_OFF: { status: 400, title: 'In-band presence events are off on this server' },
  KOMETA_ERR_UNAUTHORIZED: { status: 401, title: 'Credentials missing or invalid' },
  KOMETA_ERR_TOKEN_EXPIRED: { status: 401, title: 'Token expired' },
  KOMETA_ERR_TICKET: { status: 401, title: 'Ticket unknown, used or expired' },
  KOMETA_ERR_TOKEN_REVOKED: { status: 401, title: 'Token revoked' },
  KOMETA_ERR_FORBIDDEN: { status: 403, title: 'Not allowed for this channel' },
  KOMETA_ERR_ORIGIN: { status: 403, title: 'Origin not allowed' },
  KOMETA_ERR_NOT_FOUND: { status: 404, title: 'Not found' },
  KOMETA_ERR_METHOD: { status: 405, title: 'Method not allowed' },
  KOMETA_ERR_REQUEST_TIMEOUT: { status: 408, title: 'Request not received in time' },
  KOMETA_ERR_BODY_TOO_LARGE: { status: 413, title: 'Body too large' },
  KOMETA_ERR_MEDIA_TYPE: { status: 415, title: 'Unsupported media type' },
  KOMETA_ERR_RATE_LIMITED: { status: 429, title: 'Too many requests' },
  KOMETA_ERR_TOO_MANY_CONNECTIONS: { status: 429, title: 'Too many connections' },
  KOMETA_ERR_HEADERS_TOO_LARGE: { status: 431, title: 'Request headers too large' },
  KOMETA_ERR_SLOW_CONSUMER: { status: 503, title: 'Subscriber could not keep up' },
  KOMETA_ERR_INTERNAL: { status: 500, title: 'Internal error' },
  KOMETA_ERR_BROKER_UNAVAILABLE: { status: 503, title: 'Message store unavailable' },
  KOMETA_ERR_STORE_WRITE: { status: 503, title: 'Message could not be written to disk' },
  KOMETA_ERR_DRAINING: { status: 503, title: 'Server is shutting down' },
  KOMETA_ERR_BUSY: { status: 503, title: 'Too many new subscriptions at once' },
  KOMETA_ERR_WS_FRAME: { status: 400, title: 'Malformed WebSocket frame' },
  KOMETA_ERR_WS_BINARY: { status: 400, title: 'Binary WebSocket frames are not accepted' },
  KOMETA_ERR_ALREADY_SUBSCRIBED: { status: 409, title: 'Already subscribed to this channel on this connection' },
  KOMETA_ERR_PUBLISH_DISABLED: { status: 403, title: 'Publishing over WebSocket is turned off on this hub' },
  KOMETA_ERR_PUBLISH_ITEM: { status: 400, title: 'Malformed publish item' },
  KOMETA_ERR_BATCH: { status: 400, title: 'Malformed batch' },
  KOMETA_ERR_BATCH_TOO_LARGE: { status: 413, title: 'Batch too large' },
  KOMETA_ERR_HISTORY_PARAM: { status: 400, title: 'Invalid history query' },
  KOMETA_ERR_PRESENCE_PARAM: { status: 400, title: 'Invalid presence query' },
  KOMETA_ERR_IDEMPOTENCY_KEY: { status: 400, title: 'Invalid idempotency key' },
  KOMETA_ERR_IDEMPOTENCY_CONFLICT: { status: 422, title: 'Idempotency key reused for a different request' },
  KOMETA_ERR_IDEMPOTENCY_PENDING: { status: 409, title: 'A request with this idempotency key is still in progress' },
  KOMETA_ERR_DISCONNECT_TARGET: { status: 400, title: 'Invalid disconnect request' },
  KOMETA_ERR_EXCLUDE_CLIENT: { status: 400, title: 'Invalid client id to exclude' },
  KOMETA_ERR_DISCONNECTED: { status: 410, title: 'Disconnected by the application' },
  KOMETA_ERR_ORIGIN_UNAVAILABLE: { status: 502, title: 'Origin unreachable' },
  KOMETA_ERR_ORIGIN_INSTRUCTION: { status: 502, title: 'Origin sent instructions kometa cannot follow' },
  KOMETA_ERR_ORIGIN_TIMEOUT: { status: 504, title: 'Origin did not answer in time' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof errorCodes;

export class KometaError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly title: string;
  /** Extra members for the problem-details body (e.g. the limit that was hit). */
  readonly extra: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, detail?: string, extra?: Record<string, unknown>) {
    const entry = errorCodes[code];
    super(detail ?? entry.title);
    this.name = 'KometaError';
    this.code = code;
    this.status = entry.status;
    this.title = entry.title;
    this.extra = extra;
  }
}

/*
 * WebSocket close codes (RFC 6455 section 7.4). "Status codes in the range
 * 4000-4999 are reserved for private use", so an error that ends a WebSocket
 * connection closes it with 4000 + its HTTP status (4400 malformed frame,
 * 4503 slow consumer; 4401/4403/4429 stay free for access control and
 * limits), except where a registered code says the same thing better.
 * docs/websocket.md lists them.
 */
const wsCloseOverrides: Partial<Record<ErrorCode, number>> = {
  /** 1001 "going away, such as a server going down". */
  KOMETA_ERR_DRAINING: WS_CLOSE.goingAway,
  /**
   * 1003 "received a type of data it cannot accept (e.g., an endpoint that
   * understands only text data MAY send this if it receives a binary message)".
   */
  KOMETA_ERR_WS_BINARY: WS_CLOSE.unsupportedData,
  /** 1011 "encountered an unexpected condition that prevented it from fulfilling the request". */
  KOMETA_ERR_INTERNAL: WS_CLOSE.internalError,
};

/** The close code a WebSocket connection ends with when `code` ends it. */
export function wsCloseCode(code: ErrorCode): number {
  return wsCloseOverrides[code] ?? hubErrorCloseCode(errorCodes[code].status);
}

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  [extension: string]: unknown;
}

/** RFC 9457 body for an error; `type` is a URN so it never points at a host we do not control. */
export function toProblem(error: KometaError): ProblemDetails {
  return {
    type: `urn:kometa:error:${error.code.slice('KOMETA_ERR_'.length).toLowerCase().replaceAll('_', '-')}`,
    title: error.title,
    status: error.status,
    detail: error.message,
    code: error.code,
    ...error.extra,
  };
}
