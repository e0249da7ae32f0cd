import { request } from 'node:http';
import { WebSocket } from 'ws';

/**
 * A small load for the dashboard to show: subscribers on every transport
 * and a publisher with a varying rate over a few channels. Returns a stop
 * function that closes everything it opened.
 */
export function startLoad(url: string, options: { subscribers?: number; ratePerSecond?: number } = {}): () => void {
  const base = new URL(url);
  const closers: (() => void)[] = [];
  const channels = ['news', 'chat.general', 'prices.eur', 'chat.random', 'alerts'];
  const subscribers = options.subscribers ?? 30;
  let stopped = false;
  for (let i = 0; i < subscribers; i++) {
    const channel = channels[i % channels.length === 4 ? 0 : i % channels.length]!;
    const kind = i % 6;
    if (kind === 5) {
      const ws = new WebSocket(`ws://${base.host}/ws`);
      ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', channel })));
      ws.on('error', () => {});
      closers.push(() => ws.terminate());
      continue;
    }
    if (kind === 4) {
      // Long-polls, one after the other, for as long as the load runs.
      let cursor = '';
      const poll = () => {
        if (stopped) return;
        const req = request(
          {
            host: base.hostname,
            port: base.port,
            path: `/sub/${channel}?transport=poll&timeout=5${cursor ? `&since=${encodeURIComponent(cursor)}` : ''}`,
            agent: false,
          },
          (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c));
            res.on('end', () => {
              try {
                cursor = (JSON.parse(body) as { cursor: string }).cursor;
              } catch {
                // keep the old cursor
              }
              setTimeout(poll, 20);
            });
          },
        );
        req.on('error', () => setTimeout(poll, 200));
        req.end();
        closers.push(() => req.destroy());
      };
      poll();
      continue;
    }
    const transport = kind === 3 ? 'stream' : 'sse';
    const req = request(
      { host: base.hostname, port: base.port, path: `/sub/${channel}?transport=${transport}`, agent: false },
      (res) => res.resume(),
    );
    req.on('error', () => {});
    req.end();
    closers.push(() => req.destroy());
  }
  // A publisher whose rate swings, so the plots have a shape.
  const started = Date.now();
  const rate = options.ratePerSecond ?? 60;
  let n = 0;
  const timer = setInterval(() => {
    const phase = (Date.now() - started) / 1000;
    const perTick = Math.max(1, Math.round((rate / 10) * (1 + 0.8 * Math.sin(phase / 1.5))));
    for (let i = 0; i < perTick; i++) {
      n++;
      const channel = channels[n % 7 === 0 ? 2 : n % 3]!;
      const body = JSON.stringify({ n, at: Date.now(), text: `message ${n}` });
      const req = request(
        {
          host: base.hostname,
          port: base.port,
          path: `/pub/${channel}`,
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          agent: false,
        },
        (res) => res.resume(),
      );
      req.on('error', () => {});
      req.end(body);
    }
    // Now and then a bad request, so that errors show up too.
    if (n % 40 < perTick) {
      const bad = request({ host: base.hostname, port: base.port, path: '/sub/bad%20name', agent: false }, (res) =>
        res.resume(),
      );
      bad.on('error', () => {});
      bad.end();
    }
  }, 100);
  return () => {
    stopped = true;
    clearInterval(timer);
    for (const close of closers) close();
  };
}
