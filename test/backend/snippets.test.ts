import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { AccessPolicy } from '../../src/auth/access.js';
import { startHub } from '../helpers/hub.js';

const run = promisify(execFile);
const doc = readFileSync(resolve(import.meta.dirname, '../../../docs/backends.md'), 'utf8');

/** The fenced blocks of one language in the doc's "From other languages" section, as written there. */
function snippets(language: string): string[] {
  const section = doc.split('\n## From other languages\n')[1]!.split('\n## ')[0]!;
  return [...section.matchAll(new RegExp('```' + language + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
}

async function hubForSnippets() {
  return startHub({ http: { access: await AccessPolicy.create({ publisherKey: 'snippet-key' }) } });
}

test('the curl snippets of docs/backends.md work as written, and the idempotent one publishes once when run ' +
  'twice', async (t) => {
  const [script] = snippets('sh');
  assert.ok(script?.includes('curl'));
  const hub = await hubForSnippets();
  t.after(() => hub.close());
  const env = { ...process.env, KOMETA_URL: hub.url, PUBLISHER_KEY: 'snippet-key' };
  const first = await run('/bin/bash', ['-euo', 'pipefail', '-c', script!], { env });
  const second = await run('/bin/bash', ['-euo', 'pipefail', '-c', script!], { env });
  const answers = first.stdout
    .replace(/}{/g, '}\n{')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.equal(answers.length, 5);
  assert.match(String(answers[0]!.id), /^orders~/);
  assert.equal((answers[1] as { published: number }).published, 4);
  assert.equal((answers[2] as { messages: unknown[] }).messages.length, 1);
  assert.ok(typeof answers[3]!.ticket === 'string');
  assert.deepEqual(answers[4], { disconnected: 0, scope: 'cluster' });
  assert.equal(JSON.parse(second.stdout.split('}{')[0]! + '}').id, answers[0]!.id, 'the retry answered the same id');
  assert.equal((await hub.hub.channelInfo('orders')).headSeq, 1);
  for (const channel of ['room.1', 'room.2', 'user:1', 'user:2'])
    assert.equal((await hub.hub.channelInfo(channel)).headSeq, 2, channel);
});

test('the Python snippet of docs/backends.md runs under /usr/bin/python3 with the standard library only', async (t) => {
  const [script] = snippets('python');
  assert.ok(script);
  const hub = await hubForSnippets();
  t.after(() => hub.close());
  const { stdout } = await run('/usr/bin/python3', ['-I', '-c', script!], {
    env: { PATH: '/usr/bin:/bin', KOMETA_URL: hub.url, PUBLISHER_KEY: 'snippet-key' },
  });
  const lines = stdout.trim().split('\n');
  const attempts = lines.slice(0, 3).map((line) => line.split(' '));
  assert.equal(new Set(attempts.map((a) => a[0])).size, 1, 'one id for the three attempts');
  assert.deepEqual(
    attempts.map((a) => a[1]),
    ['false', 'true', 'true'],
  );
  assert.equal(lines[3], '3 published');
  assert.equal(lines[4], '1 messages in history');
  assert.equal(lines[5], '0 disconnected here');
  assert.match(lines[6]!, /^KOMETA_ERR_CHANNEL_NAME: /);
  assert.equal((await hub.hub.channelInfo('orders')).headSeq, 1);
});
