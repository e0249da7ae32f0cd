/*
 * Processes the bench starts, pinned to cores, measured through /proc and
 * always killed again (by PID / process group) — on success, error or Ctrl-C.
 */
import { type ChildProcess, execFileSync, fork, spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';

const CLK_TCK = 100;
const started = new Set<ChildProcess>();
let tasksetAvailable: boolean | undefined;

export function hasTaskset(): boolean {
  if (tasksetAvailable === undefined) {
    try {
      execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
      tasksetAvailable = true;
    } catch {
      tasksetAvailable = false;
    }
  }
  return tasksetAvailable;
}

/** Cores: the server gets core 0, everything else (this process, the load) core 1. */
export const SERVER_CORE = '0';
export const LOAD_CORE = '1';

export function pinSelf(): void {
  if (!hasTaskset()) return;
  execFileSync('taskset', ['-a', '-p', '-c', LOAD_CORE, String(process.pid)], { stdio: 'ignore' });
}

/** Start a server command on the server core, in its own process group. */
export function spawnServer(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; core?: string } = {},
): ChildProcess {
  const [file, argv] = hasTaskset()
    ? ['taskset', ['-c', options.core ?? SERVER_CORE, command, ...args]]
    : [command, args];
  const child = spawn(file, argv, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(child);
  return child;
}

/** Fork a load generator (it inherits this process's core). */
export function forkLoader(modulePath: string): ChildProcess {
  const child = fork(modulePath, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  track(child);
  return child;
}

function track(child: ChildProcess): void {
  started.add(child);
  child.once('exit', () => started.delete(child));
}

/** Resolve once `text` appears in the child's output (or reject on exit / timeout). */
export function waitForOutput(child: ChildProcess, text: string | RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(
      () => finish(new Error(`timed out waiting for ${String(text)}; output: ${seen.slice(-500)}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      if (typeof text === 'string' ? seen.includes(text) : text.test(seen)) finish();
    };
    const onExit = (code: number | null) =>
      finish(new Error(`exited (${code}) before ${String(text)}; output: ${seen.slice(-800)}`));
    const finish = (error?: Error) => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve(seen);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
  });
}

/** SIGTERM the process group, then SIGKILL whatever is left after `graceMs`. */
export async function stopProcess(
  child: ChildProcess,
  graceMs = 3000,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const pid = child.pid;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  killGroup(pid, signal);
  const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), graceMs));
  if ((await Promise.race([exited, timer])) === 'timeout') {
    killGroup(pid, 'SIGKILL');
    await exited;
  }
  // Whatever the group left behind (e.g. a daemon's helpers).
  killGroup(pid, 'SIGKILL');
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

/** Kill everything this process started, now (exit paths). */
export function killAllStarted(): void {
  for (const child of started) if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
}

export interface TreeSample {
  /** utime + stime of the process and its descendants, in seconds. */
  cpuSec: number;
  /** VmRSS summed over the tree, in KiB. */
  rssKiB: number;
  pids: number;
}

/** CPU and memory of a process and all its descendants, from /proc. */
export function sampleTree(rootPid: number): TreeSample {
  const parent = new Map<number, number>();
  const ticks = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parent.set(pid, Number(fields[1]));
      ticks.set(pid, Number(fields[11]) + Number(fields[12]));
    } catch {
      /* exited meanwhile */
    }
  }
  let cpu = 0;
  let rss = 0;
  let pids = 0;
  for (const [pid, t] of ticks) {
    let p: number | undefined = pid;
    while (p !== undefined && p > 1 && p !== rootPid) p = parent.get(p);
    if (p !== rootPid) continue;
    pids++;
    cpu += t;
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'latin1');
      const match = /VmRSS:\s+(\d+)/.exec(status);
      if (match) rss += Number(match[1]);
    } catch {
      /* exited meanwhile */
    }
  }
  return { cpuSec: cpu / CLK_TCK, rssKiB: rss, pids };
}

export function commandExists(name: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => existsSync(`${dir}/${name}`));
}

export interface ProcessSample {
  readonly pid: number;
  readonly rssKiB: number;
  /** Open file descriptors, and how many of them are sockets. */
  readonly fds: number;
  readonly sockets: number;
}

/** RSS and open sockets of one process, from /proc (its fd links read one by one). */
export function sampleProcess(pid: number): ProcessSample {
  let rssKiB = 0;
  let fds = 0;
  let sockets = 0;
  try {
    rssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))?.[1] ?? 0);
    const dir = `/proc/${pid}/fd`;
    for (const fd of readdirSync(dir)) {
      fds++;
      try {
        if (readlinkSync(`${dir}/${fd}`).startsWith('socket:')) sockets++;
      } catch {
        /* closed meanwhile */
      }
    }
  } catch {
    /* exited */
  }
  return { pid, rssKiB, fds, sockets };
}

/** The direct children of a process (e.g. the workers of a node:cluster primary), by PID. */
export function childPids(parentPid: number): number[] {
  const children: number[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parentPid) children.push(pid);
    } catch {
      /* exited meanwhile */
    }
  }
  return children.sort((a, b) => a - b);
}

/** MemAvailable of the machine, in KiB. */
export function memAvailableKiB(): number {
  return Number(/MemAvailable:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'latin1'))?.[1] ?? 0);
}
