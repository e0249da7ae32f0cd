import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import { KometaError } from '../core/errors.js';

/**
 * Read a request body, refusing as soon as it passes `maxBytes` rather than
 * buffering it all. Plain data/end listeners, not `for await`: the async
 * iterator costs a promise per chunk plus stream bookkeeping on every
 * publish (a third of the hub's CPU per delivery when each publish goes to
 * one subscriber, measured by the bench; see docs/benchmarks.md).
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    readBodyThen(req, maxBytes, (error, body) => (error === undefined ? resolve(body!) : reject(error)));
  });
}

/**
 * `readBody` with a callback, for the publish route's path without promises
 * (publish.ts): `done` is called once, with the body or with the error.
 */
export function readBodyThen(
  req: IncomingMessage,
  maxBytes: number,
  done: (error: unknown, body?: Buffer) => void,
): void {
  const encoding = req.headers['content-encoding'];
  // Bodies are taken as sent: a gzip-labelled body would otherwise be stored
  // as its compressed bytes (or refused as bad UTF-8, by luck).
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
    done(
      new KometaError('KOMETA_ERR_MEDIA_TYPE', 'Send the body without Content-Encoding (identity only)', {
        contentEncoding: encoding.slice(0, 32),
      }),
    );
    return;
  }
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) return done(tooLarge(maxBytes));
  if (req.readableEnded) return done(undefined, Buffer.alloc(0));
  if (req.destroyed) return done(prematureClose());
  const chunks: Buffer[] = [];
  let total = 0;
  const finish = (error?: unknown) => {
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('close', onClose);
    // One piece (the common case for a message) needs no copy.
    if (error === undefined) done(undefined, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total));
    else done(error);
  };
  const onData = (piece: Buffer) => {
    total += piece.length;
    if (total <= maxBytes) {
      chunks.push(piece);
      return;
    }
    // Stop reading; the caller answers 413 and closes the connection.
    finish(tooLarge(maxBytes));
    req.pause();
  };
  const onEnd = () => finish();
  // No 'error' listener: node:http emits a request's error only where one is
  // listened for, and 'close' follows it anyway (one listener less per publish).
  const onClose = () => finish(prematureClose());
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('close', onClose);
}

function prematureClose(): Error {
  return Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

function tooLarge(maxBytes: number): KometaError {
  return new KometaError('KOMETA_ERR_BODY_TOO_LARGE', `Bodies are limited to ${maxBytes} bytes`, { limit: maxBytes });
}


/**
 * The publishable media types: text of any kind and JSON. A form-encoded body
 * is taken as the text it is, undecoded, because that is what `curl -d` sends
 * by default. Everything else (binary, multipart) is a 415.
 */
export function decodePublishBody(contentType: string | undefined, body: Buffer): string {
  const mediaType = mediaTypeOf(contentType);
  const isJson =
    mediaType === 'application/json' || (mediaType.startsWith('application/') && mediaType.endsWith('+json'));
  if (!isJson && !mediaType.startsWith('text/') && mediaType !== 'application/x-www-form-urlencoded') {
    throw new KometaError('KOMETA_ERR_MEDIA_TYPE', 'Publish text (text/*) or JSON (application/json)', { mediaType });
  }
  // Checked, then decoded: cheaper per publish than a fatal TextDecoder, and the
  // same answer (a BOM is kept as U+FEFF either way: `ignoreBOM` was set).
  if (!isUtf8(body)) throw new KometaError('KOMETA_ERR_BODY_ENCODING');
  const text = body.toString('utf8');
  if (isJson) {
    try {
      JSON.parse(text);
    } catch {
      throw new KometaError('KOMETA_ERR_BODY_JSON');
    }
  }
  return text;
}

/** The media type of a Content-Type, lower case, without parameters (the exact common ones cost no copy). */
function mediaTypeOf(contentType: string | undefined): string {
  if (contentType === undefined) return 'text/plain';
  if (contentType === 'text/plain' || contentType === 'application/json') return contentType;
  const semicolon = contentType.indexOf(';');
  return (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
}
