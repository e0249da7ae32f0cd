/*
 * The chat served at / by `kometa serve`: the full comet application.
 * Each room is a channel `chat.<room>`; joining replays the room's history
 * (`from: 'start'`), then messages from everyone appear as they are
 * published. Rooms share the page's one connection. The client comes from
 * /kometa.js (this module's import of it is kept when bundled).
 *
 * Who is online in the room: the hub's presence endpoint read once on joining
 * it, then kept current by the room's joins and leaves, in-band
 * (room-presence.ts). A hub without --presence-events sends none: then the
 * list is read again every 2 s. On an open hub nothing is signed, so the page names itself through its client id
 * (`n.<name as base64url>.<random>`), exactly as unsigned as the names in its
 * messages; a member whose credential carries `kometa.info.name` is shown by
 * that instead.
 */
import { Kometa } from '../client/index.js';
import type { KometaGap, KometaMessage, KometaSubscription, StateChange, TransportName } from '../client/index.js';
import { type OnlineMember, RoomPresence } from './room-presence.js';

interface ChatLine {
  readonly name: string;
  readonly text: string;
  /** Milliseconds since 1970, by the sender's clock. */
  readonly sent: number;
}

const DEFAULT_ROOMS = ['general', 'random', 'help'];
const NAME_KEY = 'kometa.chat.name';
const ROOMS_KEY = 'kometa.chat.rooms';

function $(id: string): HTMLElement {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`missing #${id}`);
  return element;
}

/** Room names become channel names: lower case letters, digits and dashes. */
function roomSlug(text: string): string {
  return text
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 32);
}

/** A stable hue per name: FNV-1a, spread around the circle by the golden angle so that names rarely look alike. */
function hue(name: string): number {
  let hash = 0x811c9dc5;
  for (const c of name) hash = Math.imul(hash ^ c.codePointAt(0)!, 0x01000193) >>> 0;
  return Math.round((hash % 97) * 137.508) % 360;
}

function paintAvatar(element: HTMLElement, name: string): void {
  element.textContent = (name.trim()[0] ?? '?').toUpperCase();
  element.style.background = `hsl(${hue(name)} 70% 68%)`;
}

