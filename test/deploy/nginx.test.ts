import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import { sseCollector, startKometa } from '../helpers/redis.js';
import { publish, waitFor } from '../helpers/hub.js';
import { StreamReader } from '../helpers/streams.js';
import { documentedNginxConfig, startNginx } from './nginx-helpers.js';

/** A publish from a given local address (the loopback network is all of 127/8), so nginx sees distinct clients. */
function publishFrom(localAddress: string, url: string, extra: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', localAddress, agent: false, headers: { 'Content-Type': 'text/plain', ...extra } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end('x');
  });
}

test('the documented nginx config has the settings docs/deploy.md explains', () => {
  const config = documentedNginxConfig();
  for (const line of [
    'proxy_buffering off;',
    'proxy_http_version 1.1;',
    'proxy_set_header Upgrade $http_upgrade;',
    'proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    'proxy_set_header X-Forwarded-Proto $scheme;',
  ]) {
    assert.ok(config.includes(line), line);
  }
  assert.doesNotMatch(
    config,
    /^\s*proxy_read_timeout/m,
    "nginx's default 60 s read timeout is kept: the heartbeat is what keeps streams alive",
  );
});

test('behind nginx with --trust-proxy, the anonymous publish rate is per client, from X-Forwarded-For; a client ' +
  'cannot forge it', async (t) => {
  const kometa = await startKometa(['--trust-proxy', '127.0.0.1', '--publish-rate', '1']);
  t.after(() => kometa.kill('SIGTERM'));
  const nginx = await startNginx(kometa.port);
  t.after(() => nginx.stop());
  const first: number[] = [];
  for (let i = 0; i < 4; i++) first.push(await publishFrom('127.0.0.3', `${nginx.url}/pub/c`));
  assert.ok(first.includes(429), `client 127.0.0.3 used up its burst: ${first}`);
  assert.equal(await publishFrom('127.0.0.4', `${nginx.url}/pub/c`), 201, 'client 127.0.0.4 has its own budget');
  assert.equal(
    await publishFrom('127.0.0.3', `${nginx.url}/pub/c`, { 'X-Forwarded-For': '198.51.100.77' }),
    429,
    'a forged X-Forwarded-For does not buy a new budget',
  );
});

test('without --trust-proxy, every client behind nginx shares the proxy address', async (t) => {
  const kometa = await startKometa(['--publish-rate', '1']);
  t.after(() => kometa.kill('SIGTERM'));
  const nginx = await startNginx(kometa.port);
  t.after(() => nginx.stop());
  const statuses: number[] = [];
  for (let i = 0; i < 4; i++) statuses.push(await publishFrom('127.0.0.3', `${nginx.url}/pub/c`));
  assert.ok(statuses.includes(429));
  assert.equal(
    await publishFrom('127.0.0.4', `${nginx.url}/pub/c`),
    429,
    'another client is charged to the same address: 127.0.0.1',
  );
});

test('the principle at a small scale: nginx cuts a stream quieter than proxy_read_timeout; the heartbeat keeps it ' +
  'open', async (t) => {
  const withShortTimeout = (config: string) =>
    config.replace('proxy_buffering off;', 'proxy_buffering off;\n        proxy_read_timeout 2s;');
  // No heartbeat within the timeout: nginx ends the response.
  const silent = await startKometa(['--heartbeat', '600']);
  t.after(() => silent.kill('SIGTERM'));
  const nginxA = await startNginx(silent.port, withShortTimeout);
  t.after(() => nginxA.stop());
  const cut = await StreamReader.open(`${nginxA.url}/sub/c?transport=stream`);
  t.after(() => cut.close());
  await waitFor(() => cut.ended, 15_000, 'nginx to cut the silent stream');

  // A heartbeat every 0.5 s: the same config keeps the stream open past several timeouts, and it delivers.
  const beating = await startKometa(['--heartbeat', '0.5']);
  t.after(() => beating.kill('SIGTERM'));
  const nginxB = await startNginx(beating.port, withShortTimeout);
  t.after(() => nginxB.stop());
  const kept = await StreamReader.open(`${nginxB.url}/sub/c?transport=stream`);
  t.after(() => kept.close());
  const sse = sseCollector(`${nginxB.url}/sub/c`);
  t.after(() => sse.close());
  await new Promise((resolve) => setTimeout(resolve, 6000));
  assert.equal(kept.ended, false, 'still open after three read timeouts');
  await publish(nginxB.url, 'c', 'still here');
  await kept.waitFor((r) => r.text.includes('"data":"still here"'), 10_000, 'delivery');
  await waitFor(() => sse.received.some((m) => m.data === 'still here'), 10_000, 'SSE delivery');
  assert.equal(sse.opens(), 1, 'the SSE stream was never cut');
});
