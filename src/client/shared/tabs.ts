/*
 * One connection shared by every tab of an origin (docs/client.md, "One
 * connection for all tabs"). Web Locks elect the leader: every tab asks for
 * the same lock, the browser grants it to one, and releases it the moment
 * that tab closes or crashes, granting it to the next in line. The leader's
 * tab runs an ordinary client (the engine) for the union of all tabs'
 * channels and relays what arrives over a BroadcastChannel; every tab,
 * the leader's too, drops what it has already seen by id.
 */
import { PRESENCE_EVENTS, encodePresenceData } from '../../protocol/presence.js';
import { type ChannelPosition, parseId } from '../positions.js';
import {
  type KometaGap,
  type KometaMessage,
  type KometaPresence,
  KometaClientError,
  PRESENCE_OFF,
  type StateReason,
  type TransportName,
} from '../transport.js';
import { type TabChannels, planConnection, shareName, startingPositions, unionOfTabs } from './plan.js';

export interface SharedState {
  readonly state: 'disconnected' | 'connecting' | 'connected';
  readonly reason: StateReason;
  readonly transport?: TransportName;
  readonly detail?: string;
  readonly code?: string;
}

/** What a tab's client gives the shared connection. */
export interface SharedHost {
  /** The channels this tab follows, with the last position it has seen (ready ones only). */
  channels(): ReadonlyMap<string, ChannelPosition | undefined>;
  /** Whether this tab wants the channel's joins and leaves. */
  presence(channel: string): boolean;
  message(message: KometaMessage): void;
  gap(gap: KometaGap): void;
  channelError(channel: string, error: KometaClientError): void;
  state(state: SharedState): void;
}

/** The leader's own connection: a client that does not share (made by kometa.ts, so no import cycle). */
export interface Engine {
  subscribe(channel: string, options: {
    readonly cursor?: string;
    readonly presence: boolean;
    readonly onMessage: (message: KometaMessage) => void;
    readonly onGap: (gap: KometaGap) => void;
    readonly onError: (error: KometaClientError) => void;
    readonly onJoin: (join: KometaPresence) => void;
    readonly onLeave: (leave: KometaPresence) => void;
  }): { unsubscribe(): void };
  unsubscribe(channel: string): void;
  positions(): Map<string, string | undefined>;
  close(): void;
}

export type EngineFactory = (onState: (state: SharedState) => void) => Engine;

/** The options that decide whether, and with whom, a client shares. */
export interface ShareInput {
  readonly shareConnection?: boolean | string;
  readonly token?: unknown;
  readonly ticket?: unknown;
  readonly fetch?: unknown;
  readonly WebSocket?: unknown;
  readonly transports?: readonly unknown[];
  readonly clientId?: string;
  readonly withCredentials?: boolean;
  readonly random?: unknown;
  readonly backoff?: { readonly baseMs?: number; readonly maxMs?: number };
  readonly upgradeAfterMs?: number;
  readonly connectTimeoutMs?: number;
  readonly idleTimeoutMs?: number;
  readonly pingIntervalMs?: number;
  readonly pollTimeoutSeconds?: number;
}

/**
 * Who the tabs' credentials are, before hashing, and the settings the shared connection runs with (the
 * leader's options rule it, so only tabs with the same ones share).
 */
export type ShareIdentity = { readonly token?: string; readonly key?: string; readonly settings: string };

type Wire =
  | { readonly t: 'subs'; readonly from: string; readonly channels: [string, string | null][];
      /** The channels whose joins and leaves the tab wants. */
      readonly p?: string[] }
  | { readonly t: 'bye'; readonly from: string }
  | { readonly t: 'leader' }
  | { readonly t: 'msg'; readonly m: KometaMessage }
  | { readonly t: 'gap'; readonly g: KometaGap }
  | { readonly t: 'state'; readonly s: SharedState }
  | { readonly t: 'err'; readonly channel: string; readonly code: string; readonly detail: string;
      readonly status?: number };

/**
 * Whether this client shares, decided synchronously from its options: only
 * in a page (not Node, not a worker) with Web Locks, BroadcastChannel and
 * SubtleCrypto (all three need a secure context: https or localhost), and
 * only with credentials other tabs can be compared on.
 */
