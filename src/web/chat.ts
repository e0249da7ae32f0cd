/*
 * The chat served at / by `kometa serve`: the full comet application.
 * Each room is a channel `chat.<room>`; joining replays the room's history
 * (`from: 'start'`), then messages from everyone appear as they are
 * published. Rooms share the page's one connection. The client comes from
 * /kometa.js (this module's import of it is kept when bundled).
 */
import { Kometa } from '../client/index.js';
import type { KometaGap, KometaMessage, KometaSubscription, StateChange, TransportName } from '../client/index.js';

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

class ChatApp {
  readonly client: Kometa;
  name = localStorage.getItem(NAME_KEY) ?? '';
  room = '';
  rooms: string[];
  #subscription: KometaSubscription | undefined;
  #lastSender: string | undefined;
  #lastSent = 0;
  #everConnected = false;
  /** How many messages the room shows; tests read it. */
  count = 0;

  constructor() {
    const params = new URLSearchParams(location.search);
    const names: readonly string[] = ['websocket', 'sse', 'poll'];
    const forced = params.getAll('transport').filter((t): t is TransportName => names.includes(t));
    this.client = new Kometa(location.origin, forced.length > 0 ? { transports: forced } : {});
    this.client.on('state', (change) => this.#showState(change));
    this.client.on('transport', (change) => {
      $('status-text').textContent = `live · ${change.transport}`;
    });
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
      this.name = value;
      localStorage.setItem(NAME_KEY, value);
      this.#showMe();
      ($('text') as HTMLInputElement).focus();
    });
    window.addEventListener('hashchange', () => this.#join(roomSlug(location.hash.slice(1)) || 'general'));

    this.#showMe();
    this.#join(roomSlug(location.hash.slice(1)) || 'general');
    if (this.name === '') this.#askName();
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
    // The room's history first, then live: one subscription does both.
    this.#subscription = this.client.subscribe(`chat.${room}`, {
      from: 'start',
      onMessage: (message) => this.#onMessage(message),
      onGap: (gap) => this.#onGap(gap),
    });
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
