import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { connect } from 'node:net';
import { test } from 'node:test';
import { SignJWT, UnsecuredJWT, exportJWK } from 'jose';
import { AccessPolicy, type AccessOptions } from '../../src/auth/access.js';
import { compilePattern } from '../../src/auth/patterns.js';
import { type TestHub, httpRequest, startHub, waitFor } from '../helpers/hub.js';
import { StreamReader } from '../helpers/streams.js';

const SECRET = 'test-secret-that-is-long-enough-for-hs256';
const secretKey = new TextEncoder().encode(SECRET);

async function hs256(
  claim: Record<string, unknown>,
  options: { exp?: number | string; sub?: string; key?: Uint8Array } = {},
): Promise<string> {
  const jwt = new SignJWT({ kometa: claim }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
  if (options.sub) jwt.setSubject(options.sub);
  if (options.exp !== undefined) jwt.setExpirationTime(options.exp);
  return jwt.sign(options.key ?? secretKey);
}

async function withHub(
  access: AccessOptions,
  fn: (hub: TestHub) => Promise<void>,
  http: Record<string, unknown> = {},
): Promise<void> {
  const hub = await startHub({ http: { access: await AccessPolicy.create(access), ...http } });
  try {
    await fn(hub);
  } finally {
    await hub.close();
  }
}

async function code(res: Promise<{ status: number; body: string }>): Promise<string> {
  const { status, body } = await res;
  return status < 300 ? String(status) : `${status} ${(JSON.parse(body) as { code: string }).code}`;
}

const poll = (hub: TestHub, path: string, headers: Record<string, string> = {}) =>
  httpRequest(`${hub.url}${path}${path.includes('?') ? '&' : '?'}transport=poll&timeout=0`, { headers });
const pub = (hub: TestHub, channel: string, headers: Record<string, string> = {}) =>
  httpRequest(`${hub.url}/pub/${channel}`, {
    method: 'POST',
    headers: { 'Content-Type': 'text/plain', ...headers },
    body: 'x',
  });

test('channel patterns: * stops at dots, ** does not, no * means exactly that channel', () => {
  assert.ok(compilePattern('room.*')('room.42'));
  assert.ok(!compilePattern('room.*')('room.42.x'));
  assert.ok(!compilePattern('room.*')('room.'));
  assert.ok(!compilePattern('room.*')('roomy.1'));
  assert.ok(compilePattern('room.**')('room.42.x'));
  assert.ok(compilePattern('**')('any.thing:at@all'));
  assert.ok(compilePattern('user:*')('user:7'));
  assert.ok(compilePattern('a.b')('a.b'));
  assert.ok(!compilePattern('a.b')('aXb'), 'a dot is a dot, not any character');
  assert.throws(() => compilePattern('room/*'), /Invalid channel pattern/);
  assert.throws(() => compilePattern('***'), /Invalid channel pattern/);
});

test('an open hub lets anyone subscribe and publish, and allows any origin without credentials', async () => {
  const hub = await startHub();
  try {
    assert.equal(await code(poll(hub, '/sub/x')), '200');
    const res = await httpRequest(`${hub.url}/pub/x`, {
      method: 'POST',
      body: 'x',
      headers: { Origin: 'https://elsewhere.example' },
    });
    assert.equal(res.status, 201);
    assert.equal(res.headers['access-control-allow-origin'], '*');
    assert.equal(res.headers['access-control-allow-credentials'], undefined);
  } finally {
    await hub.close();
  }
});

test('with a JWT secret nothing is anonymous; tokens grant exactly their patterns', async () => {
  await withHub({ tokens: { secret: SECRET } }, async (hub) => {
    assert.equal(await code(poll(hub, '/sub/room.1')), '401 KOMETA_ERR_UNAUTHORIZED');
    assert.equal(await code(pub(hub, 'room.1')), '401 KOMETA_ERR_UNAUTHORIZED');
    const token = await hs256({ subscribe: ['room.*'], publish: ['room.42'] });
    const auth = { Authorization: `Bearer ${token}` };
    assert.equal(await code(poll(hub, '/sub/room.1', auth)), '200');
    assert.equal(await code(poll(hub, '/sub/other.1', auth)), '403 KOMETA_ERR_FORBIDDEN');
    assert.equal(await code(poll(hub, '/sub/room.1.deeper', auth)), '403 KOMETA_ERR_FORBIDDEN');
    assert.equal(
      await code(poll(hub, '/sub?channel=room.1&channel=secret', auth)),
      '403 KOMETA_ERR_FORBIDDEN',
      'one uncovered channel refuses the whole subscription',
    );
    assert.equal(await code(pub(hub, 'room.42', auth)), '201');
    assert.equal(await code(pub(hub, 'room.43', auth)), '403 KOMETA_ERR_FORBIDDEN');
    // The same token from a cookie and from the query string (EventSource cannot set headers).
    assert.equal(await code(poll(hub, '/sub/room.1', { Cookie: `other=1; kometa_token=${token}` })), '200');
    assert.equal(await code(poll(hub, `/sub/room.1?token=${token}`)), '200');
    assert.equal(hub.hub.channelCount, 0, 'refused subscriptions left nothing behind');
  });
});

test('forged, expired, unsigned and wrong-algorithm tokens are refused', async () => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  await withHub({ tokens: { secret: SECRET } }, async (hub) => {
    const claim = { subscribe: ['**'] };
    const cases: [string, string, string][] = [
      ['expired', await hs256(claim, { exp: Math.floor(Date.now() / 1000) - 60 }), '401 KOMETA_ERR_TOKEN_EXPIRED'],
      [
        'signed with another secret',
        await hs256(claim, { key: new TextEncoder().encode('not-the-secret-not-the-secret-xx') }),
        '401 KOMETA_ERR_UNAUTHORIZED',
      ],
      ['alg none', new UnsecuredJWT({ kometa: claim }).encode(), '401 KOMETA_ERR_UNAUTHORIZED'],
      [
        'RS256 when only a secret is configured',
        await new SignJWT({ kometa: claim }).setProtectedHeader({ alg: 'RS256' }).sign(privateKey),
        '401 KOMETA_ERR_UNAUTHORIZED',
      ],
      [
        'without a kometa claim',
        await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'HS256' }).sign(secretKey),
        '401 KOMETA_ERR_UNAUTHORIZED',
      ],
      [
        'with a malformed claim',
        await new SignJWT({ kometa: { subscribe: 'room.*' } }).setProtectedHeader({ alg: 'HS256' }).sign(secretKey),
        '401 KOMETA_ERR_UNAUTHORIZED',
      ],
      ['with a bad pattern', await hs256({ subscribe: ['room/../*'] }), '401 KOMETA_ERR_UNAUTHORIZED'],
      ['garbage', 'not.a.jwt', '401 KOMETA_ERR_UNAUTHORIZED'],
      ['huge', 'a'.repeat(9000), '401 KOMETA_ERR_UNAUTHORIZED'],
    ];
    for (const [label, token, expected] of cases) {
      assert.equal(await code(poll(hub, '/sub/c', { Authorization: `Bearer ${token}` })), expected, label);
    }
  });
  // A hub that trusts an RS256 public key must not accept HS256 signed with that public key as the secret.
  await withHub({ tokens: { publicKey: pem } }, async (hub) => {
    const confused = await hs256({ subscribe: ['**'] }, { key: new TextEncoder().encode(pem) });
    assert.equal(
      await code(poll(hub, '/sub/c', { Authorization: `Bearer ${confused}` })),
      '401 KOMETA_ERR_UNAUTHORIZED',
    );
    const good = await new SignJWT({ kometa: { subscribe: ['c'] } })
      .setProtectedHeader({ alg: 'RS256' })
      .setExpirationTime('1h')
      .sign(privateKey);
    assert.equal(await code(poll(hub, '/sub/c', { Authorization: `Bearer ${good}` })), '200');
  });
});

