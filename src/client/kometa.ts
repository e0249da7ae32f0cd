import { type BackoffOptions, backoffDelay } from './backoff.js';
import { Emitter, reportListenerError } from './emitter.js';
import { cursorEntryTexts, formatId, idChannel } from '../protocol/cursor.js';
import { parsePresenceData, presenceKindOf } from '../protocol/presence.js';
import { CHANNEL_PATTERN, type ChannelPosition, isAhead, parseId } from './positions.js';
import {
  type ClientTransport,
  type KometaGap,
  type KometaMessage,
  type KometaPresence,
  KometaClientError,
  PRESENCE_OFF,
  type PublishResult,
  type StateReason,
  type TransportClose,
  type TransportConnection,
  type TransportHost,
  type TransportName,
  type TransportTimings,
  fetchChannelInfo,
} from './transport.js';
import { SharedConnection, type SharedHost, type SharedState, shareIdentity } from './shared/tabs.js';
import { pollTransport } from './transports/poll.js';
import { sseTransport } from './transports/sse.js';
import { type WebSocketConstructor, websocketTransport } from './transports/websocket.js';

export type ConnectionState = 'disconnected' | 'connecting' | 'connected';

export interface StateChange {
  readonly state: ConnectionState;
  readonly previous: ConnectionState;
  readonly reason: StateReason;
  /** The transport in use once connected (or the one that just dropped). */
  readonly transport?: TransportName;
  readonly detail?: string;
  /** The hub's problem code, when it gave one (e.g. `KOMETA_ERR_UNAUTHORIZED` with reason `unauthorized`). */
  readonly code?: string;
}

export interface TransportChange {
  readonly transport: TransportName;
  readonly previous: TransportName;
}

export interface KometaOptions {
  /** Transports to try, best first (default: websocket, sse, poll). Names or transport objects. */
  readonly transports?: readonly (TransportName | ClientTransport)[];
  /** A WebSocket implementation where there is no global one (Node 20: the `ws` package's WebSocket). */
  readonly WebSocket?: WebSocketConstructor;
  /** A fetch implementation (default: the global one). */
  readonly fetch?: typeof fetch;
  /** An access token, or a function that returns a fresh one for each connection. */
  readonly token?: string | (() => string | undefined | Promise<string | undefined>);
  /**
   * A subscribe ticket for each new subscribe request (SSE connection,
   * long-poll, WebSocket): return a fresh one from your backend, which mints
   * it with `POST /tickets`. Tickets are single-use; in a browser the first one
   * spent also sets a session cookie that later requests carry.
   */
  readonly ticket?: () => string | undefined | Promise<string | undefined>;
  /**
   * Send cookies (the ticket's session cookie, a `kometa_token` cookie) to a hub on another origin: fetch's
   * `credentials: 'include'`.
   */
  readonly withCredentials?: boolean;
  readonly backoff?: BackoffOptions;
  /** While on a fallback transport, try the better ones again after this long (doubling up to 5 minutes). */
  readonly upgradeAfterMs?: number;
  readonly connectTimeoutMs?: number;
  /** SSE: a stream silent for this long is treated as dead (the hub sends a heartbeat every 15 s). */
  readonly idleTimeoutMs?: number;
  /** WebSocket: how often the client pings; two intervals without a frame mean the connection is dead. */
  readonly pingIntervalMs?: number;
  /** Long-poll: how long each poll is held by the hub, in seconds. */
  readonly pollTimeoutSeconds?: number;
  /**
   * This client's id, sent to the hub as `client=` so that a backend can disconnect it (default: a random one; see
   * `clientId`).
   */
  readonly clientId?: string;
  /** Source of randomness for backoff jitter (tests pass a fixed one). */
  readonly random?: () => number;
  /**
   * Share one connection with the other tabs of this origin that use the same hub, transports and credentials
   * (default true where the browser can; docs/client.md). `false`: this client keeps its own. A string: the
   * identity of a `token` or `ticket` function (e.g. the user's id), which tabs cannot compare by themselves.
   */
  readonly shareConnection?: boolean | string;
}

