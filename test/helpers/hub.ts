import { request } from 'node:http';
import { MemoryBroker, type MemoryBrokerOptions } from '../../src/brokers/memory.js';
import type { Broker } from '../../src/core/broker.js';
import { Hub, type HubLimits } from '../../src/core/hub.js';
import type { PresenceOptions } from '../../src/core/presence.js';
import { type HubHttpOptions, type HubServer, createHubServer } from '../../src/http/hub-server.js';

export interface TestHub {
  readonly url: string;
  readonly port: number;
  readonly hub: Hub;
  readonly broker: Broker;
  readonly server: HubServer;
  close(): Promise<void>;
}

/** A hub on 127.0.0.1 and a free port, with the in-memory broker unless one is given. */
export async function startHub(
  options: {
    http?: Partial<HubHttpOptions>;
    limits?: Partial<HubLimits>;
    memory?: MemoryBrokerOptions;
    broker?: Broker;
    presence?: Partial<PresenceOptions>;
  } = {},
): Promise<TestHub> {
  const broker = options.broker ?? new MemoryBroker(options.memory);
  const hub = new Hub(broker, options.limits, options.presence);
  const server = createHubServer(hub, { shutdownGraceMs: 200, ...options.http });
  const { port } = await server.listen(0, '127.0.0.1');
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    hub,
    broker,
    server,
    close: async () => {
      await server.close();
      await broker.close();
    },
  };
}

export interface SimpleResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json<T = unknown>(): T;
}

/** One HTTP request with node:http, body read to the end. */
export function httpRequest(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    // Split by hand: WHATWG URL parsing would normalise paths like /sub/.. before they are sent.
    const parts = /^http:\/\/([^/:]+):(\d+)(.*)$/.exec(url);
    if (parts === null) throw new Error(`not an http URL with a port: ${url}`);
    const target = { host: parts[1], port: Number(parts[2]), path: parts[3] || '/' };
    const req = request({ ...target, method: init.method ?? 'GET', headers: init.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

export async function publish(
  baseUrl: string,
  channel: string,
  data: string,
  event?: string,
): Promise<{ channel: string; id: string; subscribers: number }> {
  const res = await httpRequest(`${baseUrl}/pub/${channel}${event ? `?event=${event}` : ''}`, {
    method: 'POST',
    headers: { 'Content-Type': 'text/plain' },
    body: data,
  });
  if (res.status !== 201) throw new Error(`publish failed: ${res.status} ${res.body}`);
  return res.json();
}

/** Resolve when `predicate` is true, polling every 10 ms; reject after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