test('ES256 keys from a JWKS document are accepted', async () => {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
  await withHub({ tokens: { publicKey: JSON.stringify({ keys: [jwk] }) } }, async (hub) => {
    const token = await new SignJWT({ kometa: { subscribe: ['c'] } })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .sign(privateKey);
    assert.equal(await code(poll(hub, '/sub/c', { Authorization: `Bearer ${token}` })), '200');
  });
});

test('a token that expires while its stream is open ends the stream with a clear event', async () => {
  await withHub({ tokens: { secret: SECRET } }, async (hub) => {
    const token = await hs256({ subscribe: ['c'] }, { exp: Math.floor(Date.now() / 1000) + 2 });
    const sse = await StreamReader.open(`${hub.url}/sub/c?token=${token}`);
    const stream = await StreamReader.open(`${hub.url}/sub/c?transport=stream`, { Authorization: `Bearer ${token}` });
    await hub.hub.publish('c', 'before');
    await sse.waitFor((r) => r.events().some((e) => e.data === 'before'));
    await sse.waitFor((r) => r.ended, 8000, 'the SSE stream to end at expiry');
    await stream.waitFor((r) => r.ended, 8000, 'the chunked stream to end at expiry');
    const error = sse.events().find((e) => e.event === 'kometa-error');
    assert.equal(JSON.parse(error!.data!).code, 'KOMETA_ERR_TOKEN_EXPIRED');
    assert.ok(stream.json().some((l) => l.code === 'KOMETA_ERR_TOKEN_EXPIRED'));
    await waitFor(() => hub.hub.subscriberCount('c') === 0);
  });
});

