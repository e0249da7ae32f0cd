import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SignJWT } from 'jose';
import { AccessPolicy } from '../../src/auth/access.js';
import { httpRequest } from '../helpers/hub.js';
import { ADMIN, METRICS, startOpsHub } from './helpers.js';

const SECRET = 'an-hs256-secret-for-the-ops-tests-0123456789';

async function jwt(claim: Record<string, unknown>): Promise<string> {
  return new SignJWT({ kometa: claim, sub: 'operator' })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode(SECRET));
}

const PATHS = [
  '/metrics',
  '/_kometa/',
  '/_kometa/dashboard.js',
  '/_kometa/api/channels/demo',
  '/_kometa/sub/stats',
  '/_kometa/healthz',
];

test('the dashboard and /metrics refuse requests without a credential, even on an open hub', async (t) => {
  const hub = await startOpsHub(t);
  for (const path of PATHS) {
    const response = await httpRequest(`${hub.url}${path}`);
    assert.equal(response.status, 401, path);
    assert.equal(response.headers['www-authenticate'], 'Bearer realm="kometa"', path);
    assert.equal(response.json<{ code: string }>().code, 'KOMETA_ERR_UNAUTHORIZED', path);
    const wrong = await httpRequest(`${hub.url}${path}`, { headers: { Authorization: 'Bearer not-the-token' } });
    assert.equal(wrong.status, 401, `${path} with a wrong token`);
  }
  assert.equal(
    (await httpRequest(`${hub.url}/_kometa/api/wire`, { method: 'POST', body: '{"preset":"seed"}' })).status,
    401,
  );
  // A browser gets a sign-in form, still with 401.
  const page = await httpRequest(`${hub.url}/_kometa/`, { headers: { Accept: 'text/html' } });
  assert.equal(page.status, 401);
  assert.match(page.body, /<input name="token"/);
  // The hub itself stays open, and the doctor's probe is public.
  assert.equal((await httpRequest(`${hub.url}/healthz`)).status, 200);
  assert.equal((await httpRequest(`${hub.url}/_kometa/probe?chunks=1`)).status, 200);
});

test('the admin token opens everything; the metrics token opens /metrics only', async (t) => {
  const hub = await startOpsHub(t);
  for (const path of PATHS.filter((p) => !p.includes('/sub/'))) {
    assert.equal(
      (await httpRequest(`${hub.url}${path}`, { headers: { Authorization: `Bearer ${ADMIN}` } })).status,
      200,
      path,
    );
  }
  assert.equal(
    (await httpRequest(`${hub.url}/metrics`, { headers: { Authorization: `Bearer ${METRICS}` } })).status,
    200,
  );
  const refused = await httpRequest(`${hub.url}/_kometa/api/channels/demo`, {
    headers: { Authorization: `Bearer ${METRICS}` },
  });
  assert.equal(refused.status, 403);
  assert.equal(refused.json<{ code: string }>().code, 'KOMETA_ERR_FORBIDDEN');
});

test('a login link sets an HttpOnly, same-site cookie scoped to /_kometa and redirects to a clean ' +
  'address', async (t) => {
  const hub = await startOpsHub(t);
  assert.equal((await httpRequest(`${hub.url}/_kometa/?token=wrong`)).status, 401);
  const login = await httpRequest(`${hub.url}/_kometa/?token=${ADMIN}`);
  assert.equal(login.status, 303);
  assert.equal(login.headers.location, '/_kometa/');
  const cookie = String(login.headers['set-cookie']);
  assert.match(cookie, /^kometa_admin=/);
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  assert.match(cookie, /Path=\/_kometa/);
  const page = await httpRequest(`${hub.url}/_kometa/`, { headers: { Cookie: cookie.split(';')[0]! } });
  assert.equal(page.status, 200);
  assert.match(page.body, /kometa · operator's view/);
  // A page on another site cannot make the dashboard act, even with the cookie.
  const crossSite = await httpRequest(`${hub.url}/_kometa/api/wire`, {
    method: 'POST',
    headers: { Cookie: cookie.split(';')[0]!, Origin: 'https://evil.example', 'Content-Type': 'application/json' },
    body: '{"preset":"seed"}',
  });
  assert.equal(crossSite.status, 403);
});

test('with access control on, a token with the admin claim is an admin; one without is refused with 403', async (t) => {
  const access = await AccessPolicy.create({ tokens: { secret: SECRET } });
  const hub = await startOpsHub(t, { access });
  const admin = await jwt({ admin: true });
  const reader = await jwt({ subscribe: ['*'] });
  assert.equal(
    (await httpRequest(`${hub.url}/metrics`, { headers: { Authorization: `Bearer ${admin}` } })).status,
    200,
  );
  assert.equal(
    (await httpRequest(`${hub.url}/_kometa/`, { headers: { Authorization: `Bearer ${admin}` } })).status,
    200,
  );
  const refused = await httpRequest(`${hub.url}/metrics`, { headers: { Authorization: `Bearer ${reader}` } });
  assert.equal(refused.status, 403);
  assert.match(refused.json<{ detail: string }>().detail, /admin/);
});
