import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { KometaError, errorCodes, toProblem } from '../../src/core/errors.js';

const root = resolve(import.meta.dirname, '../../..');

test('every error code is documented in docs/errors.md with its status', () => {
  const doc = readFileSync(join(root, 'docs/errors.md'), 'utf8');
  for (const [code, { status }] of Object.entries(errorCodes)) {
    const row = doc.split('\n').find((line) => line.startsWith(`| \`${code}\` |`));
    assert.ok(row, `${code} is missing from docs/errors.md`);
    assert.ok(row.includes(`| ${status} |`), `${code} is documented with the wrong status`);
  }
});

test('problem details carry the RFC 9457 members, the stable code and extras', () => {
  const problem = toProblem(new KometaError('KOMETA_ERR_BODY_TOO_LARGE', 'too big', { limit: 10 }));
  assert.deepEqual(problem, {
    type: 'urn:kometa:error:body-too-large',
    title: 'Body too large',
    status: 413,
    detail: 'too big',
    code: 'KOMETA_ERR_BODY_TOO_LARGE',
    limit: 10,
  });
});
