#!/usr/bin/env node
import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import { Hub } from '../core/hub.js';
import type { AccessPolicy } from '../auth/access.js';
import type { Broker } from '../core/broker.js';
import { type HubHttpOptions, createHubServer, createSecureHubServer } from '../http/hub-server.js';
import { type TlsMaterial, readTlsFiles } from '../http/tls.js';
import { withChat } from '../http/web.js';
import { Comet } from '../comet/comet.js';
import { seedFallback } from './seed-route.js';
import { accessFromSettings, openFilesLimit } from './access.js';
import { type Settings, SettingsError, brokerKind, resolveSettings, settingSpecs, settingsHelp } from './settings.js';
import { createBroker, runPrimary } from './workers.js';
import { presenceOptions, startWebhooks, webhookSettingsProblem } from './presence-settings.js';
import type { WebhookSender } from '../http/webhooks.js';
import { type Proxying, startProxying } from './proxy.js';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { KometaOps } from '../ops/ops.js';
import { brokerLine, hubBanner } from './banner.js';
import { type Logger, createLogger, logDiagnostics } from './logger.js';
import { redisSettingsProblem, usesRedis } from './redis-settings.js';
import { runTool } from './tools.js';
import { DataDirError, DurableBroker } from '../brokers/durable.js';
import { reclaimAfterBursts } from './reclaim.js';
import { parseTrustProxy } from '../http/client-address.js';

const USAGE = `Usage: kometa <command> [options]

Commands:
  serve       run the hub (history on disk in ./kometa-data; --memory, or Redis with --redis)
  tail        follow a channel (or watch any URL on the wire with --wire)
  publish     publish one message to a channel
  doctor      check what stands between this machine and a hub
  proxy       forward every request to --origin, holding those it answers with GRIP
              or Kometa-Defer instructions; publish on --control-port (127.0.0.1:5561)

Run 'kometa serve --help' for the hub's settings.`;

type ServeCommand = 'serve' | 'proxy';
type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** Exit code 2 with a message on stderr: the command line or the settings are wrong. */
function usageError(message: string): number {
  process.stderr.write(`${message}\n`);
  return 2;
}

/** Flags, environment and config file into settings; a number is the exit code when there is nothing to run. */
function readSettings(argv: string[], command: ServeCommand): Settings | number {
  const options: Record<string, { type: 'string' | 'boolean' }> = {
    help: { type: 'boolean' },
    config: { type: 'string' },
  };
  for (const spec of Object.values(settingSpecs)) options[spec.flag] = { type: spec.kind === 'boolean' ? 'boolean' : 'string' };
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: false, strict: true });
  } catch (error) {
    return usageError(`kometa serve: ${(error as Error).message}\nRun 'kometa serve --help' for the settings.`);
  }
  if (parsed.values.help === true) {
    const runs = `Runs the comet hub${command === 'proxy' ? ' behind a GRIP proxy to --origin' : ''}.`;
    process.stdout.write(
      `Usage: kometa ${command} [options]\n\n${runs} Settings come from flags, then KOMETA_* environment variables,\n` +
        'then a JSON config file (--config or KOMETA_CONFIG), then the defaults.\n\n' +
        '  --config <file>                JSON file with any of the settings below, by their camelCase name\n' +
        `${settingsHelp()}\n`,
    );
    return 0;
  }
  try {
    const configPath = (parsed.values.config as string | undefined) ?? process.env.KOMETA_CONFIG;
    const flags = parsed.values as Record<string, string | boolean | undefined>;
    return resolveSettings(flags, process.env, configPath || undefined);
  } catch (error) {
    if (error instanceof SettingsError) return usageError(`kometa serve: ${error.message}`);
    throw error;
  }
}

