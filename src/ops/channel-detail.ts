import { assertChannelName } from '../core/channel-name.js';
import type { Hub } from '../core/hub.js';
import { shorten } from './wire.js';
import { socketOf, subscriptionId } from './sources.js';

const RECENT = 25;
const LISTED = 200;

export interface ChannelDetail {
  readonly channel: string;
  readonly epoch: string;
  readonly last: number;
  readonly history: { readonly messages: number; readonly bytes: number };
  readonly recent: readonly {
    id: string;
    event?: string;
    time: number;
    size: number;
    data: string;
    truncated: boolean;
  }[];
  readonly subscribers: number;
  /** Members in the whole cluster (docs/presence.md): clients and distinct users; null: presence off or unreadable. */
  readonly presence: { readonly count: number; readonly users: number } | null;
  /** The first few, with what can be told about each; `tap` says whether the wire can be watched. */
  readonly listed: readonly { id: number; transport: string; remote?: string; cursor: string; tap: boolean }[];
}

/** One channel for the dashboard: its recent messages (from history) and its subscribers here. */
export async function channelDetail(hub: Hub, channel: string): Promise<ChannelDetail> {
  assertChannelName(channel);
  const stats = await hub.broker.stats(channel);
  const read = stats.headSeq === 0 ? undefined : await hub.broker.read(channel, Math.max(0, stats.headSeq - RECENT));
  const listed: { id: number; transport: string; remote?: string; cursor: string; tap: boolean }[] = [];
  let subscribers = 0;
  for (const subscription of hub.liveSubscriptions) {
    if (!subscription.channelNames.includes(channel)) continue;
    subscribers++;
    if (listed.length >= LISTED) continue;
    const socket = socketOf(subscription.sink);
    listed.push({
      id: subscriptionId(subscription),
      transport: subscription.sink?.encoder.name ?? '?',
      ...(socket?.remoteAddress === undefined ? {} : { remote: `${socket.remoteAddress}:${socket.remotePort ?? ''}` }),
      cursor: subscription.cursor().slice(0, 200),
      tap: socket !== undefined,
    });
  }
  const presence = await hub.presence?.store.snapshot(channel, 1, null).then(
    ({ count, users }) => ({ count, users }),
    () => null,
  );
  return {
    channel,
    presence: presence ?? null,
    epoch: stats.epoch,
    last: stats.headSeq,
    history: { messages: stats.messages, bytes: stats.bytes },
    recent: (read?.messages ?? []).slice(-RECENT).reverse().map((m) => {
      const { text, truncated } = shorten(Buffer.from(m.data), 400);
      return {
        id: m.id,
        ...(m.event === undefined ? {} : { event: m.event }),
        time: m.time,
        size: m.size,
        data: text,
        truncated,
      };
    }),
    subscribers,
    listed,
  };
}
