/*
 * The systems under test: how to start each, how a subscriber asks for a
 * channel on each transport, and how to publish to it.
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { commandExists, spawnServer, stopProcess, waitForOutput } from './procs.js';
import type { SubscriberKind } from './protocol.js';
import { type PublishTarget, postRequest } from './publisher.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SERVERS = fileURLToPath(new URL('../servers/', import.meta.url));

export interface SubscriberSpec {
  readonly kind: SubscriberKind;
  readonly path: string;
  readonly readyToken?: string;
  readonly wsFrame?: string;
  readonly wsSendAfter?: string;
}

export interface Running {
  /** Root of the process tree whose CPU and memory count as the server's. */
  readonly pid: number;
  readonly port: number;
  readonly publish: PublishTarget;
  stop(): Promise<void>;
}

export interface StartOptions {
  readonly port: number;
  readonly tmp: string;
  /** Write a V8 CPU profile here when the server exits (Node servers only). */
  readonly cpuProfDir?: string;
  /** kometa only: more `kometa serve` flags (e.g. --redis, --workers). */
  readonly serveArgs?: readonly string[];
}

export interface System {
  readonly name: string;
  readonly description: string;
  /** Why it cannot run here, or null. */
  unavailable(): string | null;
  version(): string;
  readonly transports: Partial<Record<'sse' | 'poll' | 'ws', SubscriberSpec>>;
  /** The transport its fan-out is measured on. */
  readonly fanout: 'sse' | 'ws';
  /** Resumes SSE subscribers from `Last-Event-ID`. */
  readonly resume: boolean;
  /** False for a `-nosub` variant: its publishes go to channels nobody follows, so nothing is delivered. */
  readonly delivers?: false;
  /** A decomposition aid (write floor, `-nosub`): runs in the many-channels scenario only, and only when named. */
  readonly channelsOnly?: true;
  start(options: StartOptions): Promise<Running>;
}

const SSE: SubscriberSpec = { kind: 'sse', path: '/sub/{ch}', readyToken: '\r\n\r\n' };

function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string })
      .version;
  } catch {
    return '?';
  }
}

function dpkgVersion(name: string): string {
  try {
    return execFileSync('dpkg-query', ['-W', '-f', '${Version}', name], { encoding: 'utf8' }).trim();
  } catch {
    return 'not installed';
  }
}

