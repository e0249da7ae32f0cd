#!/usr/bin/env node
import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import { Hub } from '../core/hub.js';
import { createHubServer } from '../http/hub-server.js';
import { withChat } from '../http/web.js';
import { Comet } from '../comet/comet.js';
import { seedFallback } from './seed-route.js';
import { accessFromSettings, openFilesLimit } from './access.js';
import { SettingsError, resolveSettings, settingSpecs, settingsHelp } from './settings.js';
import { brokerKind, brokerLine, createBroker, runPrimary } from './workers.js';
import { startProxying } from './proxy.js';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { KometaOps } from '../ops/ops.js';
import { hubBanner } from './banner.js';
import { createLogger, logDiagnostics } from './logger.js';
import { redisSettingsProblem, usesRedis } from './redis-settings.js';
import { runTool } from './tools.js';
import { DataDirError, DurableBroker } from '../brokers/durable.js';

const USAGE = `Usage: kometa <command> [options]

Commands:
  serve       run the hub (history on disk in ./kometa-data; --memory, or Redis with --redis)
  tail        follow a channel (or watch any URL on the wire with --wire)
  publish     publish one message to a channel
  doctor      check what stands between this machine and a hub
  proxy       forward every request to --origin, holding those it answers with GRIP
              or Kometa-Defer instructions; publish on --control-port (127.0.0.1:5561)

Run 'kometa serve --help' for the hub's settings.`;