function parseLine(data: string): ChatLine | undefined {
  try {
    const value = JSON.parse(data) as Partial<ChatLine>;
    if (typeof value.name !== 'string' || typeof value.text !== 'string') return undefined;
    return {
      name: value.name.slice(0, 24),
      text: value.text.slice(0, 2000),
      sent: typeof value.sent === 'number' ? value.sent : Date.now(),
    };
  } catch {
    return undefined;
  }
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

/** How often the online list is read again when the hub sends no joins and leaves (no --presence-events). */
const PRESENCE_POLL_MS = 2000;

/** A client id that carries the chat name: `n.<base64url of its first bytes>.<random>` (ids allow 64 characters). */
function clientIdFor(name: string): string {
  const bytes = new TextEncoder().encode(name).slice(0, 36);
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  const encoded = btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  return `n.${encoded}.${Math.random().toString(36).slice(2, 10)}`;
}

/** The name a member goes by: its signed info's name, else the one in its client id, else "anonymous". */
function memberName(member: OnlineMember): string {
  const info = member.info as { name?: unknown } | null;
  if (info !== null && typeof info === 'object' && typeof info.name === 'string') return info.name.slice(0, 24);
  const match = /^n\.([A-Za-z0-9_-]+)\.[a-z0-9]+$/.exec(member.client);
  if (match === null) return 'anonymous';
  try {
    const binary = atob(match[1]!.replace(/-/g, '+').replace(/_/g, '/'));
    const name = new TextDecoder('utf-8', { fatal: false }).decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
    return name.trim() === '' ? 'anonymous' : name.slice(0, 24);
  } catch {
    return 'anonymous';
  }
}

class ChatApp {
  client: Kometa;
  /** Names online in the room, as last read; tests read it. */
  online: string[] = [];
  readonly #forced: TransportName[];
  name = localStorage.getItem(NAME_KEY) ?? '';
  room = '';
  rooms: string[];
  #subscription: KometaSubscription | undefined;
  #lastSender: string | undefined;
  #lastSent = 0;
  #everConnected = false;
  #presence: RoomPresence | undefined;
  /** The hub sends no joins and leaves: the online list is polled. Tests read it. */
  polling = false;
  /** How many messages the room shows; tests read it. */
  count = 0;

  constructor() {
    const params = new URLSearchParams(location.search);
    const names: readonly string[] = ['websocket', 'sse', 'poll'];
    this.#forced = params.getAll('transport').filter((t): t is TransportName => names.includes(t));
    this.client = this.#connect();
    setInterval(() => {
      if (this.polling && !document.hidden) void this.#presence?.read(false);
    }, PRESENCE_POLL_MS);
    const saved = JSON.parse(localStorage.getItem(ROOMS_KEY) ?? '[]') as unknown;
    this.rooms = [...new Set([
      ...DEFAULT_ROOMS,
      ...(Array.isArray(saved) ? saved.filter((r): r is string => typeof r === 'string') : []),
    ])];

    $('composer').addEventListener('submit', (event) => {
      event.preventDefault();
      void this.#send();
    });
    $('join').addEventListener('submit', (event) => {
      event.preventDefault();
      const input = $('join-name') as HTMLInputElement;
      const slug = roomSlug(input.value);
      input.value = '';
      if (slug !== '') location.hash = slug;
    });
    $('rename').addEventListener('click', () => this.#askName());
    $('name-form').addEventListener('submit', () => {
      const value = ($('name-input') as HTMLInputElement).value.trim().slice(0, 24);
      if (value === '') return;
      const renamed = value !== this.name;
      this.name = value;
      localStorage.setItem(NAME_KEY, value);
      this.#showMe();
      // The name is in the client id: a new one means a new connection (the room is followed again).
      if (renamed) this.#reconnect();
      ($('text') as HTMLInputElement).focus();
    });
    window.addEventListener('hashchange', () => this.#join(roomSlug(location.hash.slice(1)) || 'general'));

    this.#showMe();
    this.#join(roomSlug(location.hash.slice(1)) || 'general');
    if (this.name === '') this.#askName();
  }

  #connect(): Kometa {
    const client = new Kometa(location.origin, {
      clientId: clientIdFor(this.name),
      // Tabs under one name share a connection; the room then lists the leader tab's id, which carries that name.
      shareConnection: `chat-name:${this.name}`,
      ...(this.#forced.length > 0 ? { transports: this.#forced } : {}),
    });
    let connectedBefore = false;
    client.on('state', (change) => {
      this.#showState(change);
      if (change.state !== 'connected') return;
      // Back after a break: leaves decided while the hub was going away (a restart) may never have been sent.
      if (connectedBefore) void this.#presence?.read(!this.polling);
      connectedBefore = true;
    });
    client.on('transport', (change) => {
      $('status-text').textContent = `live · ${change.transport}`;
    });
    return client;
  }

  #reconnect(): void {
    this.client.close();
    this.client = this.#connect();
    const room = this.room;
    this.room = '';
    this.#join(room);
  }

  #showOnline(names: string[]): void {
    const counts = new Map<string, number>();
    for (const name of names) counts.set(name, (counts.get(name) ?? 0) + 1);
    this.online = [...counts.keys()].sort((a, b) => a.localeCompare(b));
    const list = $('online');
    list.replaceChildren();
    for (const name of this.online) {
      const item = document.createElement('li');
      const avatar = document.createElement('span');
      avatar.className = 'avatar small';
      paintAvatar(avatar, name);
      const label = document.createElement('span');
      label.className = 'who';
      // Several tabs of one name are one person here, shown once with how many.
      const tabs = counts.get(name)!;
      label.textContent = tabs > 1 ? `${name} (${tabs})` : name;
      item.append(avatar, label);
      list.append(item);
    }
    $('online-count').textContent = String(this.online.length);
  }

  #askName(): void {
    const dialog = $('name-dialog') as HTMLDialogElement;
    ($('name-input') as HTMLInputElement).value = this.name;
    if (!dialog.open) dialog.showModal();
  }

  #showMe(): void {
    $('me-name').textContent = this.name || 'anonymous';
    paintAvatar($('me-avatar'), this.name || '?');
  }

  #join(room: string): void {
    if (room === this.room) return;
    this.#subscription?.unsubscribe();
    this.room = room;
    if (!this.rooms.includes(room)) {
      this.rooms.push(room);
      localStorage.setItem(ROOMS_KEY, JSON.stringify(this.rooms.filter((r) => !DEFAULT_ROOMS.includes(r))));
    }
    document.title = `#${room} · kometa chat`;
    $('room-title').textContent = room;
    ($('text') as HTMLInputElement).placeholder = `Message #${room}`;
    this.#renderRooms();
    const log = $('log');
    for (const child of Array.from(log.children)) if (child.id !== 'empty') child.remove();
    this.#lastSender = undefined;
    this.count = 0;
    $('empty').hidden = false;
    this.#showOnline([]);
    const presence = new RoomPresence(`chat.${room}`, (members) => {
      if (this.#presence === presence) this.#showOnline(members.map(memberName));
    });
    this.#presence = presence;
    // The room's history first, then live: one subscription does both, with who joins and leaves.
    this.#subscription = this.client.subscribe(`chat.${room}`, {
      from: 'start',
      presence: true,
      onMessage: (message) => this.#onMessage(message),
      onGap: (gap) => {
        this.#onGap(gap);
        // Joins and leaves may be among what was lost: read the list afresh.
        void presence.read(!this.polling);
      },
      onJoin: (join) => presence.event(join),
      onLeave: (leave) => presence.event(leave),
      onError: (error) => {
        if (error.code === 'KOMETA_ERR_PRESENCE_EVENTS_OFF') this.polling = true;
      },
    });
    void presence.read(true);
  }

  #renderRooms(): void {
    for (const containerId of ['rooms', 'chips']) {
      const container = $(containerId);
      container.replaceChildren();
      for (const room of this.rooms) {
        const link = document.createElement('a');
        link.href = `#${room}`;
        link.textContent = containerId === 'chips' ? `#${room}` : room;
        if (room === this.room) link.setAttribute('aria-current', 'page');
        container.append(link);
      }
      if (containerId === 'chips') {
        const add = document.createElement('button');
        add.type = 'button';
        add.textContent = '+ room';
        add.addEventListener('click', () => {
          const slug = roomSlug(prompt('Join or create a room') ?? '');
          if (slug !== '') location.hash = slug;
        });
        container.append(add);
      }
    }
  }

  #onMessage(message: KometaMessage): void {
    const line = parseLine(message.data);
    if (line === undefined) return;
    const log = $('log');
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    const mine = line.name === this.name;
    // Consecutive lines from one sender within five minutes are grouped.
    const cont = this.#lastSender === line.name && line.sent - this.#lastSent < 5 * 60_000;
    const item = document.createElement('article');
    item.className = `msg${mine ? ' mine' : ''}${cont ? ' cont' : ''}`;
    item.dataset.id = message.id;
    const avatar = document.createElement('span');
    avatar.className = 'avatar';
    paintAvatar(avatar, line.name);
    const meta = document.createElement('div');
    meta.className = 'meta';
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = line.name;
    who.style.color = `hsl(${hue(line.name)} 70% 72%)`;
    const time = document.createElement('time');
    time.dateTime = new Date(line.sent).toISOString();
    time.textContent = timeFormat.format(line.sent);
    meta.append(who, time);
    const bubble = document.createElement('div');
    bubble.className = 'bubble';
    bubble.textContent = line.text;
    item.append(avatar, meta, bubble);
    log.append(item);
    $('empty').hidden = true;
    this.#lastSender = line.name;
    this.#lastSent = line.sent;
    this.count++;
    if (atBottom || mine) log.scrollTop = log.scrollHeight;
  }

  #onGap(gap: KometaGap): void {
    const notice = document.createElement('div');
    notice.className = 'notice';
    notice.textContent =
      gap.reason === 'epoch-changed'
        ? 'The server restarted — earlier messages of this room are gone.'
        : `${gap.missed === undefined ? 'Some' : gap.missed.to - gap.missed.from + 1} earlier message(s) ` +
          'are no longer kept.';
    $('log').append(notice);
    this.#lastSender = undefined;
  }

  async #send(): Promise<void> {
    const input = $('text') as HTMLInputElement;
    const text = input.value.trim();
    if (text === '') return;
    if (this.name === '') {
      this.#askName();
      return;
    }
    input.value = '';
    const line: ChatLine = { name: this.name, text, sent: Date.now() };
    try {
      await this.client.publish(`chat.${this.room}`, JSON.stringify(line));
    } catch {
      // Not sent (offline or refused): give the text back rather than lose it.
      if (input.value === '') input.value = text;
    }
  }

  #showState(change: StateChange): void {
    const status = $('status');
    status.dataset.state = change.state;
    if (change.state === 'connected') this.#everConnected = true;
    $('status-text').textContent =
      change.state === 'connected'
        ? `live · ${change.transport ?? ''}`
        : change.state === 'connecting'
          ? this.#everConnected
            ? 'reconnecting…'
            : 'connecting…'
          : 'offline';
  }
}

declare global {
  interface Window {
    kometaChat?: ChatApp;
  }
}

window.kometaChat = new ChatApp();