async function startNode(
  script: string,
  args: string[],
  options: StartOptions,
  ready: string | RegExp,
  env?: NodeJS.ProcessEnv,
): Promise<ChildProcess> {
  const nodeArgs = options.cpuProfDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`];
  const child = spawnServer(process.execPath, [...nodeArgs, script, ...args], { env: env ?? process.env });
  await waitForOutput(child, ready, 15_000);
  return child;
}

function nodeRunning(child: ChildProcess, port: number, publish: PublishTarget = pubTarget(port)): Running {
  return { pid: child.pid!, port, publish, stop: () => stopProcess(child, 10_000) };
}

function pubTarget(port: number): PublishTarget {
  return { port, request: (channel, data) => postRequest(`/pub/${channel}`, data) };
}

/** kometa's publish target with batches: `POST /pub` with a JSON array of items (docs/backends.md). */
function batchTarget(port: number): PublishTarget {
  return {
    ...pubTarget(port),
    batch: (items) => postRequest('/pub', JSON.stringify(items), 'application/json'),
  };
}

/**
 * kometa serve from a build at `root`. `store`: 'memory' runs it with
 * --memory (where the build has the flag: older builds were in memory
 * anyway), 'durable' with a fresh data directory of its own.
 */
export function kometaSystem(
  name: string,
  root: string,
  description: string,
  store: 'memory' | 'durable' = 'memory',
  batches = false,
  extraArgs: readonly string[] = [],
): System {
  const cli = join(root, 'dist/src/cli/main.js');
  return {
    name,
    description,
    unavailable: () => {
      try {
        readFileSync(cli);
        return null;
      } catch {
        return `no build at ${cli}`;
      }
    },
    version: () => {
      try {
        const sha = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
        return `${(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version} ` +
          `(${sha})`;
      } catch {
        return '?';
      }
    },
    transports: {
      sse: SSE,
      poll: { kind: 'poll', path: '/sub/{ch}?transport=poll&timeout=120' },
      ws: { kind: 'ws', path: '/ws', wsFrame: '{"type":"subscribe","channel":"{ch}"}', readyToken: '"subscribed"' },
    },
    fanout: 'sse',
    resume: true,
    async start(options) {
      const args = ['serve', '--port', String(options.port), '--host', '127.0.0.1'];
      // The publisher here is one client address sending as fast as it can: no per-publisher rate limit.
      if (supportsFlag(cli, '--publish-rate')) args.push('--publish-rate', '0');
      if (store === 'memory' && supportsFlag(cli, '--memory')) args.push('--memory');
      const dataDir = store === 'durable' ? mkdtempSync(join(tmpdir(), 'kometa-bench-data-')) : undefined;
      if (dataDir !== undefined) args.push('--data-dir', dataDir);
      if (options.serveArgs !== undefined) args.push(...options.serveArgs);
      args.push(...extraArgs);
      const child = await startNode(cli, args, options, 'listening on');
      const running = nodeRunning(child, options.port, batches ? batchTarget(options.port) : undefined);
      if (dataDir === undefined) return running;
      return {
        ...running,
        stop: () => running.stop().finally(() => rmSync(dataDir, { recursive: true, force: true })),
      };
    },
  };
}

const flagCache = new Map<string, string>();
function supportsFlag(cli: string, flag: string): boolean {
  if (!flagCache.has(cli)) {
    try {
      flagCache.set(cli, execFileSync(process.execPath, [cli, 'serve', '--help'], { encoding: 'utf8' }));
    } catch {
      flagCache.set(cli, '');
    }
  }
  return flagCache.get(cli)!.includes(flag);
}

/** kometa with WebSocket subscribers (same server, other transport). */
function kometaWs(base: System): System {
  return {
    ...base,
    name: `${base.name}-ws`,
    description: `${base.description}, WebSocket subscribers`,
    fanout: 'ws',
    resume: false,
    transports: { ws: base.transports.ws! },
  };
}

const floor: System = {
  name: 'floor',
  description: 'hand-written node:http SSE: one cached frame Buffer, res.write to every response',
  unavailable: () => null,
  version: () => `node ${process.versions.node}`,
  transports: { sse: SSE },
  fanout: 'sse',
  resume: false,
  async start(options) {
    const child = await startNode(
      join(SERVERS, 'node-floor.js'),
      ['--port', String(options.port)],
      options,
      'listening on',
    );
    return nodeRunning(child, options.port);
  },
};

/**
 * The write floor (bench/servers/write-floor.ts): prebuilt chunks written to
 * the named subscribers' sockets, 100 per request: the platform's own cost of
 * a delivery, with nothing of a publish in it.
 */
const writeFloor: System = {
  name: 'write-floor',
  description: 'node:http, one socket.write of a prebuilt chunk per delivery, 100 deliveries per request',
  unavailable: () => null,
  version: () => `node ${process.versions.node}`,
  transports: { sse: SSE },
  fanout: 'sse',
  resume: false,
  channelsOnly: true,
  async start(options) {
    const child = await startNode(
      join(SERVERS, 'write-floor.js'),
      ['--port', String(options.port)],
      options,
      'listening on',
    );
    return nodeRunning(child, options.port, {
      port: options.port,
      // The first line names the round (the message's sequence number): its frames were built at subscribe time.
      request: (channel, data) => postRequest('/fire', `${seqOf(data)}\n${channel}`),
      batch: (items) =>
        postRequest('/fire', [seqOf(items[0]?.data ?? ''), ...items.map((item) => item.channel)].join('\n')),
    });
  },
};

/**
 * The same system, publishing the same requests to channels nobody follows
 * (`q` + the name): what a publish costs without its delivery.
 */
/** The sequence number in the bench's message marker (`@@<seq>.<µs>;`, protocol.ts). */
function seqOf(data: string): number {
  return Number(/^@@(\d+)\./.exec(data)?.[1] ?? 1);
}

function withoutSubscribers(base: System): System {
  const elsewhere = (channel: string) => `q${channel}`;
  return {
    ...base,
    name: `${base.name}-nosub`,
    description: `${base.description}; publishing to channels without subscribers`,
    delivers: false,
    channelsOnly: true,
    async start(options) {
      const running = await base.start(options);
      const target = running.publish;
      const batch = target.batch;
      return {
        ...running,
        publish: {
          port: target.port,
          request: (channel, data) => target.request(elsewhere(channel), data),
          ...(batch === undefined
            ? {}
            : { batch: (items) => batch(items.map((item) => ({ ...item, channel: elsewhere(item.channel) }))) }),
        },
      };
    },
  };
}

const betterSse: System = {
  name: 'better-sse',
  description: 'better-sse channel.broadcast',
  unavailable: () => null,
  version: () => packageVersion('better-sse'),
  transports: { sse: SSE },
  fanout: 'sse',
  resume: false,
  async start(options) {
    const child = await startNode(
      join(SERVERS, 'better-sse.js'),
      ['--port', String(options.port)],
      options,
      'listening on',
    );
    return nodeRunning(child, options.port);
  },
};

const socketio: System = {
  name: 'socketio',
  description: 'Socket.IO 4, WebSocket transport, room broadcast',
  unavailable: () => null,
  version: () => packageVersion('socket.io'),
  transports: {
    ws: {
      kind: 'ws',
      path: '/socket.io/?EIO=4&transport=websocket&ch={ch}',
      wsFrame: '40',
      wsSendAfter: '0{',
      readyToken: '40{',
    },
  },
  fanout: 'ws',
  resume: false,
  async start(options) {
    const child = await startNode(
      join(SERVERS, 'socketio.js'),
      ['--port', String(options.port)],
      options,
      'listening on',
    );
    return nodeRunning(child, options.port);
  },
};

const nchan: System = {
  name: 'nchan',
  description: 'Nchan (nginx module), 1 worker, SSE',
  unavailable: () => {
    if (!commandExists('nginx')) return 'nginx not installed (apt-get install nginx libnginx-mod-nchan)';
    try {
      readFileSync('/usr/lib/nginx/modules/ngx_nchan_module.so');
      return null;
    } catch {
      return 'libnginx-mod-nchan not installed';
    }
  },
  version: () => `nginx ${dpkgVersion('nginx')}, nchan ${dpkgVersion('libnginx-mod-nchan')}`,
  transports: { sse: SSE },
  fanout: 'sse',
  resume: true,
  async start(options) {
    const dir = join(options.tmp, `nchan-${options.port}`);
    mkdirSync(dir, { recursive: true });
    const conf = join(dir, 'nginx.conf');
    writeFileSync(
      conf,
      `load_module /usr/lib/nginx/modules/ngx_nchan_module.so;
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 19900; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_timeout 60s;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:${options.port} backlog=4096;
    location ~ ^/sub/(.+)$ {
      nchan_subscriber;
      nchan_channel_id $1;
      nchan_subscriber_first_message newest;
    }
    location ~ ^/pub/(.+)$ {
      nchan_publisher;
      nchan_channel_id $1;
      nchan_message_buffer_length 1000;
      nchan_message_timeout 1h;
    }
  }
}
`,
    );
    const child = spawnServer('nginx', ['-c', conf, '-e', join(dir, 'error.log')]);
    await waitForListening(options.port, child);
    return {
      pid: child.pid!,
      port: options.port,
      publish: pubTarget(options.port),
      stop: () => stopProcess(child, 3000, 'SIGQUIT'),
    };
  },
};

const pushpin: System = {
  name: 'pushpin',
  description: 'Pushpin (GRIP proxy) with a hold-stream origin, SSE',
  unavailable: () =>
    commandExists('pushpin') && commandExists('zurl') ? null : 'pushpin not installed (apt-get install pushpin)',
  version: () => dpkgVersion('pushpin'),
  transports: { sse: SSE },
  fanout: 'sse',
  resume: false,
  async start(options) {
    const dir = join(options.tmp, `pushpin-${options.port}`);
    mkdirSync(join(dir, 'run'), { recursive: true });
    mkdirSync(join(dir, 'log'), { recursive: true });
    const originPort = options.port + 1;
    const controlPort = options.port + 2;
    // The origin only answers subscribe requests (never during fan-out): it runs with the load, not the server.
    const origin = spawnServer(process.execPath, [join(SERVERS, 'pushpin-origin.js'), '--port', String(originPort)], {
      core: '1',
    });
    await waitForOutput(origin, 'listening on', 10_000);
    // Pushpin reaches the origin through zurl; this one listens in the temp dir, not /var/run.
    const run = join(dir, 'run');
    writeFileSync(
      join(dir, 'zurl.conf'),
      readFileSync('/etc/zurl.conf', 'utf8')
        .replaceAll('/var/run/zurl', run)
        .replace(/^max_open_requests=.*$/m, 'max_open_requests=20000')
        .replace(/^in_hwm=.*$/m, 'in_hwm=20000')
        .replace(/^out_hwm=.*$/m, 'out_hwm=20000'),
    );
    const zurl = spawnServer('zurl', [`--config=${join(dir, 'zurl.conf')}`], { core: '1' });
    writeFileSync(join(dir, 'routes'), `* 127.0.0.1:${originPort}\n`);
    let conf = readFileSync('/etc/pushpin/pushpin.conf', 'utf8');
    const set = (key: string, value: string | number) => {
      const line = new RegExp(`^${key}=.*$`, 'm');
      conf = line.test(conf) ? conf.replace(line, `${key}=${value}`) : conf;
    };
    set('rundir', join(dir, 'run'));
    set('ipc_prefix', `kbench${options.port}-`);
    set('http_port', options.port);
    set('logdir', join(dir, 'log'));
    set('log_level', Number(process.env.PUSHPIN_LOG_LEVEL ?? 1));
    set('routesfile', join(dir, 'routes'));
    set('push_in_spec', `tcp://127.0.0.1:${options.port + 3}`);
    set('push_in_sub_specs', `tcp://127.0.0.1:${options.port + 4}`);
    set('push_in_http_port', controlPort);
    set('command_spec', `tcp://127.0.0.1:${options.port + 5}`);
    // The defaults throttle delivery (2,500 messages/s) for fairness between
    // connections; a benchmark of fan-out turns that off.
    set('message_rate', 1_000_000);
    set('message_hwm', 1_000_000);
    set('stats_connection_ttl', 600);
    conf = conf.replace(/\{libdir\}/g, '/usr/lib/pushpin');
    conf = conf.replace(
      '[proxy]\n',
      `[proxy]\nzurl_out_specs=ipc://${run}/zurl-in\nzurl_out_stream_specs=ipc://${run}/zurl-in-stream\nzurl_in_specs=ipc://${run}/zurl-out\n`,
    );
    writeFileSync(join(dir, 'pushpin.conf'), conf);
    const child = spawnServer('pushpin', ['--config', join(dir, 'pushpin.conf')]);
    await waitForListening(options.port, child);
    await waitForListening(controlPort, child);
    // The proxy's links to the handler (ZeroMQ) come up a little after the ports.
    await waitForSubscribeOk(options.port);
    return {
      pid: child.pid!,
      port: options.port,
      publish: {
        port: controlPort,
        request: (channel, data) =>
          postRequest(
            '/publish/',
            JSON.stringify({ items: [{ channel, formats: { 'http-stream': { content: `data: ${data}\n\n` } } }] }),
            'application/json',
          ),
      },
      stop: async () => {
        await stopProcess(child, 5000);
        await stopProcess(origin, 2000);
        await stopProcess(zurl, 2000);
      },
    };
  },
};

