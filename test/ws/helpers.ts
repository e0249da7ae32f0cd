import WebSocket from 'ws';

export interface Frame {
  type: string;
  [key: string]: unknown;
}

/** A `ws` client that queues the JSON frames it receives, so a test can await them in order. */
export interface TestSocket {
  readonly ws: WebSocket;
  readonly frames: Frame[];
  /** The next frame not yet taken (optionally: the next one of this type, skipping others). */
  next(type?: string, timeoutMs?: number): Promise<Frame>;
  send(frame: unknown): void;
  readonly closed: Promise<{ code: number; reason: string }>;
  close(): Promise<void>;
}

export async function openSocket(baseUrl: string, path = '/ws'): Promise<TestSocket> {
  const ws = new WebSocket(baseUrl.replace(/^http/, 'ws') + path, { perMessageDeflate: false });
  const socket = trackSocket(ws);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return socket;
}

/** The TestSocket of a `ws` WebSocket however it was opened (over HTTP/2 it is open before this returns). */
export function trackSocket(ws: WebSocket): TestSocket {
  const frames: Frame[] = [];
  let taken = 0;
  let wake: (() => void) | undefined;
  ws.on('message', (data) => {
    frames.push(JSON.parse(data.toString()) as Frame);
    wake?.();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => {
      resolve({ code, reason: reason.toString() });
      wake?.();
    });
  });
  ws.on('error', () => {});
  const socket: TestSocket = {
    ws,
    frames,
    closed,
    send: (frame) => ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame)),
    async next(type, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        while (taken < frames.length) {
          const frame = frames[taken++]!;
          if (type === undefined || frame.type === type) return frame;
        }
        if (ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed while waiting for ${type ?? 'a frame'}`);
        const left = deadline - Date.now();
        if (left <= 0)
          throw new Error(`timed out waiting for ${type ?? 'a frame'}; got ${JSON.stringify(frames.slice(-3))}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    },
    async close() {
      if (ws.readyState === WebSocket.CLOSED) return;
      ws.close();
      await Promise.race([closed, new Promise((r) => setTimeout(r, 1000))]);
      ws.terminate();
    },
  };
  return socket;
}
