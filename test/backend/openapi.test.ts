import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { AccessPolicy } from '../../src/auth/access.js';
import { httpRequest, startHub, waitFor } from '../helpers/hub.js';
import { validate } from '../helpers/json-schema.js';
import { SECRET, postJson, token } from './helpers.js';

const doc = JSON.parse(readFileSync(resolve(import.meta.dirname, '../../../docs/openapi.json'), 'utf8')) as {
  openapi: string;
  paths: Record<
    string,
    Record<
      string,
      {
        operationId: string;
        responses: Record<string, { content?: Record<string, { schema: Record<string, unknown> }> }>;
      }
    >
  >;
};

/**
 * Check a real answer against the document: its path, method and status must be there, and its body must match the
 * schema.
 */
function check(
  template: string,
  method: string,
  res: { status: number; headers: Record<string, string | string[] | undefined>; body: string },
  seen: Set<string>,
): void {
  const operation = doc.paths[template]?.[method];
  assert.ok(operation, `${method} ${template} is in openapi.json`);
  const response = operation.responses[String(res.status)];
  assert.ok(response, `${method} ${template} documents status ${res.status} (${res.body.slice(0, 200)})`);
  const mediaType = String(res.headers['content-type']).split(';')[0]!;
  const schema = response.content?.[mediaType]?.schema;
  assert.ok(schema, `${method} ${template} ${res.status} documents ${mediaType}`);
  const errors = validate(doc as unknown as Record<string, unknown>, schema, JSON.parse(res.body));
  assert.deepEqual(errors, [], `${method} ${template} ${res.status}: ${res.body.slice(0, 300)}`);
  seen.add(`${operation.operationId} ${res.status}`);
}

