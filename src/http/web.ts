import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { KometaError } from '../core/errors.js';
import { sendProblem } from './problem.js';

/*
 * What the hub serves to browsers: the client as one ES module at
 * /kometa.js (for every hub), and the chat at / (for `kometa serve`).
 * The scripts are built by esbuild at build time (`npm run build:web`,
 * scripts/build-web.mjs) into dist/web/; HTML and CSS come from web/.
 * Files are read once, on first request, and kept in memory.
 */

/** dist/web/: the scripts esbuild built from src/client/ and src/web/. */
const builtRoot = new URL('../../web/', import.meta.url);
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

const clientScript = once(() => asset(readFileSync(new URL('kometa.js', builtRoot)), JS));

/** Serve one asset with an ETag, so a browser revalidates instead of downloading again. */
function send(req: IncomingMessage, res: ServerResponse, load: Loader): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  let file: Asset;
  try {
    file = load();
  } catch (error) {
    // A script that was not built (or a file missing from the package) is the server's fault: a 500 and a
    // kometa:error event, never a 404 that looks like a wrong URL.
    const reason = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    sendProblem(
      res,
      new KometaError('KOMETA_ERR_INTERNAL', `A file of the web pages is missing (${reason}); run npm run build`),
    );
    return true;
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
  '/chat.js': once(() => asset(readFileSync(new URL('chat.js', builtRoot)), JS)),
};

/** The chat: `/`, `/chat.js`, `/chat.css`, `/favicon.svg`. Returns false for anything else. */
export function serveChat(req: IncomingMessage, res: ServerResponse): boolean {
  const path = pathOf(req);
  const load = chatPages[path === '/index.html' ? '/' : path];
  return load !== undefined && send(req, res, load);
}

/** Put the chat in front of another fallback handler (the CLI's /seed route, or a 404). */
export function withChat(
  next: (req: IncomingMessage, res: ServerResponse) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    if (!serveChat(req, res)) next(req, res);
  };
}

const dashboardPages: Record<string, Loader> = {
  '/': once(() => asset(readFileSync(new URL('dashboard.html', webRoot)), 'text/html; charset=utf-8')),
  '/dashboard.css': once(() => asset(readFileSync(new URL('dashboard.css', webRoot)), 'text/css; charset=utf-8')),
  '/favicon.svg': chatPages['/favicon.svg']!,
  '/dashboard.js': once(() => asset(readFileSync(new URL('dashboard.js', builtRoot)), JS)),
};

/**
 * The operator's dashboard, by its path under /_kometa (`/`, `/dashboard.js`, …); the caller checks the credential
 * first.
 */
export function serveDashboard(req: IncomingMessage, res: ServerResponse, path: string): boolean {
  const load = dashboardPages[path];
  return load !== undefined && send(req, res, load);
}
