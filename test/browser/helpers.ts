import { type ChildProcess, spawn } from 'node:child_process';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import type { TestContext } from 'node:test';
import { type Browser, type Page, chromium } from 'playwright-core';
import { MemoryBroker, type MemoryBrokerOptions } from '../../src/brokers/memory.js';
import { Hub } from '../../src/core/hub.js';
import type { PresenceOptions } from '../../src/core/presence.js';
import { type HubHttpOptions, createHubServer } from '../../src/http/hub-server.js';
import { withChat } from '../../src/http/web.js';
import { trackSockets } from '../client/helpers.js';
import type { TestHub } from '../helpers/hub.js';
import { dataDirArgs } from '../helpers/data-dir.js';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Debian's Chromium through playwright-core (which gives it a fresh user-data-dir); closed when the test ends. */
export async function launchBrowser(t: TestContext): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS, timeout: 30_000 });
  t.after(() => browser.close());
  return browser;
}

/** A blank page on the hub's origin, for pages that drive the client themselves. */
function blankPage(req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(req.url === '/blank' ? 200 : 404, { 'Content-Type': 'text/html; charset=utf-8' });
  res.end('<!doctype html><meta charset="utf-8"><title>kometa test</title>');
}

export interface WebHub extends TestHub {
  destroyConnections(): number;
}

/** A hub that also serves the chat (as `kometa serve` does) and /blank. */
export async function startWebHub(
  t: TestContext,
  http: Partial<HubHttpOptions> = {},
  brokerOptions: MemoryBrokerOptions = {},
  presence: Partial<PresenceOptions> = {},
): Promise<WebHub> {
  const broker = new MemoryBroker(brokerOptions);
  const hub = new Hub(broker, undefined, presence);
  const server = createHubServer(hub, { shutdownGraceMs: 200, ...http }, withChat(blankPage));
  const sockets = trackSockets(server.server);
  const { port } = await server.listen(0, '127.0.0.1');
  const handle: WebHub = {
    url: `http://127.0.0.1:${port}`,
    port,
    hub,
    broker,
    server,
    destroyConnections: () => sockets.destroyAll(),
    close: async () => {
      await server.close();
      await broker.close();
    },
  };
  t.after(() => handle.close());
  return handle;
}

/**
 * In the page: load /kometa.js, make a client with the given options and
 * follow `channel`, recording messages, gaps and state changes on `window.t`.
 */
export async function openClientPage(
  browser: Browser,
  t: TestContext,
  url: string,
  channel: string,
  options: Record<string, unknown>,
): Promise<Page> {
  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  t.after(() => {
    if (errors.length > 0) throw new Error(`page errors: ${errors.join('; ')}`);
  });
  await page.goto(url);
  await page.evaluate(clientScript(channel, options));
  return page;
}

/** The script openClientPage runs in its page: a client from /kometa.js following `channel`, recording on window.t. */
export function clientScript(channel: string, options: Record<string, unknown>): string {
  return `(async () => {
    const { Kometa } = await import('/kometa.js');
    const t = (window.t = { messages: [], gaps: [], states: [], errors: [] });
    const k = (window.k = new Kometa(location.origin, ${JSON.stringify({
      backoff: { baseMs: 50, maxMs: 500 },
      ...options,
    })}));
    k.on('state', (s) => t.states.push(s));
    k.subscribe(${JSON.stringify(channel)}, {
      onMessage: (m) => t.messages.push(m),
      onGap: (g) => t.gaps.push(g),
      onError: (e) => t.errors.push(String(e)),
    });
  })()`;
}

export interface PageRecord {
  messages: { channel: string; id: string; data: string }[];
  gaps: { channel: string; reason: string }[];
  states: { state: string; previous: string; reason: string; transport?: string }[];
  errors: string[];
}

export function record(page: Page): Promise<PageRecord> {
  return page.evaluate('window.t') as Promise<PageRecord>;
}

export async function waitForPage(page: Page, predicate: string, timeoutMs = 15_000): Promise<void> {
  await page.waitForFunction(predicate, undefined, { timeout: timeoutMs, polling: 20 });
}

/** Sequence numbers of message ids, to check order and uniqueness. */
export function seqs(messages: readonly { id: string }[]): number[] {
  return messages.map((m) => Number(m.id.split('~')[2]));
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  await new Promise<void>((r) => server.close(() => r()));
  return typeof address === 'object' && address !== null ? address.port : 0;
}

/** `kometa serve` as a child process (the in-memory hub), resolved once it answers /healthz. */
export async function startCli(port: number, dataDir?: string): Promise<ChildProcess> {
  const main = resolve(import.meta.dirname, '../../src/cli/main.js');
  const store = dataDir === undefined ? dataDirArgs() : ['--data-dir', dataDir];
  const child = spawn(
    process.execPath,
    [main, 'serve', '--port', String(port), '--host', '127.0.0.1', '--shutdown-grace', '1', ...store],
    { stdio: 'ignore' },
  );
  // A loaded machine can take several seconds to start node; a child that never answered is killed, so that
  // a failed start does not leave it holding the test file open.
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (response.ok) return child;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error('kometa serve did not start');
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  await exited;
}
