import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { KometaError } from '../core/errors.js';
import type { Hub } from '../core/hub.js';
import { socketOf, subscriptionId } from './sources.js';
import type { WireEvent } from './stats-types.js';
import { type WireRequest, inspectWire, shorten } from './wire.js';

/** Inspections running at once; more are refused (429). */
const MAX_RUNNING = 4;
const WIRE_TIMEOUT_MS = 20_000;
const TAP_MS = 30_000;

export type WirePreset = 'seed' | 'revalidate' | 'sse' | 'poll' | 'path';

/** The requests a dashboard preset stands for. Every path is on the hub itself: the inspector never goes elsewhere. */
export function presetRequests(preset: WirePreset, value: string): WireRequest[] {
  const channel = encodeURIComponent(value || 'demo');
  switch (preset) {
    case 'seed':
      return [{ path: '/seed' }];
    case 'revalidate':
      return [{ path: '/kometa.js' }, { path: '/kometa.js', revalidate: true }];
    case 'sse':
      return [{ path: `/sub/${channel}`, headers: [['Accept', 'text/event-stream']] }];
    case 'poll': {
      const poll = { path: `/sub/${channel}?transport=poll&timeout=5` };
      return [poll, { ...poll }];
    }
    case 'path': {
      if (!/^\/[\x21-\x7e]{0,300}$/.test(value) || value.startsWith('//')) {
        throw new KometaError('KOMETA_ERR_BAD_REQUEST', 'A path on this hub, starting with a single /');
      }
      return [{ path: value }];
    }
  }
}

/**
 * Wire inspections asked for from the dashboard. Each one's events are
 * published on an operator channel (`wire.<n>`), which the dashboard
 * follows like any other channel — from the start, so none is missed.
 */
export class Inspections {
  #running = 0;
  #next = 1;

  constructor(private readonly opsHub: Hub) {}

  #begin(): string {
    if (this.#running >= MAX_RUNNING) {
      throw new KometaError('KOMETA_ERR_RATE_LIMITED', `At most ${MAX_RUNNING} inspections at once`, { retryAfter: 5 });
    }
    this.#running++;
    return `wire.${this.#next++}`;
  }

  #publish(channel: string, event: WireEvent | { type: 'done'; complete: boolean }): void {
    this.opsHub.publish(channel, JSON.stringify(event)).catch(() => {});
  }

  /** A test request to this hub (`origin` is the address the dashboard's own request came in on). */
  request(origin: URL, requests: WireRequest[]): string {
    const channel = this.#begin();
    inspectWire({
      origin,
      requests,
      timeoutMs: WIRE_TIMEOUT_MS,
      maxText: 240,
      onEvent: (event) => this.#publish(channel, event),
    }).then(
      (result) => {
        this.#running--;
        this.#publish(channel, { type: 'done', complete: result.complete });
      },
      () => {
        this.#running--;
      },
    );
    return channel;
  }

  /**
   * Watch what the hub writes to one subscriber's connection for a while:
   * that socket's `write` is wrapped (only that one connection pays), each
   * write reported with its time, size and bytes as sent.
   */
  tap(hub: Hub, id: number): string {
    let socket: Socket | undefined;
    for (const subscription of hub.liveSubscriptions) {
      if (subscriptionId(subscription) === id) socket = socketOf(subscription.sink);
    }
    if (socket === undefined || socket.destroyed) {
      throw new KometaError('KOMETA_ERR_NOT_FOUND', 'No such SSE or stream subscriber (it may have gone)');
    }
    const channel = this.#begin();
    const target = socket;
    const started = performance.now();
    const now = () => Math.round((performance.now() - started) * 100) / 100;
    const original = target.write;
    let n = 0;
    this.#publish(
      channel,
      { type: 'connect', t: 0, remote: `${target.remoteAddress ?? '?'}:${target.remotePort ?? ''}`, ms: 0 },
    );
    const wrapped = function (this: Socket, ...args: Parameters<Socket['write']>): boolean {
      const data = args[0];
      const bytes =
        typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      n++;
      publishWrite(n, bytes);
      return original.apply(this, args);
    } as Socket['write'];
    const publishWrite = (count: number, bytes: Buffer) =>
      this.#publish(
        channel,
        { type: 'chunk', t: now(), index: 0, framing: 'write', n: count, size: bytes.length, ...shorten(bytes, 240) },
      );
    target.write = wrapped;
    const stop = (reason: string) => {
      clearTimeout(timer);
      target.off('close', onClose);
      if (target.write === wrapped) target.write = original;
      this.#running--;
      this.#publish(channel, { type: 'close', t: now(), reason });
      this.#publish(channel, { type: 'done', complete: true });
    };
    const onClose = () => stop('the connection closed');
    const timer = setTimeout(() => stop(`tap ended after ${TAP_MS / 1000} s`), TAP_MS);
    target.once('close', onClose);
    return channel;
  }
}
