import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { envName, resolveSettings, settingSpecs } from '../../src/cli/settings.js';
import { httpRequest, publish, waitFor } from '../helpers/hub.js';
import { StreamReader } from '../helpers/streams.js';
import { dataDirArgs } from '../helpers/data-dir.js';

const root = resolve(import.meta.dirname, '../../..');
const cli = join(root, 'dist/src/cli/main.js');
const run = promisify(execFile);

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => res(port));
    });
    server.on('error', rej);
  });
}

/** Start a child process and resolve once its output says the hub is listening. */
async function startProcess(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{
  child: ChildProcess;
  output: () => string;
  url: string;
}> {
  // Its own process group, so that a shell and the node it starts are stopped together.
  const child = spawn(command, args, {
    cwd: options.cwd ?? root,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  await waitFor(
    () => /listening on (http:\/\/\S+)/.test(output) || child.exitCode !== null,
    options.timeoutMs ?? 10_000,
    `the hub to start; output: ${output}`,
  );
  const match = /listening on (http:\/\/\S+)/.exec(output);
  if (match === null) throw new Error(`the hub did not start: ${output}`);
  return { child, output: () => output, url: match[1]! };
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // already gone
  }
}

function exited(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null
    ? Promise.resolve(child.exitCode)
    : new Promise((r) => child.once('exit', (code) => r(code)));
}

test('settings come from flags, then KOMETA_* environment, then the config file, then defaults', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kometa-config-'));
  try {
    const file = join(dir, 'kometa.json');
    writeFileSync(file, JSON.stringify({ port: 9000, historyMessages: 50, heartbeat: 7 }));
    const settings = resolveSettings({ port: '9100' }, { KOMETA_HISTORY_MESSAGES: '60', KOMETA_PORT: '9200' }, file);
    assert.equal(settings.port, 9100, 'flag beats env and file');
    assert.equal(settings.historyMessages, 60, 'env beats file');
    assert.equal(settings.heartbeat, 7, 'file beats default');
    assert.equal(settings.retry, settingSpecs.retry.default);
    assert.throws(() => resolveSettings({ port: 'eighty' }, {}, undefined), /--port must be a whole number/);
    assert.throws(() => resolveSettings({}, { KOMETA_HEARTBEAT: '-1' }, undefined), /KOMETA_HEARTBEAT/);
    writeFileSync(file, JSON.stringify({ prot: 1 }));
    assert.throws(() => resolveSettings({}, {}, file), /unknown setting "prot"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kometa serve --help lists every setting with its flag, variable and default', async () => {
  const { stdout } = await run(process.execPath, [cli, 'serve', '--help']);
  for (const [name, spec] of Object.entries(settingSpecs)) {
    assert.ok(stdout.includes(`--${spec.flag}`), spec.flag);
    assert.ok(stdout.includes(envName(name)), envName(name));
    assert.ok(stdout.includes(`default ${spec.default}`), `${spec.flag} default`);
  }
});

test('docs/configuration.md lists every setting with its variable and default', () => {
  const doc = readFileSync(join(root, 'docs/configuration.md'), 'utf8');
  for (const [name, spec] of Object.entries(settingSpecs)) {
    const row = doc.split('\n').find((line) => line.startsWith(`| \`--${spec.flag}\` |`));
    assert.ok(row, `--${spec.flag} is missing from docs/configuration.md`);
    assert.ok(row.includes(`\`${envName(name)}\``), `${spec.flag}: variable`);
    assert.ok(row.includes(spec.default === '' ? '(empty)' : `| ${spec.default} |`), `${spec.flag}: default`);
  }
});

test('kometa with a bad flag or command exits 2 and says what is wrong', async () => {
  await assert.rejects(
    run(process.execPath, [cli, 'serve', '--prot', '1']),
    (e: { code: number; stderr: string }) => e.code === 2 && /prot/.test(e.stderr),
  );
  await assert.rejects(
    run(process.execPath, [cli, 'serve', '--port', 'x']),
    (e: { code: number; stderr: string }) => e.code === 2 && /--port/.test(e.stderr),
  );
  await assert.rejects(
    run(process.execPath, [cli, 'frobnicate']),
    (e: { code: number; stderr: string }) => e.code === 2 && /unknown command/.test(e.stderr),
  );
});

test('on SIGTERM the hub tells subscribers when to retry, answers held polls, and exits 0 within the grace period', async (t) => {
  const port = await freePort();
  const { child, url } = await startProcess(process.execPath, [
    cli,
    'serve',
    '--port',
    String(port),
    '--retry',
    '3',
    '--shutdown-grace',
    '2',
    ...dataDirArgs(),
  ]);
  t.after(() => signalGroup(child, 'SIGKILL'));
  const sse = await StreamReader.open(`${url}/sub/bye`);
  const stream = await StreamReader.open(`${url}/sub/bye?transport=stream`);
  await sse.waitFor((r) => r.events().some((e) => e.id !== undefined));
  const poll = httpRequest(`${url}/sub/bye?transport=poll`);
  await publish(url, 'bye', 'one');
  const polled = await poll;
  const heldPoll = httpRequest(`${url}/sub/bye?transport=poll&since=${polled.json<{ cursor: string }>().cursor}`);
  await new Promise((r) => setTimeout(r, 200));
  const started = Date.now();
  child.kill('SIGTERM');
  const held = await heldPoll;
  assert.equal(held.status, 200);
  assert.deepEqual(held.json<{ messages: unknown[] }>().messages, []);
  await sse.waitFor((r) => r.ended, 5000, 'the SSE stream to end');
  const shutdown = sse.events().find((e) => e.event === 'kometa-shutdown');
  assert.ok(shutdown, 'a kometa-shutdown event');
  const retry = Number(shutdown.retry);
  assert.ok(retry >= 1500 && retry <= 4500, `with a retry hint within --retry 3 × (1 ± 0.5), got ${retry}`);
  await stream.waitFor((r) => r.ended, 5000, 'the stream to end');
  assert.ok(stream.json().some((l) => l.type === 'shutdown'));
  assert.equal(await exited(child), 0);
  assert.ok(Date.now() - started < 4000, 'closed within the grace period');
});

test("the README's run command works for a new user on a fresh copy", { timeout: 240_000 }, async (t) => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const block = /```sh\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, 'the README starts with a sh block');
  const runLine = block[1]!.split('\n').find((line) => line.includes('npm start'));
  assert.ok(runLine, 'the first block has the run command');
  const command = runLine.replace(/#.*$/, '').trim();

  // A fresh copy of the project's files (tracked and new, not ignored: no node_modules, no dist).
  const { stdout } = await run('git', ['ls-files', '--cached', '--others', '--exclude-standard'], {
    cwd: root,
    maxBuffer: 1e7,
  });
  const dir = mkdtempSync(join(tmpdir(), 'kometa-readme-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const file of stdout.split('\n').filter(Boolean)) {
    try {
      cpSync(join(root, file), join(dir, file));
    } catch {
      // listed but deleted in the working tree
    }
  }
  const port = await freePort();
  const { child, url, output } = await startProcess(
    'bash',
    ['-c', command.replace('npm ci', 'npm ci --prefer-offline --no-audit --no-fund')],
    {
      cwd: dir,
      env: { KOMETA_PORT: String(port) },
      timeoutMs: 200_000,
    },
  );
  t.after(() => signalGroup(child, 'SIGKILL'));
  assert.equal(url, `http://127.0.0.1:${port}`);
  assert.equal((await httpRequest(`${url}/healthz`)).status, 200);
  const sub = httpRequest(`${url}/sub/demo?transport=poll`);
  await new Promise((r) => setTimeout(r, 300));
  await publish(url, 'demo', 'hello, comet');
  assert.deepEqual(
    (await sub).json<{ messages: { data: string }[] }>().messages.map((m) => m.data),
    ['hello, comet'],
  );
  // Ctrl-C in a terminal signals the whole foreground group: npm and the hub.
  signalGroup(child, 'SIGINT');
  await exited(child);
  // The CLI logs its stop as a JSON line when its output is not a terminal.
  await waitFor(() => /"event":"stop"/.test(output()), 10_000, 'the hub to close cleanly');
});