test('public patterns open chosen channels to anonymous readers only', async () => {
  await withHub({ tokens: { secret: SECRET }, publicSubscribe: ['news.*'] }, async (hub) => {
    assert.equal(await code(poll(hub, '/sub/news.today')), '200');
    assert.equal(await code(poll(hub, '/sub/room.1')), '401 KOMETA_ERR_UNAUTHORIZED');
    assert.equal(await code(pub(hub, 'news.today')), '401 KOMETA_ERR_UNAUTHORIZED');
  });
});

test('a publisher key publishes anywhere; a wrong one is refused', async () => {
  await withHub({ publisherKey: 'backend-key' }, async (hub) => {
    assert.equal(await code(pub(hub, 'any.channel', { Authorization: 'Bearer backend-key' })), '201');
    assert.equal(
      await code(pub(hub, 'any.channel', { Authorization: 'Bearer backend-kez' })),
      '401 KOMETA_ERR_UNAUTHORIZED',
    );
    assert.equal(await code(pub(hub, 'any.channel')), '401 KOMETA_ERR_UNAUTHORIZED');
  });
});

test('subscribe tickets are single-use, short-lived, and traded for a session cookie', async () => {
  await withHub({ publisherKey: 'backend-key' }, async (hub) => {
    const mint = (body: unknown, key = 'backend-key') =>
      httpRequest(`${hub.url}/tickets`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    assert.equal(await code(mint({ subscribe: ['room.1'] }, 'wrong')), '401 KOMETA_ERR_UNAUTHORIZED');
    assert.equal(await code(mint({ subscribe: ['bad/pattern'] })), '400 KOMETA_ERR_PATTERN');
    assert.equal(
      await code(httpRequest(`${hub.url}/tickets`, { method: 'POST', body: '{}' })),
      '401 KOMETA_ERR_UNAUTHORIZED',
    );
    const minted = await mint({ subscribe: ['room.1'] });
    assert.equal(minted.status, 201);
    const { ticket } = minted.json<{ ticket: string }>();
    assert.match(ticket, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/, 'a signed ticket, URL-safe');

    const first = await poll(hub, `/sub/room.1?ticket=${ticket}`);
    assert.equal(first.status, 200);
    const cookie = String(first.headers['set-cookie']).split(';')[0]!;
    assert.match(cookie, /^kometa_session=/);
    assert.match(String(first.headers['set-cookie']), /HttpOnly/);
    assert.equal(
      await code(poll(hub, `/sub/room.1?ticket=${ticket}`)),
      '401 KOMETA_ERR_TICKET',
      'a spent ticket is refused',
    );
    // EventSource reconnects repeat the URL, spent ticket and all: the cookie carries them.
    assert.equal(await code(poll(hub, `/sub/room.1?ticket=${ticket}`, { Cookie: cookie })), '200');
    assert.equal(
      await code(poll(hub, '/sub/room.2', { Cookie: cookie })),
      '403 KOMETA_ERR_FORBIDDEN',
      'the session covers only what the ticket did',
    );
    assert.equal(await code(poll(hub, `/sub/room.1?ticket=made-up`)), '401 KOMETA_ERR_TICKET');
    // A ticket whose claim was edited, and a session cookie passed off as a ticket, are not genuine.
    const [body, mac] = ticket.split('.') as [string, string];
    const edited = Buffer.from(Buffer.from(body, 'base64url').toString().replace('room.1', 'room.*')).toString(
      'base64url',
    );
    assert.equal(await code(poll(hub, `/sub/room.2?ticket=${edited}.${mac}`)), '401 KOMETA_ERR_TICKET');
    assert.equal(
      await code(poll(hub, `/sub/room.1?ticket=${cookie.slice('kometa_session='.length)}`)),
      '401 KOMETA_ERR_TICKET',
    );
    assert.equal(
      await code(poll(hub, '/sub/room.1', { Cookie: `kometa_session=${ticket}` })),
      '401 KOMETA_ERR_UNAUTHORIZED',
      'a ticket is no session cookie',
    );
  });
});

test('CORS: listed origins get credentials, others are refused before anything happens', async () => {
  await withHub(
    {
      tokens: { secret: SECRET },
      publicSubscribe: ['**'],
      publicPublish: ['**'],
      allowedOrigins: ['https://app.example'],
    },
    async (hub) => {
      const allowed = await poll(hub, '/sub/c', { Origin: 'https://app.example' });
      assert.equal(allowed.status, 200);
      assert.equal(allowed.headers['access-control-allow-origin'], 'https://app.example');
      assert.equal(allowed.headers['access-control-allow-credentials'], 'true');
      const preflight = await httpRequest(`${hub.url}/pub/c`, {
        method: 'OPTIONS',
        headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST' },
      });
      assert.equal(preflight.status, 204);
      assert.match(String(preflight.headers['access-control-allow-headers']), /Authorization/);
      const before = hub.hub.counters.published;
      assert.equal(await code(pub(hub, 'c', { Origin: 'https://evil.example' })), '403 KOMETA_ERR_ORIGIN');
      assert.equal(await code(poll(hub, '/sub/c', { Origin: 'https://evil.example' })), '403 KOMETA_ERR_ORIGIN');
      assert.equal(hub.hub.counters.published, before, 'a cross-site publish never reached the hub');
      assert.equal(
        await code(poll(hub, '/sub/c', { Origin: `http://127.0.0.1:${hub.port}`, Host: `127.0.0.1:${hub.port}` })),
        '200',
        'same origin is fine',
      );
    },
  );
});

test('a publisher over its rate gets 429 with Retry-After; others are not affected', async () => {
  await withHub(
    { publisherKey: 'k', publicPublish: ['open.*'] },
    async (hub) => {
      // One a second, so the refill between these few requests stays far below one token even on a busy machine.
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await pub(hub, 'open.1')).status);
      assert.deepEqual(statuses.slice(0, 2), [201, 201], 'a burst of twice the rate');
      assert.ok(
        statuses.slice(2).every((s) => s === 429),
        `then refused: ${statuses.join(' ')}`,
      );
      const limited = await pub(hub, 'open.1');
      assert.equal(limited.status, 429);
      assert.equal(limited.headers['retry-after'], '1');
      for (let i = 0; i < 20; i++)
        assert.equal(
          await code(pub(hub, 'open.1', { Authorization: 'Bearer k' })),
          '201',
          'backends with the publisher key are not limited',
        );
    },
    { publishRate: 1 },
  );
});

