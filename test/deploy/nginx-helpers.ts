import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../helpers/redis.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

/** The nginx configuration docs/deploy.md tells people to use: its first ```nginx block. */
export function documentedNginxConfig(): string {
  const doc = readFileSync(join(root, 'docs/deploy.md'), 'utf8');
  const block = /```nginx\n([\s\S]*?)```/.exec(doc);
  if (block === null) throw new Error('docs/deploy.md has no ```nginx block');
  return block[1]!;
}

export interface Nginx {
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
}

/**
 * Debian's nginx (not the system service): the documented block, pointed at
 * kometa's port and listening on a spare one, inside a minimal main config of
 * its own (pid, logs and temp files in a fresh directory).
 */
export async function startNginx(kometaPort: number, edit: (config: string) => string = (c) => c): Promise<Nginx> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'kometa-nginx-'));
  let site = documentedNginxConfig();
  if (!site.includes('server 127.0.0.1:8080;') || !/listen 80;/.test(site)) throw new Error('the documented config changed shape; update startNginx');
  site = site.replace('server 127.0.0.1:8080;', `server 127.0.0.1:${kometaPort};`).replace(/listen 80;/, `listen 127.0.0.1:${port};`);
  site = edit(site);
  const temp = (name: string) => `${name}_temp_path ${join(dir, name)};`;
  const main = `daemon off;
master_process on;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} info;
events { worker_connections 1024; }
http {
  access_log off;
  ${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(temp).join('\n  ')}
${site}
}
`;
  writeFileSync(join(dir, 'nginx.conf'), main);
  const binary = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
  const child: ChildProcess = spawn(binary, ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const errorLog = () => (existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : '');
  for (let attempt = 0; ; attempt++) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${stderr}${errorLog()}`);
    if (await accepts(port)) break;
    if (attempt > 200) throw new Error(`nginx did not listen: ${stderr}${errorLog()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode === null) {
        child.kill('SIGQUIT');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
