import { type ClientRequest, type IncomingMessage, request } from 'node:http';

/** A streaming HTTP response read as it arrives, for tests that look at what came and when. */
export class StreamReader {
  text = '';
  ended = false;
  private readonly waiters = new Set<() => void>();

  private constructor(
    readonly req: ClientRequest,
    readonly res: IncomingMessage,
  ) {
    res.setEncoding('utf8');
    res.on('data', (piece: string) => {
      this.text += piece;
      this.notify();
    });
    const end = () => {
      this.ended = true;
      this.notify();
    };
    res.on('end', end);
    res.on('close', end);
    res.on('error', end);
  }

  static open(url: string, headers: Record<string, string> = {}): Promise<StreamReader> {
    return new Promise((resolve, reject) => {
      const req = request(url, { headers, agent: false }, (res) => resolve(new StreamReader(req, res)));
      req.on('error', reject);
      req.end();
    });
  }

  get status(): number {
    return this.res.statusCode ?? 0;
  }

  private notify(): void {
    for (const waiter of this.waiters) waiter();
  }

  /** Resolves when the predicate holds for what has arrived; rejects after timeoutMs. */
  waitFor(predicate: (reader: StreamReader) => boolean, timeoutMs = 5000, what = 'stream content'): Promise<void> {
    if (predicate(this)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (predicate(this)) {
          cleanup();
          resolve();
        } else if (this.ended) {
          cleanup();
          reject(new Error(`stream ended before ${what}; got: ${this.text.slice(-500)}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${what}; got: ${this.text.slice(-500)}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
    });
  }

  /** NDJSON lines parsed so far. */
  json<T = Record<string, unknown>>(): T[] {
    return this.text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as T);
  }

  /** SSE events parsed so far (comments dropped; id-only blocks kept with empty data). */
  events(): SseEvent[] {
    return parseSse(this.text);
  }

  close(): void {
    this.req.destroy();
    this.res.destroy();
  }
}

export interface SseEvent {
  id: string | undefined;
  event: string | undefined;
  data: string | undefined;
  retry: string | undefined;
}

/** A small SSE parser for tests; only complete blocks (ending in a blank line) count. */
export function parseSse(text: string): SseEvent[] {
  const blocks = text.split(/\r\n\r\n|\n\n|\r\r/);
  blocks.pop(); // incomplete or empty tail
  const events: SseEvent[] = [];
  for (const block of blocks) {
    const event: SseEvent = { id: undefined, event: undefined, data: undefined, retry: undefined };
    let any = false;
    for (const line of block.split(/\r\n|\n|\r/)) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      any = true;
      if (field === 'data') event.data = event.data === undefined ? value : `${event.data}\n${value}`;
      else if (field === 'id') event.id = value;
      else if (field === 'event') event.event = value;
      else if (field === 'retry') event.retry = value;
    }
    if (any) events.push(event);
  }
  return events;
}
