import type { IncomingMessage } from 'node:http';
import { KometaError } from '../core/errors.js';

/** Read a request body, refusing as soon as it passes `maxBytes` rather than buffering it all. */
export async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) throw tooLarge(maxBytes);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const piece of req as AsyncIterable<Buffer>) {
    total += piece.length;
    if (total > maxBytes) throw tooLarge(maxBytes);
    chunks.push(piece);
  }
  return Buffer.concat(chunks, total);
}

function tooLarge(maxBytes: number): KometaError {
  return new KometaError('KOMETA_ERR_BODY_TOO_LARGE', `Bodies are limited to ${maxBytes} bytes`, { limit: maxBytes });
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The publishable media types: text of any kind and JSON. A form-encoded body
 * is taken as the text it is, undecoded, because that is what `curl -d` sends
 * by default. Everything else (binary, multipart) is a 415.
 */
export function decodePublishBody(contentType: string | undefined, body: Buffer): string {
  const mediaType = (contentType ?? 'text/plain').split(';')[0]!.trim().toLowerCase();
  const isJson = mediaType === 'application/json' || (mediaType.startsWith('application/') && mediaType.endsWith('+json'));
  if (!isJson && !mediaType.startsWith('text/') && mediaType !== 'application/x-www-form-urlencoded') {
    throw new KometaError('KOMETA_ERR_MEDIA_TYPE', 'Publish text (text/*) or JSON (application/json)', { mediaType });
  }
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new KometaError('KOMETA_ERR_BODY_ENCODING');
  }
  if (isJson) {
    try {
      JSON.parse(text);
    } catch {
      throw new KometaError('KOMETA_ERR_BODY_JSON');
    }
  }
  return text;
}
