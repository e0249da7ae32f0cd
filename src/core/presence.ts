import { randomBytes } from 'node:crypto';

/*
 * Presence: every subscription of a channel is a member. The hub keeps, per
 * channel, which members this process holds (several subscriptions with the
 * same client id are one member) and tells a `PresenceStore` when a member
 * arrives or, after a grace period, leaves. The store is what the whole
 * cluster agrees on: in process for the memory and durable brokers, in Redis
 * for the Redis brokers. The store decides the transitions (first member in,
 * last member out) and reports each once, to the process that made it; so an
 * event, and the webhook sent for it, happens exactly once per cluster.
 *
 * Nothing here runs per message: presence is touched on subscribe and
 * unsubscribe only, and fan-out never looks at it.
 */

/** Who a subscription is, as the HTTP or WebSocket layer knows it. */
export interface MemberIdentity {
  /** The id the client gave itself (`?client=`), or one made up for the connection. */
  readonly client: string;
  /** The `sub` of its token, or the user a ticket was minted for; null when anonymous. */
  readonly user: string | null;
  /** Signed info from the credential (`kometa.info`), never from the client unsigned. */
  readonly info: unknown;
  readonly transport: string;
}

export interface Member extends MemberIdentity {
  /** When it joined, ISO 8601. */
  readonly since: string;
}

export interface PresenceSnapshot {
  readonly channel: string;
  /** Members (clients) in the whole cluster. */
  readonly count: number;
  /** Distinct users among the listed members (anonymous members are not users). */
  readonly users: number;
  readonly members: Member[];
  /** Where the next page starts, when the channel has more members than one page holds. */
  readonly next: string | null;
}

export type PresenceEventName = 'join' | 'leave' | 'occupied' | 'vacated';

export interface PresenceEvent {
  readonly event: PresenceEventName;
  readonly channel: string;
  /** The member, for join and leave. */
  readonly member?: Member;
}

/**
 * Where members are kept. `join` and `leave` report what they changed; the
 * caller (the hub) turns that into events. A store shared by processes must
 * make `join`/`leave` atomic, so that of two processes racing to empty a
 * channel exactly one sees it empty.
 */
export interface PresenceStore {
  join(channel: string, member: Member): Promise<PresenceChange>;
  /** Remove the member if this process still owns it (another may have taken it over by now). */
  leave(channel: string, member: Member): Promise<PresenceChange>;
  snapshot(channel: string, limit: number, after: string | null): Promise<PresenceSnapshot>;
  count(channel: string): Promise<number>;
  /** `count` without a promise, for a store that keeps its members in this process. Optional. */
  countNow?(channel: string): number;
  /** Members that left without this process's help (a dead node's, reaped by this one). */
  setReapListener?(listener: (channel: string, gone: Member[], vacated: boolean) => void): void;
  /** Members the store wrote again (after an outage, or after its node was declared dead) that were missing. */
  setRejoinListener?(listener: (channel: string, member: Member, occupied: boolean) => void): void;
  /** How the store finds this process's members again (to re-register them after its node was declared dead). */
  setHeld?(held: () => Iterable<{ channel: string; member: Member }>): void;
  close(): Promise<void>;
}

export interface PresenceChange {
  /** The member was added (join) or removed (leave) by this call. */
  readonly changed: boolean;
  /** The channel went from empty to one member (join) or from one to none (leave). */
  readonly transition: boolean;
}

export interface PresenceOptions {
  /** Off: no members are kept, counts are this process's subscriptions, no events. */
  readonly enabled: boolean;
  /** A member that goes away and comes back (same client id) within this time neither leaves nor joins. */
  readonly graceMs: number;
  /** Most members one presence answer lists; more are paged. */
  readonly pageSize: number;
  /**
   * Publish each join and leave as a message of its channel, for subscribers
   * that ask for them. Off by default: they take sequence numbers and history
   * room in every channel, which an app not using them should not pay for.
   */
  readonly events: boolean;
}

export const defaultPresenceOptions: PresenceOptions = {
  enabled: true,
  graceMs: 5_000,
  pageSize: 1_000,
  events: false,
};

/** A client id for a subscriber that gave none: unique, and visibly not chosen by the client. */
export function newClientId(): string {
  return `k-${randomBytes(9).toString('base64url')}`;
}

/**
 * A made-up id can never come back, so its member leaves without a grace
 * period (holding it would only inflate the counts).
 */
function canComeBack(client: string): boolean {
  return !client.startsWith('k-');
}

/** Members held in this process only: the store of the memory and durable brokers. */
export class LocalPresenceStore implements PresenceStore {
  readonly #channels = new Map<string, Map<string, Member>>();

  async join(channel: string, member: Member): Promise<PresenceChange> {
    let members = this.#channels.get(channel);
    if (members === undefined) this.#channels.set(channel, (members = new Map()));
    const changed = !members.has(member.client);
    members.set(member.client, member);
    return { changed, transition: changed && members.size === 1 };
  }

  async leave(channel: string, member: Member): Promise<PresenceChange> {
    const members = this.#channels.get(channel);
    if (members === undefined || !members.delete(member.client)) return { changed: false, transition: false };
    if (members.size > 0) return { changed: true, transition: false };
    this.#channels.delete(channel);
    return { changed: true, transition: true };
  }

  async snapshot(channel: string, limit: number, after: string | null): Promise<PresenceSnapshot> {
    const members = this.#channels.get(channel);
    if (members === undefined) return { channel, count: 0, users: 0, members: [], next: null };
    return pageOf(channel, [...members.values()], limit, after);
  }

  async count(channel: string): Promise<number> {
    return this.countNow(channel);
  }

