import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { EventSource } from 'eventsource';
import { WebhookSender } from '../../src/http/webhooks.js';
import { httpRequest, startHub, waitFor } from '../helpers/hub.js';
import { freePort } from '../helpers/redis.js';
import { until } from './helpers.js';

const doc = readFileSync(resolve(import.meta.dirname, '../../../docs/presence.md'), 'utf8');

test('the receiver in docs/presence.md, as written, takes signed events and refuses a forged one', async (t) => {
  const section = doc.split('\n## Webhooks\n')[1]!.split('\n## ')[0]!;
  const script = /```js\n([\s\S]*?)```/.exec(section)![1]!;
  const dir = mkdtempSync(join(tmpdir(), 'kometa-hook-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'receiver.mjs'), script);
  const port = await freePort();
  const child = spawn(process.execPath, [join(dir, 'receiver.mjs')], {
    env: { ...process.env, WEBHOOK_SECRET: 'doc-secret', PORT: String(port) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => child.kill('SIGKILL'));
  let stdout = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const url = `http://127.0.0.1:${port}/hooks`;
  await until(() => httpRequest(url, { method: 'POST', body: '{}' }).then(() => true, () => false), 5000, 'listening');

  const forged = await httpRequest(url, {
    method: 'POST',
    headers: { 'Kometa-Signature': `sha256=${'0'.repeat(64)}` },
    body: '{"event":"channel.vacated"}',
  });
  assert.equal(forged.status, 401);

  const hub = await startHub({ presence: { graceMs: 0 } });
  t.after(() => hub.close());
  const events = ['channel.occupied', 'channel.vacated'] as const;
  const sender = new WebhookSender(hub.hub, { url, secret: 'doc-secret', events });
  t.after(() => sender.close());
  const source = new EventSource(`${hub.url}/sub/doc-room?client=reader`);
  await new Promise<void>((ok) => (source.onopen = () => ok()));
  source.close();
  await waitFor(() => stdout.split('\n').filter(Boolean).length === 2, 5000, 'two events printed');
  const printed = stdout.trim().split('\n').map((line) => JSON.parse(line) as { event: string; channel: string });
  assert.deepEqual(
    printed.map((e) => `${e.event} ${e.channel}`),
    ['channel.occupied doc-room', 'channel.vacated doc-room'],
  );
});
