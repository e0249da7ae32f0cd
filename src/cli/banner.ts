import { resolve } from 'node:path';
import { redisBrokerLine } from './redis-settings.js';
import { type Settings, brokerKind } from './settings.js';

export interface BannerOptions {
  /** The chat is served at / (kometa serve; not with --workers, where the primary prints). */
  readonly chat: boolean;
  /** The admin token was made up at start: show it, since no one else knows it. */
  readonly tokenGenerated: boolean;
  /** Extra lines (the proxy's). */
  readonly extra?: string;
}

/** What `kometa serve` prints once it listens: where everything is, ready to copy. */
export function hubBanner(base: string, settings: Settings, options: BannerOptions): string {
  const dashboard = options.tokenGenerated
    ? `${base}/_kometa/?token=${settings.adminToken}`
    : `${base}/_kometa/   (sign in with the --admin-token)`;
  const bearer = options.tokenGenerated ? settings.adminToken : '$KOMETA_ADMIN_TOKEN';
  return (
    `kometa hub listening on ${base}\n` +
    (options.chat ? `  chat       open ${base}/ in a browser${chatPresence(settings)}\n` : '') +
    `  dashboard  ${dashboard}\n` +
    `  metrics    curl -H "Authorization: Bearer ${bearer}" ${base}/metrics\n` +
    `  subscribe  curl -N ${base}/sub/demo      (or: kometa tail demo --url ${base})\n` +
    `  publish    curl -d 'hello' ${base}/pub/demo\n` +
    `  channel    ${base}/channels/demo\n` +
    `  comet      curl -N --raw ${base}/seed   (or: kometa tail ${base}/seed --wire)\n` +
    brokerLine(settings) +
    (options.extra ?? '')
  );
}

/** Without in-band joins and leaves the chat polls who is online: say which flag makes it live. */
function chatPresence(settings: Settings): string {
  return settings.presenceEvents || settings.noPresence ? '' : '  (who is online: polled; --presence-events: live)';
}

/** One line for the banner: where the hub keeps history. */
export function brokerLine(settings: Settings): string {
  const kind = brokerKind(settings);
  if (kind === 'memory') return '  history    in memory only (--memory): a restart loses it\n';
  if (kind === 'durable') {
    const sync =
      settings.fsyncInterval === 0 ? "fsync'd before every 201" : `fsync'd every ${settings.fsyncInterval} ms`;
    return `  history    on disk in ${resolve(settings.dataDir)} (${sync})\n`;
  }
  return redisBrokerLine(settings);
}
