import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { httpRequest, waitFor } from '../helpers/hub.js';
import { startNodeOrigin } from './helpers.js';
import { dataDirArgs } from '../helpers/data-dir.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** Run the CLI and wait for its banner; returns the addresses it printed. Killed by PID in t.after. */
async function runCli(
  args: string[],
): Promise<{ child: ChildProcess; base: string; control: string; kill(): Promise<void> }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
    await exited;
  };
  try {
    await waitFor(
      () => /listening on (http:\/\/\S+)/.test(out) && /127\.0\.0\.1:\d+\/publish\//.test(out),
      10_000,
      `the banner (got: ${out})`,
    );
  } catch (error) {
    await kill();
    throw error;
  }
  return {
    child,
    base: /listening on (http:\/\/\S+)/.exec(out)![1]!,
    control: /(http:\/\/127\.0\.0\.1:\d+)\/publish\//.exec(out)![1]!,
    kill,
  };
}

test(
  'kometa proxy --origin: every path goes to the origin, publishes go to the control port',
  { timeout: 30_000 },
  async (t) => {
    const origin = await startNodeOrigin((req, res) => {
      if (req.url === '/wait') {
        res.writeHead(200, { 'Grip-Hold': 'response', 'Grip-Channel': 'cli' });
        res.end('timeout');
      } else {
        res.end(`origin: ${req.url}`);
      }
    });
    t.after(() => origin.close());
    const cli = await runCli(['proxy', '--origin', origin.url, '--port', '0', '--control-port', '0', ...dataDirArgs()]);
    t.after(() => cli.kill());
    assert.equal((await httpRequest(`${cli.base}/sub/x`)).body, 'origin: /sub/x', 'no hub routes on the public port');
    const held = httpRequest(`${cli.base}/wait`);
    // The hold is registered in the child process; publish until someone was there to get it.
    await waitFor(() => origin.hits.get('/wait') === 1, 5000, 'the origin to be asked');
    let subscribers = 0;
    for (let i = 0; i < 50 && subscribers === 0; i++) {
      subscribers = (await httpRequest(`${cli.control}/channels/cli`)).json<{ subscribers: number }>().subscribers;
      if (subscribers === 0) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(subscribers, 1);
    const published = await httpRequest(`${cli.control}/pub/cli`, {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain' },
      body: 'via the CLI',
    });
    assert.equal(published.status, 201);
    assert.equal((await held).body, 'via the CLI');
  },
);

test(
  "kometa serve --origin: the hub's routes stay, every other path goes to the origin",
  { timeout: 30_000 },
  async (t) => {
    const origin = await startNodeOrigin((req, res) => res.end(`origin: ${req.url}`));
    t.after(() => origin.close());
    const cli = await runCli(['serve', '--origin', origin.url, '--port', '0', '--control-port', '0', ...dataDirArgs()]);
    t.after(() => cli.kill());
    assert.equal((await httpRequest(`${cli.base}/some/page`)).body, 'origin: /some/page');
    assert.equal((await httpRequest(`${cli.base}/channels/demo`)).status, 200, 'hub route');
    assert.equal(
      (
        await httpRequest(`${cli.base}/pub/demo`, {
          method: 'POST',
          headers: { 'Content-Type': 'text/plain' },
          body: 'x',
        })
      ).status,
      201,
    );
  },
);

test('kometa proxy without --origin exits 2 and says so', async () => {
  const child = spawn(process.execPath, [CLI, 'proxy', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, 2);
  assert.match(err, /--origin is required/);
});