test('connections over the per-address limit get a 429 and are closed', async () => {
  await withHub(
    {},
    async (hub) => {
      const held = await Promise.all([0, 1].map(() => StreamReader.open(`${hub.url}/sub/c?transport=stream`)));
      const answer = await new Promise<string>((resolve) => {
        const socket = connect(hub.port, '127.0.0.1');
        let text = '';
        socket.on('data', (d) => (text += d));
        socket.on('close', () => resolve(text));
        socket.on('error', () => resolve(text));
        socket.write('GET /sub/c?transport=stream HTTP/1.1\r\nHost: x\r\n\r\n');
      });
      assert.match(answer, /^HTTP\/1\.1 429 /);
      assert.match(answer, /KOMETA_ERR_TOO_MANY_CONNECTIONS/);
      assert.equal(hub.hub.subscriberCount('c'), 2, 'the refused connection never subscribed');
      for (const reader of held) reader.close();
      await waitFor(() => hub.hub.subscriberCount('c') === 0);
      assert.equal(await code(poll(hub, '/sub/c')), '200', 'a slot is free again');
    },
    { maxConnectionsPerIp: 2 },
  );
});

test('a hub full of subscribers refuses more with 429 but keeps a reserve of connections for publishing', async () => {
  await withHub(
    {},
    async (hub) => {
      const subscribers = await Promise.all(
        [0, 1, 2].map(() => StreamReader.open(`${hub.url}/sub/full?transport=stream`)),
      );
      await waitFor(() => hub.hub.subscriberCount('full') === 3);
      assert.equal(
        await code(poll(hub, '/sub/full')),
        '429 KOMETA_ERR_TOO_MANY_CONNECTIONS',
        'a fourth subscriber is refused',
      );
      assert.equal(await code(pub(hub, 'full')), '201', 'a publisher still gets through');
      await subscribers[0]!.waitFor((r) => r.json().some((l) => l.type === 'message'));
      // The reserve (16 here) is bounded too: past it, connections are refused outright.
      const idle = await Promise.all(
        Array.from(
          { length: 16 },
          () =>
            new Promise<ReturnType<typeof connect>>((resolve) => {
              const socket = connect(hub.port, '127.0.0.1', () => resolve(socket));
            }),
        ),
      );
      const answer = await new Promise<string>((resolve) => {
        const socket = connect(hub.port, '127.0.0.1');
        let text = '';
        socket.on('data', (d) => (text += d));
        socket.on('close', () => resolve(text));
        socket.on('error', () => resolve(text));
      });
      assert.match(answer, /^HTTP\/1\.1 429 /);
      for (const socket of idle) socket.destroy();
      for (const reader of subscribers) reader.close();
    },
    { maxConnections: 3 },
  );
});

