/*
 * The pure half of sharing one connection between tabs: which channels the
 * leader's connection must follow, and from where, given what every tab has
 * reported. No browser API here, so it is tested on its own
 * (test/unit/client-shared.test.ts).
 */
import { type ChannelPosition, parseId } from '../positions.js';

/** What one tab follows: channel → the last id it has seen (null: it follows from "now" and has seen nothing). */
export type TabChannels = ReadonlyMap<string, string | null>;

/**
 * The position the shared connection must resume a channel from: the
 * *oldest* one any tab still needs. A tab may not yet have read the last
 * messages the previous leader broadcast when a new leader takes over, and a
 * tab may join with an older cursor (`from: 'start'`, a stored cursor);
 * resuming from the oldest loses nothing for any of them, and the tabs that
 * are further on drop the repeats by id. Undefined: every tab follows the
 * channel from now.
 */
export function oldestPosition(ids: Iterable<string | null>): ChannelPosition | undefined {
  let oldest: ChannelPosition | undefined;
  for (const id of ids) {
    const position = id === null ? undefined : parseId(id);
    if (position === undefined) continue;
    // Positions of two epochs cannot be ordered; the first one seen wins and the hub reports the gap to the other.
    if (oldest === undefined || (oldest.epoch === position.epoch && position.seq < oldest.seq)) oldest = position;
  }
  return oldest;
}

/** The union of every tab's channels, each with the position to resume it from. */
export function unionOfTabs(tabs: Iterable<TabChannels>): Map<string, ChannelPosition | undefined> {
  const ids = new Map<string, (string | null)[]>();
  for (const tab of tabs) {
    for (const [channel, id] of tab) {
      const list = ids.get(channel);
      if (list === undefined) ids.set(channel, [id]);
      else list.push(id);
    }
  }
  return new Map([...ids].map(([channel, list]) => [channel, oldestPosition(list)]));
}

/**
 * What a new leader starts from. The other tabs' positions are as old as their last report, perhaps the moment
 * they subscribed: starting from those would replay everything since. Where the new leader's tab follows a
 * channel too, its own position counts and the others' do not (null); the fresh reports that the new leader
 * asks for make the connection go back further if some tab turns out to be behind it.
 */
export function startingPositions(tabs: ReadonlyMap<string, TabChannels>, self: string): Map<string, TabChannels> {
  const own = tabs.get(self) ?? new Map<string, string | null>();
  const out = new Map<string, TabChannels>();
  for (const [tab, channels] of tabs) {
    out.set(tab, tab === self ? channels : new Map([...channels].map(([c, id]) => [c, own.has(c) ? null : id])));
  }
  return out;
}

export interface Plan {
  /** Channels the connection does not follow yet, with the cursor to start from. */
  readonly follow: [string, ChannelPosition | undefined][];
  /** Channels it follows from a later position than a tab needs: follow again from the older one. */
  readonly rewind: [string, ChannelPosition][];
  /** Channels no tab follows any longer. */
  readonly drop: string[];
}

/**
 * What the leader's connection must change, given the union the tabs want, where the connection stands on each
 * channel it follows (undefined: subscribed from now, nothing seen yet), and what one tab has just asked for
 * (its new channels, or all of them in its first report to a new leader). Only a fresh request can send the
 * connection back: the other tabs' reports are as old as their last change, and the connection has served them
 * since.
 */
export function planConnection(
  wanted: ReadonlyMap<string, ChannelPosition | undefined>,
  followed: ReadonlyMap<string, ChannelPosition | undefined>,
  asked: ReadonlyMap<string, ChannelPosition | undefined> = new Map(),
): Plan {
  const plan: Plan = { follow: [], rewind: [], drop: [] };
  for (const channel of followed.keys()) if (!wanted.has(channel)) plan.drop.push(channel);
  for (const [channel, position] of wanted) if (!followed.has(channel)) plan.follow.push([channel, position]);
  for (const [channel, position] of asked) {
    const current = followed.get(channel);
    if (position === undefined || current === undefined || !wanted.has(channel)) continue;
    if (current.epoch === position.epoch && position.seq < current.seq) plan.rewind.push([channel, position]);
  }
  return plan;
}

/**
 * The name tabs share a connection under: the hub, the transports and the
 * credential's identity. Tabs that differ in any of these keep their own
 * connections, so a tab never receives a channel through another tab's rights.
 */
export function shareName(hub: URL, transports: readonly string[], withCredentials: boolean, identity: string): string {
  return `kometa|${hub.origin}${hub.pathname}|${transports.join(',')}|${withCredentials ? 'cred' : ''}|${identity}`;
}
