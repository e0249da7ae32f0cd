/*
 * In-band presence: a join or a leave travels as a message of the channel
 * with one of these reserved event names (publishers may not use the
 * `kometa-` prefix) and the member as JSON data. Only subscribers that asked
 * for presence (`?presence=1`, the WebSocket subscribe flag, the client's
 * `presence: true`) are sent them; on every transport they are framed like
 * any message, so SSE has `event: kometa-join`, NDJSON and WebSocket frames
 * and long-poll bodies carry `"event":"kometa-join"`.
 */

export const PRESENCE_EVENTS = {
  join: 'kometa-join',
  leave: 'kometa-leave',
} as const;

/** A member as a join or leave carries it. */
export interface PresenceMemberData {
  readonly client: string;
  readonly user: string | null;
  readonly info: unknown;
  readonly transport: string;
  readonly since: string;
}

export type PresenceKind = keyof typeof PRESENCE_EVENTS;

/** Which presence event a message's event name is; undefined for any other message. */
export function presenceKindOf(event: string | undefined): PresenceKind | undefined {
  if (event === PRESENCE_EVENTS.join) return 'join';
  if (event === PRESENCE_EVENTS.leave) return 'leave';
  return undefined;
}

export function encodePresenceData(member: PresenceMemberData): string {
  const { client, user, info, transport, since } = member;
  return JSON.stringify({ client, user, info, transport, since });
}

/** Read a join's or leave's data back; throws SyntaxError when it is not a member. */
export function parsePresenceData(data: string): PresenceMemberData {
  const value = JSON.parse(data) as Record<string, unknown> | null;
  if (
    value === null ||
    typeof value !== 'object' ||
    typeof value.client !== 'string' ||
    (value.user !== null && typeof value.user !== 'string') ||
    typeof value.transport !== 'string' ||
    typeof value.since !== 'string'
  ) {
    throw new SyntaxError('a kometa-join or kometa-leave event holds a member');
  }
  return {
    client: value.client,
    user: value.user as string | null,
    info: value.info ?? null,
    transport: value.transport,
    since: value.since,
  };
}
