import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { expressComet } from '../../src/adapters/express.js';
import { fastifyComet } from '../../src/adapters/fastify.js';
import { honoComet } from '../../src/adapters/hono.js';
import { nodeComet } from '../../src/adapters/node-http.js';
import type { Comet } from '../../src/comet/comet.js';
import type { CometHandler } from '../../src/comet/types.js';

export const frameworks = ['node', 'express', 'fastify', 'hono'] as const;
export type Framework = (typeof frameworks)[number];

export interface CometServers {
  readonly ports: Readonly<Record<Framework, number>>;
  close(): Promise<void>;
}

function listening(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    const done = (): void => resolve((server.address() as AddressInfo).port);
    if (server.listening) done();
    else {
      server.once('listening', done);
      server.once('error', reject);
    }
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/**
 * The same routes, the same handler functions, in node:http, Express 5, Fastify 5 and Hono 4, each on 127.0.0.1 and a
 * free port.
 */
export async function startCometServers(
  routes: Readonly<Record<string, CometHandler>>,
  comet: Comet,
): Promise<CometServers> {
  const nodeRoutes = new Map(Object.entries(routes).map(([path, handler]) => [path, nodeComet(handler, comet)]));
  const nodeServer = createServer((req, res) => {
    const route = nodeRoutes.get((req.url ?? '/').split('?')[0]!);
    if (route !== undefined) route(req, res);
    else res.writeHead(404).end();
  });
  nodeServer.listen(0, '127.0.0.1');

  const expressApp = express();
  for (const [path, handler] of Object.entries(routes)) expressApp.get(path, expressComet(handler, comet));
  const expressServer = expressApp.listen(0, '127.0.0.1');

  const fastifyApp = Fastify();
  for (const [path, handler] of Object.entries(routes)) fastifyApp.get(path, fastifyComet(handler, comet));
  await fastifyApp.listen({ port: 0, host: '127.0.0.1' });

  const honoApp = new Hono();
  for (const [path, handler] of Object.entries(routes)) honoApp.get(path, honoComet(handler, comet));
  const honoServer = serve({ fetch: honoApp.fetch, port: 0, hostname: '127.0.0.1' }) as Server;

  const ports = {
    node: await listening(nodeServer),
    express: await listening(expressServer),
    fastify: (fastifyApp.server.address() as AddressInfo).port,
    hono: await listening(honoServer),
  };
  return {
    ports,
    close: async () => {
      fastifyApp.server.closeAllConnections();
      await Promise.all([
        closeServer(nodeServer),
        closeServer(expressServer),
        fastifyApp.close(),
        closeServer(honoServer),
      ]);
    },
  };
}