export function shareIdentity(options: ShareInput): ShareIdentity | undefined {
  const g = globalThis as { document?: unknown; navigator?: { locks?: unknown }; crypto?: { subtle?: unknown } };
  if (options.shareConnection === false) return undefined;
  // A backend addresses a given clientId on purpose: keep its own connection unless the application asked to share.
  if (options.clientId !== undefined && options.shareConnection === undefined) return undefined;
  if (g.document === undefined || g.navigator?.locks === undefined || g.crypto?.subtle === undefined) return undefined;
  if (typeof BroadcastChannel !== 'function') return undefined;
  const key = typeof options.shareConnection === 'string' ? options.shareConnection : undefined;
  // A function, a fetch or a transport object cannot be compared across tabs: share only when the application
  // names the identity itself.
  const opaque = typeof options.token === 'function' || options.ticket !== undefined || options.fetch !== undefined
    || options.WebSocket !== undefined || options.random !== undefined
    || (options.transports ?? []).some((t) => typeof t !== 'string');
  if (opaque && key === undefined) return undefined;
  const { backoff, upgradeAfterMs, connectTimeoutMs, idleTimeoutMs, pingIntervalMs, pollTimeoutSeconds } = options;
  const timings = [upgradeAfterMs, connectTimeoutMs, idleTimeoutMs, pingIntervalMs, pollTimeoutSeconds];
  return {
    settings: [backoff?.baseMs, backoff?.maxMs, ...timings].map((n) => n ?? '').join(','),
    ...(typeof options.token === 'string' ? { token: options.token } : {}),
    ...(key === undefined ? {} : { key }),
  };
}

