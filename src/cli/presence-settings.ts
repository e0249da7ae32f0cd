import type { Hub } from '../core/hub.js';
import type { PresenceOptions } from '../core/presence.js';
import { WebhookSender, parseWebhookEvents } from '../http/webhooks.js';
import type { Logger } from './logger.js';
import type { Settings } from './settings.js';

/** The hub's presence settings from the command line. */
export function presenceOptions(settings: Settings): Partial<PresenceOptions> {
  return { enabled: !settings.noPresence, graceMs: settings.presenceGrace * 1000, events: settings.presenceEvents };
}

/** What is wrong with the webhook settings, in one line; undefined when nothing is. */
export function webhookSettingsProblem(settings: Settings): string | undefined {
  const events = parseWebhookEvents(settings.webhookEvents);
  if (typeof events === 'string') return `--webhook-events: ${events}`;
  if (settings.webhookUrl === '') return undefined;
  if (!/^https?:\/\//.test(settings.webhookUrl) || !URL.canParse(settings.webhookUrl))
    return '--webhook-url must be an http:// or https:// URL';
  if (settings.noPresence) return '--webhook-url needs presence (it sends presence events): drop --no-presence';
  return undefined;
}

/** Start sending webhooks when --webhook-url is given; failures and drops are logged. */
export function startWebhooks(hub: Hub, settings: Settings, log: Logger): WebhookSender | undefined {
  if (settings.webhookUrl === '' || settings.noPresence) return undefined;
  const events = parseWebhookEvents(settings.webhookEvents);
  return new WebhookSender(hub, {
    url: settings.webhookUrl,
    secret: settings.webhookSecret,
    events: typeof events === 'string' ? [] : events,
    onDrop: (event) =>
      log.warn({ event: 'webhook-dropped', webhook: event }, 'webhook queue full: event dropped'),
    onFailure: (event, reason) =>
      log.warn({ event: 'webhook-failed', webhook: event.id, reason }, `webhook POST failed (${reason}); retrying`),
  });
}
