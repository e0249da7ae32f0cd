import cluster, { type Worker } from 'node:cluster';
import { DurableBroker } from '../brokers/durable.js';
import { MemoryBroker } from '../brokers/memory.js';
import type { Broker } from '../core/broker.js';
import { hubBanner } from './banner.js';
import { serveClusterMetrics } from '../ops/cluster-metrics.js';
import { serveClusterRoster } from '../ops/cluster-roster.js';
import { createRedisBroker } from './redis-settings.js';
import { type Settings, brokerKind } from './settings.js';

/**
 * The broker `kometa serve` runs on: on disk under --data-dir by default
 * (DataDirError when the directory cannot be used), in memory with --memory,
 * Redis with --redis. Waits a few seconds for Redis at start-up so that the first
 * requests do not all get 503; if it is not there by then the hub starts
 * anyway (degraded, /healthz says so) and connects when Redis comes.
 */
export async function createBroker(settings: Settings): Promise<Broker> {
  const history = {
    maxMessages: settings.historyMessages,
    maxBytes: settings.historyBytes,
    maxAgeMs: settings.historyAge * 1000,
  };
  const kind = brokerKind(settings);
  if (kind === 'memory') return new MemoryBroker({ history, maxTotalBytes: settings.historyTotalBytes });
  if (kind === 'durable') {
    const { dataDir: dir, historyTotalBytes: maxTotalBytes, fsyncInterval: fsyncIntervalMs } = settings;
    return DurableBroker.open({ dir, history, maxTotalBytes, fsyncIntervalMs });
  }
  const broker = createRedisBroker(settings, history);
  let timer: NodeJS.Timeout | undefined;
  const waited = await Promise.race([
    broker.ready().then(() => true),
    new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), 5000))),
  ]);
  clearTimeout(timer);
  if (!waited) {
    const health = broker.health();
    const why = health.ok ? 'Redis is slow to answer' : health.reason;
    process.stderr.write(`kometa: ${why}; starting anyway, publishes answer 503 until it is back\n`);
  }
  return broker;
}

/**
 * The primary process of `kometa serve --workers N`: it forks N workers that
 * share one listening port (node:cluster hands each new connection to a
 * worker), prints the banner once all of them listen, replaces a worker that
 * dies, and on SIGINT/SIGTERM asks every worker to close and waits for them.
 * Workers share nothing in memory; the Redis broker is what makes a message
 * published through one reach subscribers on another, so --workers needs --redis.
 */
export function runPrimary(settings: Settings, tokenGenerated = false): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    let stopCode = 0;
    let listening = 0;
    let bannerShown = false;
    const everListened = new WeakSet<Worker>();

    const fork = () => cluster.fork();
    cluster.on('listening', (worker, address) => {
      everListened.add(worker);
      listening++;
      if (bannerShown || listening < settings.workers) return;
      bannerShown = true;
      const host = settings.host;
      const scheme = settings.tlsCert === '' ? 'http' : 'https';
      const base = `${scheme}://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
      // Any worker answers the dashboard and /metrics, for every worker (over IPC with this primary).
      process.stdout.write(hubBanner(base, settings, { chat: false, tokenGenerated }));
    });
    cluster.on('exit', (worker, code, signal) => {
      if (stopping) {
        if (Object.keys(cluster.workers ?? {}).length === 0) resolve(stopCode);
        return;
      }
      if (!everListened.has(worker)) {
        // It could not even start (bad port, bad settings): starting it again would only loop.
        process.stderr.write(`kometa: a worker failed to start (exit ${code ?? signal}); stopping\n`);
        stop('failure', code === 0 || code === null ? 1 : code);
        return;
      }
      listening--;
      const how = signal ?? `code ${code}`;
      process.stderr.write(`kometa: worker ${worker.process.pid} exited (${how}); starting another\n`);
      setTimeout(() => {
        if (!stopping) fork();
      }, 500).unref();
    });

    const stop = (why: string, exitCode = 0) => {
      if (stopping) return;
      stopping = true;
      stopCode = exitCode;
      if (why !== 'failure') {
        const grace = `up to ${settings.shutdownGrace}s`;
        process.stdout.write(`kometa: ${why} received, closing ${settings.workers} workers (${grace})\n`);
      }
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
      if (workers.length === 0) resolve(stopCode);
      for (const worker of workers) worker.process.kill('SIGTERM');
      // A worker that does not close within its grace period (plus a margin) is not waited for.
      setTimeout(() => {
        for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
        resolve(stopCode === 0 ? 1 : stopCode);
      }, settings.shutdownGrace * 1000 + 3000).unref();
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    // Each worker holds its own TLS context: a certificate reload is theirs to do.
    process.on('SIGHUP', () => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGHUP');
    });

    serveClusterMetrics();
    serveClusterRoster();
    for (let i = 0; i < settings.workers; i++) fork();
  });
}
