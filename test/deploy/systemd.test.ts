import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { settingSpecs, envName } from '../../src/cli/settings.js';
import { waitFor } from '../helpers/hub.js';
import { StreamReader } from '../helpers/streams.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const UNIT = join(root, 'deploy/kometa.service');
const unit = readFileSync(UNIT, 'utf8');
const directives = (key: string) => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!);
const environment = new Map(directives('Environment').map((value) => value.split('=', 2) as [string, string]));

test('deploy/kometa.service passes systemd-analyze verify, without a warning', async (t) => {
  const which = await promisify(execFile)('sh', ['-c', 'command -v systemd-analyze']).catch(() => undefined);
  if (which === undefined) {
    t.diagnostic('systemd-analyze is not installed here: only the unit checks below ran');
    return;
  }
  // verify checks the unit file as given, under its own name, in a directory of its own.
  const dir = mkdtempSync(join(tmpdir(), 'kometa-unit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(UNIT, join(dir, 'kometa.service'));
  const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn('systemd-analyze', ['verify', join(dir, 'kometa.service')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
  assert.equal(result.code, 0, result.stderr);
  // An unknown key is only a warning for verify; here it is a failure.
  assert.equal(result.stderr.trim(), '', result.stderr);
});

test('the unit sets the open-files limit, a graceful stop, the state directory, and only settings kometa knows', () => {
  assert.ok(Number(directives('LimitNOFILE')[0]) >= 65536);
  assert.deepEqual(directives('KillSignal'), ['SIGTERM']);
  const grace = Number(settingSpecs.shutdownGrace.default);
  assert.ok(
    Number(directives('TimeoutStopSec')[0]) > grace,
    'systemd waits longer than --shutdown-grace before SIGKILL',
  );
  assert.deepEqual(directives('StateDirectory'), ['kometa']);
  assert.equal(environment.get('KOMETA_DATA_DIR'), '/var/lib/kometa');
  assert.match(directives('ExecStart')[0]!, /node_modules\/kometa\/dist\/src\/cli\/main\.js serve$/);
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: { kometa: string } };
  assert.ok(directives('ExecStart')[0]!.endsWith(`${pkg.bin.kometa} serve`), 'ExecStart runs the package bin');
  const known = new Set(Object.keys(settingSpecs).map(envName));
  for (const name of environment.keys()) {
    if (name === 'NODE_ENV') continue;
    assert.ok(known.has(name), `${name} is not a kometa setting`);
  }
});

test("kometa started with the unit's environment stops gracefully on SIGTERM: subscribers are told, exit code " +
  "0", async (t) => {
  const env: Record<string, string> = {
    ...process.env,
    ...Object.fromEntries(environment),
    KOMETA_PORT: '0',
    KOMETA_DATA_DIR: mkdtempSync(join(tmpdir(), 'kometa-data-')),
  } as Record<string, string>;
  t.after(() => rmSync(env.KOMETA_DATA_DIR!, { recursive: true, force: true }));
  const child = spawn(process.execPath, [join(root, 'dist/src/cli/main.js'), 'serve'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(() => child.kill('SIGKILL'));
  await waitFor(
    () => /listening on http:\/\/127\.0\.0\.1:\d+/.test(output) || child.exitCode !== null,
    15_000,
    'kometa to listen',
  );
  const port = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(output)![1];
  await waitFor(() => /"event":"start"/.test(output), 10_000, 'the start log line');
  assert.match(output, /^\{"level":30,.*"event":"start"/m, 'KOMETA_LOG_FORMAT=json: log lines are JSON');
  const stream = await StreamReader.open(`http://127.0.0.1:${port}/sub/c?transport=stream`);
  await stream.waitFor((r) => r.text.includes('"type":"live"'), 5000, 'the subscription');
  child.kill('SIGTERM');
  await stream.waitFor((r) => r.text.includes('"type":"shutdown"'), 10_000, 'the shutdown line');
  assert.equal(await exited, 0);
});
