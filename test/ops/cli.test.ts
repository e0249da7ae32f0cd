import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { type IncomingMessage, type ServerResponse, createServer, request } from 'node:http';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { waitFor } from '../helpers/hub.js';
import { startOpsHub } from './helpers.js';
import { dataDirArgs } from '../helpers/data-dir.js';

const root = resolve(import.meta.dirname, '../../..');
const cli = join(root, 'dist/src/cli/main.js');
const execFileAsync = promisify(execFile);

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function kometa(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [cli, ...args], {
      env: { ...process.env, KOMETA_URL: '', KOMETA_TOKEN: '', ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

function spawnKometa(args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  return { child, output: () => output };
}

test(
  "kometa tail <url>/seed --wire shows the seed's five chunks with their timings, plain when piped",
  { timeout: 30_000 },
  async (t) => {
    const hub = await startOpsHub(t);
    const run = await kometa(['tail', `${hub.url}/seed`, '--wire']);
    assert.equal(run.code, 0, run.stderr);
    assert.doesNotMatch(run.stdout, /\x1b\[/, 'no colour codes when piped');
    assert.match(run.stdout, /connect +127\.0\.0\.1:\d+ +\(TCP [\d.]+ ms\)/);
    assert.match(run.stdout, /→ GET \/seed HTTP\/1\.1/);
    assert.match(run.stdout, /← HTTP\/1\.1 200 OK/);
    assert.match(run.stdout, /Transfer-Encoding: chunked/);
    const chunks = [...run.stdout.matchAll(/^ *([\d.]+) ms {2}chunk (\d) +(\d+) B {2}(\S+)/gm)].map((m) => ({
      t: Number(m[1]),
      n: Number(m[2]),
      size: Number(m[3]),
      text: m[4]!,
    }));
    assert.deepEqual(
      chunks.map((c) => [c.n, c.size, c.text]),
      [
        [1, 19, 'First'],
        [2, 12, 'stage1<br'],
        [3, 12, 'stage2<br'],
        [4, 12, 'stage3<br'],
        [5, 17, 'last_stage4<br'],
      ],
    );
    // Lower bounds only, counted from the inspector's start (before it sent the request): the seed sleeps a
    // second before each stage, so stage i cannot arrive before i seconds. (Spacing between two arrivals is no
    // bound: a first chunk read late on a loaded machine makes the next look early.) Timers may fire 1 ms early.
    for (let i = 1; i < chunks.length; i++) {
      assert.ok(chunks[i]!.t >= i * 1000 - 2, `chunk ${i + 1} at ${chunks[i]!.t} ms, before ${i} s`);
    }
    assert.match(run.stdout, /end +5 pieces, 72 B; connection kept alive/);
  },
);

// About ten `kometa` processes start one after another: under a loaded machine each start takes seconds.
test('kometa publish and kometa tail: output and exit codes', { timeout: 90_000 }, async (t) => {
  const hub = await startOpsHub(t);
  const tail = spawnKometa(['tail', 'terminal', '--url', hub.url, '--count', '2']);
  t.after(() => tail.child.kill());
  // Once it says it follows the channel, it is subscribed (its first check is a poll that answers at once).
  await waitFor(() => tail.output().includes('following terminal'), 10_000, 'tail to subscribe');
  const first = await kometa(['publish', 'terminal', 'hello, terminal', '--url', hub.url]);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /^terminal~\w+~1 {2}\(1 subscriber here\)\n$/);
  assert.equal((await kometa(['publish', 'terminal', '{"n":2}', '--url', hub.url, '--event', 'note'])).code, 0);
  // It may have exited already, while the second publish was being answered.
  const code = tail.child.exitCode ?? (await new Promise<number | null>((r) => tail.child.once('exit', r)));
  assert.equal(code, 0, tail.output());
  assert.match(tail.output(), /#1 {2}hello, terminal\n/);
  assert.match(tail.output(), /#2 {2}note {2}\{"n":2\}\n/);

  // Usage errors: 2.
  assert.equal((await kometa(['publish', 'only-a-channel', '--url', hub.url])).code, 2);
  assert.equal((await kometa(['publish', 'bad name', 'x', '--url', hub.url])).code, 2);
  assert.equal((await kometa(['tail', 'x', '--bogus'])).code, 2);
  assert.equal((await kometa(['tail', 'x', '--url', 'ftp://nowhere'])).code, 2);
  // The hub refuses: 1, with its problem details.
  const tooBig = await kometa(['publish', 'terminal', 'x'.repeat(70_000), '--url', hub.url]);
  assert.equal(tooBig.code, 1);
  assert.match(tooBig.stderr, /413 KOMETA_ERR_BODY_TOO_LARGE/);
  // Nothing there: 3.
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as { port: number }).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const unreachable = await kometa(['tail', 'terminal', '--url', `http://127.0.0.1:${port}`]);
  assert.equal(unreachable.code, 3);
  assert.match(unreachable.stderr, /cannot reach/);
  assert.equal((await kometa(['publish', 'terminal', 'x', '--url', `http://127.0.0.1:${port}`])).code, 3);
});

test(
  'kometa tail and publish: a hub with access control refuses without a token (1) and accepts with one',
  { timeout: 90_000 },
  async (t) => {
    const { AccessPolicy } = await import('../../src/auth/access.js');
    const hub = await startOpsHub(t, { access: await AccessPolicy.create({ publisherKey: 'backend-key-123' }) });
    const refused = await kometa(['tail', 'private', '--url', hub.url]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /401 KOMETA_ERR_UNAUTHORIZED/);
    assert.equal((await kometa(['publish', 'private', 'x', '--url', hub.url])).code, 1);
    assert.equal(
      (await kometa(['publish', 'private', 'x', '--url', hub.url], { KOMETA_TOKEN: 'backend-key-123' })).code,
      0,
    );
    const timed = await kometa([
      'tail',
      'private',
      '--url',
      hub.url,
      '--token',
      'backend-key-123',
      '--from',
      'start',
      '--count',
      '1',
      '--json',
    ]);
    assert.equal(timed.code, 0, timed.stderr);
    assert.deepEqual(JSON.parse(timed.stdout.trim()), {
      id: JSON.parse(timed.stdout.trim()).id,
      channel: 'private',
      data: 'x',
    });
  },
);

/**
 * A reverse proxy of the kind that breaks comet: it reads the whole upstream response before sending any of it, and
 * knows nothing of upgrades.
 */
async function startBufferingProxy(t: { after(fn: () => unknown): void }, upstreamPort: number): Promise<string> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const headers = { ...req.headers };
    delete headers.connection;
    delete headers.upgrade;
    const upstream = request(
      { host: '127.0.0.1', port: upstreamPort, path: req.url, method: req.method, headers, agent: false },
      (answer) => {
        const body: Buffer[] = [];
        answer.on('data', (c: Buffer) => body.push(c));
        answer.on('end', () => {
          const all = Buffer.concat(body);
          const out: Record<string, string> = { 'Content-Length': String(all.length), Via: '1.1 buffering-proxy' };
          for (const name of ['content-type', 'cache-control'])
            if (answer.headers[name] !== undefined) out[name] = String(answer.headers[name]);
          res.writeHead(answer.statusCode ?? 502, out);
          res.end(all);
        });
      },
    );
    upstream.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

test(
  'kometa doctor: all good against the hub; a buffering proxy and a blocked upgrade are found and explained',
  { timeout: 60_000 },
  async (t) => {
    const hub = await startOpsHub(t);
    const direct = await kometa(['doctor', hub.url, '--idle', '1']);
    assert.equal(direct.code, 0, direct.stdout + direct.stderr);
    assert.match(direct.stdout, /✓ buffering +streamed responses arrive as sent/);
    assert.match(direct.stdout, /✓ websocket/);
    assert.match(direct.stdout, /All good: browsers will use WebSocket/);

    const proxy = await startBufferingProxy(t, hub.port);
    const started = Date.now();
    const behind = await kometa(['doctor', proxy, '--idle', '1']);
    assert.ok(Date.now() - started < 20_000, 'bounded in time');
    assert.equal(behind.code, 1, behind.stdout + behind.stderr);
    assert.match(behind.stdout, /✗ buffering +a proxy buffers streamed responses/);
    assert.match(behind.stdout, /proxy_buffering off/);
    assert.match(behind.stdout, /✗ websocket +WebSocket upgrade blocked/);
    assert.match(behind.stdout, /proxy_set_header Upgrade/);
    assert.match(behind.stdout, /✓ long-poll/);
    assert.match(behind.stdout, /in between: 1\.1 buffering-proxy/);
    assert.match(behind.stdout, /Browsers will use long-poll/);

    const json = await kometa(['doctor', proxy, '--idle', '1', '--json']);
    const report = JSON.parse(json.stdout) as { transports: Record<string, boolean>; exitCode: number };
    assert.deepEqual(report.transports, { websocket: false, sse: false, poll: true });
    assert.equal(json.code, 1);

    const nowhere = await kometa(['doctor', 'http://127.0.0.1:9', '--idle', '1']);
    assert.equal(nowhere.code, 3);
    assert.equal((await kometa(['doctor'])).code, 2);
  },
);

test(
  'kometa serve prints the hub, chat, dashboard and metrics URLs, and the dashboard link works',
  { timeout: 30_000 },
  async (t) => {
    const serve = spawnKometa(['serve', '--port', '0', '--log-format', 'json', ...dataDirArgs()]);
    t.after(() => serve.child.kill('SIGKILL'));
    await waitFor(() => /"event":"start"/.test(serve.output()), 10_000, 'the hub to start');
    const output = serve.output();
    const base = /listening on (http:\S+)/.exec(output)![1]!;
    assert.match(output, new RegExp(`chat +open ${base}/ in a browser`));
    const dashboard = /dashboard +(http:\S+)/.exec(output)![1]!;
    assert.match(dashboard, new RegExp(`^${base}/_kometa/\\?token=[\\w-]{20,}$`));
    assert.match(output, new RegExp(`metrics +curl -H "Authorization: Bearer [\\w-]+" ${base}/metrics`));
    const login = await fetch(dashboard, { redirect: 'manual' });
    assert.equal(login.status, 303);
    const start = JSON.parse(output.split('\n').find((l) => l.includes('"event":"start"'))!) as {
      level: number;
      name: string;
      url: string;
    };
    assert.equal(start.name, 'kometa');
    assert.equal(start.url, base);
    serve.child.kill('SIGTERM');
    await new Promise((r) => serve.child.once('exit', r));
    assert.match(serve.output(), /"event":"stop"/);
  },
);