test('docs/openapi.json describes the real answers of every backend route, successes and refusals', async (t) => {
  assert.equal(doc.openapi, '3.1.0');
  const hub = await startHub({
    http: {
      access: await AccessPolicy.create({ tokens: { secret: SECRET }, publisherKey: 'pk' }),
      backend: { maxBatchItems: 50 },
    },
  });
  t.after(() => hub.close());
  const seen = new Set<string>();
  const pk = { Authorization: 'Bearer pk' };
  const reader = { Authorization: `Bearer ${await token({ subscribe: ['r.*'] }, 'u9')}` };

  const one = await httpRequest(`${hub.url}/pub/r.1?event=chat`, {
    method: 'POST',
    headers: { ...pk, 'Content-Type': 'text/plain', 'Idempotency-Key': 'oa-1' },
    body: 'hello',
  });
  check('/pub/{channel}', 'post', one, seen);
  check(
    '/pub/{channel}',
    'post',
    await httpRequest(`${hub.url}/pub/r.1?event=chat`, {
      method: 'POST',
      headers: { ...pk, 'Content-Type': 'text/plain', 'Idempotency-Key': 'oa-1' },
      body: 'hello',
    }),
    seen,
  );
  check(
    '/pub/{channel}',
    'post',
    await httpRequest(`${hub.url}/pub/r.1`, {
      method: 'POST',
      headers: { ...pk, 'Idempotency-Key': 'oa-1' },
      body: 'other',
    }),
    seen,
  );
  check(
    '/pub/{channel}',
    'post',
    await httpRequest(`${hub.url}/pub/bad%20name`, { method: 'POST', headers: pk, body: 'x' }),
    seen,
  );
  check('/pub/{channel}', 'post', await httpRequest(`${hub.url}/pub/r.1`, { method: 'POST', body: 'x' }), seen);
  check(
    '/pub/{channel}',
    'post',
    await httpRequest(`${hub.url}/pub/r.1`, { method: 'POST', headers: reader, body: 'x' }),
    seen,
  );
  check(
    '/pub/{channel}',
    'post',
    await httpRequest(`${hub.url}/pub/r.1`, {
      method: 'POST',
      headers: { ...pk, 'Content-Type': 'image/png' },
      body: 'x',
    }),
    seen,
  );
  check(
    '/pub/{channel}',
    'post',
    await httpRequest(`${hub.url}/pub/r.1`, { method: 'POST', headers: pk, body: 'x'.repeat(70_000) }),
    seen,
  );

  const batch = await postJson(
    `${hub.url}/pub`,
    [
      { channel: 'r.1', data: 'a' },
      { channels: ['r.2', 'bad name'], data: { j: 1 }, idempotencyKey: 'oa-2' },
      { channel: 'r.3' },
      { channels: ['r.4'], data: 'b', idempotencyKey: 'oa-3' },
    ],
    pk,
  );
  check('/pub', 'post', batch, seen);
  check(
    '/pub',
    'post',
    await postJson(`${hub.url}/pub`, [{ channels: ['r.4'], data: 'b', idempotencyKey: 'oa-3' }], pk),
    seen,
  );
  check('/pub', 'post', await postJson(`${hub.url}/pub`, { not: 'an array' }, pk), seen);
  check(
    '/pub',
    'post',
    await postJson(
      `${hub.url}/pub`,
      Array.from({ length: 51 }, () => ({ channel: 'r.1', data: 'x' })),
      pk,
    ),
    seen,
  );
  check(
    '/pub',
    'post',
    await httpRequest(`${hub.url}/pub`, {
      method: 'POST',
      headers: { ...pk, 'Content-Type': 'text/plain' },
      body: 'x',
    }),
    seen,
  );

  for (let i = 0; i < 5; i++) await httpRequest(`${hub.url}/pub/r.5`, { method: 'POST', headers: pk, body: String(i) });
  const page = await httpRequest(`${hub.url}/channels/r.5/history?limit=2`, { headers: reader });
  check('/channels/{channel}/history', 'get', page, seen);
  const next = page.json<{ next: string }>().next;
  check(
    '/channels/{channel}/history',
    'get',
    await httpRequest(`${hub.url}${next}&reverse=true`, { headers: reader }),
    seen,
  );
  check(
    '/channels/{channel}/history',
    'get',
    await httpRequest(`${hub.url}/channels/r.5/history?limit=0`, { headers: reader }),
    seen,
  );
  check('/channels/{channel}/history', 'get', await httpRequest(`${hub.url}/channels/r.5/history`), seen);
  check(
    '/channels/{channel}/history',
    'get',
    await httpRequest(`${hub.url}/channels/x.5/history`, { headers: reader }),
    seen,
  );
  check('/channels/{channel}', 'get', await httpRequest(`${hub.url}/channels/r.5`, { headers: reader }), seen);
  const presence = (query: string, headers: Record<string, string>) =>
    httpRequest(`${hub.url}/channels/${query}`, { headers });
  check('/channels/{channel}/presence', 'get', await presence('r.5/presence', reader), seen);
  check('/channels/{channel}/presence', 'get', await presence('r.5/presence?limit=1&after=a', reader), seen);
  check('/channels/{channel}/presence', 'get', await presence('r.5/presence?limit=0', reader), seen);
  check('/channels/{channel}/presence', 'get', await presence('r.5/presence', {}), seen);
  check('/channels/{channel}/presence', 'get', await presence('x.5/presence', reader), seen);

  check(
    '/tickets',
    'post',
    await postJson(`${hub.url}/tickets`, { subscribe: ['r.*'], ttl: 60, user: 'u9' }, pk),
    seen,
  );
  check('/tickets', 'post', await postJson(`${hub.url}/tickets`, { subscribe: [] }, pk), seen);
  check('/tickets', 'post', await postJson(`${hub.url}/tickets`, { subscribe: ['r.*'] }), seen);

  const poll = httpRequest(`${hub.url}/sub/r.5?transport=poll&timeout=10`, { headers: reader });
  await waitFor(() => hub.hub.subscriberCount('r.5') === 1);
  check('/disconnect', 'post', await postJson(`${hub.url}/disconnect`, { user: 'u9' }, pk), seen);
  assert.equal((await poll).status, 410);
  check('/disconnect', 'post', await postJson(`${hub.url}/disconnect`, { user: 'u10', revoke: 120 }, pk), seen);
  check('/disconnect', 'post', await postJson(`${hub.url}/disconnect`, { channel: 'r.1' }, pk), seen);
  check('/disconnect', 'post', await postJson(`${hub.url}/disconnect`, { user: 'u9' }, reader), seen);
  check('/disconnect', 'post', await postJson(`${hub.url}/disconnect`, { user: 'u9' }), seen);
  check('/healthz', 'get', await httpRequest(`${hub.url}/healthz`), seen);

  // Every operation in the document was exercised at least once with a success.
  for (const [template, methods] of Object.entries(doc.paths)) {
    for (const operation of Object.values(methods)) {
      assert.ok(
        [...seen].some((s) => s.startsWith(`${operation.operationId} 2`)),
        `${template} ${operation.operationId} answered with success in this test`,
      );
    }
  }
  t.diagnostic(`checked ${seen.size} operation/status pairs`);
});

test('the validator catches what the document forbids', () => {
  const root = doc as unknown as Record<string, unknown>;
  const schema = { $ref: '#/components/schemas/PublishResult' };
  assert.deepEqual(validate(root, schema, { channel: 'a', id: 'a~e1~1', subscribers: 0 }), []);
  assert.notDeepEqual(validate(root, schema, { channel: 'a', id: 'a~e1~1', subscribers: -1 }), []);
  assert.notDeepEqual(validate(root, schema, { channel: 'a', id: 'nope', subscribers: 0 }), []);
  assert.notDeepEqual(validate(root, schema, { channel: 'a', id: 'a~e1~1', subscribers: 0, extra: 1 }), []);
  assert.notDeepEqual(
    validate(
      root,
      { $ref: '#/components/schemas/BatchAnswer' },
      { results: [{}], published: 0, failed: 0, atomic: false },
    ),
    [],
  );
});
