import assert from 'node:assert/strict';
import { test } from 'node:test';
import { httpRequest, publish } from '../helpers/hub.js';
import { publishItems, startNodeOrigin, startProxy } from './helpers.js';

test('POST /publish/ and POST /pub/<channel> on the control port share one channel and its history', async (t) => {
  const origin = await startNodeOrigin((_req, res) => res.end());
  const stack = await startProxy(origin.url);
  t.after(() => Promise.all([stack.close(), origin.close()]));
  await publish(stack.controlUrl, 'shared', 'plain one');
  const result = await publishItems(stack.controlUrl, [
    { channel: 'shared', id: 'x', formats: { 'http-stream': { content: 'grip two' } } },
    { channel: 'other', 'http-response': { body: 'EPCP form, formats on the item' } },
  ]);
  assert.equal(result.status, 200);
  const body = JSON.parse(result.body) as { items: { channel: string; id: string }[] };
  assert.deepEqual(
    body.items.map((i) => i.channel),
    ['shared', 'other'],
  );
  assert.match(body.items[0]!.id, /^shared~\w+~2$/, 'the next position after the plain message');
  const info = (await httpRequest(`${stack.controlUrl}/channels/shared`)).json<{ history: { messages: number } }>();
  assert.equal(info.history.messages, 2);
});

test('bad publish bodies are refused whole, with KOMETA_ERR_PUBLISH_ITEM naming the item', async (t) => {
  const origin = await startNodeOrigin((_req, res) => res.end());
  const stack = await startProxy(origin.url);
  t.after(() => Promise.all([stack.close(), origin.close()]));
  const cases: [unknown, number, string][] = [
    [{ nope: true }, 400, 'KOMETA_ERR_PUBLISH_ITEM'],
    [{ items: [] }, 400, 'KOMETA_ERR_PUBLISH_ITEM'],
    [
      {
        items: [
          { channel: 'ok', formats: { 'http-stream': { content: 'a' } } },
          { channel: 'bad name', formats: { 'http-stream': { content: 'b' } } },
        ],
      },
      400,
      'KOMETA_ERR_PUBLISH_ITEM',
    ],
    [{ items: [{ channel: 'ok', formats: {} }] }, 400, 'KOMETA_ERR_PUBLISH_ITEM'],
    [{ items: [{ channel: 'ok', formats: { 'http-response': { code: 42 } } }] }, 400, 'KOMETA_ERR_PUBLISH_ITEM'],
    [
      { items: [{ channel: 'ok', formats: { 'http-response': { headers: { 'Bad Header': 'x' } } } }] },
      400,
      'KOMETA_ERR_PUBLISH_ITEM',
    ],
    [
      { items: [{ channel: 'ok', formats: { 'http-stream': { 'content-bin': 'not base64!' } } }] },
      400,
      'KOMETA_ERR_PUBLISH_ITEM',
    ],
    [
      { items: [{ channel: 'ok', formats: { 'http-stream': { content: 'x'.repeat(70_000) } } }] },
      413,
      'KOMETA_ERR_BODY_TOO_LARGE',
    ],
  ];
  for (const [body, status, code] of cases) {
    const response = await httpRequest(`${stack.controlUrl}/publish/`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.equal(response.status, status, JSON.stringify(body).slice(0, 80));
    assert.equal(response.json<{ code: string }>().code, code);
  }
  const second = await httpRequest(`${stack.controlUrl}/publish/`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(cases[2]![0]),
  });
  assert.equal(second.json<{ item: number }>().item, 1);
  assert.equal(
    (await httpRequest(`${stack.controlUrl}/channels/ok`)).json<{ history: { messages: number } }>().history.messages,
    0,
    'nothing stored from a refused request',
  );
  assert.equal(
    (
      await httpRequest(`${stack.controlUrl}/publish/`, {
        method: 'POST',
        headers: { 'Content-Type': 'text/plain' },
        body: '{}',
      })
    ).status,
    415,
  );
  assert.equal((await httpRequest(`${stack.controlUrl}/publish/`)).status, 405);
});

test('the public proxy port has no kometa routes: /pub and /publish go to the origin', async (t) => {
  const origin = await startNodeOrigin((req, res) => res.end(`origin got ${req.method} ${req.url}`));
  const stack = await startProxy(origin.url);
  t.after(() => Promise.all([stack.close(), origin.close()]));
  assert.equal((await httpRequest(`${stack.url}/pub/x`, { method: 'POST', body: 'y' })).body, 'origin got POST /pub/x');
  assert.equal(
    (await httpRequest(`${stack.url}/publish/`, { method: 'POST', body: '{}' })).body,
    'origin got POST /publish/',
  );
});