async function serve(argv: string[], command: 'serve' | 'proxy' = 'serve'): Promise<number> {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' }, config: { type: 'string' } };
  for (const spec of Object.values(settingSpecs)) options[spec.flag] = { type: spec.kind === 'boolean' ? 'boolean' : 'string' };
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: false, strict: true });
  } catch (error) {
    process.stderr.write(`kometa serve: ${(error as Error).message}\nRun 'kometa serve --help' for the settings.\n`);
    return 2;
  }
  if (parsed.values.help === true) {
    process.stdout.write(
      `Usage: kometa ${command} [options]\n\nRuns the comet hub${command === 'proxy' ? ' behind a GRIP proxy to --origin' : ''}. Settings come from flags, then KOMETA_* environment variables,\nthen a JSON config file (--config or KOMETA_CONFIG), then the defaults.\n\n  --config <file>                JSON file with any of the settings below, by their camelCase name\n${settingsHelp()}\n`,
    );
    return 0;
  }
  let settings;
  try {
    const configPath = (parsed.values.config as string | undefined) ?? process.env.KOMETA_CONFIG;
    settings = resolveSettings(parsed.values as Record<string, string | boolean | undefined>, process.env, configPath || undefined);
  } catch (error) {
    if (error instanceof SettingsError) {
      process.stderr.write(`kometa serve: ${error.message}\n`);
      return 2;
    }
    throw error;
  }

  const levels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
  if (!levels.includes(settings.logLevel) || !['auto', 'json', 'pretty'].includes(settings.logFormat)) {
    process.stderr.write(`kometa serve: --log-level is one of ${levels.join(', ')}; --log-format one of auto, json, pretty\n`);
    return 2;
  }
  // No admin token given: make one up for this run and print it (workers inherit it through the environment).
  const tokenGenerated = settings.adminToken === '';
  if (tokenGenerated) {
    settings = { ...settings, adminToken: randomBytes(18).toString('base64url') };
    process.env.KOMETA_ADMIN_TOKEN = settings.adminToken;
  }
  // Tickets minted by one worker must be accepted by the others: with nothing
  // to derive their secret from, make one up here for all of them.
  if (settings.ticketSecret === '' && settings.publisherKey === '' && settings.jwtSecret === '') {
    settings = { ...settings, ticketSecret: randomBytes(32).toString('base64url') };
    process.env.KOMETA_TICKET_SECRET = settings.ticketSecret;
  }
  if (settings.workers > 1 && !usesRedis(settings)) {
    process.stderr.write(
      'kometa serve: --workers needs --redis, --redis-cluster or --redis-sentinel (workers share nothing in memory, and a data directory belongs to one process; Redis carries messages between them)\n',
    );
    return 2;
  }
  const redisProblem = redisSettingsProblem(settings);
  if (redisProblem !== undefined) {
    process.stderr.write(`kometa serve: ${redisProblem}\n`);
    return 2;
  }
  if (command === 'proxy' && settings.origin === '') {
    process.stderr.write('kometa proxy: --origin is required, e.g. --origin http://127.0.0.1:8000\n');
    return 2;
  }
  if (settings.workers > 1 && cluster.isPrimary) return runPrimary(settings, tokenGenerated);
  const log = createLogger(settings.logLevel, settings.logFormat as 'auto' | 'json' | 'pretty');

  let access;
  try {
    access = await accessFromSettings(settings);
  } catch (error) {
    if (error instanceof SettingsError) {
      process.stderr.write(`kometa serve: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  let broker;
  try {
    broker = await createBroker(settings);
  } catch (error) {
    if (!(error instanceof DataDirError)) throw error;
    process.stderr.write(`kometa serve: ${error.message}\n`);
    return 1;
  }
  if (broker instanceof DurableBroker) {
    for (const repair of broker.repairs) {
      log.warn({ event: 'store-repaired', ...repair }, `${repair.file}: dropped ${repair.droppedBytes} bytes from offset ${repair.offset} (${repair.reason}): bytes that did not check out are never served`);
    }
  }
  const hub = new Hub(broker, { maxChannelsPerSubscription: settings.maxChannels, maxMessageBytes: settings.maxMessageBytes });
  // Comet handlers served beside the hub (/seed) report failures here: only the CLI prints.
  const comet = new Comet({ hub, onError: (report) => log.error({ event: 'handler-failed', method: report.method, path: report.path, phase: report.phase, err: report.error }, 'comet handler failed') });
  const stopLogging = logDiagnostics(log, broker);
  // The operator's view (/_kometa/, /metrics) goes in front of whatever else the server falls back to.
  let ops: KometaOps | undefined;
  const withOps = (next: (req: IncomingMessage, res: ServerResponse) => void) => (req: IncomingMessage, res: ServerResponse) => {
    if (ops === undefined || !ops.handle(req, res)) next(req, res);
  };
  const proxying = settings.origin === '' ? undefined : await startProxying(hub, settings, command);
  if (typeof proxying === 'number') return proxying;
  const hubServer = command === 'proxy' ? proxying!.publicServer : createHubServer(hub, {
    heartbeatMs: settings.heartbeat * 1000,
    retryMs: settings.retry * 1000,
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
  }, withOps(proxying?.proxy.handle ?? withChat(seedFallback(comet))));
  if (command !== 'proxy') {
    const { http, webSocket } = hubServer as ReturnType<typeof createHubServer>;
    ops = new KometaOps({ hub, http, webSocket }, { adminToken: settings.adminToken, metricsToken: settings.metricsToken || undefined, access });
  }
  let address;
  try {
    address = await hubServer.listen(settings.port, settings.host);
  } catch (error) {
    process.stderr.write(`kometa serve: cannot listen on ${settings.host}:${settings.port}: ${(error as Error).message}\n`);
    return 1;
  }
  const base = `http://${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
  // Under --workers the primary prints the banner once, for all of them.
  if (!cluster.isWorker && command === 'proxy') process.stdout.write(`kometa proxy listening on ${base}\n${proxying!.banner(base)}${brokerLine(settings)}`);
  else if (!cluster.isWorker) process.stdout.write(hubBanner(base, settings, { chat: true, tokenGenerated, extra: proxying?.banner(base) ?? '' }));
  log.info({ event: 'start', url: base, broker: brokerKind(settings), worker: cluster.isWorker ? cluster.worker?.id : undefined }, 'listening');

  return new Promise<number>((resolve) => {
    let stopping = false;
    let firstSignalAt = 0;
    const stop = (signal: string) => {
      if (stopping) {
        // Under `npm start`, one Ctrl-C reaches us twice (from the terminal
        // and forwarded by npm); only a second press, later, means "now".
        if (Date.now() - firstSignalAt < 1000) return;
        log.warn({ event: 'stop', signal }, `second ${signal}, exiting now`);
        resolve(130);
        return;
      }
      stopping = true;
      firstSignalAt = Date.now();
      log.info({ event: 'stopping', signal, graceSeconds: settings.shutdownGrace }, `${signal} received, closing`);
      ops?.close();
      hubServer.close().then(() => proxying?.close()).then(() => broker.close()).then(() => {
        stopLogging();
        log.info({ event: 'stop' }, 'closed');
        resolve(0);
      });
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
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
