import { readFileSync } from 'node:fs';

/**
 * Every setting of `kometa serve`, in one table: its flag, environment
 * variable, config-file key, default and meaning. --help and docs/config.md
 * come from here. Precedence: flag > environment > config file > default.
 */
interface SettingSpec {
  readonly flag: string;
  readonly kind: 'int' | 'seconds' | 'number' | 'string' | 'boolean';
  readonly default: number | string | boolean;
  readonly help: string;
}

export const settingSpecs = {
  port: { flag: 'port', kind: 'int', default: 8080, help: 'TCP port to listen on (0 picks a free one)' },
  host: {
    flag: 'host',
    kind: 'string',
    default: '127.0.0.1',
    help: 'address to listen on (0.0.0.0 for every interface)',
  },
  historyMessages: {
    flag: 'history-messages',
    kind: 'int',
    default: 1000,
    help: 'messages kept per channel for resume',
  },
  historyBytes: {
    flag: 'history-bytes',
    kind: 'int',
    default: 1048576,
    help: 'bytes of message data kept per channel',
  },
  historyTotalBytes: {
    flag: 'history-total-bytes',
    kind: 'int',
    default: 268435456,
    help: 'bytes of history kept across all channels, oldest dropped first (on disk: record bytes, ~50 more per ' +
      'message; caps the data dir)',
  },
  historyAge: { flag: 'history-age', kind: 'seconds', default: 3600, help: 'oldest message kept, in seconds' },
  maxMessageBytes: { flag: 'max-message-bytes', kind: 'int', default: 65536, help: 'largest publish body, in bytes' },
  idempotencyWindow: {
    flag: 'idempotency-window',
    kind: 'seconds',
    default: 300,
    help: 'how long an Idempotency-Key is remembered, in seconds (a repeat within it publishes nothing and gets ' +
      'the first answer)',
  },
  maxBatchItems: {
    flag: 'max-batch-items',
    kind: 'int',
    default: 1000,
    help: 'most messages one POST /pub batch may publish (a broadcast item counts one per channel)',
  },
  maxBatchBytes: {
    flag: 'max-batch-bytes',
    kind: 'int',
    default: 1048576,
    help: 'largest POST /pub batch body, in bytes',
  },
  maxChannels: { flag: 'max-channels', kind: 'int', default: 64, help: 'most channels in one subscription' },
  heartbeat: {
    flag: 'heartbeat',
    kind: 'seconds',
    default: 15,
    help: 'heartbeat on quiet SSE/stream connections, in seconds',
  },
  retry: {
    flag: 'retry',
    kind: 'seconds',
    default: 2,
    help: 'reconnect delay hinted to SSE clients, in seconds (the middle of the --retry-jitter range)',
  },
  retryJitter: {
    flag: 'retry-jitter',
    kind: 'number',
    default: 0.5,
    help: 'spread of reconnect hints: 0 to 1: each SSE connection gets a retry: drawn from --retry × (1 ± this), ' +
      'the drain a Retry-After likewise; 0 = everyone gets --retry (and Retry-After 1)',
  },
  admitRate: {
    flag: 'admit-rate',
    kind: 'int',
    default: 2000,
    help: 'new subscriptions per second this process takes at most (a reconnect storm); past it SSE gets a retry: ' +
      'spread over the backlog, others 503 + Retry-After; 0 = no limit',
  },
  tlsCert: {
    flag: 'tls-cert',
    kind: 'string',
    default: '',
    help: 'certificate chain (PEM) to serve HTTPS with, HTTP/2 and HTTP/1.1 on the one port; SIGHUP reloads it ' +
      'and --tls-key',
  },
  tlsKey: { flag: 'tls-key', kind: 'string', default: '', help: 'private key (PEM) of --tls-cert' },
  pollTimeout: { flag: 'poll-timeout', kind: 'seconds', default: 30, help: 'how long a long-poll is held, in seconds' },
  pollTimeoutMax: {
    flag: 'poll-timeout-max',
    kind: 'seconds',
    default: 120,
    help: 'the most a long-poll may ask to be held (timeout=)',
  },
  maxQueueBytes: {
    flag: 'max-queue-bytes',
    kind: 'int',
    default: 1048576,
    help: 'outgoing bytes queued per connection before a slow consumer is closed',
  },
  headersTimeout: {
    flag: 'headers-timeout',
    kind: 'seconds',
    default: 10,
    help: 'time to receive request headers, in seconds',
  },
  requestTimeout: {
    flag: 'request-timeout',
    kind: 'seconds',
    default: 30,
    help: 'time to receive a whole request, in seconds',
  },
  keepAliveTimeout: {
    flag: 'keep-alive-timeout',
    kind: 'seconds',
    default: 5,
    help: 'idle keep-alive connections (and HTTP/2 ones with no open stream) close after this, in seconds',
  },
  maxHeaderBytes: { flag: 'max-header-bytes', kind: 'int', default: 16384, help: 'largest request head, in bytes' },
  shutdownGrace: {
    flag: 'shutdown-grace',
    kind: 'seconds',
    default: 5,
    help: 'on SIGINT/SIGTERM, connections still open after this are cut',
  },
  jwtSecret: {
    flag: 'jwt-secret',
    kind: 'string',
    default: '',
    help: 'HS256 secret for subscriber/publisher tokens; turns access control on',
  },
  jwtPublicKey: {
    flag: 'jwt-public-key',
    kind: 'string',
    default: '',
    help: 'file with an RS256/ES256 public key (PEM) or a JWKS document; turns access control on',
  },
  publisherKey: {
    flag: 'publisher-key',
    kind: 'string',
    default: '',
    help: 'shared secret for backends (Authorization: Bearer): publish anywhere, mint tickets',
  },
  ticketSecret: {
    flag: 'ticket-secret',
    kind: 'string',
    default: '',
    help: 'signs subscribe tickets and their session cookies; give every node the same one (default: derived from ' +
      '--publisher-key or --jwt-secret, else random per start, shared with --workers)',
  },
  publicSubscribe: {
    flag: 'public-subscribe',
    kind: 'string',
    default: '',
    help: 'comma-separated channel patterns anyone may subscribe to when access control is on (e.g. news.*)',
  },
  publicPublish: {
    flag: 'public-publish',
    kind: 'string',
    default: '',
    help: 'comma-separated channel patterns anyone may publish to when access control is on',
  },
  allowedOrigins: {
    flag: 'allowed-origins',
    kind: 'string',
    default: '',
    help: 'comma-separated browser origins allowed cross-origin (CORS, WebSocket); * for any; empty = any while ' +
      'the hub is open, same-origin once access control is on',
  },
  publishRate: {
    flag: 'publish-rate',
    kind: 'int',
    default: 1000,
    help: 'publishes per second per publisher (token subject, or client address when anonymous; the publisher key ' +
      'is not limited); 0 = no limit',
  },
  maxConnections: {
    flag: 'max-connections',
    kind: 'int',
    default: 0,
    help: 'open connections at most; 0 = the open-files limit less 256',
  },
  maxConnectionsPerIp: {
    flag: 'max-connections-per-ip',
    kind: 'int',
    default: 0,
    help: 'open connections per client address at most; 0 = no limit',
  },
  trustProxy: {
    flag: 'trust-proxy',
    kind: 'string',
    default: '',
    help: 'proxies whose X-Forwarded-For names the client (per-address limits, anonymous publish rate) and whose ' +
      'X-Forwarded-Proto kometa proxy keeps: comma-separated addresses, CIDR ranges, loopback, private, or a hop ' +
      'count; empty = never trust the header',
  },
  maxHeaders: { flag: 'max-headers', kind: 'int', default: 100, help: 'request header lines at most' },
  dataDir: {
    flag: 'data-dir',
    kind: 'string',
    default: './kometa-data',
    help: 'where history is kept on disk, so a restart loses nothing (created on start; one process per directory)',
  },
  fsyncInterval: {
    flag: 'fsync-interval',
    kind: 'int',
    default: 0,
    help:
      "milliseconds between fsyncs; 0 = every 201 is fsync'd (publishes arriving together share one); " +
      '>0 = 201 once written to the OS, a power loss may lose that much',
  },
  memory: {
    flag: 'memory',
    kind: 'boolean',
    default: false,
    help: 'keep history in memory only (no data dir): a restart loses it; for tests, benchmarks, throw-away hubs',
  },
  redis: {
    flag: 'redis',
    kind: 'string',
    default: '',
    help: 'Redis URL (redis://[user:pass@]host:port[/db]) to share channels between processes; empty = in-memory',
  },
  redisCluster: {
    flag: 'redis-cluster',
    kind: 'string',
    default: '',
    help: 'Redis Cluster seed nodes (host:port,host:port,…) instead of --redis: channels spread over the masters, ' +
      'fan-out by sharded pub/sub',
  },
  redisSentinel: {
    flag: 'redis-sentinel',
    kind: 'string',
    default: '',
    help: 'Redis Sentinel addresses (host:port,host:port,…) instead of --redis; with --redis-master, failovers ' +
      'are followed',
  },
  redisMaster: {
    flag: 'redis-master',
    kind: 'string',
    default: '',
    help: 'name of the master the sentinels watch (--redis-sentinel)',
  },
  redisPrefix: {
    flag: 'redis-prefix',
    kind: 'string',
    default: 'kometa:',
    help: 'prefix of every Redis key and pub/sub channel kometa uses',
  },
  workers: {
    flag: 'workers',
    kind: 'int',
    default: 1,
    help: 'worker processes sharing the port (node:cluster); more than 1 needs --redis (or --redis-cluster, ' +
      '--redis-sentinel)',
  },
  noPresence: {
    flag: 'no-presence',
    kind: 'boolean',
    default: false,
    help: 'keep no members: no presence endpoint, no lifecycle events or webhooks, and subscriber counts are per ' +
      'process',
  },
  presenceGrace: {
    flag: 'presence-grace',
    kind: 'seconds',
    default: 5,
    help: 'a member that goes and comes back (same client id) within this neither leaves nor joins; also how long ' +
      'a dropped one stays listed',
  },
  presenceEvents: {
    flag: 'presence-events',
    kind: 'boolean',
    default: false,
    help: 'publish joins and leaves in-band (kometa-join / kometa-leave) for subscribers that ask with ' +
      '?presence=1; they take sequence numbers and history room',
  },
  presenceTtl: {
    flag: 'presence-ttl',
    kind: 'seconds',
    default: 15,
    help: 'with Redis: a node that stops refreshing its members (it died) loses them within this plus a third of it',
  },
  webhookUrl: {
    flag: 'webhook-url',
    kind: 'string',
    default: '',
    help: 'POST presence events (JSON) here; empty = no webhooks',
  },
  webhookSecret: {
    flag: 'webhook-secret',
    kind: 'string',
    default: '',
    help: 'signs each webhook: Kometa-Signature: sha256=<hex HMAC-SHA256 of the raw body>',
  },
  webhookEvents: {
    flag: 'webhook-events',
    kind: 'string',
    default: 'channel.occupied,channel.vacated',
    help: 'which events are sent: channel.occupied, channel.vacated, member.join, member.leave',
  },
  origin: {
    flag: 'origin',
    kind: 'string',
    default: '',
    help: 'origin server to proxy to (http://host:port); kometa proxy needs it, with serve every path the hub ' +
      'does not take goes there',
  },
  controlPort: {
    flag: 'control-port',
    kind: 'int',
    default: 5561,
    help: 'port of the control API when proxying (POST /publish/ as Pushpin, POST /pub/<channel>), on 127.0.0.1',
  },
  adminToken: {
    flag: 'admin-token',
    kind: 'string',
    default: '',
    help: 'secret that opens the dashboard (/_kometa/) and /metrics (Authorization: Bearer, or /_kometa/?token=); ' +
      'empty = a random one per start, printed in the banner',
  },
  metricsToken: {
    flag: 'metrics-token',
    kind: 'string',
    default: '',
    help: 'second secret that opens /metrics only (for a Prometheus scraper); empty = only the admin token does',
  },
  logLevel: {
    flag: 'log-level',
    kind: 'string',
    default: 'info',
    help: 'least severe log line written: trace, debug, info, warn, error, fatal or silent',
  },
  logFormat: {
    flag: 'log-format',
    kind: 'string',
    default: 'auto',
    help: 'log lines as json, pretty (coloured, for people), or auto: pretty on a terminal, json otherwise',
  },
  gripSigKey: {
    flag: 'grip-sig-key',
    kind: 'string',
    default: '',
    help: 'key that signs the Grip-Sig header sent to the origin (HS256); empty = a random key per process',
  },
} as const satisfies Record<string, SettingSpec>;

