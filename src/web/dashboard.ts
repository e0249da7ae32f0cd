/*
 * The operator's dashboard at /_kometa/. It is a kometa client like any
 * other: it follows the operator channel `stats` over SSE (the internal
 * hub's routes live under /_kometa, so the client's fetch is pointed
 * there), from the start of its history, so the plots show the last ten
 * minutes as soon as the page opens. Plots are drawn on canvas by hand.
 */
import { Kometa } from '../client/index.js';
import type { KometaMessage, KometaSubscription, StateChange } from '../client/index.js';
import type { StatsSample, WireEvent } from '../ops/stats-types.js';
import { idSeqText } from '../protocol/cursor.js';
import { ClusterCard } from './dashboard-cluster.js';

const WINDOW_MS = 10 * 60_000;
const MAX_SAMPLES = 700;

function $(id: string): HTMLElement {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`missing #${id}`);
  return element;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  if (className !== undefined) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

function num(value: number): string {
  if (value >= 1e9) return `${(value / 1e9).toFixed(1)}G`;
  if (value >= 1e6) return `${(value / 1e6).toFixed(value >= 1e7 ? 0 : 1)}M`;
  if (value >= 1e4) return `${(value / 1e3).toFixed(0)}k`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  if (value > 0 && value < 10 && !Number.isInteger(value)) return value.toFixed(1);
  return String(Math.round(value));
}

function bytes(value: number): string {
  if (value >= 1024 ** 3) return `${(value / 1024 ** 3).toFixed(1)} GiB`;
  if (value >= 1024 ** 2) return `${(value / 1024 ** 2).toFixed(value >= 100 * 1024 ** 2 ? 0 : 1)} MiB`;
  if (value >= 1024) return `${(value / 1024).toFixed(0)} KiB`;
  return `${value} B`;
}

function duration(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return seconds % 60 === 0 ? `${seconds / 60}m` : `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86400)}d ${Math.floor((seconds % 86400) / 3600)}h`;
}

