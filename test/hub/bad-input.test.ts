import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { httpRequest, startHub, type TestHub, waitFor } from '../helpers/hub.js';
import { StreamReader } from '../helpers/streams.js';

/*
 * Every bad input gets its exact status and problem code, and a healthy
 * subscriber on the same hub keeps receiving throughout.
 */
let hub: TestHub;
let healthy: StreamReader;
let probe = 0;
let baselineHeap = 0;

// A full collection before each heap reading, so "memory returns near its baseline" compares live objects.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
async function settledHeap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 50));
  }
  return process.memoryUsage().heapUsed;
}

before(async () => {
  hub = await startHub({
    http: {
      maxBodyBytes: 1024,
      headersTimeoutMs: 600,
      requestTimeoutMs: 1200,
      maxHeaderBytes: 4096,
      maxQueueBytes: 64 * 1024,
      publishRate: 50,
    },
    limits: { maxChannelsPerSubscription: 4, maxMessageBytes: 1024 },
  });
  healthy = await StreamReader.open(`${hub.url}/sub/healthy?transport=stream`);
  await waitFor(() => hub.hub.subscriberCount('healthy') === 1);
  await assertHealthyStillReceives();
  baselineHeap = await settledHeap();
});

after(async () => {
  healthy.close();
  await hub.close();
});

/** After each bad input: the healthy subscriber still gets a fresh message. */
async function assertHealthyStillReceives(): Promise<void> {
  const data = `still-alive-${++probe}`;
  await hub.hub.publish('healthy', data);
  await healthy.waitFor((r) => r.json().some((l) => l.data === data), 5000, data);
}

async function expectProblem(
  path: string,
  init: Parameters<typeof httpRequest>[1],
  status: number,
  code: string,
): Promise<void> {
  const res = await httpRequest(`${hub.url}${path}`, init);
  assert.equal(res.status, status, `${init?.method ?? 'GET'} ${path}: ${res.body}`);
  assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
  const problem = res.json<{ type: string; title: string; status: number; detail: string; code: string }>();
  assert.equal(problem.code, code);
  assert.equal(problem.status, status);
  assert.ok(problem.type.startsWith('urn:kometa:error:'));
  assert.ok(problem.title.length > 0 && problem.detail.length > 0);
  await assertHealthyStillReceives();
}