export type SettingName = keyof typeof settingSpecs;
export type Settings = {
  [K in SettingName]: (typeof settingSpecs)[K]['default'] extends number
    ? number
    : (typeof settingSpecs)[K]['default'] extends boolean
      ? boolean
      : string;
};

/** Which engine the settings ask for: Redis when given, else the data directory unless --memory. */
export function brokerKind(settings: Settings): 'durable' | 'memory' | 'redis' {
  if (settings.redis !== '' || settings.redisCluster !== '' || settings.redisSentinel !== '') return 'redis';
  return settings.memory ? 'memory' : 'durable';
}

export function envName(name: string): string {
  return `KOMETA_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

export class SettingsError extends Error {}

function convert(name: SettingName, raw: unknown, source: string): number | string | boolean {
  const spec: SettingSpec = settingSpecs[name];
  if (spec.kind === 'boolean') {
    if (raw === true || raw === 'true' || raw === '1') return true;
    if (raw === false || raw === 'false' || raw === '0') return false;
    throw new SettingsError(`${source} must be true or false (1 or 0), got ${JSON.stringify(raw)}`);
  }
  if (spec.kind === 'string') {
    if (typeof raw !== 'string' || raw === '') throw new SettingsError(`${source} must be a non-empty string`);
    return raw;
  }
  const numeric = typeof raw === 'string' && /^\d+(\.\d+)?$/.test(raw.trim());
  const value = typeof raw === 'number' ? raw : numeric ? Number(raw) : NaN;
  if (!Number.isFinite(value) || value < 0 || (spec.kind === 'int' && !Number.isInteger(value))) {
    const what = { int: 'whole number', seconds: 'number of seconds', number: 'number' }[spec.kind];
    throw new SettingsError(`${source} must be a ${what} ≥ 0, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** Resolve settings from flags, environment and an optional JSON config file. */
export function resolveSettings(
  flags: Record<string, string | boolean | undefined>,
  env: NodeJS.ProcessEnv,
  configPath: string | undefined,
): Settings {
  let file: Record<string, unknown> = {};
  if (configPath !== undefined) {
    let text: string;
    try {
      text = readFileSync(configPath, 'utf8');
    } catch (error) {
      throw new SettingsError(`cannot read config file ${configPath}: ${(error as Error).message}`);
    }
    try {
      file = JSON.parse(text) as Record<string, unknown>;
    } catch (error) {
      throw new SettingsError(`config file ${configPath} is not valid JSON: ${(error as Error).message}`);
    }
    for (const key of Object.keys(file)) {
      if (!(key in settingSpecs)) throw new SettingsError(`config file ${configPath}: unknown setting "${key}"`);
    }
  }
  const out: Record<string, number | string | boolean> = {};
  for (const name of Object.keys(settingSpecs) as SettingName[]) {
    const spec: SettingSpec = settingSpecs[name];
    const flag = flags[spec.flag];
    const fromEnv = env[envName(name)];
    if (flag !== undefined && (typeof flag === 'string' || spec.kind === 'boolean'))
      out[name] = convert(name, flag, `--${spec.flag}`);
    else if (fromEnv !== undefined && fromEnv !== '') out[name] = convert(name, fromEnv, envName(name));
    else if (file[name] !== undefined) out[name] = convert(name, file[name], `${configPath!}: ${name}`);
    else out[name] = spec.default;
  }
  return out as Settings;
}

export function settingsHelp(): string {
  const rows = Object.entries(settingSpecs).map(([name, spec]) => {
    const value = { seconds: ' <s>', int: ' <n>', number: ' <x>', string: ' <text>', boolean: '' }[spec.kind];
    const left = `  --${spec.flag}${value}`;
    return `${left.padEnd(30)} ${spec.help} (default ${spec.default}; ${envName(name)})`;
  });
  return rows.join('\n');
}
