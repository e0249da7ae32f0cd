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
  const encoding = req.headers['content-encoding'];
  // Bodies are taken as sent: a gzip-labelled body would otherwise be stored
  // as its compressed bytes (or refused as bad UTF-8, by luck).
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
    return Promise.reject(
      new KometaError('KOMETA_ERR_MEDIA_TYPE', 'Send the body without Content-Encoding (identity only)', {
        contentEncoding: encoding.slice(0, 32),
      }),
    );
  }
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) return Promise.reject(tooLarge(maxBytes));
  if (req.readableEnded) return Promise.resolve(Buffer.alloc(0));
  if (req.destroyed)
    return Promise.reject(Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const finish = (error?: unknown) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      // One piece (the common case for a message) needs no copy.
      if (error === undefined) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total));
      else reject(error);
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
    const onClose = () => finish(Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onClose);
  });
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
  const mediaType = (contentType ?? 'text/plain').split(';')[0]!.trim().toLowerCase();
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