const longName = 'x'.repeat(129);
const cases: [string, string, Parameters<typeof httpRequest>[1], number, string][] = [
  ['an empty channel name', '/sub/', {}, 400, 'KOMETA_ERR_CHANNEL_NAME'],
  ['a dot-dot channel', '/sub/..', {}, 400, 'KOMETA_ERR_CHANNEL_NAME'],
  ['an encoded slash in the channel', '/sub/a%2Fb', {}, 400, 'KOMETA_ERR_CHANNEL_NAME'],
  ['an encoded dot-dot path', '/sub/%2e%2e%2fetc', {}, 400, 'KOMETA_ERR_CHANNEL_NAME'],
  ['a NUL in the channel', '/sub/a%00b', {}, 400, 'KOMETA_ERR_CHANNEL_NAME'],
  ['a unicode channel', '/sub/%C3%A4', {}, 400, 'KOMETA_ERR_CHANNEL_NAME'],
  ['an overlong channel', `/sub/${longName}`, {}, 400, 'KOMETA_ERR_CHANNEL_NAME'],
  ['broken percent-encoding', '/sub/%E0%A4%A', {}, 400, 'KOMETA_ERR_CHANNEL_NAME'],
  ['a bad name among several channels', '/sub?channel=ok&channel=not%20ok', {}, 400, 'KOMETA_ERR_CHANNEL_NAME'],
  ['no channel at all', '/sub', {}, 400, 'KOMETA_ERR_CHANNEL_MISSING'],
  [
    'too many channels',
    '/sub?channel=a&channel=b&channel=c&channel=d&channel=e',
    {},
    400,
    'KOMETA_ERR_TOO_MANY_CHANNELS',
  ],
  ['a malformed since cursor', '/sub/c?transport=poll&since=garbage', {}, 400, 'KOMETA_ERR_CURSOR'],
  ['a malformed Last-Event-ID', '/sub/c', { headers: { 'Last-Event-ID': 'c~e~1~extra' } }, 400, 'KOMETA_ERR_CURSOR'],
  ['a forged cursor past the end', '/sub/fresh?transport=poll&since=fresh~zzzz~5', {}, 200, ''],
  ['an unknown transport', '/sub/c?transport=carrier-pigeon', {}, 400, 'KOMETA_ERR_TRANSPORT'],
  ['a non-numeric poll timeout', '/sub/c?transport=poll&timeout=soon', {}, 400, 'KOMETA_ERR_TIMEOUT_PARAM'],
  ['POST to a subscribe route', '/sub/c', { method: 'POST', body: 'x' }, 405, 'KOMETA_ERR_METHOD'],
  ['GET on a publish route', '/pub/c', {}, 405, 'KOMETA_ERR_METHOD'],
  ['DELETE on a channel route', '/channels/c', { method: 'DELETE' }, 405, 'KOMETA_ERR_METHOD'],
  ['publishing to a bad channel', '/pub/a%20b', { method: 'POST', body: 'x' }, 400, 'KOMETA_ERR_CHANNEL_NAME'],
  [
    'a body over the limit (Content-Length)',
    '/pub/c',
    { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'x'.repeat(2000) },
    413,
    'KOMETA_ERR_BODY_TOO_LARGE',
  ],
  [
    'a binary media type',
    '/pub/c',
    { method: 'POST', headers: { 'Content-Type': 'image/png' }, body: 'x' },
    415,
    'KOMETA_ERR_MEDIA_TYPE',
  ],
  [
    'multipart',
    '/pub/c',
    { method: 'POST', headers: { 'Content-Type': 'multipart/form-data; boundary=x' }, body: 'x' },
    415,
    'KOMETA_ERR_MEDIA_TYPE',
  ],
  [
    'invalid UTF-8',
    '/pub/c',
    { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: Buffer.from([0x66, 0xff, 0xfe]) },
    400,
    'KOMETA_ERR_BODY_ENCODING',
  ],
  [
    'invalid JSON declared as JSON',
    '/pub/c',
    { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"a":' },
    400,
    'KOMETA_ERR_BODY_JSON',
  ],
  [
    'an event name with a line break',
    '/pub/c?event=a%0Adata:x',
    { method: 'POST', body: 'x', headers: { 'Content-Type': 'text/plain' } },
    400,
    'KOMETA_ERR_EVENT_NAME',
  ],
  ['an unknown path', '/nowhere', {}, 404, 'KOMETA_ERR_NOT_FOUND'],
];

for (const [label, path, init, status, code] of cases) {
  if (status === 200) continue;
  test(`${label} → ${status} ${code}`, () => expectProblem(path, init, status, code));
}

test('a forged cursor in another epoch is not an error: it gets a gap and the retained history', async () => {
  await hub.hub.publish('fresh', 'one');
  const res = await httpRequest(`${hub.url}/sub/fresh?transport=poll&since=fresh~zzzz~5`);
  assert.equal(res.status, 200);
  assert.deepEqual(
    res.json<{ gaps: { reason: string }[] }>().gaps.map((g) => g.reason),
    ['epoch-changed'],
  );
  await assertHealthyStillReceives();
});

test('a chunked body that grows past the limit → 413, and the message is not published', async () => {
  const before = hub.hub.counters.published;
  const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const socket = connect(hub.port, '127.0.0.1');
    let text = '';
    socket.on('data', (d) => (text += d));
    socket.on('close', () => resolve({ status: Number(text.split(' ')[1]), body: text }));
    socket.on('error', reject);
    socket.write('POST /pub/c HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n');
    for (let i = 0; i < 4; i++) socket.write(`200\r\n${'y'.repeat(512)}\r\n`);
    socket.write('0\r\n\r\n');
  });
  assert.equal(res.status, 413);
  assert.match(res.body, /KOMETA_ERR_BODY_TOO_LARGE/);
  assert.equal(hub.hub.counters.published, before);
  await assertHealthyStillReceives();
});

/** Send raw bytes; collect everything until the server closes the socket. */
function rawExchange(bytes: string, trickle?: string): Promise<{ text: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(hub.port, '127.0.0.1');
    let text = '';
    let timer: NodeJS.Timeout | undefined;
    socket.on('data', (d) => (text += d));
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ text, ms: Date.now() - started });
    });
    socket.on('error', () => {});
    socket.write(bytes);
    if (trickle !== undefined) {
      // A slowloris: one more byte every 100 ms, never finishing.
      timer = setInterval(() => socket.writable && socket.write(trickle), 100);
    }
    setTimeout(() => {
      socket.destroy();
      reject(new Error(`server kept the socket open; got ${text}`));
    }, 10_000).unref();
  });
}

test('bytes that are not HTTP → 400 problem details and the socket is closed', async () => {
  const { text } = await rawExchange('\u0016\u0003\u0001 definitely not http\r\n\r\n');
  assert.match(text, /^HTTP\/1\.1 400 /);
  assert.match(text, /application\/problem\+json/);
  assert.match(text, /KOMETA_ERR_BAD_REQUEST/);
  await assertHealthyStillReceives();
});