function css(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

interface Series {
  readonly values: readonly number[];
  readonly color: string;
  readonly fill?: boolean;
}

/** The plot area inside a canvas, in CSS pixels, and the top of its y axis. */
interface Frame {
  readonly left: number;
  readonly top: number;
  readonly w: number;
  readonly h: number;
  readonly height: number;
  readonly yMax: number;
}

/** A round maximum for the y axis, at least 4: 1, 2, 2.5 or 5 times a power of ten. */
function roundMax(series: readonly Series[]): number {
  let max = 0;
  for (const s of series) for (const v of s.values) if (v > max) max = v;
  const magnitude = 10 ** Math.floor(Math.log10(Math.max(max, 1)));
  const steps = [1, 2, 2.5, 5, 10];
  return Math.max(4, magnitude * (steps.find((step) => step * magnitude >= max) ?? 10));
}

/** Four horizontal grid lines with their values, and about five time labels on round steps. */
function axes(ctx: CanvasRenderingContext2D, frame: Frame, windowMs: number): void {
  const { left, top, w, h, height, yMax } = frame;
  ctx.font = '11px system-ui, sans-serif';
  ctx.textBaseline = 'middle';
  ctx.strokeStyle = css('--line');
  ctx.fillStyle = css('--muted');
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = Math.round(top + h - (h * i) / 4) + 0.5;
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(left + w, y);
    ctx.stroke();
    ctx.textAlign = 'right';
    ctx.fillText(num((yMax * i) / 4), left - 6, y);
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'alphabetic';
  const step = [5, 10, 15, 30, 60, 120, 300].find((s) => (windowMs / 1000) / s <= 5.5) ?? 300;
  for (let back = 0; back * 1000 <= windowMs + 1; back += step) {
    const x = left + w - (w * back * 1000) / windowMs;
    ctx.textAlign = back === 0 ? 'right' : 'center';
    const label = back === 0 ? 'now' : back < 60 ? `−${back}s` : `−${back / 60}m`;
    ctx.fillText(label, back === 0 ? left + w : x, height - 5);
  }
}

/** One line per series (filled below with a fading gradient when asked), clipped to the plot area. */
function lines(
  ctx: CanvasRenderingContext2D,
  frame: Frame,
  times: readonly number[],
  series: readonly Series[],
  now: number,
  windowMs: number,
): void {
  const { left, top, w, h, yMax } = frame;
  const xOf = (t: number) => left + w - (w * (now - t)) / windowMs;
  const yOf = (v: number) => top + h - (h * v) / yMax;
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top - 2, w, h + 4);
  ctx.clip();
  for (const s of series) {
    if (times.length < 2) continue;
    ctx.beginPath();
    times.forEach((t, i) => {
      const x = xOf(t);
      const y = yOf(s.values[i] ?? 0);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 1.75;
    ctx.lineJoin = 'round';
    ctx.stroke();
    if (s.fill === true) {
      ctx.lineTo(xOf(times[times.length - 1]!), top + h);
      ctx.lineTo(xOf(times[0]!), top + h);
      ctx.closePath();
      const gradient = ctx.createLinearGradient(0, top, 0, top + h);
      gradient.addColorStop(0, `${s.color}55`);
      gradient.addColorStop(1, `${s.color}00`);
      ctx.fillStyle = gradient;
      ctx.fill();
    }
  }
  ctx.restore();
}

/** A time-series plot on a canvas: newest on the right, `windowMs` wide, y from 0 to a round maximum. */
function plot(
  canvas: HTMLCanvasElement,
  times: readonly number[],
  series: readonly Series[],
  now: number,
  windowMs: number,
): void {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (width === 0) return;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext('2d');
  if (ctx === null) return;
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const [left, right, top, bottom] = [44, 8, 8, 20];
  const frame: Frame = { left, top, w: width - left - right, h: height - top - bottom, height, yMax: roundMax(series) };
  axes(ctx, frame, windowMs);
  lines(ctx, frame, times, series, now, windowMs);
}

/** The internal hub's routes are under /_kometa; the client asks for /sub, /healthz and /channels/. */
const opsFetch: typeof fetch = (input, init) => {
  const url = new URL(input instanceof Request ? input.url : String(input), location.origin);
  if (url.origin === location.origin && !url.pathname.startsWith('/_kometa/')) url.pathname = `/_kometa${url.pathname}`;
  return fetch(url, { ...init, credentials: 'same-origin' });
};

class Dashboard {
  readonly client = new Kometa(location.origin, { transports: ['sse', 'poll'], fetch: opsFetch });
  readonly samples: StatsSample[] = [];
  /** For tests: how many samples arrived, and the drawn plots' data. */
  received = 0;
  #drawScheduled = false;
  #drawer: string | undefined;
  #drawerTimer: number | undefined;
  #wire: KometaSubscription | undefined;
  #wireLast = 0;

  constructor() {
    this.client.on('state', (change) => this.#showState(change));
    this.client.subscribe('stats', { from: 'start', onMessage: (message) => this.#onSample(message) });
    window.addEventListener('resize', () => this.#scheduleDraw());
    $('drawer-close').addEventListener('click', () => this.#closeDrawer());
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') this.#closeDrawer();
    });
    const preset = $('wire-preset') as HTMLSelectElement;
    const value = $('wire-value') as HTMLInputElement;
    preset.addEventListener('change', () => {
      value.hidden = preset.value !== 'sse' && preset.value !== 'poll' && preset.value !== 'path';
      value.placeholder = preset.value === 'path' ? '/path?query' : 'channel';
      value.value = preset.value === 'path' ? '/healthz' : 'demo';
    });
    $('wire-form').addEventListener('submit', (event) => {
      event.preventDefault();
      void this.#runWire({ preset: preset.value, value: value.value });
    });
  }

  #showState(change: StateChange): void {
    const status = $('status');
    status.dataset.state = change.state;
    $('status-text').textContent =
      change.state === 'connected'
        ? `live · ${change.transport ?? ''}`
        : change.state === 'connecting'
          ? 'connecting…'
          : 'offline';
  }

  #onSample(message: KometaMessage): void {
    let sample: StatsSample;
    try {
      sample = JSON.parse(message.data) as StatsSample;
    } catch {
      return;
    }
    this.samples.push(sample);
    if (this.samples.length > MAX_SAMPLES) this.samples.splice(0, this.samples.length - MAX_SAMPLES);
    this.received++;
    this.#scheduleDraw();
  }

  #scheduleDraw(): void {
    if (this.#drawScheduled) return;
    this.#drawScheduled = true;
    // One draw per frame however many samples arrived (the history comes in a burst).
    requestAnimationFrame(() => {
      this.#drawScheduled = false;
      this.#draw();
    });
  }

  #draw(): void {
    const last = this.samples[this.samples.length - 1];
    if (last === undefined) return;
    const c = last.connections;
    const totalConnections = c.sse + c.stream + c.poll + c.ws;
    const at = new Date(last.t).toLocaleTimeString();
    $('process').textContent = `pid ${last.pid} · node ${last.node} · up ${duration(last.uptime)} · ${at}`;
    const broker = $('broker');
    broker.dataset.ok = String(last.broker.ok);
    $('broker-text').textContent = last.broker.ok ? 'broker ok' : `broker down: ${last.broker.reason ?? ''}`;
    $('kpi-connections').textContent = num(totalConnections);
    const transports = $('kpi-transports');
    transports.replaceChildren(
      ...(['sse', 'ws', 'poll', 'stream'] as const).map((name) => {
        const chip = el('span', `chip c-${name}`);
        chip.append(`${name} `, el('b', undefined, num(c[name])));
        return chip;
      }),
    );
    $('kpi-channels').textContent = num(last.channels);
    $('kpi-subscriptions').textContent = `${num(last.subscriptions)} subscriptions`;
    $('kpi-published').textContent = num(last.rates.published);
    $('kpi-published-total').textContent = `${num(last.published)} total · ${bytes(last.publishedBytes)}`;
    $('kpi-delivered').textContent = num(last.rates.delivered);
    $('kpi-delivered-total').textContent = `${num(last.delivered)} total · ${bytes(last.rates.deliveredBytes)}/s`;
    const slowTotal = Object.values(last.slowCloses).reduce((a, b) => a + b, 0);
    $('kpi-slow').textContent = num(slowTotal);
    $('kpi-gaps').textContent = `${num(last.gaps)} gap notices`;
    const errors = Object.entries(last.errors).sort((a, b) => b[1] - a[1]);
    $('kpi-errors').textContent = num(errors.reduce((a, [, n]) => a + n, 0));
    const top = errors[0];
    $('kpi-errors-top').textContent =
      top === undefined ? 'none' : `${top[0].replace('KOMETA_ERR_', '').toLowerCase()} ×${num(top[1])}`;
    $('kpi-memory').textContent = bytes(last.memory.rss);
    $('kpi-heap').textContent = `heap ${bytes(last.memory.heapUsed)} used`;
    $('kpi-loop').textContent = `${last.eventLoop.p99.toFixed(1)} ms`;
    $('kpi-loop-detail').textContent = `p50 ${last.eventLoop.p50.toFixed(1)} · max ${last.eventLoop.max.toFixed(1)} ms`;

    const now = last.t;
    const recent = this.samples.filter((s) => s.t > now - WINDOW_MS - 2000);
    const times = recent.map((s) => s.t);
    // The plots widen with the data, from one minute up to ten.
    const windowMs = Math.min(WINDOW_MS, Math.max(60_000, now - (recent[0]?.t ?? now)));
    $('window').textContent = `last ${duration(Math.round(windowMs / 1000))}`;
    plot($('plot-rates') as HTMLCanvasElement, times, [
      { values: recent.map((s) => s.rates.delivered), color: css('--ok'), fill: true },
      { values: recent.map((s) => s.rates.published), color: css('--accent-2'), fill: true },
    ], now, windowMs);
    plot($('plot-connections') as HTMLCanvasElement, times, [
      { values: recent.map((s) => s.connections.sse), color: css('--sse') },
      { values: recent.map((s) => s.connections.ws), color: css('--ws') },
      { values: recent.map((s) => s.connections.poll), color: css('--poll') },
      { values: recent.map((s) => s.connections.stream), color: css('--stream') },
    ], now, windowMs);
    plot($('plot-process') as HTMLCanvasElement, times, [
      { values: recent.map((s) => s.eventLoop.p99), color: css('--warm') },
      { values: recent.map((s) => s.memory.heapUsed / 1024 / 1024), color: css('--ws'), fill: true },
    ], now, windowMs);

    this.#renderChannels(last);
    this.#renderErrors(last, errors);
  }

  #renderChannels(last: StatsSample): void {
    const body = ($('channels') as HTMLTableElement).tBodies[0]!;
    const most = Math.max(1, ...last.top.map((c) => c.subscribers));
    body.replaceChildren(
      ...last.top.map((channel) => {
        const row = el('tr');
        row.dataset.channel = channel.name;
        const name = el('td');
        const bar = el('span', 'bar');
        bar.style.width = `${Math.max(3, Math.round((channel.subscribers / most) * 60))}px`;
        name.append(bar, channel.name);
        name.title = channel.name;
        row.append(name, el('td', 'num', num(channel.subscribers)), el('td', 'num', num(channel.perSecond)));
        row.addEventListener('click', () => void this.#openDrawer(channel.name));
        return row;
      }),
    );
    $('channels-empty').hidden = last.top.length > 0;
  }

  #renderErrors(last: StatsSample, errors: [string, number][]): void {
    const body = ($('errors') as HTMLTableElement).tBodies[0]!;
    body.replaceChildren(
      ...errors.slice(0, 8).map(([code, count]) => {
        const row = el('tr');
        row.append(el('td', 'mono', code), el('td', 'num', num(count)));
        return row;
      }),
    );
    $('errors-empty').hidden = errors.length > 0;
    const slow = Object.entries(last.slowCloses);
    $('slow').replaceChildren(
      ...(slow.length === 0
        ? [el('span', 'muted', 'none')]
        : slow.map(([transport, count]) => {
            const chip = el('span', `chip c-${transport}`);
            chip.append(`${transport} `, el('b', undefined, num(count)));
            return chip;
          })),
    );
  }

  async #openDrawer(channel: string): Promise<void> {
    this.#drawer = channel;
    $('drawer').hidden = false;
    $('drawer-title').textContent = channel;
    clearInterval(this.#drawerTimer);
    await this.#refreshDrawer();
    // The channel's detail is small JSON; refreshed while the drawer is open.
    this.#drawerTimer = window.setInterval(() => void this.#refreshDrawer(), 2000);
  }

  #closeDrawer(): void {
    this.#drawer = undefined;
    clearInterval(this.#drawerTimer);
    $('drawer').hidden = true;
  }

  async #refreshDrawer(): Promise<void> {
    const channel = this.#drawer;
    if (channel === undefined) return;
    const response = await fetch(`/_kometa/api/channels/${encodeURIComponent(channel)}`, { cache: 'no-store' });
    if (!response.ok || this.#drawer !== channel) return;
    const detail = (await response.json()) as {
      epoch: string;
      last: number;
      history: { messages: number; bytes: number };
      subscribers: number;
      presence: { count: number; users: number } | null;
      listed: { id: number; transport: string; remote?: string; cursor: string; tap: boolean }[];
      recent: { id: string; event?: string; time: number; size: number; data: string; truncated: boolean }[];
    };
    const members =
      detail.presence === null
        ? ''
        : `${detail.presence.count} members (${detail.presence.users} users) in the cluster · `;
    $('drawer-meta').textContent =
      `${members}${detail.subscribers} subscribers here · last seq ${detail.last} · epoch ${detail.epoch} · ` +
      `history ${detail.history.messages} messages, ${bytes(detail.history.bytes)}`;
    const subs = ($('drawer-subs') as HTMLTableElement).tBodies[0]!;
    subs.replaceChildren(
      ...detail.listed.map((sub) => {
        const row = el('tr');
        const action = el('td', 'num');
        if (sub.tap) {
          const button = el('button', 'link', 'watch wire');
          button.type = 'button';
          button.addEventListener('click', () => void this.#runWire({ tap: sub.id }));
          action.append(button);
        }
        row.append(el('td', 'mono', `${sub.transport} · ${sub.remote ?? `#${sub.id}`}`), action);
        return row;
      }),
    );
    $('drawer-messages').replaceChildren(
      ...detail.recent.map((m) => {
        const item = el('li');
        const meta = el('div', 'meta');
        meta.append(
          el('span', undefined, idSeqText(m.id)),
          el('span', undefined, new Date(m.time).toLocaleTimeString()),
          el('span', undefined, bytes(m.size)),
        );
        if (m.event !== undefined) meta.append(el('span', undefined, `event ${m.event}`));
        item.append(meta, el('div', 'data', m.data + (m.truncated ? ' …' : '')));
        return item;
      }),
    );
  }

  async #runWire(request: { preset: string; value: string } | { tap: number }): Promise<void> {
    const button = document.querySelector<HTMLButtonElement>('#wire-form button')!;
    // A tap runs for half a minute; a new test request may replace it at any time.
    button.disabled = !('tap' in request);
    const list = $('wire');
    list.replaceChildren();
    this.#wire?.unsubscribe();
    $('wire-card').scrollIntoView({ behavior: 'smooth', block: 'nearest' });
    const response = await fetch('tap' in request ? '/_kometa/api/tap' : '/_kometa/api/wire', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify('tap' in request ? { id: request.tap } : request),
    });
    const answer = (await response.json()) as { channel?: string; detail?: string };
    if (!response.ok || answer.channel === undefined) {
      list.append(this.#wireLine({ type: 'error', t: 0, message: answer.detail ?? `HTTP ${response.status}` }));
      button.disabled = false;
      return;
    }
    this.#wireLast = 0;
    this.#wire = this.client.subscribe(answer.channel, {
      from: 'start',
      onMessage: (message) => {
        const event = JSON.parse(message.data) as WireEvent | { type: 'done' };
        if (event.type === 'done') {
          button.disabled = false;
          this.#wire?.unsubscribe();
          return;
        }
        const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
        list.append(this.#wireLine(event));
        if (atBottom) list.scrollTop = list.scrollHeight;
      },
    });
  }

  #wireLine(event: WireEvent): HTMLLIElement {
    const item = el('li', `k-${event.type}`);
    const body = el('span', 'body');
    let kind: string = event.type;
    switch (event.type) {
      case 'connect': {
        kind = 'connect';
        const tls = event.tls === undefined ? '' : ` · ${event.tls}`;
        body.append(`${event.remote}`, el('span', 'delta', `TCP connect ${event.ms.toFixed(1)} ms${tls}`));
        break;
      }
      case 'request': {
        kind = '→ request';
        const [line, ...headers] = event.head.split('\r\n');
        body.append(line ?? '');
        if (event.reused) body.append(el('span', 'hint', 'same connection (keep-alive)'));
        const pairs = headers.map((h): [string, string] => {
          const colon = h.indexOf(':');
          return [h.slice(0, colon), h.slice(colon + 1).trim()];
        });
        body.append(this.#headers(pairs));
        break;
      }
      case 'response':
        kind = '← response';
        body.append(`HTTP/${event.httpVersion} ${event.status} ${event.statusText}`);
        if (event.status === 304) body.append(el('span', 'hint', 'not modified: the cached copy is used'));
        body.append(this.#headers(event.headers));
        break;
      case 'chunk': {
        const framing = { chunked: 'chunk', write: 'write', read: 'data' }[event.framing];
        kind = `${framing} ${event.n}`;
        body.append(el('span', 'size', bytes(event.size)), event.text + (event.truncated ? ' …' : ''));
        if (this.#wireLast > 0) body.append(el('span', 'delta', `+${(event.t - this.#wireLast).toFixed(1)} ms`));
        this.#wireLast = event.t;
        break;
      }
      case 'end': {
        kind = 'end';
        const pieces = `${event.chunks} ${event.chunks === 1 ? 'piece' : 'pieces'}, ${bytes(event.bytes)}`;
        body.append(`${pieces} · connection ${event.keepAlive ? 'kept alive' : 'closed'}`);
        this.#wireLast = 0;
        break;
      }
      case 'close':
        kind = 'close';
        body.append(event.reason);
        break;
      case 'error':
        kind = 'error';
        body.append(event.message);
        break;
    }
    item.append(el('span', 't', `${event.t.toFixed(1)} ms`), el('span', 'kind', kind), body);
    return item;
  }

  #headers(headers: readonly (readonly [string, string])[]): HTMLElement {
    const block = el('div', 'headers');
    const caching = new Set([
      'etag',
      'last-modified',
      'cache-control',
      'if-none-match',
      'if-modified-since',
      'transfer-encoding',
      'connection',
      'keep-alive',
      'x-accel-buffering',
      'content-length',
    ]);
    for (const [name, value] of headers) {
      const line = el('div');
      const key = caching.has(name.toLowerCase()) ? el('b', undefined, name) : el('span', undefined, name);
      line.append(key, `: ${value}`);
      block.append(line);
    }
    return block;
  }
}

declare global {
  interface Window {
    kometaOps?: Dashboard;
    kometaCluster?: ClusterCard;
  }
}

window.kometaOps = new Dashboard();
window.kometaCluster = new ClusterCard((url) => opsFetch(url));
