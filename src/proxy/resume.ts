import { type Position, parseCursor } from '../core/cursor.js';
import type { Hub } from '../core/hub.js';
import { idChannel } from '../protocol/cursor.js';
import type { GripChannel } from './instructions.js';
import { GRIP_EVENT, itemOf } from './items.js';

/** How far back in a channel's history a `prev-id` is looked for. */
export const PREV_ID_LOOKBACK = 100;

/**
 * Turn `Grip-Channel: name; prev-id=X` into a kometa cursor, closing the race
 * GRIP's prev-id exists for: something published after the origin read its
 * state and before the proxy held the request.
 *
 * - X may be a kometa message id of that channel (`name~epoch~seq`, what
 *   `POST /pub` answers with): that is a position already.
 * - Otherwise X is looked for as the `id` of a Pushpin item among the
 *   channel's last PREV_ID_LOOKBACK messages; found, the hold resumes after
 *   it, and what history holds after it answers the request at once.
 * - Not found: the hold starts from now. (Pushpin: "The first message
 *   received for a newly subscribed channel is always delivered immediately,
 *   regardless of prev-id value.")
 */
export async function cursorFromPrevIds(
  hub: Hub,
  channels: readonly GripChannel[],
): Promise<Map<string, Position> | null> {
  const cursor = new Map<string, Position>();
  await Promise.all(
    channels.map(async ({ name, prevId }) => {
      if (prevId === undefined) return;
      const own = kometaPosition(name, prevId);
      if (own !== undefined) {
        cursor.set(name, own);
        return;
      }
      const head = await hub.broker.head(name);
      if (head.seq === 0) return;
      const read = await hub.broker.read(name, Math.max(0, head.seq - PREV_ID_LOOKBACK));
      // Cheap text test first: most messages are not the one.
      const needle = `"id":${JSON.stringify(prevId)}`;
      for (let i = read.messages.length - 1; i >= 0; i--) {
        const message = read.messages[i]!;
        if (message.event !== GRIP_EVENT || !message.data.includes(needle)) continue;
        if (itemOf(message).id === prevId) {
          cursor.set(name, { epoch: message.epoch, seq: message.seq });
          return;
        }
      }
    }),
  );
  return cursor.size === 0 ? null : cursor;
}

function kometaPosition(channel: string, id: string): Position | undefined {
  if (idChannel(id) !== channel) return undefined;
  try {
    return parseCursor(id, 1).get(channel);
  } catch {
    return undefined;
  }
}
