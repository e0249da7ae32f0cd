import { type Server, createServer } from 'node:http';
import { Server as NetServer } from 'node:net';
import type { GripProxy } from './proxy.js';
import { InOrder } from '../http/in-order.js';
import { answerMalformedRequests, listen } from '../http/server-setup.js';

export interface ProxyServerOptions {
  readonly headersTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly maxHeaderBytes: number;
  readonly shutdownGraceMs: number;
}

export const defaultProxyServerOptions: ProxyServerOptions = {
  headersTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  maxHeaderBytes: 16 * 1024,
  shutdownGraceMs: 5_000,
};

export interface ProxyServer {
  readonly server: Server;
  listen(port: number, host: string): Promise<{ port: number; host: string }>;
  close(): Promise<void>;
}

/**
 * The public port of `kometa proxy`: every request goes to the origin (no
 * path is kept for kometa, so the origin's URL space is whole). No request
 * timeout: a held request is meant to stay open.
 */
export function createProxyServer(proxy: GripProxy, options: Partial<ProxyServerOptions> = {}): ProxyServer {
  const settings = { ...defaultProxyServerOptions, ...options };
  // Held responses are endless too: nothing pipelined behind one may run unanswered.
  const server = createServer({ maxHeaderSize: settings.maxHeaderBytes, connectionsCheckingInterval: Math.min(1000, settings.headersTimeoutMs) }, new InOrder().requests(proxy.handle));
  server.headersTimeout = settings.headersTimeoutMs;
  server.requestTimeout = 0;
  server.keepAliveTimeout = settings.keepAliveTimeoutMs;
  answerMalformedRequests(server);
  return {
    server,
    listen: (port, host) => listen(server, port, host),
    close: () =>
      new Promise<void>((resolve) => {
        proxy.drain();
        const grace = setTimeout(() => server.closeAllConnections(), settings.shutdownGraceMs);
        grace.unref();
        // Stop listening but leave idle keep-alive connections a moment: cut
        // at once (node's server.close()), a request already on its way on
        // one would get a reset instead of an answer.
        const linger = setTimeout(() => server.close(), Math.min(1000, settings.shutdownGraceMs));
        linger.unref();
        NetServer.prototype.close.call(server, () => {
          clearTimeout(grace);
          clearTimeout(linger);
          proxy.close();
          resolve();
        });
      }),
  };
}
