import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import { publish } from '../helpers/hub.js';
import { deletePrefix, startKometa, uniquePrefix } from '../helpers/redis.js';
import { SHARED_REDIS_URL } from '../helpers/shared-redis.js';

/** One scrape on a connection of its own, so that successive scrapes land on different workers. */
function scrape(url: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/metrics`, { agent: false, headers: { Authorization: `Bearer ${token}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const valueOf = (body: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(body)?.[1]);

test("under --workers, /metrics on any worker reports the whole machine: every worker's publishes " +
  "summed", async (t) => {
  const prefix = uniquePrefix('wmetrics');
  t.after(() => deletePrefix(SHARED_REDIS_URL, prefix));
  const hub = await startKometa([
    '--workers',
    '2',
    '--redis',
    SHARED_REDIS_URL,
    '--redis-prefix',
    prefix,
    '--publish-rate',
    '0',
    '--admin-token',
    'ops-secret',
  ]);
  t.after(() => hub.kill('SIGTERM'));
  // Each publish on a fresh connection: node:cluster hands connections to the workers in turn, so both publish.
  for (let i = 0; i < 20; i++) await publish(hub.url, `c${i}`, `m${i}`);
  const values: number[] = [];
  for (let i = 0; i < 6; i++) {
    const { status, body } = await scrape(hub.url, 'ops-secret');
    assert.equal(status, 200);
    values.push(valueOf(body, 'kometa_messages_published_total'));
  }
  assert.deepEqual(values, [20, 20, 20, 20, 20, 20], 'every scrape counts all 20 publishes, whichever worker answered');
  assert.equal((await scrape(hub.url, 'wrong')).status, 401);
});
