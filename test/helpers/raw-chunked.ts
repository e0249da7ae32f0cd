import { type Socket, connect } from 'node:net';
import { performance } from 'node:perf_hooks';

/** One HTTP/1.1 chunk as framed on the wire, with when it was complete (performance.now()). */
export interface WireChunk {
  readonly data: string;
  readonly at: number;
}

export interface RawResponse {
  readonly status: number;
  /** Header names in lower case. */
  readonly headers: ReadonlyMap<string, string>;
  readonly chunks: readonly WireChunk[];
  /** The body when the response was not chunked (Content-Length or close-delimited). */
  readonly body: string;
  /** The terminating zero-length chunk arrived. */
  readonly complete: boolean;
  /** performance.now() when the request was written. */
  readonly sentAt: number;
}

/**
 * A GET over a bare TCP socket that parses `Transfer-Encoding: chunked`
 * itself, so a test sees the chunk boundaries the server really sent — not
 * what an HTTP client library chose to hand over.
 */
export class RawChunkedRequest {
  readonly socket: Socket;
  readonly sentAt: number;
  readonly response: Promise<RawResponse>;
  #buffer: Buffer = Buffer.alloc(0);
  #status = 0;
  readonly #headers = new Map<string, string>();
  readonly #chunks: WireChunk[] = [];
  readonly #body: Buffer[] = [];
  #phase: 'head' | 'chunks' | 'body' | 'done' = 'head';
  #complete = false;
  #listeners: ((chunk: WireChunk) => void)[] = [];
  #onHead: (() => void)[] = [];

  constructor(
    port: number,
    path: string,
    options: { host?: string; localAddress?: string; headers?: Record<string, string> } = {},
  ) {
    const host = options.host ?? '127.0.0.1';
    this.socket = connect({
      port,
      host,
      ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
    });
    this.socket.setNoDelay(true);
    let head = `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nConnection: close\r\n`;
    for (const [name, value] of Object.entries(options.headers ?? {})) head += `${name}: ${value}\r\n`;
    this.socket.write(`${head}\r\n`);
    this.sentAt = performance.now();
    this.response = new Promise((resolve, reject) => {
      this.socket.on('data', (data: Buffer) => {
        try {
          this.#feed(data);
        } catch (error) {
          this.socket.destroy();
          reject(error);
        }
      });
      this.socket.on('error', (error: NodeJS.ErrnoException) => {
        // A reset after the head is how a cut response may look; report what arrived.
        if (this.#phase === 'head') reject(error);
      });
      this.socket.on('close', () => {
        if (this.#phase === 'head') {
          reject(new Error('connection closed before a response head'));
          return;
        }
        resolve({
          status: this.#status,
          headers: this.#headers,
          chunks: this.#chunks,
          body: Buffer.concat(this.#body).toString('utf8'),
          complete: this.#complete,
          sentAt: this.sentAt,
        });
      });
    });
    // Callers that only wait on chunks must not see an unhandled rejection.
    this.response.catch(() => {});
  }

  get chunks(): readonly WireChunk[] {
    return this.#chunks;
  }

  /** Resolves once `count` chunks have arrived (rejects if the connection closes first). */
  waitForChunks(count: number): Promise<readonly WireChunk[]> {
    if (this.#chunks.length >= count) return Promise.resolve(this.#chunks);
    return new Promise((resolve, reject) => {
      const listener = (): void => {
        if (this.#chunks.length >= count) {
          this.#listeners = this.#listeners.filter((l) => l !== listener);
          resolve(this.#chunks);
        }
      };
      this.#listeners.push(listener);
      this.socket.once('close', () => {
        if (this.#chunks.length < count)
          reject(new Error(`connection closed after ${this.#chunks.length} of ${count} chunks`));
      });
    });
  }

  /** Resolves once the status line and headers have been parsed. */
  waitForHead(): Promise<void> {
    if (this.#phase !== 'head') return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#onHead.push(resolve);
      this.socket.once('close', () => {
        if (this.#phase === 'head') reject(new Error('connection closed before a response head'));
      });
    });
  }

  abort(): void {
    this.socket.destroy();
  }

  #feed(data: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? data : Buffer.concat([this.#buffer, data]);
    for (;;) {
      if (this.#phase === 'head') {
        const end = this.#buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const lines = this.#buffer.subarray(0, end).toString('latin1').split('\r\n');
        this.#buffer = this.#buffer.subarray(end + 4);
        const statusLine = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
        if (statusLine === null) throw new Error(`bad status line: ${lines[0]}`);
        this.#status = Number(statusLine[1]);
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          this.#headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
        }
        this.#phase = this.#headers.get('transfer-encoding')?.toLowerCase() === 'chunked' ? 'chunks' : 'body';
        for (const resolve of this.#onHead.splice(0)) resolve();
        continue;
      }
      if (this.#phase === 'body') {
        this.#body.push(this.#buffer);
        this.#buffer = Buffer.alloc(0);
        return;
      }
      if (this.#phase === 'done') return;
      const lineEnd = this.#buffer.indexOf('\r\n');
      if (lineEnd < 0) return;
      const sizeText = this.#buffer.subarray(0, lineEnd).toString('latin1').split(';')[0]!.trim();
      if (!/^[0-9a-fA-F]+$/.test(sizeText)) throw new Error(`bad chunk size line: ${JSON.stringify(sizeText)}`);
      const size = parseInt(sizeText, 16);
      if (size === 0) {
        // Last chunk; no trailers expected, just the final CRLF.
        if (this.#buffer.length < lineEnd + 4) return;
        this.#complete = true;
        this.#phase = 'done';
        this.#buffer = Buffer.alloc(0);
        return;
      }
      if (this.#buffer.length < lineEnd + 2 + size + 2) return;
      const payload = this.#buffer.subarray(lineEnd + 2, lineEnd + 2 + size);
      if (this.#buffer.subarray(lineEnd + 2 + size, lineEnd + 4 + size).toString('latin1') !== '\r\n')
        throw new Error('chunk not followed by CRLF');
      this.#buffer = this.#buffer.subarray(lineEnd + 4 + size);
      const chunk = { data: payload.toString('utf8'), at: performance.now() };
      this.#chunks.push(chunk);
      for (const listener of [...this.#listeners]) listener(chunk);
    }
  }
}
