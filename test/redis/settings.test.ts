import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { redisSettingsProblem, usesRedis } from '../../src/cli/redis-settings.js';
import { resolveSettings } from '../../src/cli/settings.js';

const cli = join(resolve(import.meta.dirname, '../../..'), 'dist/src/cli/main.js');
const run = promisify(execFile);

const settings = (flags: Record<string, string>) => resolveSettings(flags, {}, undefined);

test('one way to reach Redis at a time, and Sentinel needs the master name', () => {
  assert.equal(redisSettingsProblem(settings({ 'redis-cluster': '127.0.0.1:7000,127.0.0.1:7001' })), undefined);
  assert.equal(
    redisSettingsProblem(settings({ 'redis-sentinel': '127.0.0.1:26379', 'redis-master': 'mymaster' })),
    undefined,
  );
  assert.match(
    redisSettingsProblem(settings({ redis: 'redis://127.0.0.1:6379', 'redis-cluster': '127.0.0.1:7000' }))!,
    /--redis and --redis-cluster cannot be used together/,
  );
  assert.match(redisSettingsProblem(settings({ 'redis-sentinel': '127.0.0.1:26379' }))!, /--redis-master/);
  assert.match(redisSettingsProblem(settings({ 'redis-master': 'mymaster' }))!, /--redis-sentinel/);
  assert.match(redisSettingsProblem(settings({ 'redis-cluster': 'http://x:1' }))!, /host:port/);
  assert.match(redisSettingsProblem(settings({ redis: 'not a url' }))!, /--redis must be a URL/);
  assert.equal(usesRedis(settings({ 'redis-cluster': '127.0.0.1:7000' })), true);
  assert.equal(usesRedis(settings({})), false);
});

test('kometa serve refuses conflicting Redis settings in one line, exit 2; --workers without Redis is ' +
  'refused', async () => {
  await assert.rejects(
    run(process.execPath, [
      cli,
      'serve',
      '--port',
      '0',
      '--redis',
      'redis://127.0.0.1:1',
      '--redis-sentinel',
      '127.0.0.1:2',
      '--redis-master',
      'm',
    ]),
    (e: { code: number; stderr: string }) =>
      e.code === 2 && /cannot be used together/.test(e.stderr) && e.stderr.trim().split('\n').length === 1,
  );
  await assert.rejects(
    run(process.execPath, [cli, 'serve', '--port', '0', '--redis-sentinel', '127.0.0.1:2']),
    (e: { code: number; stderr: string }) => e.code === 2 && /needs --redis-master/.test(e.stderr),
  );
  // --workers without any Redis is refused; the message names every way to give one.
  await assert.rejects(
    run(process.execPath, [cli, 'serve', '--port', '0', '--workers', '2']),
    (e: { code: number; stderr: string }) => e.code === 2 && /--workers needs --redis/.test(e.stderr),
  );
});
