import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis.js';

/**
 * One redis-server for the whole test file that imports this module, started
 * on a spare port when the file loads and killed when its process exits.
 * Tests share it only through key prefixes of their own (uniquePrefix); no
 * test depends on a Redis on :6379. KOMETA_TEST_REDIS=<url> uses that one instead.
 */
export const SHARED_REDIS_URL: string = process.env.KOMETA_TEST_REDIS ?? (await startFileRedis());

async function startFileRedis(): Promise<string> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'kometa-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--protected-mode', 'no'];
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  let failed: Error | undefined;
  child.once('error', (error) => (failed = error));
  child.unref();
  process.once('exit', () => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  for (let attempt = 0; attempt < 200; attempt++) {
    if (failed !== undefined) throw new Error(`redis-server did not start (${failed.message}); run scripts/test-deps.sh`);
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
    if (await pings(port)) return `redis://127.0.0.1:${port}`;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('redis-server did not answer PING within 10 s');
}

function pings(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk.toString();
      if (answer.includes('\r\n')) {
        socket.destroy();
        resolve(answer.startsWith('+PONG'));
      }
    });
    socket.once('error', () => resolve(false));
  });
}