test('more header lines than allowed → 431', async () => {
  const hub = await startHub({ http: { maxHeaderCount: 10 } });
  try {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 20; i++) headers[`x-h${i}`] = 'v';
    assert.equal(
      await code(httpRequest(`${hub.url}/sub/c?transport=poll&timeout=0`, { headers })),
      '431 KOMETA_ERR_HEADERS_TOO_LARGE',
    );
  } finally {
    await hub.close();
  }
});

test('an authorize hook decides for apps with their own sessions', async () => {
  const seen: string[] = [];
  await withHub(
    {
      authorize: (req, { action, channels }) => {
        seen.push(`${action}:${channels.join(',')}`);
        return req.headers['x-session'] === 'valid' && channels.every((c) => c.startsWith('mine.'));
      },
    },
    async (hub) => {
      assert.equal(await code(poll(hub, '/sub/mine.1', { 'X-Session': 'valid' })), '200');
      assert.equal(await code(poll(hub, '/sub/mine.1')), '403 KOMETA_ERR_FORBIDDEN');
      assert.equal(await code(pub(hub, 'theirs.1', { 'X-Session': 'valid' })), '403 KOMETA_ERR_FORBIDDEN');
      assert.deepEqual(seen, ['subscribe:mine.1', 'subscribe:mine.1', 'publish:theirs.1']);
    },
  );
});
