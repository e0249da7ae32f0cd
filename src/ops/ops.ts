import type { IncomingMessage, ServerResponse } from 'node:http';
import { MemoryBroker } from '../brokers/memory.js';
import { KometaError } from '../core/errors.js';
import { Hub } from '../core/hub.js';
import { readBody } from '../http/body.js';
import { HubHttp, sendJson } from '../http/hub-server.js';
import { sendProblem } from '../http/problem.js';
import { serveDashboard } from '../http/web.js';
import type { Registry } from 'prom-client';
import { AdminGate, type AdminGateOptions, type AdminScope } from './admin.js';
import { channelDetail } from './channel-detail.js';
import { Inspections, type WirePreset, presetRequests } from './inspections.js';
import { createMetrics } from './metrics.js';
import { clusterMetricsReader } from './cluster-metrics.js';
import { ClusterView, type ClusterViewOptions } from './cluster-view.js';
import { serveProbe } from './probe.js';
import type { OpsSources } from './sources.js';
import { Sampler } from './stats.js';
import { Tally } from './tally.js';

export interface OpsOptions extends AdminGateOptions {
  /** How often a stats sample is published to the dashboard. Default 1000 ms. */
  readonly sampleIntervalMs?: number;
  /** How many samples the dashboard gets when it opens (the plots' width). Default 600 (10 minutes). */
  readonly keepSamples?: number;
  /** How this process reports itself to the other workers and nodes (the dashboard's cluster list). */
  readonly cluster?: ClusterViewOptions;
}

/** The operator channel the samples are published on (on the operator's own internal hub). */
export const STATS_CHANNEL = 'stats';
const PRESETS = new Set<string>(['seed', 'revalidate', 'sse', 'poll', 'path']);

/**
 * The operator's view of a hub: `/metrics` (Prometheus) and `/_kometa/`
 * (the dashboard, its JSON, its live stream, the wire inspector). `handle`
 * returns false for anything else, so it goes in front of another handler.
 *
 * The dashboard is fed by kometa itself: a small internal hub (in-memory,
 * never the application's broker, never its counters) on which a sample is
 * published every second on the channel `stats`; the page follows it with
 * the kometa client over SSE at /_kometa/sub, and its history is the plots'
 * last ten minutes.
 */
export class KometaOps {
  readonly gate: AdminGate;
  readonly tally = new Tally();
  readonly registry: Registry;
  readonly sampler: Sampler;
  /** Every worker and node of the deployment, as this process last heard of them. */
  readonly clusterView: ClusterView;
  /** The internal hub the dashboard's live data goes through. */
  readonly opsHub: Hub;
  readonly #opsBroker: MemoryBroker;
  readonly #clusterMetrics: (() => Promise<string>) | undefined;
  readonly #opsHttp: HubHttp;
  readonly #inspections: Inspections;
  readonly #timer: NodeJS.Timeout;