/** Settings that cannot work together; the message to exit with, or undefined. */
function conflictingSettings(settings: Settings, command: ServeCommand): string | undefined {
  const levels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
  if (!levels.includes(settings.logLevel) || !['auto', 'json', 'pretty'].includes(settings.logFormat)) {
    return `kometa serve: --log-level is one of ${levels.join(', ')}; --log-format one of auto, json, pretty`;
  }
  if (settings.workers > 1 && !usesRedis(settings)) {
    return (
      'kometa serve: --workers needs --redis, --redis-cluster or --redis-sentinel (workers share nothing in ' +
      'memory, and a data directory belongs to one process; Redis carries messages between them)'
    );
  }
  const redisProblem = redisSettingsProblem(settings) ?? webhookSettingsProblem(settings);
  if (redisProblem !== undefined) return `kometa serve: ${redisProblem}`;
  try {
    parseTrustProxy(settings.trustProxy);
  } catch (error) {
    return `kometa ${command}: ${(error as Error).message}`;
  }
  if (settings.retryJitter > 1) return `kometa ${command}: --retry-jitter is a fraction from 0 to 1`;
  if ((settings.tlsCert === '') !== (settings.tlsKey === '')) {
    return `kometa ${command}: --tls-cert and --tls-key go together (the certificate chain and its private key)`;
  }
  if (command === 'proxy' && settings.tlsCert !== '') {
    return 'kometa proxy: --tls-cert is for kometa serve; put a TLS terminator in front of the proxy';
  }
  if (command === 'proxy' && settings.origin === '') {
    return 'kometa proxy: --origin is required, e.g. --origin http://127.0.0.1:8000';
  }
  return undefined;
}

/**
 * Secrets every worker must share, made up here when not given: the admin
 * token (printed, since no one else knows it) and, with nothing to derive it
 * from, the secret of subscribe tickets minted by one worker and spent at another.
 * Workers inherit both through the environment.
 */
function withMadeUpSecrets(given: Settings): { settings: Settings; tokenGenerated: boolean } {
  let settings = given;
  const tokenGenerated = settings.adminToken === '';
  if (tokenGenerated) {
    settings = { ...settings, adminToken: randomBytes(18).toString('base64url') };
    process.env.KOMETA_ADMIN_TOKEN = settings.adminToken;
  }
  if (settings.ticketSecret === '' && settings.publisherKey === '' && settings.jwtSecret === '') {
    settings = { ...settings, ticketSecret: randomBytes(32).toString('base64url') };
    process.env.KOMETA_TICKET_SECRET = settings.ticketSecret;
  }
  return { settings, tokenGenerated };
}

/** The hub server's options, from the settings (seconds become milliseconds). */
function hubHttpOptions(settings: Settings, access: AccessPolicy): Partial<HubHttpOptions> {
  return {
    heartbeatMs: settings.heartbeat * 1000,
    retryMs: settings.retry * 1000,
    retryJitter: settings.retryJitter,
    admitRate: settings.admitRate,
    pollTimeoutMs: settings.pollTimeout * 1000,
    maxPollTimeoutMs: settings.pollTimeoutMax * 1000,
    maxQueueBytes: settings.maxQueueBytes,
    maxBodyBytes: settings.maxMessageBytes,
    headersTimeoutMs: settings.headersTimeout * 1000,
    requestTimeoutMs: settings.requestTimeout * 1000,
    keepAliveTimeoutMs: settings.keepAliveTimeout * 1000,
    maxHeaderBytes: settings.maxHeaderBytes,
    shutdownGraceMs: settings.shutdownGrace * 1000,
    access,
    publishRate: settings.publishRate,
    maxHeaderCount: settings.maxHeaders,
    // Past the open-files limit node:http can only fail to accept; stop short of it with a clear answer.
    maxConnections: settings.maxConnections || Math.max(0, (openFilesLimit() ?? 0) - 256),
    maxConnectionsPerIp: settings.maxConnectionsPerIp,
    trustProxy: parseTrustProxy(settings.trustProxy),
    backend: {
      idempotencyWindowMs: settings.idempotencyWindow * 1000,
      maxBatchItems: settings.maxBatchItems,
      maxBatchBytes: settings.maxBatchBytes,
      adminToken: settings.adminToken,
    },
  };
}

