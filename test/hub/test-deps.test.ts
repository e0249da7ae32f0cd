import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const script = join(root, 'scripts/test-deps.sh');

test('npm test runs scripts/test-deps.sh first, and .ci/run runs exactly the README test command', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  assert.equal(pkg.scripts.pretest, 'bash scripts/test-deps.sh');
  const ci = readFileSync(join(root, '.ci/run'), 'utf8');
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const testLine = /```sh\n[\s\S]*?\n(npm test)\s/.exec(readme)?.[1];
  assert.equal(testLine, 'npm test');
  assert.deepEqual(ci.split('\n').filter((l) => /^npm /.test(l)), ['npm ci --no-audit --no-fund', 'npm test']);
  const commands = ci.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#')).join('\n');
  assert.doesNotMatch(commands, /apt-get|redis-server|6379/, '.ci/run no longer installs anything itself');
});

test('where it cannot install, test-deps.sh names what to install in one line and fails', () => {
  const run = spawnSync('bash', [script], { env: { ...process.env, KOMETA_TEST_NO_INSTALL: '1', KOMETA_TEST_ASSUME_MISSING: 'chromium,nginx' }, encoding: 'utf8' });
  assert.equal(run.status, 1);
  const lines = run.stderr.trim().split('\n');
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0]!, /^kometa tests need: .*chromium.*nginx.* — install them \(Debian: sudo apt-get install -y .*chromium.*nginx.*\)/);
  assert.equal(run.stdout, '');
});

test('with everything present, test-deps.sh says nothing and succeeds', () => {
  // This very test run got here through pretest, so everything is installed.
  const run = spawnSync('bash', [script], { env: { ...process.env, KOMETA_TEST_NO_INSTALL: '1', KOMETA_TEST_ASSUME_MISSING: '' }, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stderr + run.stdout, '');
});
