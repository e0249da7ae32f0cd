import { Agent, type IncomingMessage, request } from 'node:http';
import type { Readable } from 'node:stream';
import { KometaError } from '../core/errors.js';
import type { RawHeaders } from './headers.js';

export interface OriginOptions {
  /** Time from sending a request to receiving the origin's response head. */
  readonly responseTimeoutMs: number;
  /** Idle keep-alive connections kept open to the origin. */
  readonly maxFreeSockets: number;
}

export const defaultOriginOptions: OriginOptions = {
  responseTimeoutMs: 30_000,
  maxFreeSockets: 64,
};

/** The origin server behind the proxy: one base URL, one keep-alive agent. */
export class Origin {
  readonly base: URL;
  readonly options: OriginOptions;
  readonly #agent: Agent;

  constructor(url: string | URL, options: Partial<OriginOptions> = {}) {
    const base = new URL(url);
    if (base.protocol !== 'http:') throw new TypeError(`the origin must be an http:// URL, got ${base.protocol}`);
    if (base.username !== '' || base.password !== '' || base.search !== '' || base.hash !== '') {
      throw new TypeError('the origin URL is scheme, host and port only (and an optional path prefix)');
    }
    this.base = base;
    this.options = { ...defaultOriginOptions, ...options };
    this.#agent = new Agent({ keepAlive: true, maxFreeSockets: this.options.maxFreeSockets });
  }

  /** The path to request at the origin for a client's request path (the origin's path prefix, if any, in front). */
  pathFor(clientPath: string): string {
    const prefix = this.base.pathname.endsWith('/') ? this.base.pathname.slice(0, -1) : this.base.pathname;
    return prefix + (clientPath.startsWith('/') ? clientPath : `/${clientPath}`);
  }

  /**
   * Resolve a next link or Kometa-Defer URL against the client's request
   * path. It must stay on the origin: an instruction cannot send kometa to
   * another host.
   */
  resolve(link: string, clientPath: string): string {
    let url: URL;
    try {
      url = new URL(link, new URL(clientPath, 'http://client.invalid'));
    } catch {
      throw new KometaError('KOMETA_ERR_ORIGIN_INSTRUCTION', 'a next URL does not parse');
    }
    if (url.origin !== 'http://client.invalid' && url.origin !== this.base.origin) {
      throw new KometaError('KOMETA_ERR_ORIGIN_INSTRUCTION', 'a next URL points away from the origin');
    }
    return url.pathname + url.search;
  }

  /**
   * Send one request; resolves with the response head. Rejects with
   * KOMETA_ERR_ORIGIN_UNAVAILABLE (cannot connect, or the connection drops
   * before a response), KOMETA_ERR_ORIGIN_TIMEOUT, or the signal's reason
   * when the client goes away first.
   */
  request(
    method: string,
    clientPath: string,
    headers: RawHeaders,
    body: Readable | undefined,
    signal: AbortSignal,
  ): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const raw = headers.slice();
      // node:http adds no Host to a raw header list; HTTP/1.1 requires one.
      if (!raw.some((name, i) => i % 2 === 0 && name.toLowerCase() === 'host')) raw.push('Host', this.base.host);
      const req = request({
        host: this.base.hostname,
        port: this.base.port === '' ? 80 : Number(this.base.port),
        method,
        path: this.pathFor(clientPath),
        headers: raw,
        agent: this.#agent,
        signal,
      });
      const timer = setTimeout(() => {
        req.destroy(new KometaError(
          'KOMETA_ERR_ORIGIN_TIMEOUT',
          `The origin did not answer within ${this.options.responseTimeoutMs / 1000} s`,
        ));
      }, this.options.responseTimeoutMs);
      timer.unref();
      req.once('response', (res) => {
        clearTimeout(timer);
        resolve(res);
      });
      req.once('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (signal.aborted) reject(signal.reason);
        else if (error instanceof KometaError) reject(error);
        else reject(new KometaError(
          'KOMETA_ERR_ORIGIN_UNAVAILABLE',
          `The origin at ${this.base.host} could not be reached (${error.code ?? error.message})`,
        ));
      });
      if (body === undefined) {
        req.end();
      } else {
        // pipe, not pipeline: an origin that answers early and closes must not
        // take the client's connection down with it.
        body.pipe(req);
        req.once('error', () => body.unpipe(req));
      }
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}