  countNow(channel: string): number {
    return this.#channels.get(channel)?.size ?? 0;
  }

  async close(): Promise<void> {
    this.#channels.clear();
  }
}

/**
 * One page of members, ordered by client id so that `after` (the last client
 * id of the previous page) walks the list; `users` counts the distinct users
 * of every member, not only the page's.
 */
export function pageOf(channel: string, all: Member[], limit: number, after: string | null): PresenceSnapshot {
  const users = new Set<string>();
  for (const member of all) if (member.user !== null) users.add(member.user);
  all.sort((a, b) => (a.client < b.client ? -1 : a.client > b.client ? 1 : 0));
  const from = after === null ? 0 : all.findIndex((m) => m.client > after);
  const start = from === -1 ? all.length : from;
  const members = all.slice(start, start + limit);
  const next = start + limit < all.length ? members[members.length - 1]!.client : null;
  return { channel, count: all.length, users: users.size, members, next };
}

interface LocalMember {
  member: Member;
  /** Subscriptions here with this client id on this channel. */
  holders: number;
  /** When the last holder left (monotonic ms): the member leaves once the grace period is over. */
  leavingAt: number | undefined;
  /** Settles when the store has the member (a leave waits for its join). */
  joined: Promise<unknown>;
}

/**
 * The hub's side of presence: counts holders per member in this process,
 * delays leaves by the grace period (one shared timer, only while some leave
 * is pending), and reports the store's transitions to `emit`.
 */
export class PresenceTracker {
  readonly #channels = new Map<string, Map<string, LocalMember>>();
  readonly #leaving = new Set<{ channel: string; client: string }>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(
    readonly store: PresenceStore,
    readonly options: PresenceOptions,
    private readonly emit: (event: PresenceEvent) => void,
    private readonly onError: (error: unknown) => void,
  ) {
    store.setReapListener?.((channel, gone, vacated) => {
      for (const member of gone) this.emit({ event: 'leave', channel, member });
      if (vacated) this.emit({ event: 'vacated', channel });
    });
    store.setRejoinListener?.((channel, member, occupied) => {
      if (occupied) this.emit({ event: 'occupied', channel });
      this.emit({ event: 'join', channel, member });
    });
    store.setHeld?.(() => this.held());
  }

  /** Settles once the store has the member (never rejects: a store error leaves it uncounted). */
  join(channel: string, identity: MemberIdentity): Promise<unknown> {
    if (this.#closed) return Promise.resolve();
    let members = this.#channels.get(channel);
    if (members === undefined) this.#channels.set(channel, (members = new Map()));
    const held = members.get(identity.client);
    if (held !== undefined) {
      held.holders++;
      held.leavingAt = undefined;
      return held.joined;
    }
    const member: Member = { ...identity, since: new Date().toISOString() };
    const joined = this.store.join(channel, member).then((change) => {
      if (!change.changed) return;
      if (change.transition) this.emit({ event: 'occupied', channel });
      this.emit({ event: 'join', channel, member });
    }, this.onError);
    members.set(identity.client, { member, holders: 1, leavingAt: undefined, joined });
    return joined;
  }

  leave(channel: string, client: string): void {
    const held = this.#channels.get(channel)?.get(client);
    if (held === undefined || --held.holders > 0) return;
    if (this.options.graceMs <= 0 || this.#closed || !canComeBack(client)) {
      this.#remove(channel, client, held);
      return;
    }
    held.leavingAt = performance.now() + this.options.graceMs;
    this.#leaving.add({ channel, client });
    this.#timer ??= setInterval(() => this.#sweep(), Math.min(250, this.options.graceMs)).unref();
  }

  #sweep(): void {
    const now = performance.now();
    for (const pending of this.#leaving) {
      const held = this.#channels.get(pending.channel)?.get(pending.client);
      if (held === undefined || held.leavingAt === undefined) {
        this.#leaving.delete(pending);
      } else if (held.leavingAt <= now) {
        this.#leaving.delete(pending);
        this.#remove(pending.channel, pending.client, held);
      }
    }
    if (this.#leaving.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #remove(channel: string, client: string, held: LocalMember): void {
    const members = this.#channels.get(channel)!;
    members.delete(client);
    if (members.size === 0) this.#channels.delete(channel);
    void held.joined
      .then(() => this.store.leave(channel, held.member))
      .then((change) => {
        if (!change.changed) return;
        this.emit({ event: 'leave', channel, member: held.member });
        if (change.transition) this.emit({ event: 'vacated', channel });
      }, this.onError);
  }

  /** Members held here (for a store that must re-register them, e.g. after its node was declared dead). */
  *held(): IterableIterator<{ channel: string; member: Member }> {
    for (const [channel, members] of this.#channels) {
      for (const { member } of members.values()) yield { channel, member };
    }
  }

  /** Leave every member now (no grace: the process is going away) and wait for the store. */
  close(): Promise<void> {
    this.#closing ??= this.#leaveAll();
    return this.#closing;
  }

  async #leaveAll(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#leaving.clear();
    const leaving: Promise<unknown>[] = [];
    for (const [channel, members] of this.#channels) {
      for (const held of members.values()) {
        leaving.push(
          held.joined
            .then(() => this.store.leave(channel, held.member))
            .then((change) => {
              if (!change.changed) return;
              this.emit({ event: 'leave', channel, member: held.member });
              if (change.transition) this.emit({ event: 'vacated', channel });
            }, this.onError),
        );
      }
    }
    this.#channels.clear();
    await Promise.allSettled(leaving);
    await this.store.close().catch(() => {});
  }
}
