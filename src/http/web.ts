import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { bundle } from './bundle.js';

/*
 * What the hub serves to browsers: the client as one ES module at
 * /kometa.js (for every hub), and the chat at / (for `kometa serve`).
 * Files are read and bundled once, on first request, and kept in memory.
 */

/** dist/src/ (or src/ when run from sources): the compiled client and chat live under it. */
const compiledRoot = new URL('../', import.meta.url);
/** The package's web/ folder: HTML and CSS of the pages. */
const webRoot = new URL('../../../web/', import.meta.url);

interface Asset {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
}

function asset(body: string | Buffer, type: string): Asset {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  return { body: bytes, type, etag: `"${createHash('sha256').update(bytes).digest('base64url').slice(0, 27)}"` };
}

type Loader = () => Asset;

function once(load: Loader): Loader {
  let cached: Asset | undefined;
  return () => (cached ??= load());
}

const JS = 'text/javascript; charset=utf-8';

const clientScript = once(() =>
  asset(`// kometa client, one ES module. Source: src/client/ of the kometa package.\n${bundle(fileURLToPath(new URL('client/index.js', compiledRoot)))}`, JS),
);

/** Serve one asset with an ETag, so a browser revalidates instead of downloading again. */
function send(req: IncomingMessage, res: ServerResponse, load: Loader): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  let file: Asset;
  try {
    file = load();
  } catch {
    return false;
  }
  const headers = {
    'Content-Type': file.type,
    'Cache-Control': 'no-cache',
    ETag: file.etag,
    'X-Content-Type-Options': 'nosniff',
  };
  if (req.headers['if-none-match'] === file.etag) {
    res.writeHead(304, headers);
    res.end();
    return true;
  }
  res.writeHead(200, { ...headers, 'Content-Length': String(file.body.length) });
  res.end(req.method === 'HEAD' ? undefined : file.body);
  return true;
}

function pathOf(req: IncomingMessage): string {
  return (req.url ?? '/').split('?')[0]!;
}

/** `/kometa.js`: the client bundled into one ES module that exports `Kometa`. */
export function serveClientScript(req: IncomingMessage, res: ServerResponse): boolean {
  return pathOf(req) === '/kometa.js' && send(req, res, clientScript);
}

const chatPages: Record<string, Loader> = {
  '/': once(() => asset(readFileSync(new URL('index.html', webRoot)), 'text/html; charset=utf-8')),
  '/chat.css': once(() => asset(readFileSync(new URL('chat.css', webRoot)), 'text/css; charset=utf-8')),
  '/favicon.svg': once(() => asset(readFileSync(new URL('favicon.svg', webRoot)), 'image/svg+xml')),
  // The chat's script imports the client from /kometa.js, so the browser loads the client once.
  '/chat.js': once(() =>
    asset(
      bundle(fileURLToPath(new URL('web/chat.js', compiledRoot)), {
        externals: { [fileURLToPath(new URL('client/index.js', compiledRoot))]: '/kometa.js' },
      }),
      JS,
    ),
  ),
};

/** The chat: `/`, `/chat.js`, `/chat.css`, `/favicon.svg`. Returns false for anything else. */
export function serveChat(req: IncomingMessage, res: ServerResponse): boolean {
  const path = pathOf(req);
  const load = chatPages[path === '/index.html' ? '/' : path];
  return load !== undefined && send(req, res, load);
}

/** Put the chat in front of another fallback handler (the CLI's /seed route, or a 404). */
export function withChat(next: (req: IncomingMessage, res: ServerResponse) => void): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    if (!serveChat(req, res)) next(req, res);
  };
}

const dashboardPages: Record<string, Loader> = {
  '/': once(() => asset(readFileSync(new URL('dashboard.html', webRoot)), 'text/html; charset=utf-8')),
  '/dashboard.css': once(() => asset(readFileSync(new URL('dashboard.css', webRoot)), 'text/css; charset=utf-8')),
  '/favicon.svg': chatPages['/favicon.svg']!,
  '/dashboard.js': once(() =>
    asset(
      bundle(fileURLToPath(new URL('web/dashboard.js', compiledRoot)), {
        externals: { [fileURLToPath(new URL('client/index.js', compiledRoot))]: '/kometa.js' },
      }),
      JS,
    ),
  ),
};

/** The operator's dashboard, by its path under /_kometa (`/`, `/dashboard.js`, …); the caller checks the credential first. */
export function serveDashboard(req: IncomingMessage, res: ServerResponse, path: string): boolean {
  const load = dashboardPages[path];
  return load !== undefined && send(req, res, load);
}
