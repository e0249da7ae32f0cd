/**
 * One test per documented claim that issue 15 found untrue, so that each stays true.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import { AccessPolicy } from '../../src/auth/access.js';
import { TicketIssuer } from '../../src/auth/tickets.js';
import { MemoryBroker } from '../../src/brokers/memory.js';
import { Hub } from '../../src/core/hub.js';
import { HubHttp } from '../../src/http/hub-server.js';
import { hubBanner } from '../../src/cli/banner.js';
import { resolveSettings } from '../../src/cli/settings.js';
import { type TestHub, httpRequest, startHub } from '../helpers/hub.js';
import { openSocket } from '../ws/helpers.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const doc = (name: string) => readFileSync(join(root, name), 'utf8');
const SECRET = 'claims-secret-that-is-long-enough-for-hs256';

async function withHub(
  fn: (hub: TestHub) => Promise<void>,
  access: Parameters<typeof AccessPolicy.create>[0],
  http: Record<string, unknown> = {},
): Promise<void> {
  const hub = await startHub({ http: { access: await AccessPolicy.create(access), ...http } });
  try {
    await fn(hub);
  } finally {
    await hub.close();
  }
}

const poll = (hub: TestHub, path: string, headers: Record<string, string> = {}) =>
  httpRequest(`${hub.url}${path}${path.includes('?') ? '&' : '?'}transport=poll&timeout=0`, { headers });

test("import { AccessPolicy } from 'kometa' works, as README and docs/security.md show", async () => {
  const specifier = 'kometa';
  const kometa = (await import(specifier)) as typeof import('../../src/index.js');
  assert.equal(typeof kometa.AccessPolicy, 'function');
  assert.equal(typeof kometa.AccessPolicy.create, 'function');
  // The documented library-mode call, end to end.
  const access = await kometa.AccessPolicy.create({ authorize: (req) => req.headers['x-user'] === 'ann' });
  const hub = new kometa.Hub(new kometa.MemoryBroker());
  const server = kometa.createHubServer(hub, { access });
  const { port } = await server.listen(0, '127.0.0.1');
  try {
    assert.equal((await httpRequest(`http://127.0.0.1:${port}/sub/x?transport=poll&timeout=0`)).status, 403);
    assert.equal(
      (await httpRequest(`http://127.0.0.1:${port}/sub/x?transport=poll&timeout=0`, { headers: { 'X-User': 'ann' } }))
        .status,
      200,
    );
  } finally {
    await server.close();
  }
});

test('an invalid or expired kometa_session cookie is a 401, never anonymous access; a fresh ticket replaces it', async () => {
  await withHub(
    async (hub) => {
      assert.equal((await poll(hub, '/sub/news.1')).status, 200, 'anonymous may subscribe to the public pattern');
      const forged = await poll(hub, '/sub/news.1', { Cookie: 'kometa_session=not-a-session' });
      assert.equal(forged.status, 401);
      assert.equal(forged.json<{ code: string }>().code, 'KOMETA_ERR_UNAUTHORIZED');

      // A genuine session cookie, signed with this hub's secret, that ended an hour ago.
      const past = new TicketIssuer('shared-ticket-secret', undefined, () => Date.now() - 2 * 3600_000);
      const { session: expired } = await past.redeem(past.mint({ subscribe: ['news.*'] }, 'ann').ticket);
      const stale = await poll(hub, '/sub/news.1', { Cookie: `kometa_session=${expired}` });
      assert.equal(stale.status, 401, 'an expired session cookie is refused, not ignored');
      assert.equal(stale.json<{ code: string }>().code, 'KOMETA_ERR_UNAUTHORIZED');

      // A live one works, and a fresh ticket beside a stale cookie is spent and replaces it.
      const now = new TicketIssuer('shared-ticket-secret');
      const { session: live } = await now.redeem(now.mint({ subscribe: ['room.*'] }, 'ann').ticket);
      assert.equal((await poll(hub, '/sub/room.1', { Cookie: `kometa_session=${live}` })).status, 200);
      const minted = await httpRequest(`${hub.url}/tickets`, {
        method: 'POST',
        headers: { Authorization: 'Bearer backend-key', 'Content-Type': 'application/json' },
        body: JSON.stringify({ subscribe: ['room.1'] }),
      });
      const { ticket } = minted.json<{ ticket: string }>();
      const replaced = await poll(hub, `/sub/room.1?ticket=${ticket}`, { Cookie: `kometa_session=${expired}` });
      assert.equal(replaced.status, 200);
      assert.match(String(replaced.headers['set-cookie']), /^kometa_session=/);
    },
    { publisherKey: 'backend-key', ticketSecret: 'shared-ticket-secret', publicSubscribe: ['news.*'] },
  );
  assert.match(
    doc('docs/security.md'),
    /`kometa_session` cookie\s+that is forged, signed with another `--ticket-secret`, or expired: 401/,
  );
});

test('docs/errors.md and docs/redis.md say the same thing about a 503 from the message store', () => {
  const errors = doc('docs/errors.md');
  const redis = doc('docs/redis.md');
  const row = errors.split('\n').find((line) => line.startsWith('| `KOMETA_ERR_BROKER_UNAVAILABLE`'))!;
  assert.match(row, /may or may not have been stored/);
  assert.doesNotMatch(row, /\*\*not\*\* stored/);
  assert.match(redis, /may or may not have been\s+stored/);
  for (const text of [row, redis]) assert.match(text, /idempotency key/);
});

test('the publisher key is not rate limited, as --help, docs/errors.md and docs/configuration.md say', async () => {
  await withHub(
    async (hub) => {
      const statuses: number[] = [];
      for (let i = 0; i < 12; i++) {
        const res = await httpRequest(`${hub.url}/pub/room`, {
          method: 'POST',
          headers: { Authorization: 'Bearer backend-key' },
          body: `m${i}`,
        });
        statuses.push(res.status);
      }
      assert.deepEqual(new Set(statuses), new Set([201]), 'twelve publishes at a rate of 1/s, none refused');
      // An anonymous publisher at the same pace is limited (burst of twice the rate).
      const anonymous: number[] = [];
      for (let i = 0; i < 6; i++)
        anonymous.push((await httpRequest(`${hub.url}/pub/open.x`, { method: 'POST', body: 'x' })).status);
      assert.ok(anonymous.includes(429), `anonymous publishes are limited: ${anonymous.join(',')}`);
    },
    { publisherKey: 'backend-key', publicPublish: ['open.*'] },
    { publishRate: 1 },
  );
  const { settingSpecs } = await import('../../src/cli/settings.js');
  assert.match(settingSpecs.publishRate.help, /publisher key is not limited/);
  const row = doc('docs/errors.md')
    .split('\n')
    .find((line) => line.startsWith('| `KOMETA_ERR_RATE_LIMITED`'))!;
  assert.match(row, /the publisher key is never limited/);
  assert.doesNotMatch(row, /token subject, publisher key, or/);
});

test('WebSocket close codes: 4401 on expiry is sent and documented; a 403 or 429 is an error frame, never 4403/4429', async () => {
  const key = new TextEncoder().encode(SECRET);
  await withHub(
    async (hub) => {
      const exp = Math.floor(Date.now() / 1000) + 2;
      const token = await new SignJWT({ kometa: { subscribe: ['room.*'], publish: ['room.*'] } })
        .setProtectedHeader({ alg: 'HS256' })
        .setExpirationTime(exp)
        .sign(key);
      const socket = await openSocket(hub.url, `/ws?token=${token}`);
      socket.send({ type: 'subscribe', channel: 'other', ref: 1 });
      const forbidden = await socket.next('error');
      assert.equal(forbidden.code, 'KOMETA_ERR_FORBIDDEN');
      for (let i = 0; i < 6; i++) socket.send({ type: 'publish', channel: 'room.1', data: `m${i}`, ref: 10 + i });
      const limited = await socket.next('error');
      assert.equal(limited.code, 'KOMETA_ERR_RATE_LIMITED');
      socket.send({ type: 'ping', ref: 99 });
      assert.equal((await socket.next('pong')).ref, 99, 'the connection is still open after 403 and 429');
      socket.send({ type: 'subscribe', channel: 'room.1', ref: 2 });
      await socket.next('subscribed');
      const closed = await socket.closed;
      assert.deepEqual(closed, { code: 4401, reason: 'KOMETA_ERR_TOKEN_EXPIRED' });
    },
    { tokens: { secret: SECRET } },
    { publishRate: 1 },
  );
  const table = doc('docs/websocket.md').split('## Close codes')[1]!.split('\n## ')[0]!;
  const codes = [...table.matchAll(/^\| (\d{4}) \|/gm)].map((m) => Number(m[1]));
  assert.ok(codes.includes(4401), '4401 is in the table');
  assert.ok(!codes.includes(4403) && !codes.includes(4429), 'codes never sent are not in the table');
  assert.match(table, /\| 4401 \| `KOMETA_ERR_TOKEN_EXPIRED` \|/);
});

test('while draining, an SSE subscribe gets 200 and a kometa-error event (EventSource reconnects); others get 503', async () => {
  const hub = new Hub(new MemoryBroker());
  const http = new HubHttp(hub, { retryMs: 1234, retryJitter: 0 });
  const server = createServer((req, res) => {
    if (!http.handle(req, res)) res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  try {
    void http.drain();
    const sse = await httpRequest(`http://127.0.0.1:${port}/sub/x`, { headers: { Accept: 'text/event-stream' } });
    assert.equal(sse.status, 200);
    assert.match(String(sse.headers['content-type']), /^text\/event-stream/);
    assert.match(sse.body, /^retry: 1234\nevent: kometa-error\ndata: \{"code":"KOMETA_ERR_DRAINING"/);
    const pollRes = await httpRequest(`http://127.0.0.1:${port}/sub/x?transport=poll`);
    assert.equal(pollRes.status, 503);
    assert.equal(pollRes.json<{ code: string }>().code, 'KOMETA_ERR_DRAINING');
    const pub = await httpRequest(`http://127.0.0.1:${port}/pub/x`, { method: 'POST', body: 'x' });
    assert.equal(pub.status, 503);
  } finally {
    await new Promise((resolve) => server.close(resolve));
    server.closeAllConnections();
  }
  assert.match(doc('docs/protocol.md'), /or the hub is draining\), an SSE request still gets `200`/);
});

test('the banner and docs/security.md put $VARIABLES in double quotes, so a shell expands them', () => {
  const settings = { ...resolveSettings({}, {}, undefined), adminToken: 'given' };
  const banner = hubBanner('http://127.0.0.1:8080', settings, { chat: true, tokenGenerated: false });
  const line = banner.split('\n').find((l) => l.includes('/metrics'))!;
  assert.match(line, /curl -H "Authorization: Bearer \$KOMETA_ADMIN_TOKEN"/);
  for (const name of ['docs/security.md', 'README.md', 'docs/deploy.md', 'docs/operations.md', 'docs/redis.md']) {
    const singleQuoted = doc(name).match(/'[^'\n]*\$[A-Z_]{2,}[^'\n]*'/g) ?? [];
    assert.deepEqual(singleQuoted, [], `${name} puts a $VARIABLE in single quotes`);
  }
});

test('docs name where things really are: comet failures on stdout, no /ws under kometa proxy, the fuzzer spawns its own hub, dashboard 401 for the publisher key', () => {
  assert.match(doc('docs/comet.md'), /`kometa serve` logs each report as a pino `error` line .* on stdout/);
  assert.doesNotMatch(doc('docs/comet.md'), /prints reports to stderr/);
  assert.doesNotMatch(doc('docs/proxy.md'), /Browsers can use the hub's own `\/ws`/);
  const fuzz = readFileSync(join(root, 'bench/fuzz.ts'), 'utf8');
  assert.match(fuzz, /spawn\(/, 'the fuzzer starts a kometa serve of its own');
  assert.match(doc('README.md'), /fuzz\.js --seconds 60` starts a `kometa serve` of its own/);
  const ops = doc('docs/operations.md');
  assert.match(ops, /\| the publisher key, or any other string \| 401 \| 401 \|/);
  assert.doesNotMatch(ops, /scrape each worker\s+on its own port/);
});
