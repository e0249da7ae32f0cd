import type { ServerResponse } from 'node:http';
import { reportError } from '../core/diagnostics.js';
import { KometaError, toProblem } from '../core/errors.js';
import { endWithBody } from './send-json.js';

/**
 * RFC 9110 section 11.6.1: "A server generating a 401 (Unauthorized)
 * response MUST send a WWW-Authenticate header field containing at least one
 * challenge." Every credential the hub takes is a bearer (RFC 6750).
 */
export const BEARER_CHALLENGE = 'Bearer realm="kometa"';

function challenge(error: KometaError): Record<string, string> {
  return error.status === 401 ? { 'WWW-Authenticate': BEARER_CHALLENGE } : {};
}

/** Answer with RFC 9457 problem details. Unknown errors become a 500 without leaking their text. */
export function sendProblem(res: ServerResponse, error: unknown, headers: Record<string, string> = {}): void {
  const expected = error instanceof KometaError;
  const known = expected ? error : new KometaError('KOMETA_ERR_INTERNAL', 'The server failed to handle the request');
  // An unexpected throw: the client learns nothing of it, the kometa:error watcher (the CLI's log) gets the cause.
  reportError({ code: known.code, status: known.status, transport: 'http', ...(expected ? {} : { cause: error }) });
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(toProblem(known));
  res.writeHead(known.status, {
    'Content-Type': 'application/problem+json',
    'Content-Length': String(Buffer.byteLength(body)),
    'Cache-Control': 'no-store',
    ...challenge(known),
    ...headers,
  });
  endWithBody(res, body);
}

/**
 * A route's failure as problem details: a KometaError is the route refusing
 * on purpose (with its Retry-After, when it has one); anything else is a bug
 * or a broken dependency, a 500 that says nothing of it to the client.
 */
export function answerFailure(res: ServerResponse, error: unknown): void {
  const retryAfter = error instanceof KometaError ? error.extra?.retryAfter : undefined;
  sendProblem(res, error, retryAfter === undefined ? {} : { 'Retry-After': String(retryAfter) });
}

/** The same body as a raw HTTP/1.1 response, for sockets node:http could not parse a request from. */
export function rawProblemResponse(error: KometaError): string {
  reportError({ code: error.code, status: error.status, transport: 'http' });
  const body = JSON.stringify(toProblem(error));
  return (
    `HTTP/1.1 ${error.status} ${error.title}\r\n` +
    'Content-Type: application/problem+json\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    Object.entries(challenge(error))
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join('') +
    'Connection: close\r\n\r\n' +
    body
  );
}
