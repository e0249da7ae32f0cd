/*
 * Publishes over raw keep-alive HTTP/1.1 connections, with a queue behind
 * them. One connection, pipelined, keeps the messages of a channel in order
 * (fan-out); several connections publish to many channels at once.
 * Responses are counted by their status lines; nothing else is parsed.
 */
import { type Socket, connect } from 'node:net';

export interface PublishTarget {
  readonly port: number;
  /** The bytes of one request for this message. */
  request(channel: string, data: string): Buffer;
  /** The bytes of one request that publishes all of these (kometa's `POST /pub` batch), where the system has one. */
  batch?(items: readonly { channel: string; data: string }[]): Buffer;
}

const STATUS = Buffer.from('HTTP/1.1 ');

interface Conn {
  socket: Socket | null;
  /** Requests written and not yet answered. */
  busy: number;
}

export class Publisher {
  readonly #conns: Conn[] = [];
  readonly #queue: Buffer[] = [];
  sent = 0;
  acked = 0;
  failed = 0;
  #idleWaiters: (() => void)[] = [];

  constructor(
    private readonly host: string,
    private readonly target: PublishTarget,
    connections = 8,
    /** Requests in flight per connection (more than 1 = HTTP/1.1 pipelining, answered in order). */
    private readonly depth = 1,
  ) {
    for (let i = 0; i < connections; i++) this.#conns.push({ socket: null, busy: 0 });
  }

  publish(channel: string, data: string): void {
    this.#queue.push(this.target.request(channel, data));
    this.sent++;
    this.#pump();
  }

  /** Queue a request built elsewhere (a batch): it counts as one request, answered by one status line. */
  publishRequest(request: Buffer): void {
    this.#queue.push(request);
    this.sent++;
    this.#pump();
  }

  get inflight(): number {
    return this.sent - this.acked - this.failed;
  }

  /** Resolves when every request sent so far has been answered. */
  idle(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #pump(): void {
    for (const conn of this.#conns) {
      if (this.#queue.length === 0) return;
      while (conn.busy < this.depth && this.#queue.length > 0) {
        const request = this.#queue.shift()!;
        conn.busy++;
        this.#socket(conn).write(request);
      }
    }
  }

  #socket(conn: Conn): Socket {
    if (conn.socket !== null && !conn.socket.destroyed) return conn.socket;
    const socket = connect({ host: this.host, port: this.target.port });
    socket.setNoDelay(true);
    conn.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      let at = chunk.indexOf(STATUS);
      while (at !== -1) {
        if (chunk[at + STATUS.length] === 0x32) this.acked++;
        else this.failed++;
        conn.busy--;
        at = chunk.indexOf(STATUS, at + STATUS.length);
      }
      this.#settle();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      if (conn.socket !== socket) return;
      conn.socket = null;
      if (conn.busy > 0) {
        // Lost with the connection (e.g. the server's keep-alive timeout raced it).
        this.failed += conn.busy;
        conn.busy = 0;
        this.#settle();
      }
    });
    return socket;
  }

  #settle(): void {
    this.#pump();
    if (this.inflight === 0) for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  close(): void {
    for (const conn of this.#conns) conn.socket?.destroy();
  }
}

export function postRequest(path: string, body: string, contentType = 'text/plain'): Buffer {
  const bytes = Buffer.from(body);
  return Buffer.concat([
    Buffer.from(
      `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${contentType}\r\nContent-Length: ` +
        `${bytes.length}\r\n\r\n`,
    ),
    bytes,
  ]);
}
