import { parseCursor } from '../core/cursor.js';
import type { Hub, Subscription } from '../core/hub.js';
import { KometaError } from '../core/errors.js';
import type { GapNotice, Message } from '../core/message.js';
import type { Encoder, Sink } from '../core/sink.js';
import type { NextOptions, NextResult } from './types.js';

const NOTHING = Buffer.alloc(0);

/**
 * A waiting handler wants message objects, not bytes: every waiter shares
 * this encoder, so the hub puts them all in one group per channel set and
 * "encodes" each message once, into the same empty Buffer.
 */
const waitEncoder: Encoder = { name: 'comet-wait', message: () => NOTHING };

/** Where a context keeps what must be undone if the client leaves or the handler returns. */
export type CancelSet = Set<(reason: unknown) => void>;

/** Counters the waits keep up to date; the runtime exposes them. */
export interface WaitCounters {
  waiting: number;
}

/**
 * One `next()`: a subscription whose sink answers once, like a long-poll.
 * No polling: the hub pushes into the sink; a single timer covers the timeout.
 */
class WaitSink implements Sink {
  readonly encoder = waitEncoder;
  readonly messages: Message[] = [];
  readonly gaps: GapNotice[] = [];
  #scheduled = false;

  constructor(
    public cursor: string,
    private readonly onReady: () => void,
    private readonly onShutdown: () => void,
  ) {}

  push(_frames: Buffer, cursor: string, messages: readonly Message[]): void {
    for (const message of messages) this.messages.push(message);
    this.cursor = cursor;
    this.#schedule();
  }

  gap(notice: GapNotice, cursor: string): void {
    this.gaps.push(notice);
    this.cursor = cursor;
    this.#schedule();
  }

  live(cursor: string): void {
    this.cursor = cursor;
  }

  end(): void {
    this.onShutdown();
  }

  // Answer after the current fan-out, so messages of several channels (or a
  // gap and the backlog after it) that arrive in the same turn come together.
  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(this.onReady);
  }
}

export function waitForMessages(
  hub: Hub,
  channels: string | readonly string[],
  options: NextOptions,
  pending: CancelSet,
  counters: WaitCounters,
): Promise<NextResult> {
  const names = typeof channels === 'string' ? [channels] : [...channels];
  const since = options.since;
  const cursor = since === undefined || since === '' ? null : parseCursor(since, hub.limits.maxChannelsPerSubscription);
  const timeout = options.timeout;
  if (timeout !== undefined && !(Number.isFinite(timeout) && timeout >= 0 && timeout <= 2_147_483_647)) {
    const got = String(timeout);
    throw new RangeError(`next(): timeout must be a number of milliseconds between 0 and 2147483647, got ${got}`);
  }

  return new Promise<NextResult>((resolve, reject) => {
    let subscription: Subscription | undefined;
    let sink: WaitSink | undefined;
    let timer: NodeJS.Timeout | undefined;
    let settled = false;

    const finish = (): boolean => {
      if (settled) return false;
      settled = true;
      counters.waiting--;
      pending.delete(cancel);
      if (timer !== undefined) clearTimeout(timer);
      subscription?.close();
      return true;
    };
    const cancel = (reason: unknown): void => {
      if (finish()) reject(reason);
    };
    const answer = (): void => {
      if (sink === undefined || !finish()) return;
      resolve({ messages: sink.messages, gaps: sink.gaps, cursor: sink.cursor, timedOut: false });
    };

    counters.waiting++;
    pending.add(cancel);
    if (timeout !== undefined) {
      timer = setTimeout(() => {
        // Still subscribing: the position asked for is still the right place to resume.
        const where = sink?.cursor ?? subscription?.cursor() ?? since ?? '';
        if (finish()) resolve({ messages: [], gaps: [], cursor: where, timedOut: true });
      }, timeout);
    }
    // Registered with the hub synchronously inside subscribe(), so a message
    // published right after next() is called is not missed.
    hub.subscribe(names, cursor).then(
      (sub) => {
        if (settled) {
          sub.close();
          return;
        }
        subscription = sub;
        sink = new WaitSink(sub.cursor(), answer, () => cancel(new KometaError('KOMETA_ERR_DRAINING')));
        sub.start(sink);
      },
      (error: unknown) => cancel(error),
    );
  });
}
