import { type ChildProcess, spawn } from 'node:child_process';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { type AddressInfo, connect, createServer as createNetServer } from 'node:net';
import { MemoryBroker } from '../../src/brokers/memory.js';
import { Hub } from '../../src/core/hub.js';
import type { HubServer } from '../../src/http/hub-server.js';
import { createControlServer } from '../../src/proxy/control.js';
import { GripProxy, type ProxyErrorReport, type ProxyOptions } from '../../src/proxy/proxy.js';
import { type ProxyServer, createProxyServer } from '../../src/proxy/server.js';

export interface ProxyStack {
  readonly url: string;
  readonly port: number;
  readonly controlUrl: string;
  readonly hub: Hub;
  readonly proxy: GripProxy;
  readonly errors: ProxyErrorReport[];
  close(): Promise<void>;
}

/** kometa proxy in this process: a hub, the public proxy port and the control port, all on 127.0.0.1 and free ports. */
export async function startProxy(origin: string, options: Partial<ProxyOptions> = {}): Promise<ProxyStack> {
  const broker = new MemoryBroker();
  const hub = new Hub(broker);
  const errors: ProxyErrorReport[] = [];
  const proxy = new GripProxy(hub, { origin, onError: (report) => errors.push(report), ...options });
  const server: ProxyServer = createProxyServer(proxy, { shutdownGraceMs: 200 });
  const control: HubServer = createControlServer(hub, { http: { shutdownGraceMs: 200 } });
  const { port } = await server.listen(0, '127.0.0.1');
  const { port: controlPort } = await control.listen(0, '127.0.0.1');
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    controlUrl: `http://127.0.0.1:${controlPort}`,
    hub,
    proxy,
    errors,
    close: async () => {
      await control.close();
      await server.close();
      await broker.close();
    },
  };
}

/** A node:http origin for cases no framework is needed for; counts requests per path. */
export async function startNodeOrigin(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; server: Server; hits: Map<string, number>; close(): Promise<void> }> {
  const hits = new Map<string, number>();
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A port that was free a moment ago (for processes that must be told their port). */
export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface PythonProcess {
  readonly child: ChildProcess;
  readonly port: number;
  output(): string;
  kill(): Promise<void>;
}

/** Debian's Python (the one that sees python3-django), not a pyenv build on PATH. */
export const PYTHON = '/usr/bin/python3';

/**
 * Start a Python server and wait until it accepts connections (bounded).
 * The caller kills it by PID in t.after.
 */
export async function startPython(
  args: string[],
  options: { cwd: string; port: number; env?: Record<string, string>; timeoutMs?: number },
): Promise<PythonProcess> {
  const child = spawn(PYTHON, args, {
    cwd: options.cwd,
    env: { ...process.env, PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid!, 'SIGTERM');
      const timer = setTimeout(
        () => child.exitCode === null && child.signalCode === null && process.kill(child.pid!, 'SIGKILL'),
        3000,
      );
      await exited;
      clearTimeout(timer);
    }
  };
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  while (!(await portOpen(options.port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await kill();
      throw new Error(`python ${args.join(' ')} did not start listening on ${options.port}:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, port: options.port, output: () => output, kill };
}

/** POST a Pushpin publish body to the control port. */
export async function publishItems(controlUrl: string, items: unknown[]): Promise<{ status: number; body: string }> {
  const response = await fetch(`${controlUrl}/publish/`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ items }),
  });
  return { status: response.status, body: await response.text() };
}
