import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MemoryBroker } from '../../src/brokers/memory.js';
import { Hub } from '../../src/core/hub.js';
import { createHubServer } from '../../src/http/hub-server.js';
import { withChat } from '../../src/http/web.js';
import { httpRequest } from '../helpers/hub.js';

/** The package root, from dist/test/client/. */
const root = fileURLToPath(new URL('../../../', import.meta.url));

/** A copy of the sources the browser build reads, so one can be broken without touching the real ones. */
function copySources(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'kometa-web-build-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const part of ['client', 'protocol', 'web', 'ops/stats-types.ts']) {
    cpSync(join(root, 'src', part), join(dir, 'src', part), { recursive: true });
  }
  return dir;
}

function buildWeb(dir: string) {
  const args = [join(root, 'scripts/build-web.mjs'), '--src', join(dir, 'src'), '--out', join(dir, 'out')];
  return spawnSync(process.execPath, args, { encoding: 'utf8' });
}

test('the web build writes the client and both pages, and the pages import the client from /kometa.js', (t) => {
  const dir = copySources(t);
  const result = buildWeb(dir);
  assert.equal(result.status, 0, result.stderr);
  const chat = readFileSync(join(dir, 'out', 'chat.js'), 'utf8');
  const dashboard = readFileSync(join(dir, 'out', 'dashboard.js'), 'utf8');
  for (const page of [chat, dashboard]) {
    assert.deepEqual(page.match(/^import .*$/gm), ['import { Kometa } from "/kometa.js";']);
  }
  assert.match(readFileSync(join(dir, 'out', 'kometa.js'), 'utf8'), /^export \{[^}]*\bKometa\b/m);
});

test('a source the web build cannot compile fails it with the file named, and writes no client', (t) => {
  const dir = copySources(t);
  const file = join(dir, 'src', 'client', 'backoff.ts');
  writeFileSync(file, `${readFileSync(file, 'utf8')}\nexport const broken = ;\n`);
  const result = buildWeb(dir);
  assert.equal(result.status, 1);
  assert.match(result.stderr, /backoff\.ts/);
  assert.match(result.stderr, /build:web failed/);
  assert.throws(() => readFileSync(join(dir, 'out', 'kometa.js')), { code: 'ENOENT' });
});

test('a page that imports a package is refused: the client shares nothing with the server but protocol/', (t) => {
  const dir = copySources(t);
  const file = join(dir, 'src', 'web', 'chat.ts');
  writeFileSync(file, `import 'no-such-package-kometa';\n${readFileSync(file, 'utf8')}`);
  const result = buildWeb(dir);
  assert.equal(result.status, 1);
  assert.match(result.stderr, /no-such-package-kometa/);
});

test('the hub serves the built chat script and the page that loads it, with the types browsers expect', async (t) => {
  const broker = new MemoryBroker();
  const notFound = withChat((_req, res) => res.writeHead(404).end());
  const server = createHubServer(new Hub(broker), { shutdownGraceMs: 200 }, notFound);
  const { port } = await server.listen(0, '127.0.0.1');
  t.after(async () => {
    await server.close();
    await broker.close();
  });
  const url = `http://127.0.0.1:${port}`;
  const page = await httpRequest(`${url}/`);
  assert.equal(page.status, 200);
  assert.match(page.body, /chat\.js/);
  const script = await httpRequest(`${url}/chat.js`);
  assert.equal(script.status, 200);
  assert.match(String(script.headers['content-type']), /^text\/javascript/);
  assert.equal(script.body, readFileSync(join(root, 'dist', 'web', 'chat.js'), 'utf8'));
  const missing = await httpRequest(`${url}/chat.jsx`);
  assert.equal(missing.status, 404);
});