/**
 * A private Redis for the --workers scenario: no persistence, its own port and
 * directory, on the server's core, in its own process group (stopped by PID).
 */
export async function startRedis(
  port: number,
  tmp: string,
): Promise<{ pid: number; version: string; stop: () => Promise<void> }> {
  const dir = join(tmp, `redis-${port}`);
  mkdirSync(dir, { recursive: true });
  const child = spawnServer('redis-server', [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
    '--logfile',
    '',
  ]);
  await waitForOutput(child, 'Ready to accept connections', 15_000);
  return { pid: child.pid!, version: redisVersion(), stop: () => stopProcess(child, 3000) };
}

export function redisVersion(): string {
  try {
    return /v=(\S+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8' }))?.[1] ?? '?';
  } catch {
    return 'not installed';
  }
}

async function waitForListening(port: number, child: ChildProcess): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`nothing listening on ${port}`);
}

async function waitForSubscribeOk(port: number): Promise<void> {
  const { get } = await import('node:http');
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const status = await new Promise<number>((resolve) => {
      const req = get(
        { host: '127.0.0.1', port, path: '/sub/probe', headers: { Accept: 'text/event-stream' } },
        (res) => {
          resolve(res.statusCode ?? 0);
          req.destroy();
        },
      );
      req.on('error', () => resolve(0));
    });
    if (status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`no 200 from /sub/probe on ${port}`);
}

