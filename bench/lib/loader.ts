/*
 * A load generator: a separate process (forked by bench/lib/load.ts) that opens
 * subscribers on raw `net` sockets with hand-written requests and counts
 * what arrives by scanning the bytes for the message marker `@@<seq>.<µs>;`
 * — no HTTP, SSE, JSON or WebSocket parsing beyond that. Latency is the
 * receiver's monotonic clock minus the one embedded by the publisher.
 */
import { type Socket, connect } from 'node:net';
import { Histogram } from './histogram.js';
import type { ChildMessage, ConnectOrder, LoadReport, ParentMessage } from './protocol.js';
import { sourceAddress } from './protocol.js';

const AT = 0x40;
const DOT = 0x2e;
const SEMI = 0x3b;
const MARK = Buffer.from('@@');
const ID_LINE = Buffer.from('\nid: ');
const ID_START = Buffer.from('id: ');
const PONG = Buffer.from([0x8a, 0x80, 0, 0, 0, 0]);
const JOIN = Buffer.from('event: kometa-join\n');
const LEAVE = Buffer.from('event: kometa-leave\n');

interface Sub {
  readonly index: number;
  socket: Socket | null;
  ready: boolean;
  /** Highest message sequence seen. */
  last: number;
  /** The SSE id that came with it (reconnect storm). */
  id: string;
  tail: Buffer | null;
  head: string;
  attempts: number;
  /** In-band presence events seen since the reset (countEvents), and the bytes that may start the next one. */
  joins: number;
  leaves: number;
  eventTail: Buffer | null;
}

let order: ConnectOrder | undefined;
const subs: Sub[] = [];
const hist = new Histogram();
const stats = { frames: 0, unique: 0, duplicates: 0, skipped: 0, closed: 0, errors: 0 };
let errorCodes: Record<string, number> = {};
const countError = (code: string) => {
  errorCodes[code] = (errorCodes[code] ?? 0) + 1;
};
let cpuAt = process.cpuUsage();
let wallAt = performance.now();
const reached = new Map<number, number>();
let frontier = 0;
const reachedEvents = new Map<number, number>();
let eventFrontier = 0;
let dropping = false;

function send(message: ChildMessage): void {
  process.send?.(message);
}

function channelOf(o: ConnectOrder, sub: Sub): string {
  if (!o.perSocketChannel) return o.channel;
  const index = o.firstIndex + sub.index;
  return `${o.channel}${o.channels === undefined ? index : index % o.channels}`;
}