/** What runs once the server listens, for the signal handlers to close. */
interface Running {
  readonly log: Logger;
  readonly settings: Settings;
  readonly server: { close(): Promise<void> };
  readonly proxying: Proxying | undefined;
  readonly broker: Broker;
  readonly ops: KometaOps | undefined;
  readonly webhooks: WebhookSender | undefined;
  readonly stopLogging: () => void;
  readonly stopReclaiming: () => void;
}

/** Resolves with the exit code once SIGINT or SIGTERM has closed everything (or a second one, later, says "now"). */
function untilStopped(running: Running): Promise<number> {
  const { log, settings } = running;
  return new Promise<number>((resolve) => {
    let stopping = false;
    let firstSignalAt = 0;
    const stop = (signal: string) => {
      if (stopping) {
        // Under `npm start`, one Ctrl-C reaches us twice (from the terminal
        // and forwarded by npm); only a second press, later, means "now".
        if (performance.now() - firstSignalAt < 1000) return;
        log.warn({ event: 'stop', signal }, `second ${signal}, exiting now`);
        resolve(130);
        return;
      }
      stopping = true;
      firstSignalAt = performance.now();
      log.info({ event: 'stopping', signal, graceSeconds: settings.shutdownGrace }, `${signal} received, closing`);
      running.ops?.close();
      // The last members' leave events are sent (within the grace period) before the broker goes.
      const closing = running.server
        .close()
        .then(() => running.webhooks?.drain(settings.shutdownGrace * 1000))
        .then(() => running.proxying?.close())
        .then(() => running.broker.close());
      closing.then(
        () => {
          running.stopLogging();
          running.stopReclaiming();
          log.info({ event: 'stop' }, 'closed');
          resolve(0);
        },
        (error: unknown) => {
          // Before, a failed close was an unhandled rejection; now it is said and the exit code is 1.
          log.error({ event: 'stop', err: error }, `closing failed: ${String(error)}`);
          running.stopLogging();
          running.stopReclaiming();
          resolve(1);
        },
      );
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });
}

/** Print where everything is (once, from the primary under --workers) and log the start. */
function announce(
  base: string,
  settings: Settings,
  command: ServeCommand,
  tokenGenerated: boolean,
  log: Logger,
  proxying?: Proxying,
): void {
  // Under --workers the primary prints the banner once, for all of them.
  if (!cluster.isWorker && command === 'proxy') {
    process.stdout.write(`kometa proxy listening on ${base}\n${proxying!.banner(base)}${brokerLine(settings)}`);
  } else if (!cluster.isWorker) {
    const extra = proxying?.banner(base) ?? '';
    process.stdout.write(hubBanner(base, settings, { chat: true, tokenGenerated, extra }));
  }
  const worker = cluster.isWorker ? cluster.worker?.id : undefined;
  log.info({ event: 'start', url: base, broker: brokerKind(settings), worker }, 'listening');
}

/**
 * The broker, and what start-up had to repair in its data directory; a data
 * directory that cannot be used is said in one line (undefined: exit 1).
 */
async function openBroker(settings: Settings, log: Logger): Promise<Broker | undefined> {
  let broker;
  try {
    broker = await createBroker(settings);
  } catch (error) {
    if (!(error instanceof DataDirError)) throw error;
    process.stderr.write(`kometa serve: ${error.message}\n`);
    return undefined;
  }
  if (broker instanceof DurableBroker) {
    for (const repair of broker.repairs) {
      const { file, droppedBytes, offset, reason } = repair;
      const what = `${file}: dropped ${droppedBytes} bytes from offset ${offset} (${reason})`;
      log.warn({ event: 'store-repaired', ...repair }, `${what}: bytes that did not check out are never served`);
    }
  }
  return broker;
}

async function serve(argv: string[], command: ServeCommand = 'serve'): Promise<number> {
  const read = readSettings(argv, command);
  if (typeof read === 'number') return read;
  const conflict = conflictingSettings(read, command);
  if (conflict !== undefined) return usageError(conflict);
  const { settings, tokenGenerated } = withMadeUpSecrets(read);
  if (settings.workers > 1 && cluster.isPrimary) return runPrimary(settings, tokenGenerated);
  const log = createLogger(settings.logLevel, settings.logFormat as 'auto' | 'json' | 'pretty');

  let access;
  try {
    access = await accessFromSettings(settings);
  } catch (error) {
    if (error instanceof SettingsError) return usageError(`kometa serve: ${error.message}`);
    throw error;
  }
  const broker = await openBroker(settings, log);
  if (broker === undefined) return 1;
  const hub = new Hub(
    broker,
    { maxChannelsPerSubscription: settings.maxChannels, maxMessageBytes: settings.maxMessageBytes },
    presenceOptions(settings),
  );
  const webhooks = startWebhooks(hub, settings, log);
  // Comet handlers served beside the hub (/seed) report failures here: only the CLI prints.
  const comet = new Comet({
    hub,
    onError: (report) => {
      const { method, path, phase, error: err } = report;
      log.error({ event: 'handler-failed', method, path, phase, err }, 'comet handler failed');
    },
  });
  const stopLogging = logDiagnostics(log, broker);
  const stopReclaiming = reclaimAfterBursts(hub);
  // The operator's view (/_kometa/, /metrics) goes in front of whatever else the server falls back to.
  let ops: KometaOps | undefined;
  const withOps = (next: Handler): Handler => (req, res) => {
    if (ops === undefined || !ops.handle(req, res)) next(req, res);
  };
  const proxying = settings.origin === '' ? undefined : await startProxying(hub, settings, command);
  if (typeof proxying === 'number') return proxying;
  const fallback = withOps(proxying?.proxy.handle ?? withChat(seedFallback(comet)));
  let tls: TlsMaterial | undefined;
  try {
    tls = settings.tlsCert === '' ? undefined : readTlsFiles(settings.tlsCert, settings.tlsKey);
  } catch (error) {
    return usageError(`kometa serve: ${(error as Error).message}`);
  }
  const options = hubHttpOptions(settings, access);
  const hubServer =
    command === 'proxy'
      ? proxying!.publicServer
      : tls === undefined
        ? createHubServer(hub, options, fallback)
        : createSecureHubServer(hub, tls, options, fallback);
  if (command !== 'proxy') {
    const { http, webSocket } = hubServer as ReturnType<typeof createHubServer>;
    const metricsToken = settings.metricsToken || undefined;
    ops = new KometaOps({ hub, http, webSocket, webhooks }, { adminToken: settings.adminToken, metricsToken, access });
  }
  let address;
  try {
    address = await hubServer.listen(settings.port, settings.host);
  } catch (error) {
    const where = `${settings.host}:${settings.port}`;
    process.stderr.write(`kometa serve: cannot listen on ${where}: ${(error as Error).message}\n`);
    return 1;
  }
  const scheme = tls === undefined ? 'http' : 'https';
  const base = `${scheme}://${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
  announce(base, settings, command, tokenGenerated, log, proxying);
  if (tls !== undefined) reloadCertificateOnHangup(hubServer as ReturnType<typeof createSecureHubServer>, settings, log);
  const server = hubServer;
  return untilStopped({ log, settings, server, proxying, broker, ops, webhooks, stopLogging, stopReclaiming });
}

/**
 * SIGHUP reads --tls-cert and --tls-key again and serves the new pair to new
 * connections; open ones keep theirs (nothing is dropped). A pair that cannot
 * be read or does not match is logged and the old one stays.
 */
function reloadCertificateOnHangup(
  running: ReturnType<typeof createSecureHubServer>,
  settings: Settings,
  log: Logger,
): void {
  process.on('SIGHUP', () => {
    try {
      const { cert, key } = readTlsFiles(settings.tlsCert, settings.tlsKey);
      running.server.setSecureContext({ cert, key });
      log.info({ event: 'tls-reloaded', cert: settings.tlsCert }, 'certificate reloaded');
    } catch (error) {
      log.error({ event: 'tls-reload-failed', err: error }, `certificate not reloaded: ${(error as Error).message}`);
    }
  });
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'proxy':
      return serve(rest, 'proxy');
    case 'tail':
    case 'publish':
    case 'doctor':
      return runTool(command, rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`kometa: unknown command '${command}'\n${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`kometa: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
