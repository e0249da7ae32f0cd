import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { waitFor } from '../helpers/hub.js';
import { startOwnRedis } from '../helpers/redis.js';
import { h2Session, selfSigned } from '../helpers/tls.js';

const root = resolve(import.meta.dirname, '../../..');
const cli = join(root, 'dist/src/cli/main.js');
const run = promisify(execFile);

async function serve(args: string[]): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const child = spawn(process.execPath, [cli, 'serve', '--memory', '--port', '0', '--log-format', 'json', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KOMETA_ADMIN_TOKEN: 'admin-secret' },
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  await waitFor(() => /listening on https:\/\/\S+/.test(output) || child.exitCode !== null, 15_000, 'the hub');
  const url = /listening on (https:\/\/\S+)/.exec(output)?.[1];
  if (url === undefined) throw new Error(`did not start: ${output}`);
  return { child, url, output: () => output };
}

function peerName(url: string, ca: Buffer[]): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolvePeer, reject) => {
    const socket = tlsConnect({ host: hostname, port: Number(port), ca, servername: 'localhost' }, () => {
      const peer: PeerCertificate = socket.getPeerCertificate();
      socket.destroy();
      resolvePeer(String(peer.subject.CN));
    });
    socket.on('error', reject);
  });
}

function get(session: ReturnType<typeof h2Session>, path: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; body: string }>((resolveGet, reject) => {
    const req = session.request({ ':path': path, ...headers });
    let body = '';
    let status = 0;
    req.setEncoding('utf8');
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (piece: string) => (body += piece));
    req.on('end', () => resolveGet({ status, body }));
    req.on('error', reject);
    req.end();
  });
}

test('kometa serve --tls-cert: https banner, dashboard and /metrics over HTTP/2, doctor says HTTP/2', async (t) => {
  const tls = selfSigned(t);
  const hub = await serve(['--tls-cert', tls.certPath, '--tls-key', tls.keyPath]);
  t.after(() => hub.child.kill('SIGKILL'));
  const session = h2Session(t, hub.url, tls.cert);
  const bearer = { authorization: 'Bearer admin-secret' };
  const metrics = await get(session, '/metrics', bearer);
  assert.equal(metrics.status, 200);
  assert.match(metrics.body, /^# (HELP|TYPE) kometa_/m);
  const dashboard = await get(session, '/_kometa/', bearer);
  assert.equal(dashboard.status, 200);
  assert.match(dashboard.body, /<html|<!doctype/i);
  const doctor = await run(process.execPath, [cli, 'doctor', hub.url, '--idle', '1', '--token', 'admin-secret'], {
    env: { ...process.env, NODE_EXTRA_CA_CERTS: tls.certPath, NO_COLOR: '1' },
    timeout: 60_000,
  }).catch((error: { stdout: string; stderr: string }) => error);
  assert.match(doctor.stdout, /gets HTTP\/2 \(ALPN h2; \/healthz answered 200 over it\)/, doctor.stdout + doctor.stderr);
});

test('SIGHUP reloads the certificate: new connections get the new one, an open stream goes on', async (t) => {
  const first = selfSigned(t, 'first-certificate');
  const hub = await serve(['--tls-cert', first.certPath, '--tls-key', first.keyPath]);
  t.after(() => hub.child.kill('SIGKILL'));
  assert.equal(await peerName(hub.url, [first.cert]), 'first-certificate');
  const session = h2Session(t, hub.url, first.cert);
  const stream = session.request({ ':path': '/sub/reload', accept: 'text/event-stream' });
  let text = '';
  stream.setEncoding('utf8');
  stream.on('data', (piece: string) => (text += piece));
  await waitFor(() => text.includes('id: '), 5000, 'the subscription');

  const second = selfSigned(t, 'second-certificate', first.dir);
  hub.child.kill('SIGHUP');
  await waitFor(() => hub.output().includes('tls-reloaded'), 5000, 'the reload to be logged');
  assert.equal(await peerName(hub.url, [second.cert]), 'second-certificate');

  const post = session.request({ ':method': 'POST', ':path': '/pub/reload' });
  post.resume();
  post.end('after the reload');
  await waitFor(() => text.includes('data: after the reload'), 5000, 'the message on the stream opened before');
  assert.equal(stream.closed, false);

  // A broken pair is refused and the served one stays.
  writeFileSync(second.keyPath, 'not a key');
  hub.child.kill('SIGHUP');
  await waitFor(() => hub.output().includes('tls-reload-failed'), 5000, 'the failed reload to be logged');
  assert.equal(await peerName(hub.url, [second.cert]), 'second-certificate');
});

test('--tls-cert without --tls-key, or an unreadable file, is a usage error', async () => {
  await assert.rejects(
    run(process.execPath, [cli, 'serve', '--memory', '--tls-cert', '/nonexistent.pem']),
    (e: { code: number; stderr: string }) => e.code === 2 && /--tls-cert and --tls-key go together/.test(e.stderr),
  );
  await assert.rejects(
    run(process.execPath, [cli, 'serve', '--memory', '--tls-cert', '/nonexistent.pem', '--tls-key', '/nope.pem']),
    (e: { code: number; stderr: string }) =>
      e.code === 2 && /cannot read the TLS certificate \/nonexistent\.pem/.test(e.stderr),
  );
});

test('--workers with TLS: every worker serves HTTPS; SIGHUP to the primary reloads them all', async (t) => {
  const redis = await startOwnRedis({ persistent: false });
  t.after(() => redis.stop());
  const tls = selfSigned(t, 'workers-first');
  const files = ['--tls-cert', tls.certPath, '--tls-key', tls.keyPath];
  const hub = await serve(['--redis', redis.url, '--workers', '2', ...files]);
  t.after(() => hub.child.kill('SIGKILL'));
  // Several connections: node:cluster spreads them over the workers.
  const sessions = Array.from({ length: 4 }, () => h2Session(t, hub.url, tls.cert));
  const streams = sessions.map((session) => {
    const stream = session.request({ ':path': '/sub/workers', accept: 'text/event-stream' });
    const got = { text: '' };
    stream.setEncoding('utf8');
    stream.on('data', (piece: string) => (got.text += piece));
    return got;
  });
  await waitFor(() => streams.every((s) => s.text.includes('id: ')), 10_000, 'four subscriptions');
  const post = sessions[0]!.request({ ':method': 'POST', ':path': '/pub/workers' });
  post.resume();
  post.end('to every worker');
  await waitFor(() => streams.every((s) => s.text.includes('data: to every worker')), 10_000, 'the message everywhere');

  const second = selfSigned(t, 'workers-second', tls.dir);
  hub.child.kill('SIGHUP');
  await waitFor(() => hub.output().split('tls-reloaded').length - 1 === 2, 10_000, 'both workers to reload');
  for (let i = 0; i < 4; i++) assert.equal(await peerName(hub.url, [second.cert]), 'workers-second');
});