function request(o: ConnectOrder, sub: Sub): Buffer {
  const ch = channelOf(o, sub);
  const path = o.path.replaceAll('{ch}', ch).replaceAll('{i}', String(o.firstIndex + sub.index));
  if (o.kind === 'ws') {
    const head = Buffer.from(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    return head;
  }
  const resume = sub.id !== '' ? `Last-Event-ID: ${sub.id}\r\n` : '';
  const accept = o.kind === 'sse' ? 'Accept: text/event-stream\r\n' : '';
  return Buffer.from(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${accept}${resume}\r\n`);
}

/** A masked text frame with an all-zero masking key: the payload goes as is. */
function wsTextFrame(o: ConnectOrder, sub: Sub): Buffer {
  const ch = channelOf(o, sub);
  const payload = Buffer.from(o.wsFrame!.replaceAll('{ch}', ch));
  const frame = Buffer.alloc(2 + 4 + payload.length);
  frame[0] = 0x81;
  frame[1] = 0x80 | payload.length;
  payload.copy(frame, 6);
  return frame;
}

/** Count the markers in one chunk of a subscriber's bytes. */
function scan(sub: Sub, input: Buffer, nowUs: number): void {
  let buf = input;
  if (sub.tail !== null) {
    buf = Buffer.concat([sub.tail, input]);
    sub.tail = null;
  }
  let at = buf.indexOf(MARK);
  while (at !== -1) {
    let i = at + 2;
    let seq = 0;
    let t = 0;
    let c = 0;
    for (; i < buf.length; i++) {
      c = buf[i]!;
      if (c === DOT) break;
      seq = seq * 10 + (c - 48);
    }
    if (c === DOT) {
      for (i++; i < buf.length; i++) {
        c = buf[i]!;
        if (c === SEMI) break;
        t = t * 10 + (c - 48);
      }
    }
    if (c !== SEMI || i >= buf.length) {
      sub.tail = Buffer.from(buf.subarray(at));
      break;
    }
    delivered(sub, seq, nowUs - t);
    at = buf.indexOf(MARK, i);
  }
  if (sub.tail === null && buf[buf.length - 1] === AT) sub.tail = Buffer.from('@');
  if (order!.trackIds) {
    // The id of the newest complete event in this chunk.
    const idAt = buf.lastIndexOf(ID_LINE);
    const start = idAt !== -1 ? idAt + ID_LINE.length : buf.indexOf(ID_START) === 0 ? ID_START.length : -1;
    if (start !== -1) {
      const end = buf.indexOf(0x0a, start);
      if (end !== -1) sub.id = buf.toString('latin1', start, end);
    }
  }
}

function delivered(sub: Sub, seq: number, latencyUs: number): void {
  stats.frames++;
  hist.record(latencyUs);
  if (seq <= sub.last) {
    stats.duplicates++;
    return;
  }
  stats.unique++;
  if (seq > sub.last + 1 && sub.last !== 0) stats.skipped += seq - sub.last - 1;
  sub.last = seq;
  const o = order!;
  if (!o.frontier) return;
  const count = (reached.get(seq) ?? 0) + 1;
  if (count >= o.count) {
    reached.delete(seq);
    if (seq > frontier) {
      frontier = seq;
      send({ type: 'frontier', seq });
    }
  } else reached.set(seq, count);
}

/** Count `kometa-join` and `kometa-leave` events; a name split between two chunks is found in the next. */
function countEvents(sub: Sub, input: Buffer): void {
  const buf = sub.eventTail === null ? input : Buffer.concat([sub.eventTail, input]);
  let end = 0;
  for (const [name, kind] of [[JOIN, 'joins'], [LEAVE, 'leaves']] as const) {
    for (let at = buf.indexOf(name); at !== -1; at = buf.indexOf(name, at + name.length)) {
      sub[kind]++;
      end = Math.max(end, at + name.length);
      eventSeen(sub.joins + sub.leaves);
    }
  }
  // Shorter than a name, so no event is counted twice.
  const tail = buf.subarray(Math.max(end, buf.length - LEAVE.length + 1));
  sub.eventTail = tail.length === 0 ? null : Buffer.from(tail);
}

/** Tell the parent once every subscriber here has seen `n` events. */
function eventSeen(n: number): void {
  const count = (reachedEvents.get(n) ?? 0) + 1;
  if (count < order!.count) {
    reachedEvents.set(n, count);
    return;
  }
  reachedEvents.delete(n);
  if (n > eventFrontier) {
    eventFrontier = n;
    send({ type: 'events', n });
  }
}

/** An SSE answer that refuses the subscription in-band: its error code and the `retry:` it asks for. */
function refusedSubscription(head: string): { code: string; retryMs: number } | undefined {
  if (!head.includes('event: kometa-error')) return undefined;
  const code = /"code":"([A-Z_]+)"/.exec(head)?.[1] ?? 'kometa-error';
  const retryMs = Number(/\nretry: (\d+)/.exec(head)?.[1] ?? 1000);
  return { code, retryMs };
}

/** An answer that is not 200/101 (e.g. 429 when the server is full) is no subscription. */
function refused(head: string, socket: Socket, settle: (ok: boolean) => void): boolean {
  if (!head.startsWith('HTTP/1.1 ') || !head.includes('\r\n')) return false;
  const status = head.slice(9, 12);
  if (status === '200' || status === '101') return false;
  countError(`HTTP ${status}`);
  socket.destroy();
  settle(false);
  return true;
}

function open(
  o: ConnectOrder,
  sub: Sub,
  addressBase: number,
  done: (ok: boolean, retryMs?: number) => void,
): void {
  const address = sourceAddress(addressBase + Math.floor(sub.index / o.perAddress));
  const socket = connect({ host: o.host, port: o.port, localAddress: address });
  sub.socket = socket;
  sub.ready = false;
  sub.head = '';
  sub.tail = null;
  let frameSent = o.wsFrame === undefined;
  let settled = false;
  const settle = (ok: boolean, retryMs?: number) => {
    if (settled) return;
    settled = true;
    done(ok, retryMs);
  };
  socket.setNoDelay(true);
  socket.on('connect', () => {
    socket.write(request(o, sub));
    if (o.readyToken === undefined) {
      sub.ready = true;
      settle(true);
    }
  });
  socket.on('data', (chunk: Buffer) => {
    if (!sub.ready) {
      sub.head += chunk.toString('latin1');
      if (sub.head.length > 65536) sub.head = sub.head.slice(-4096);
      if (!frameSent && sub.head.includes(o.wsSendAfter ?? '\r\n\r\n')) {
        frameSent = true;
        socket.write(wsTextFrame(o, sub));
      }
      if (refused(sub.head, socket, settle)) return;
      if (!sub.head.includes(o.readyToken!)) return;
      const refusal = refusedSubscription(sub.head);
      if (refusal !== undefined) {
        // Told to come back later (kometa's admission limit: 200 + `kometa-error`
        // KOMETA_ERR_BUSY and a `retry:`): not a subscriber yet. Come back when
        // told, as EventSource and kometa's client do.
        countError(refusal.code);
        settle(false, refusal.retryMs);
        socket.destroy();
        return;
      }
      sub.ready = true;
      sub.head = '';
      settle(true);
    }
    // A WebSocket server pings its clients now and then (kometa cuts one that
    // never answers): a ping frame starts with 0x89. Answer with an empty pong
    // (masked, zero key); an unsolicited pong after a false match is allowed
    // (RFC 6455, 5.5.3) and harmless.
    if (o.kind === 'ws' && chunk.indexOf(0x89) !== -1) socket.write(PONG);
    scan(sub, chunk, Number(process.hrtime.bigint() / 1000n));
    if (o.countEvents === true) countEvents(sub, chunk);
  });
  socket.on('error', (error: NodeJS.ErrnoException) => {
    stats.errors++;
    countError(error.code ?? error.message);
  });
  socket.on('close', () => {
    if (sub.socket !== socket) return;
    sub.socket = null;
    if (sub.ready) {
      sub.ready = false;
      if (!dropping) stats.closed++;
    }
    settle(false);
  });
}

function connectAll(
  o: ConnectOrder,
  addressBase: number,
  subsToOpen: Sub[],
  then: (ready: number, failed: number, ms: number) => void,
): void {
  const started = performance.now();
  let next = 0;
  let inflight = 0;
  let ready = 0;
  let failed = 0;
  const pump = () => {
    while (inflight < o.concurrency && next < subsToOpen.length) {
      const sub = subsToOpen[next++]!;
      inflight++;
      const attempt = () =>
        open(o, sub, addressBase, (ok, retryMs) => {
          // A refusal that names its retry (admission) is a normal wait, not a failure: more of them.
          if (!ok && sub.attempts < (retryMs === undefined ? 3 : 10)) {
            sub.attempts++;
            setTimeout(attempt, retryMs ?? 50 * sub.attempts);
            return;
          }
          inflight--;
          if (ok) ready++;
          else failed++;
          if (ready + failed === subsToOpen.length) then(ready, failed, performance.now() - started);
          else pump();
        });
      attempt();
    }
  };
  if (subsToOpen.length === 0) then(0, 0, 0);
  else pump();
}

function report(): LoadReport {
  const cpu = process.cpuUsage(cpuAt);
  const atSeq: Record<string, number> = {};
  const atEvents: Record<string, number> = {};
  let ready = 0;
  let joins = 0;
  let leaves = 0;
  for (const sub of subs) {
    if (sub.ready) ready++;
    atSeq[sub.last] = (atSeq[sub.last] ?? 0) + 1;
    joins += sub.joins;
    leaves += sub.leaves;
    atEvents[`${sub.joins}/${sub.leaves}`] = (atEvents[`${sub.joins}/${sub.leaves}`] ?? 0) + 1;
  }
  return {
    ...stats,
    latency: hist.toSparse(),
    latencyMax: hist.max,
    cpuUs: cpu.user + cpu.system,
    wallMs: performance.now() - wallAt,
    ready,
    errorCodes,
    atSeq,
    joins,
    leaves,
    atEvents,
  };
}

process.on('message', (message: ParentMessage) => {
  switch (message.type) {
    case 'connect': {
      order = message;
      for (let i = 0; i < message.count; i++)
        subs.push({
          ...{ index: i, socket: null, ready: false, last: 0, id: '', tail: null, head: '', attempts: 0 },
          ...{ joins: 0, leaves: 0, eventTail: null },
        });
      connectAll(message, message.addressBase, subs, (ready, failed, ms) =>
        send({ type: 'connected', ready, failed, ms, errorCodes }),
      );
      break;
    }
    case 'reset':
      hist.reset();
      for (const key of Object.keys(stats) as (keyof typeof stats)[]) stats[key] = 0;
      errorCodes = {};
      for (const sub of subs) {
        sub.joins = 0;
        sub.leaves = 0;
      }
      reachedEvents.clear();
      eventFrontier = 0;
      cpuAt = process.cpuUsage();
      wallAt = performance.now();
      send({ type: 'reset' });
      break;
    case 'report':
      send({ type: 'report', report: report() });
      break;
    case 'drop':
      dropping = true;
      for (const sub of subs) sub.socket?.destroy();
      setTimeout(() => {
        dropping = false;
        send({ type: 'dropped' });
      }, 100);
      break;
    case 'reconnect':
      for (const sub of subs) sub.attempts = 0;
      connectAll(order!, message.addressBase, subs, (ready, failed, ms) =>
        send({ type: 'connected', ready, failed, ms, errorCodes }),
      );
      break;
    case 'exit':
      for (const sub of subs) sub.socket?.destroy();
      process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
// Never outlive a run by much, whatever happens to the parent.
setTimeout(() => process.exit(3), 20 * 60_000).unref();