export interface SubscribeOptions {
  readonly onMessage?: (message: KometaMessage) => void;
  readonly onGap?: (gap: KometaGap) => void;
  /**
   * The hub refused the subscription (e.g. not allowed); the client no longer follows the channel. Code
   * `KOMETA_ERR_PRESENCE_EVENTS_OFF`: the hub sends no joins and leaves; the channel's messages go on.
   */
  readonly onError?: (error: KometaClientError) => void;
  /** Also receive who joins and leaves the channel (the hub must run with `--presence-events`). */
  readonly presence?: boolean;
  readonly onJoin?: (join: KometaPresence) => void;
  readonly onLeave?: (leave: KometaPresence) => void;
  /** Resume after this message id (one the application stored). */
  readonly cursor?: string;
  /** `'start'`: begin with everything the channel's history still holds; default `'now'`. */
  readonly from?: 'start' | 'now';
}

export interface KometaSubscription {
  readonly channel: string;
  /** The last position seen on the channel, to store and pass back as `cursor` later. */
  readonly position: string | undefined;
  unsubscribe(): void;
}

type Handlers = Omit<SubscribeOptions, 'cursor' | 'from'>;

interface ChannelEntry {
  readonly handlers: Set<Handlers>;
  position: ChannelPosition | undefined;
  /** False while the start of history is being looked up: not yet sent to the hub. */
  ready: boolean;
  /** The hub said it sends no joins and leaves: the channel is followed without them from then on. */
  presenceOff?: KometaClientError;
}

/** Whether the hub is to send the channel's joins and leaves: some handler asked, and the hub has not said no. */
function wantsPresence(entry: ChannelEntry | undefined): boolean {
  return entry?.presenceOff === undefined && [...(entry?.handlers ?? [])].some((h) => h.presence === true);
}

/** One attempt at a connection with one transport. */
interface Link {
  readonly transport: ClientTransport;
  readonly index: number;
  connection: TransportConnection | undefined;
  opened: boolean;
}

const MAX_UPGRADE_DELAY_MS = 5 * 60_000;

/**
 * The kometa client. One connection (WebSocket, SSE or long-poll, best
 * first) carries every channel; it reconnects by itself with capped,
 * jittered backoff, resumes each channel from its last id, drops duplicates,
 * and reports gaps instead of losing messages silently.
 *
 * State machine: disconnected → connecting → connected → connecting → …;
 * `close()` → disconnected. A `state` event fires only when the state
 * really changes, always with a reason.
 */
