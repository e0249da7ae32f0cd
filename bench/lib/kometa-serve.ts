/* A `kometa serve` child process of this build for the Redis benchmarks, on a port of its own choosing. */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface KometaServe {
  readonly url: string;
  readonly child: ChildProcess;
}

/** No publish rate limit and a deep per-connection queue: the benchmark measures fan-out, not the limits. */
export async function startKometaServe(args: string[]): Promise<KometaServe> {
  const serve = ['serve', '--port', '0', '--publish-rate', '0', '--max-queue-bytes', String(64 << 20)];
  const child = spawn(process.execPath, [MAIN, ...serve, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /kometa hub listening on (http:\/\/[^\s]+)/.exec(out);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`kometa exited with ${code}: ${out}`)));
  });
  child.stdout!.resume();
  return { url, child };
}
