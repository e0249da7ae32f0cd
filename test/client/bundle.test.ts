import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { httpRequest, startHub } from '../helpers/hub.js';

test('the hub serves the client as one ES module at /kometa.js that exports Kometa', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const response = await httpRequest(`${hub.url}/kometa.js`);
  assert.equal(response.status, 200);
  assert.match(String(response.headers['content-type']), /^text\/javascript/);
  assert.doesNotMatch(response.body, /^import /m, 'no imports left');
  // A size budget, unminified and with comments: the client must stay small.
  assert.ok(response.body.length < 64 * 1024, `the bundle is ${response.body.length} bytes`);
  const dir = mkdtempSync(join(tmpdir(), 'kometa-bundle-'));
  writeFileSync(join(dir, 'kometa.mjs'), response.body);
  const module = (await import(join(dir, 'kometa.mjs'))) as Record<string, unknown>;
  assert.equal(typeof module.Kometa, 'function');
  const again = await httpRequest(`${hub.url}/kometa.js`, {
    headers: { 'If-None-Match': String(response.headers.etag) },
  });
  assert.equal(again.status, 304);
});