async function sha256(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
  return [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export class SharedConnection {
  readonly #id = randomMemberId();
  /** A stop marked before this tab started is not its own. */
  readonly #startedAt = Date.now();
  readonly #host: SharedHost;
  readonly #createEngine: EngineFactory;
  readonly #abort = new AbortController();
  /** Every tab's channels, this one's included, as last announced. */
  readonly #members = new Map<string, TabChannels>();
  /** Every tab's channels that want joins and leaves, as last announced. */
  readonly #presence = new Map<string, ReadonlySet<string>>();
  /** The engine subscription relaying each followed channel, and whether it asked for joins and leaves. */
  readonly #relays = new Map<string, { presence: boolean; sub: { unsubscribe(): void } }>();
  /** Tabs heard from since this tab took the lead: a first report asks for all its channels afresh. */
  readonly #heard = new Set<string>();
  #name: string | undefined;
  #bus: BroadcastChannel | undefined;
  #engine: Engine | undefined;
  /** Channels the engine follows, with the cursor each was (re)subscribed from. */
  readonly #followed = new Map<string, ChannelPosition | undefined>();
  #lastState: SharedState | undefined;
  #resign: (() => void) | undefined;
  /** Set while this tab waits in line for the connection. */
  #queued: AbortController | undefined;
  #closed = false;
  readonly #onFreeze = () => this.#stepAside();
  readonly #onResume = () => {
    // Tell the leader where this tab stands: what was relayed while it was frozen may not have reached it.
    this.update();
    this.#queue();
  };
  readonly #onPageHide = () => this.#post({ t: 'bye', from: this.#id });
  /** Back from the back/forward cache: the leader forgot this tab at 'pagehide'. */
  readonly #onPageShow = (event: PageTransitionEvent) => {
    if (event.persisted) this.update();
  };

  constructor(host: SharedHost, createEngine: EngineFactory) {
    this.#host = host;
    this.#createEngine = createEngine;
  }

  /** 'leader' while this tab holds the connection, 'follower' while another does. */
  get role(): 'leader' | 'follower' {
    return this.#engine === undefined ? 'follower' : 'leader';
  }

  async start(hub: URL, transports: readonly string[], withCredentials: boolean, who: ShareIdentity): Promise<void> {
    // Lock names are visible to every script of the origin: a token goes in only as a hash.
    const hash = async (text: string | undefined) => (text === undefined ? '' : await sha256(text));
    const identity = `${who.settings}|${await hash(who.key)}:${await hash(who.token)}`;
    if (this.#closed) return;
    const name = shareName(hub, transports, withCredentials, identity);
    this.#name = name;
    this.#bus = new BroadcastChannel(name);
    this.#bus.onmessage = (event: MessageEvent<Wire>) => this.#receive(event.data);
    addEventListener('pagehide', this.#onPageHide);
    addEventListener('pageshow', this.#onPageShow);
    const { signal } = this.#abort;
    // Holding a lock of its own tells a new leader this tab is still open (a crashed tab sends no 'bye').
    navigator.locks.request(`${name}|member|${this.#id}`, { signal }, () => new Promise<void>((resolve) => {
      signal.addEventListener('abort', () => resolve());
    })).catch(() => {});
    document.addEventListener('freeze', this.#onFreeze);
    document.addEventListener('resume', this.#onResume);
    this.update();
    this.#queue();
  }

  #queue(): void {
    if (this.#closed || this.#name === undefined || this.#queued !== undefined) return;
    const queued = new AbortController();
    this.#queued = queued;
    navigator.locks.request(this.#name, { signal: queued.signal }, () => this.#lead()).catch(() => {}).finally(() => {
      if (this.#queued === queued) this.#queued = undefined;
    });
  }

  /**
   * The browser freezes this tab (a background tab on a phone, Page Lifecycle API): frozen, it would hold the lock
   * and relay nothing, or be granted it and not run. So it gives up the lead and leaves the line until it resumes.
   */
  #stepAside(): void {
    this.#queued?.abort();
    if (this.#engine === undefined) return;
    this.#engine.close();
    this.#engine = undefined;
    this.#followed.clear();
    this.#relays.clear();
    this.#resign?.();
  }

  /** This tab's channels changed (or a new leader asked): tell the leader. */
  update(): void {
    if (this.#closed || this.#bus === undefined) return;
    const channels: [string, string | null][] = [...this.#host.channels()].map(([c, p]) => [c, p?.id ?? null]);
    const p = channels.map(([c]) => c).filter((c) => this.#host.presence(c));
    this.#presence.set(this.#id, new Set(p));
    const asked = this.#record(this.#id, new Map(channels));
    this.#post({ t: 'subs', from: this.#id, channels, p });
    if (this.#engine !== undefined) this.#reconcile(asked);
  }

  /** Store a tab's report; returns what it newly asks for. */
  #record(member: string, channels: TabChannels): TabChannels {
    const before = this.#heard.has(member) ? this.#members.get(member) : undefined;
    this.#heard.add(member);
    this.#members.set(member, channels);
    return new Map([...channels].filter(([channel]) => before?.has(channel) !== true));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#post({ t: 'bye', from: this.#id });
    removeEventListener('pagehide', this.#onPageHide);
    removeEventListener('pageshow', this.#onPageShow);
    document.removeEventListener('freeze', this.#onFreeze);
    document.removeEventListener('resume', this.#onResume);
    this.#stepAside();
    this.#abort.abort();
    this.#bus?.close();
  }

  #post(wire: Wire): void {
    if (this.#bus === undefined) return;
    try {
      this.#bus.postMessage(wire);
    } catch {
      // Closed already (the tab is going away): nothing more to tell.
    }
  }

  async #lead(): Promise<void> {
    if (this.#closed) return;
    const held = await this.#forgetClosedTabs();
    if (this.#closed) return;
    const stopped = this.#stopMarkedSinceStart(held);
    if (stopped !== undefined) {
      // The last leader stopped for good while this tab was open: it ends too, and leaves the lock to the next tab.
      this.#host.state(stopped);
      return;
    }
    this.#trustOwnPositions();
    this.#heard.clear();
    this.#heard.add(this.#id);
    this.#engine = this.#createEngine((state) => {
      this.#lastState = state;
      const tell = () => {
        this.#post({ t: 'state', s: state });
        this.#host.state(state);
      };
      if (state.state === 'disconnected' && state.reason !== 'client-closed') this.#markStopped(state, tell);
      else tell();
    });
    // Every tab answers with its channels and where it stands on each; the engine starts from what is known now.
    this.#post({ t: 'leader' });
    this.#reconcile(new Map());
    await new Promise<void>((resolve) => {
      this.#resign = resolve;
    });
  }

  #trustOwnPositions(): void {
    this.#members.set(this.#id, new Map([...this.#host.channels()].map(([c, p]) => [c, p?.id ?? null])));
    for (const [member, channels] of startingPositions(this.#members, this.#id)) this.#members.set(member, channels);
  }

  async #forgetClosedTabs(): Promise<Set<string | undefined>> {
    const held = new Set((await navigator.locks.query()).held?.map((lock) => lock.name));
    for (const member of [...this.#members.keys()]) {
      if (member !== this.#id && !held.has(`${this.#name}|member|${member}`)) this.#members.delete(member);
    }
    return held;
  }

  // A stop for good is marked by a lock held while the page lives: the connection's lock may reach the next tab
  // before the message does, and that tab must not connect again (docs/client.md).
  #markStopped(state: SharedState, tell: () => void): void {
    const marker = `${this.#name}|stopped|${Date.now()}|${JSON.stringify(state)}`;
    navigator.locks.request(marker, () => (tell(), new Promise<void>(() => {}))).catch(tell);
  }

  #stopMarkedSinceStart(held: ReadonlySet<string | undefined>): SharedState | undefined {
    const prefix = `${this.#name}|stopped|`;
    for (const name of held) {
      const rest = name?.startsWith(prefix) === true ? name.slice(prefix.length) : '';
      const bar = rest.indexOf('|');
      const mine = bar > 0 && Number(rest.slice(0, bar)) >= this.#startedAt;
      if (mine) return JSON.parse(rest.slice(bar + 1)) as SharedState;
    }
    return undefined;
  }

  #receive(wire: Wire): void {
    if (this.#closed || typeof wire !== 'object' || wire === null) return;
    switch (wire.t) {
      case 'subs': {
        const known = this.#members.has(wire.from);
        this.#presence.set(wire.from, new Set(wire.p ?? []));
        const asked = this.#record(wire.from, new Map(wire.channels));
        if (this.#engine === undefined) return;
        this.#reconcile(asked);
        if (!known && this.#lastState !== undefined) this.#post({ t: 'state', s: this.#lastState });
        return;
      }
      case 'bye':
        this.#members.delete(wire.from);
        if (this.#engine !== undefined) this.#reconcile(new Map());
        return;
      case 'leader':
        this.update();
        return;
      case 'msg':
        this.#host.message(wire.m);
        return;
      case 'gap':
        this.#host.gap(wire.g);
        return;
      case 'state':
        this.#host.state(wire.s);
        return;
      case 'err':
        this.#host.channelError(wire.channel, new KometaClientError(wire.code, wire.detail, wire.status, wire.channel));
        return;
    }
  }

  /** Leader only: make the engine follow the union of every tab's channels. */
  #reconcile(asked: TabChannels): void {
    const engine = this.#engine;
    if (engine === undefined) return;
    const at = engine.positions();
    const followed = new Map<string, ChannelPosition | undefined>();
    for (const [channel, cursor] of this.#followed) {
      const id = at.get(channel);
      followed.set(channel, id === undefined ? cursor : (parseId(id) ?? cursor));
    }
    const plan = planConnection(unionOfTabs(this.#members.values()), followed, unionOfTabs([asked]));
    for (const channel of plan.drop) {
      this.#followed.delete(channel);
      this.#relays.delete(channel);
      engine.unsubscribe(channel);
    }
    for (const [channel, position] of plan.follow) this.#follow(engine, channel, position);
    for (const [channel, relay] of this.#relays) {
      if (relay.presence === this.#presenceWanted(channel)) continue;
      // Some tab now asks for joins and leaves, or none does any longer: relay through a subscription that asks as
      // they do, made before the old one ends, so the engine keeps the channel and its position.
      this.#follow(engine, channel, undefined);
      relay.sub.unsubscribe();
    }
    for (const [channel, position] of plan.rewind) {
      // Unsubscribe now and subscribe again from the older position in a later task, so the transport sends
      // both (it compares channel sets, not cursors). Tabs further on drop the repeats by id.
      engine.unsubscribe(channel);
      this.#relays.delete(channel);
      this.#followed.set(channel, position);
      setTimeout(() => {
        const still = this.#engine === engine && this.#followed.get(channel) === position;
        if (still) this.#follow(engine, channel, position);
      }, 0);
    }
  }

  /** Whether any open tab wants the channel's joins and leaves. */
  #presenceWanted(channel: string): boolean {
    return [...this.#members.keys()].some((member) => this.#presence.get(member)?.has(channel) === true);
  }

  #follow(engine: Engine, channel: string, position: ChannelPosition | undefined): void {
    if (position !== undefined || !this.#followed.has(channel)) this.#followed.set(channel, position);
    const relay = (m: KometaMessage) => {
      this.#post({ t: 'msg', m });
      this.#host.message(m);
    };
    // A join or a leave travels between tabs as the message it came as; each tab hands it to the handlers that asked.
    const relayPresence = ({ channel: c, id, type, member }: KometaPresence) =>
      relay({ channel: c, id, event: PRESENCE_EVENTS[type], data: encodePresenceData(member) });
    const presence = this.#presenceWanted(channel);
    const sub = engine.subscribe(channel, {
      ...(position === undefined ? {} : { cursor: position.id }),
      presence,
      onJoin: relayPresence,
      onLeave: relayPresence,
      onMessage: relay,
      onGap: (g) => {
        this.#post({ t: 'gap', g });
        this.#host.gap(g);
      },
      onError: (error) => {
        const { code, message: detail, status } = error;
        const wire: Wire = { t: 'err', channel, code, detail, ...(status === undefined ? {} : { status }) };
        if (code === PRESENCE_OFF) {
          // The hub sends no joins and leaves: the tabs that asked are told, and the channel goes on without them.
          this.#post(wire);
          this.#host.channelError(channel, error);
          return;
        }
        // The hub refused the channel for these credentials: every tab drops it, so it is not asked for again.
        this.#followed.delete(channel);
        this.#relays.delete(channel);
        for (const [member, channels] of this.#members) {
          const rest = new Map(channels);
          rest.delete(channel);
          this.#members.set(member, rest);
        }
        this.#post(wire);
        this.#host.channelError(channel, error);
      },
    });
    this.#relays.set(channel, { presence, sub });
  }
}

function randomMemberId(): string {
  const bytes = new Uint8Array(9);
  crypto.getRandomValues(bytes);
  return [...bytes].map((b) => b.toString(36)).join('');
}