export class Kometa {
  readonly url: URL;
  #state: ConnectionState = 'disconnected';
  #closed = false;
  readonly #emitter = new Emitter<{
    state: (change: StateChange) => void;
    transport: (change: TransportChange) => void;
  }>();
  readonly #channels = new Map<string, ChannelEntry>();
  readonly #transports: ClientTransport[];
  readonly #options: KometaOptions;
  readonly #timings: TransportTimings;
  readonly #fetch: typeof fetch;
  #link: Link | undefined;
  #probe: Link | undefined;
  /** Index in the transport list to try next. */
  #index = 0;
  /** Failed attempts since the last connection that opened. */
  #attempt = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #upgradeTimer: ReturnType<typeof setTimeout> | undefined;
  #upgradeDelay: number;
  #updateScheduled = false;
  readonly #clientId: string;
  /** Set while this client shares its connection with other tabs instead of opening its own. */
  #shared: SharedConnection | undefined;
  #sharedTransport: TransportName | undefined;

  constructor(url: string | URL, options: KometaOptions = {}) {
    const base = (globalThis as { location?: { href: string } }).location?.href;
    this.url = new URL(url, base);
    this.#options = options;
    const fetchImpl = options.fetch ?? globalThis.fetch;
    // Called unbound, browsers throw "Illegal invocation".
    this.#fetch =
      options.withCredentials === true
        ? (input, init) => fetchImpl.call(globalThis, input, { ...init, credentials: 'include' })
        : (input, init) => fetchImpl.call(globalThis, input, init);
    this.#timings = {
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      idleTimeoutMs: options.idleTimeoutMs ?? 45_000,
      pingIntervalMs: options.pingIntervalMs ?? 20_000,
      pollTimeoutSeconds: options.pollTimeoutSeconds ?? 25,
    };
    this.#upgradeDelay = options.upgradeAfterMs ?? 30_000;
    this.#clientId = options.clientId ?? randomId();
    const wanted = options.transports ?? ['websocket', 'sse', 'poll'];
    this.#transports = wanted
      .map((t) => {
        if (typeof t !== 'string') return t;
        if (t === 'websocket') return websocketTransport(options.WebSocket);
        return t === 'sse' ? sseTransport() : pollTransport();
      })
      .filter((t) => t.available());
    if (this.#transports.length === 0) {
      throw new KometaClientError(
        'KOMETA_CLIENT_NO_TRANSPORT',
        'None of the transports can run here (give a WebSocket implementation or fetch)',
      );
    }
    const identity = shareIdentity(options);
    if (identity !== undefined) {
      this.#shared = new SharedConnection(this.#sharedHost(), (onState) => {
        const engine = new Kometa(this.url, { ...options, shareConnection: false });
        engine.on('state', onState);
        return engine;
      });
    }
    // Let the caller attach listeners before the first state event.
    queueMicrotask(() => {
      if (this.#closed) return;
      if (this.#shared === undefined || identity === undefined) {
        this.#connect('connect');
        return;
      }
      this.#setState('connecting', 'connect');
      const names = wanted.map((t) => (typeof t === 'string' ? t : t.name));
      this.#shared.start(this.url, names, options.withCredentials === true, identity).catch(() => {
        // Sharing could not start (e.g. hashing failed): this tab connects on its own.
        this.#shared?.close();
        this.#shared = undefined;
        if (!this.#closed) this.#connect('connect');
      });
    });
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** The id this client gives the hub (`client=`): what `POST /disconnect {"client"}` names. */
  get clientId(): string {
    return this.#clientId;
  }

  /** The transport of the current connection, once connected. */
  get transport(): TransportName | undefined {
    if (this.#shared !== undefined) return this.#sharedTransport;
    return this.#link?.opened === true ? this.#link.transport.name : undefined;
  }

  /** Sharing one connection between tabs: 'leader' holds it, a 'follower' gets messages through it; else undefined. */
  get shareRole(): 'leader' | 'follower' | undefined {
    return this.#closed ? undefined : this.#shared?.role;
  }

  on(event: 'state', listener: (change: StateChange) => void): () => void;
  on(event: 'transport', listener: (change: TransportChange) => void): () => void;
  on(
    event: 'state' | 'transport',
    listener: ((change: StateChange) => void) & ((change: TransportChange) => void),
  ): () => void {
    return this.#emitter.on(event, listener);
  }

  /** Follow a channel. Every channel of a client shares its one connection. */
  subscribe(channel: string, options: SubscribeOptions = {}): KometaSubscription {
    if (this.#closed) throw new KometaClientError('KOMETA_CLIENT_CLOSED', 'The client is closed');
    if (!CHANNEL_PATTERN.test(channel)) {
      throw new KometaClientError(
        'KOMETA_ERR_CHANNEL_NAME',
        `Invalid channel name: ${channel.slice(0, 64)}`,
        400,
        channel,
      );
    }
    const handlers: Handlers = { ...options };
    let entry = this.#channels.get(channel);
    if (entry === undefined) {
      const fromCursor = cursorEntryTexts(options.cursor ?? '').find((e) => idChannel(e) === channel);
      const cursor = options.cursor === undefined ? undefined : parseId(fromCursor ?? '');
      // A shared connection resumes from positions the tabs report, so "now" is looked up first too.
      const now = options.from !== 'start' && this.#shared === undefined;
      entry = { handlers: new Set(), position: cursor, ready: cursor !== undefined || now };
      this.#channels.set(channel, entry);
      if (!entry.ready) this.#findStart(channel, entry, options.from ?? 'now');
      else this.#scheduleUpdate();
    }
    const before = wantsPresence(entry);
    const refused = options.presence === true ? entry.presenceOff : undefined;
    if (refused !== undefined) queueMicrotask(() => call(options.onError, refused));
    entry.handlers.add(handlers);
    // A channel already followed that now wants its joins and leaves: the transport asks for them.
    if (wantsPresence(entry) !== before) this.#scheduleUpdate();
    const self = this;
    return {
      channel,
      get position() {
        return self.#channels.get(channel)?.position?.id;
      },
      unsubscribe: () => {
        const current = this.#channels.get(channel);
        const before = wantsPresence(current);
        if (current === undefined || !current.handlers.delete(handlers)) return;
        if (current.handlers.size === 0) this.unsubscribe(channel);
        else if (wantsPresence(current) !== before) this.#scheduleUpdate();
      },
    };
  }

  /** Stop following a channel (every handler of it). */
  unsubscribe(channel: string): void {
    if (this.#channels.delete(channel)) this.#scheduleUpdate();
  }

  /** The channels followed, with the last position of each (ids to resume from later). */
  positions(): Map<string, string | undefined> {
    return new Map([...this.#channels].map(([channel, entry]) => [channel, entry.position?.id]));
  }

  /**
   * Publish text (objects are sent as JSON). Over the WebSocket when that is
   * the connection in use, otherwise with `POST /pub/<channel>`. Resolves with
   * the message's id once the hub has stored it. At most once: if the
   * connection drops before the answer, it rejects and the message may or may
   * not have been stored.
   */
  async publish(channel: string, data: string | object, options: { event?: string } = {}): Promise<PublishResult> {
    if (this.#closed) throw new KometaClientError('KOMETA_CLIENT_CLOSED', 'The client is closed');
    const text = typeof data === 'string' ? data : JSON.stringify(data);
    const link = this.#link?.opened === true ? this.#link : undefined;
    const overSocket = link?.connection?.publish?.(channel, text, options.event);
    if (overSocket !== undefined) return overSocket;
    const url = new URL(`/pub/${encodeURIComponent(channel)}`, this.url);
    if (options.event !== undefined) url.searchParams.set('event', options.event);
    const type = typeof data === 'string' ? 'text/plain; charset=utf-8' : 'application/json';
    const headers: Record<string, string> = { 'Content-Type': type };
    const token = await this.#token();
    if (token !== undefined) headers.Authorization = `Bearer ${token}`;
    const response = await this.#fetch(url, { method: 'POST', headers, body: text });
    type Answer = Partial<PublishResult> & { code?: string; detail?: string };
    const body = (await response.json().catch(() => ({}))) as Answer;
    if (response.status !== 201) {
      throw new KometaClientError(
        body.code ?? 'KOMETA_CLIENT_HTTP',
        body.detail ?? `publish failed with ${response.status}`,
        response.status,
        channel,
      );
    }
    return { channel, id: String(body.id), subscribers: Number(body.subscribers) };
  }

  /** Close the connection for good. Handlers are no longer called. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#upgradeTimer);
    const transport = this.#link?.transport.name;
    this.#link?.connection?.close();
    this.#probe?.connection?.close();
    this.#link = undefined;
    this.#probe = undefined;
    this.#shared?.close();
    this.#channels.clear();
    this.#setState('disconnected', 'client-closed', transport);
  }

  async #token(): Promise<string | undefined> {
    const token = this.#options.token;
    return typeof token === 'function' ? await token() : token;
  }

  /** `from: 'start'`: the channel's epoch and oldest retained message, so that the subscription replays all of it. */
  #findStart(channel: string, entry: ChannelEntry, from: 'start' | 'now'): void {
    const lookup = async () => {
      const ticket = async () => (this.#options.ticket === undefined ? undefined : await this.#options.ticket());
      const host = { base: this.url, fetch: this.#fetch, token: () => this.#token(), ticket };
      const info = await fetchChannelInfo(host, channel);
      const seq = from === 'start' && info.oldestSeq !== undefined ? info.oldestSeq - 1 : info.headSeq;
      return parseId(formatId(channel, info.epoch, seq));
    };
    const settle = (position: ChannelPosition | undefined) => {
      if (this.#channels.get(channel) !== entry) return;
      if (entry.position === undefined) entry.position = position;
      entry.ready = true;
      this.#scheduleUpdate();
    };
    // If the lookup fails, follow the channel from now rather than not at all; retrying belongs to the connection.
    lookup().then(settle, () => settle(undefined));
  }

  #scheduleUpdate(): void {
    if (this.#updateScheduled) return;
    this.#updateScheduled = true;
    // Subscribing to several channels in one go re-opens an HTTP subscription once.
    queueMicrotask(() => {
      this.#updateScheduled = false;
      this.#link?.connection?.update();
      this.#shared?.update();
    });
  }

  #connect(reason: StateReason): void {
    if (this.#closed) return;
    this.#retryTimer = undefined;
    const index = Math.min(this.#index, this.#transports.length - 1);
    const link: Link = { transport: this.#transports[index]!, index, connection: undefined, opened: false };
    this.#link = link;
    this.#setState('connecting', reason);
    link.connection = link.transport.open(this.#host(link), this.#timings);
  }

  #host(link: Link): TransportHost {
    const current = () => this.#link === link && !this.#closed;
    return {
      base: this.url,
      fetch: this.#fetch,
      clientId: this.#clientId,
      token: () => this.#token(),
      ticket: async () => (this.#options.ticket === undefined ? undefined : await this.#options.ticket()),
      channels: () => this.#readyChannels(),
      presence: (channel) => wantsPresence(this.#channels.get(channel)),
      opened: () => {
        if (this.#probe === link) {
          this.#switchTo(link);
          return;
        }
        if (!current()) return;
        link.opened = true;
        this.#attempt = 0;
        this.#setState('connected', 'open', link.transport.name);
        if (link.index > 0) this.#scheduleUpgrade();
      },
      message: (message) => {
        if (current()) this.#onMessage(message);
      },
      gap: (gap) => {
        if (current()) this.#onGap(gap);
      },
      position: (position) => {
        if (!current()) return;
        const entry = this.#channels.get(position.channel);
        if (entry !== undefined && isAhead(entry.position, position)) entry.position = position;
      },
      channelError: (channel, error) => {
        if (current()) this.#dropChannel(channel, error);
      },
      closed: (close) => {
        if (this.#probe === link) {
          this.#probe = undefined;
          this.#upgradeDelay = Math.min(this.#upgradeDelay * 2, MAX_UPGRADE_DELAY_MS);
          this.#scheduleUpgrade();
          return;
        }
        if (current()) this.#onClosed(link, close);
      },
    };
  }

  #readyChannels(): Map<string, ChannelPosition | undefined> {
    const out = new Map<string, ChannelPosition | undefined>();
    for (const [channel, entry] of this.#channels) if (entry.ready) out.set(channel, entry.position);
    return out;
  }

  #dropChannel(channel: string, error: KometaClientError): void {
    const entry = this.#channels.get(channel);
    if (entry === undefined) return;
    if (error.code === PRESENCE_OFF) {
      // Not a refusal of the channel: tell those who asked for joins and leaves, and follow it without them.
      if (!wantsPresence(entry)) return;
      entry.presenceOff = error;
      for (const handlers of entry.handlers) if (handlers.presence === true) call(handlers.onError, error);
      this.#scheduleUpdate();
      return;
    }
    this.#channels.delete(channel);
    for (const handlers of entry.handlers) call(handlers.onError, error);
    this.#scheduleUpdate();
  }

  /** What the shared connection reports to this tab: the same calls a transport makes, plus its state. */
  #sharedHost(): SharedHost {
    return {
      channels: () => this.#readyChannels(),
      presence: (channel) => wantsPresence(this.#channels.get(channel)),
      message: (message) => {
        if (!this.#closed) this.#onMessage(message);
      },
      gap: (gap) => {
        if (!this.#closed) this.#onGap(gap);
      },
      channelError: (channel, error) => {
        if (!this.#closed) this.#dropChannel(channel, error);
      },
      state: (change) => this.#onSharedState(change),
    };
  }

  #onSharedState(change: SharedState): void {
    // The engine says client-closed only when its tab resigns; the other tabs stay with the next leader.
    if (this.#closed || change.reason === 'client-closed') return;
    this.#sharedTransport = change.state === 'connected' ? change.transport : undefined;
    if (change.state === 'disconnected') {
      // The backend ended the shared connection's client, or the hub wants a credential the tabs do not have:
      // every tab on it ends, as one client would.
      this.#closed = true;
      this.#shared?.close();
    }
    this.#setState(change.state, change.reason, change.transport, change.detail, change.code);
  }

  #onMessage(message: KometaMessage): void {
    const entry = this.#channels.get(message.channel);
    const position = parseId(message.id);
    if (entry === undefined || position === undefined) return;
    // De-duplicate: a reconnect or a transport switch may replay what was already delivered.
    if (!isAhead(entry.position, position)) return;
    entry.position = position;
    const type = presenceKindOf(message.event);
    if (type === undefined) {
      for (const handlers of entry.handlers) call(handlers.onMessage, message);
      return;
    }
    // A join or a leave: only for handlers that asked (the request may carry them for another channel's sake).
    let member;
    try {
      member = parsePresenceData(message.data);
    } catch {
      return;
    }
    const event: KometaPresence = { channel: message.channel, id: message.id, type, member };
    for (const handlers of entry.handlers) {
      if (handlers.presence === true) call(type === 'join' ? handlers.onJoin : handlers.onLeave, event);
    }
  }

  #onGap(gap: KometaGap): void {
    const entry = this.#channels.get(gap.channel);
    if (entry === undefined) return;
    const position = parseId(gap.id);
    // A tab already past the gap lost nothing: a shared connection that went back for another tab relays it to all.
    if (position !== undefined && this.#shared !== undefined && !isAhead(entry.position, position)) return;
    if (position !== undefined) entry.position = position;
    for (const handlers of entry.handlers) call(handlers.onGap, gap);
  }

  #onClosed(link: Link, close: TransportClose): void {
    this.#link = undefined;
    clearTimeout(this.#upgradeTimer);
    const renewable = typeof this.#options.token === 'function' || this.#options.ticket !== undefined;
    if (close.reason === 'server-disconnect' || (close.reason === 'unauthorized' && !renewable)) {
      // The application ended this client on purpose, or the hub wants a credential this client cannot get:
      // coming back by itself would undo the one and repeat the other forever.
      this.#closed = true;
      clearTimeout(this.#retryTimer);
      this.#probe?.connection?.close();
      this.#setState('disconnected', close.reason, link.transport.name, close.detail, close.code);
      return;
    }
    if (!close.opened && link.index + 1 < this.#transports.length) {
      // This transport does not get through (e.g. a proxy that drops Upgrade): try the next one now.
      this.#index = link.index + 1;
      this.#connect(close.reason);
      return;
    }
    if (!close.opened) this.#index = 0; // every transport failed: start again from the best one, after a pause
    this.#setState('connecting', close.reason, link.transport.name, close.detail, close.code);
    let delay = backoffDelay(this.#attempt++, this.#options.backoff, this.#options.random);
    // A slow consumer resumes at once; a restarting hub asked for a pause (jittered, so clients spread out).
    if (close.reason === 'slow-consumer' && this.#attempt === 1) delay = 0;
    if (close.retryAfterMs !== undefined) {
      const jitter = 0.5 + (this.#options.random ?? Math.random)() / 2;
      delay = Math.max(delay, Math.floor(close.retryAfterMs * jitter));
    }
    this.#retryTimer = setTimeout(() => this.#connect(close.reason), delay);
  }

  #scheduleUpgrade(): void {
    clearTimeout(this.#upgradeTimer);
    this.#upgradeTimer = setTimeout(() => {
      const link = this.#link;
      if (this.#closed || link === undefined || !link.opened || link.index === 0 || this.#probe !== undefined) return;
      // Probe the best transport beside the working one; switch only once it is open.
      const probe: Link = { transport: this.#transports[0]!, index: 0, connection: undefined, opened: false };
      this.#probe = probe;
      probe.connection = probe.transport.open(this.#host(probe), this.#timings);
    }, this.#upgradeDelay);
  }

  #switchTo(probe: Link): void {
    this.#probe = undefined;
    const old = this.#link;
    if (this.#closed || old === undefined) {
      probe.connection?.close();
      return;
    }
    this.#link = probe;
    probe.opened = true;
    this.#index = probe.index;
    this.#upgradeDelay = this.#options.upgradeAfterMs ?? 30_000;
    old.connection?.close();
    // The new connection subscribes from the positions reached so far; anything
    // the old one also delivered is dropped as a duplicate.
    probe.connection?.update();
    this.#emitter.emit('transport', { transport: probe.transport.name, previous: old.transport.name });
  }

  #setState(
    state: ConnectionState,
    reason: StateReason,
    transport?: TransportName,
    detail?: string,
    code?: string,
  ): void {
    if (state === this.#state) return;
    const previous = this.#state;
    this.#state = state;
    this.#emitter.emit('state', {
      state,
      previous,
      reason,
      ...(transport === undefined ? {} : { transport }),
      ...(detail === undefined || detail === '' ? {} : { detail }),
      ...(code === undefined ? {} : { code }),
    });
  }
}

function randomId(): string {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes);
  let id = '';
  for (const byte of bytes) id += 'abcdefghijklmnopqrstuvwxyz0123456789'[byte % 36];
  return id;
}

function call<T>(handler: ((value: T) => void) | undefined, value: T): void {
  if (handler === undefined) return;
  try {
    handler(value);
  } catch (error) {
    reportListenerError(error);
  }
}
