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
  KOMETA_ERR_NOT_FOUND: { status: 404, title: 'Not found' },
  KOMETA_ERR_METHOD: { status: 405, title: 'Method not allowed' },
  KOMETA_ERR_REQUEST_TIMEOUT: { status: 408, title: 'Request not received in time' },
  KOMETA_ERR_BODY_TOO_LARGE: { status: 413, title: 'Body too large' },
  KOMETA_ERR_MEDIA_TYPE: { status: 415, title: 'Unsupported media type' },
  KOMETA_ERR_HEADERS_TOO_LARGE: { status: 431, title: 'Request headers too large' },
  KOMETA_ERR_SLOW_CONSUMER: { status: 503, title: 'Subscriber could not keep up' },
  KOMETA_ERR_INTERNAL: { status: 500, title: 'Internal error' },
  KOMETA_ERR_BROKER_UNAVAILABLE: { status: 503, title: 'Message store unavailable' },
  KOMETA_ERR_DRAINING: { status: 503, title: 'Server is shutting down' },
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