  constructor(
    readonly sources: OpsSources,
    options: OpsOptions = {},
  ) {
    this.gate = new AdminGate(options);
    this.registry = createMetrics(sources, this.tally);
    this.#clusterMetrics = clusterMetricsReader(this.registry);
    this.sampler = new Sampler(sources, this.tally);
    this.clusterView = new ClusterView(sources.hub.broker, options.cluster);
    const keep = options.keepSamples ?? 600;
    const interval = options.sampleIntervalMs ?? 1000;
    this.#opsBroker = new MemoryBroker({
      history: { maxMessages: keep, maxBytes: 16 * 1024 * 1024, maxAgeMs: Math.max(keep * interval, 60_000) * 2 },
      maxTotalBytes: 64 * 1024 * 1024,
    });
    this.opsHub = new Hub(this.#opsBroker, { maxMessageBytes: 256 * 1024 });
    this.#opsHttp = new HubHttp(this.opsHub, { publishRate: 0, heartbeatMs: 15_000 });
    this.#inspections = new Inspections(this.opsHub);
    this.#timer = setInterval(() => this.publishSample(), interval);
    this.#timer.unref();
  }

  /** Take a sample and publish it to the dashboard (the timer calls this every interval). */
  publishSample(): void {
    // Nobody on the page: no hot-channel ranking (its samples' `top` is empty, and the
    // first sample after someone opens it, within one interval, has it again).
    const sample = this.sampler.sample(this.opsHub.subscriberCount(STATS_CHANNEL) > 0);
    this.clusterView.update(sample);
    this.opsHub.publish(STATS_CHANNEL, JSON.stringify(sample)).catch(() => {});
  }

  /** Returns false when the request is not for the operator's view. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const raw = req.url ?? '/';
    const queryAt = raw.indexOf('?');
    const path = queryAt === -1 ? raw : raw.slice(0, queryAt);
    if (path !== '/metrics' && path !== '/_kometa' && !path.startsWith('/_kometa/')) return false;
    const url = new URL(queryAt === -1 ? '/' : raw.slice(queryAt), 'http://kometa.invalid');
    if (path === '/_kometa') {
      res.writeHead(308, { Location: `/_kometa/${queryAt === -1 ? '' : raw.slice(queryAt)}` });
      res.end();
      return true;
    }
    if (path === '/_kometa/probe') {
      serveProbe(req, res, url);
      return true;
    }
    this.#route(req, res, path, url).catch((error: unknown) => {
      if (error instanceof KometaError && error.status === 401) {
        res.setHeader('WWW-Authenticate', 'Bearer realm="kometa"');
        if (path === '/_kometa/' && (req.headers.accept ?? '').includes('text/html')) {
          sendLoginPage(res, error.message);
          return;
        }
      }
      sendProblem(res, error);
    });
    return true;
  }

  async #route(req: IncomingMessage, res: ServerResponse, path: string, url: URL): Promise<void> {
    if (path === '/metrics') {
      await this.#admit(req, 'metrics');
      allow(req, 'GET');
      // Under --workers, the whole machine's metrics, not just this worker's.
      const body = await (this.#clusterMetrics?.() ?? this.registry.metrics());
      res.writeHead(200, {
        'Content-Type': this.registry.contentType,
        'Cache-Control': 'no-store',
        'Content-Length': String(Buffer.byteLength(body)),
      });
      res.end(body);
      return;
    }
    const token = url.searchParams.get('token');
    if (path === '/_kometa/' && token !== null) {
      // A login link: check it, keep it in a cookie, and take it out of the address bar.
      await this.gate.check(token, 'dashboard');
      res.writeHead(303, { 'Set-Cookie': AdminGate.cookie(token), Location: '/_kometa/', 'Cache-Control': 'no-store' });
      res.end();
      return;
    }
    await this.#admit(req, 'dashboard');
    if (req.method === 'POST' && !sameOrigin(req)) {
      throw new KometaError('KOMETA_ERR_ORIGIN', 'The dashboard takes POSTs from its own pages only');
    }
    const sub = path.slice('/_kometa'.length);
    if (sub === '/sub' || sub.startsWith('/sub/') || sub === '/healthz' || sub.startsWith('/channels/')) {
      // The internal hub's own routes, under /_kometa: the dashboard's client rewrites its paths.
      req.url = sub + url.search;
      if (!this.#opsHttp.handle(req, res)) sendProblem(res, new KometaError('KOMETA_ERR_NOT_FOUND'));
      return;
    }
    if (sub.startsWith('/api/channels/')) {
      allow(req, 'GET');
      let name: string;
      try {
        name = decodeURIComponent(sub.slice('/api/channels/'.length));
      } catch {
        throw new KometaError('KOMETA_ERR_CHANNEL_NAME', 'The channel is not valid percent-encoding');
      }
      sendJson(res, 200, await channelDetail(this.sources.hub, name));
      return;
    }
    if (sub === '/api/cluster') {
      allow(req, 'GET');
      sendJson(res, 200, this.clusterView.snapshot());
      return;
    }
    if (sub === '/api/wire') {
      allow(req, 'POST');
      const body = await jsonBody(req);
      const known = typeof body.preset === 'string' && PRESETS.has(body.preset);
      const preset = known ? (body.preset as WirePreset) : undefined;
      if (preset === undefined) {
        throw new KometaError('KOMETA_ERR_BAD_REQUEST', 'preset is one of seed, revalidate, sse, poll, path');
      }
      const requests = presetRequests(preset, typeof body.value === 'string' ? body.value : '');
      // The inspector connects to the address this request came in on: this hub, never another host.
      const local = req.socket.localAddress ?? '127.0.0.1';
      const origin = new URL(`http://${local.includes(':') ? `[${local}]` : local}:${req.socket.localPort ?? 80}`);
      sendJson(res, 201, { channel: this.#inspections.request(origin, requests) });
      return;
    }
    if (sub === '/api/tap') {
      allow(req, 'POST');
      const body = await jsonBody(req);
      if (typeof body.id !== 'number') {
        throw new KometaError('KOMETA_ERR_BAD_REQUEST', 'id is the number of a subscriber listed for a channel');
      }
      sendJson(res, 201, { channel: this.#inspections.tap(this.sources.hub, body.id) });
      return;
    }
    allow(req, 'GET');
    if (!serveDashboard(req, res, sub)) throw new KometaError('KOMETA_ERR_NOT_FOUND', 'No such page of the dashboard');
  }

  async #admit(req: IncomingMessage, scope: AdminScope): Promise<void> {
    await this.gate.check(this.gate.credential(req), scope);
  }

  close(): void {
    clearInterval(this.#timer);
    this.clusterView.close();
    void this.#opsHttp.drain();
    this.sampler.close();
    this.tally.close();
    void this.#opsBroker.close();
  }
}

function allow(req: IncomingMessage, method: 'GET' | 'POST'): void {
  if (req.method === method || (method === 'GET' && req.method === 'HEAD')) return;
  throw new KometaError('KOMETA_ERR_METHOD', `Use ${method} here`, { allow: method });
}

function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  return origin === undefined || origin === `http://${req.headers.host}` || origin === `https://${req.headers.host}`;
}

async function jsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const text = (await readBody(req, 16 * 1024)).toString('utf8');
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // answered below
  }
  throw new KometaError('KOMETA_ERR_BODY_JSON', 'Send a JSON object');
}

/** A browser that opens /_kometa/ without a credential gets a form for the admin token (still a 401). */
function sendLoginPage(res: ServerResponse, reason: string): void {
  const escaped = reason.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  const body =
    `<!doctype html><html lang="en"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kometa · sign in</title><style>
:root{color-scheme:dark;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Ubuntu,sans-serif}
body{margin:0;min-height:100vh;display:grid;place-items:center;background:#0f1117;color:#e8eaf2}
form{background:#161923;border:1px solid #262b3b;border-radius:18px;padding:28px;width:min(
  380px,
  calc(100vw - 32px),
);display:flex;flex-direction:column;gap:12px}
h1{font-size:19px;margin:0}p{margin:0;color:#8b91a7;font-size:13.5px}
input{font:inherit;color:inherit;background:#0f1117;border:1px solid #262b3b;border-radius:12px;padding:11px 14px}
button{font:inherit;border:0;border-radius:12px;padding:11px;background:#7c5cff;color:#fff;` +
    `font-weight:600;cursor:pointer}
code{color:#9b83ff}</style></head><body>
<form method="get" action="/_kometa/"><h1>kometa · operator's view</h1><p>${escaped}</p>
<p>The token is the one given to <code>kometa serve --admin-token</code>, or printed in its banner.</p>
<input name="token" type="password" placeholder="Admin token" autocomplete="current-password" ` +
    `required aria-label="Admin token">
<button type="submit">Open the dashboard</button></form></body></html>`;
  res.writeHead(401, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(body)),
    'Cache-Control': 'no-store',
  });
  res.end(body);
}