export function allSystems(kometaBefore?: string): System[] {
  const kometa = kometaSystem('kometa', ROOT, 'kometa serve --memory (this tree), SSE');
  const durable = kometaSystem(
    'kometa-durable',
    ROOT,
    'kometa serve (this tree) with history on disk (the default), SSE',
    'durable',
  );
  // The same servers, publishing in batches of up to 100 messages (POST /pub) where a scenario publishes many at once.
  const batch = kometaSystem('kometa-batch', ROOT, 'kometa serve --memory, SSE, publishing in batches', 'memory', true);
  const durableBatch = kometaSystem(
    'kometa-durable-batch',
    ROOT,
    'kometa serve (history on disk), SSE, publishing in batches',
    'durable',
    true,
  );
  // Presence off (--no-presence): the baseline that shows what keeping members costs fan-out (docs/presence.md).
  const noPresence = kometaSystem(
    'kometa-no-presence',
    ROOT,
    'kometa serve --memory --no-presence, SSE',
    'memory',
    false,
    ['--no-presence'],
  );
  const list = [floor, kometa, kometaWs(kometa), durable, batch, durableBatch, noPresence, writeFloor];
  // Publishes without deliveries, to split a delivery's cost into the publish's and the write's.
  list.push(withoutSubscribers(floor), withoutSubscribers(kometa), withoutSubscribers(batch));
  if (kometaBefore !== undefined) {
    // The same four servers from another build, so before/after is measured in one run.
    const at = `at ${kometaBefore}`;
    list.push(
      kometaSystem('kometa-before', kometaBefore, `kometa serve --memory ${at}, SSE`),
      kometaSystem('kometa-before-durable', kometaBefore, `kometa serve ${at}, history on disk, SSE`, 'durable'),
      kometaSystem('kometa-before-batch', kometaBefore, `kometa serve --memory ${at}, SSE, batches`, 'memory', true),
      kometaSystem(
        'kometa-before-durable-batch',
        kometaBefore,
        `kometa serve ${at}, on disk, SSE, batches`,
        'durable',
        true,
      ),
    );
  }
  list.push(betterSse, socketio, nchan, pushpin);
  return list;
}

/**
 * The servers of the presence scenario, in memory, from this tree: presence off (`--no-presence`), on (the
 * default, no in-band events) and with in-band joins and leaves (`--presence-events`).
 */
export function presenceSystems(): { off: System; on: System; events: System } {
  const make = (name: string, flags: string[]) =>
    kometaSystem(name, ROOT, `kometa serve --memory ${flags.join(' ')}`.trim() + ', SSE', 'memory', false, flags);
  return {
    off: make('kometa-no-presence', ['--no-presence']),
    on: make('kometa', []),
    events: make('kometa-presence-events', ['--presence-events']),
  };
}
