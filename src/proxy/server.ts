import { type Server, createServer } from 'node:http';
import type { GripProxy } from './proxy.js';
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
  const server = createServer(
    { maxHeaderSize: settings.maxHeaderBytes, connectionsCheckingInterval: Math.min(1000, settings.headersTimeoutMs) },
    proxy.handle,
  );
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
        server.close(() => {
          clearTimeout(grace);
          proxy.close();
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}