test('request headers over the size limit → 431', async () => {
  const { text } = await rawExchange(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(8000)}\r\n\r\n`);
  assert.match(text, /^HTTP\/1\.1 431 /);
  assert.match(text, /KOMETA_ERR_HEADERS_TOO_LARGE/);
  await assertHealthyStillReceives();
});

test('a slowloris that never finishes its headers is cut with 408 after the headers timeout', async () => {
  const { text, ms } = await rawExchange('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ', 'a');
  assert.match(text, /^HTTP\/1\.1 408 /);
  assert.match(text, /KOMETA_ERR_REQUEST_TIMEOUT/);
  assert.ok(ms >= 600, `not before the timeout (${ms} ms)`);
  await assertHealthyStillReceives();
});

test('a publisher that never sends its declared body is cut after the request timeout', async () => {
  const before = hub.hub.counters.published;
  const { text, ms } = await rawExchange(
    'POST /pub/c HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nabc',
    'b',
  );
  assert.ok(ms >= 1200, `not before the timeout (${ms} ms)`);
  assert.match(text, /^HTTP\/1\.1 408 |^$/);
  assert.equal(hub.hub.counters.published, before, 'nothing half-received was published');
  await assertHealthyStillReceives();
});

test('a long-lived subscription outlives the request timeout (which only bounds receiving the request)', async () => {
  const reader = await StreamReader.open(`${hub.url}/sub/outlive?transport=stream`);
  await waitFor(() => hub.hub.subscriberCount('outlive') === 1);
  await new Promise((r) => setTimeout(r, 2000));
  await hub.hub.publish('outlive', 'later');
  await reader.waitFor((r) => r.json().some((l) => l.data === 'later'));
  reader.close();
});

test('a consumer that never reads is closed at its queue bound, without disturbing anyone', async () => {
  const stalled = connect({ port: hub.port, host: '127.0.0.1' });
  stalled.on('error', () => {});
  stalled.pause();
  stalled.write('GET /sub/flooded?transport=stream HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitFor(() => hub.hub.subscriberCount('flooded') === 1);
  const big = 'q'.repeat(1000);
  for (let i = 0; i < 20_000 && hub.hub.subscriberCount('flooded') === 1; i++) {
    await hub.hub.publish('flooded', big);
    if (i % 50 === 0) await new Promise((r) => setImmediate(r));
  }
  await waitFor(() => hub.hub.subscriberCount('flooded') === 0, 10_000, 'the stalled consumer to be closed');
  stalled.destroy();
  await assertHealthyStillReceives();
});

test('a publisher flood gets 429 with Retry-After past its rate; the flood publishes nothing more', async () => {
  const statuses = new Map<number, number>();
  const before = hub.hub.counters.published;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let i = 0; i < 50; i++) {
        const res = await httpRequest(`${hub.url}/pub/flood`, {
          method: 'POST',
          headers: { 'Content-Type': 'text/plain' },
          body: 'f',
        });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status === 429) assert.ok(Number(res.headers['retry-after']) >= 1);
      }
    }),
  );
  assert.ok((statuses.get(429) ?? 0) > 0, `some refused: ${JSON.stringify([...statuses])}`);
  assert.equal(hub.hub.counters.published - before, statuses.get(201));
  assert.ok((statuses.get(201) ?? 0) <= 100 + 50 * 5, 'no more than the burst plus the refill over a few seconds');
  await assertHealthyStillReceives();
});

test('clients that disconnect mid-body or mid-stream leave nothing behind', async () => {
  const before = hub.hub.counters.published;
  for (let i = 0; i < 20; i++) {
    const socket = connect(hub.port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write(
      'POST /pub/midbody HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 500\r\n\r\npartial',
    );
    await new Promise((r) => setTimeout(r, 5));
    socket.destroy();
  }
  const readers = await Promise.all(
    Array.from({ length: 20 }, () => StreamReader.open(`${hub.url}/sub/midstream?transport=stream`)),
  );
  await waitFor(() => hub.hub.subscriberCount('midstream') === 20);
  const publishing = (async () => {
    for (let i = 0; i < 200; i++) await hub.hub.publish('midstream', `m${i}`);
  })();
  for (const reader of readers) reader.close();
  await publishing;
  await waitFor(() => hub.hub.subscriberCount('midstream') === 0, 5000, 'the dropped streams to be cleaned up');
  assert.equal(hub.hub.counters.published - before, 200, 'half-sent bodies published nothing');
  await assertHealthyStillReceives();
});

test('bad input leaves no subscription behind and memory returns near its baseline', async () => {
  await waitFor(() => hub.hub.channelCount <= 1, 2000, 'only the healthy channel to remain');
  assert.equal(hub.hub.subscriberCount('healthy'), 1);
  // History is bounded and kept on purpose: what is left must be about what history holds, not what was sent.
  const grown = (await settledHeap()) - baselineHeap;
  assert.ok(grown < 8 * 1024 * 1024, `heap grew by ${(grown / 1048576).toFixed(1)} MiB over the whole suite`);
});
