import { MAX_CHANNEL_NAME_LENGTH, isValidChannelName } from '../protocol/cursor.js';
import { KometaError } from './errors.js';

export { MAX_CHANNEL_NAME_LENGTH, isValidChannelName };

/**
 * The one rule for channel names (CHANNEL_NAME_PATTERN in protocol/cursor.ts), used by every route and transport.
 *
 * A name is 1–128 ASCII characters: letters, digits and `_ - . : @`, starting
 * with a letter, digit or `_`. This keeps names safe as a path segment
 * (no `/`, no `..` as a whole segment, nothing that needs percent-encoding),
 * safe inside a cursor (`~` and `,` are the cursor's separators) and leaves `*`
 * free for access-control patterns.
 */
export function assertChannelName(name: string): string {
  if (!isValidChannelName(name)) {
    throw new KometaError(
      'KOMETA_ERR_CHANNEL_NAME',
      `Channel names are 1-${MAX_CHANNEL_NAME_LENGTH} characters of A-Z a-z 0-9 _ - . : @, starting with a letter, digit or _`,
      { channel: printable(name) },
    );
  }
  return name;
}

/** Echo a rejected name back without letting it carry control characters or unbounded length. */
function printable(value: string): string {
  const shortened = value.length > 64 ? `${value.slice(0, 64)}…` : value;
  return shortened.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const CLIENT_ID = /^[A-Za-z0-9_.:@-]{1,64}$/;

/**
 * A client id (`client=` on /sub and /ws, or a publish's excluded client):
 * 1–64 of A-Z a-z 0-9 _ . : @ -, so it can travel in a header, a query and
 * the Redis pub/sub payload (which separates it from the event with a space).
 */
export function isValidClientId(id: string): boolean {
  return CLIENT_ID.test(id);
}

const EVENT_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

/**
 * Event names travel in SSE `event:` lines, so they must never contain CR or
 * LF; and `kometa-` is reserved for the hub's own events (gap, shutdown,
 * error), so a publisher cannot fake a gap notice or a shutdown.
 */
export function assertEventName(name: string): string {
  if (!EVENT_NAME.test(name) || name.toLowerCase().startsWith('kometa-')) {
    throw new KometaError('KOMETA_ERR_EVENT_NAME', 'Event names are 1-64 characters of A-Z a-z 0-9 _ . : -, not starting with kometa-', {
      event: printable(name),
    });
  }
  return name;
}
