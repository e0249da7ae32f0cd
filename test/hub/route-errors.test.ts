import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import pino from 'pino';
import { MemoryBroker } from '../../src/brokers/memory.js';
import type { BrokerHealth } from '../../src/core/broker.js';
import type { ErrorEvent } from '../../src/core/diagnostics.js';
import { logDiagnostics } from '../../src/cli/logger.js';
import { httpRequest, startHub } from '../helpers/hub.js';

/** A broker whose health check is broken: GET /healthz runs into an error no route expects. */
class BrokenHealthBroker extends MemoryBroker {
  override health(): BrokerHealth {
    throw new TypeError('health probe exploded');
  }
}

test('an unexpected throw in a route: a bare 500, and its cause on kometa:error and in the log', async () => {
  const hub = await startHub({ broker: new BrokenHealthBroker() });
  const events: ErrorEvent[] = [];
  const onError = (message: unknown) => events.push(message as ErrorEvent);
  subscribe('kometa:error', onError);
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter((line) => line !== ''));
      done();
    },
  });
  // The CLI's log, watching a healthy broker of its own (it asks the broker's health when it starts).
  const logBroker = new MemoryBroker();
  const stopLogging = logDiagnostics(pino({ level: 'info' }, sink), logBroker);
  try {
    const res = await httpRequest(`${hub.url}/healthz`);
    assert.equal(res.status, 500);
    assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
    const problem = res.json<{ status: number; code: string; detail: string }>();
    assert.equal(problem.status, 500);
    assert.equal(problem.code, 'KOMETA_ERR_INTERNAL');
    assert.doesNotMatch(res.body, /exploded/, 'the cause is not told to the client');

    const event = events.find((e) => e.code === 'KOMETA_ERR_INTERNAL');
    assert.ok(event, 'a kometa:error event');
    assert.equal(event.status, 500);
    assert.equal(event.transport, 'http');
    assert.ok(event.cause instanceof TypeError);
    assert.equal(event.cause.message, 'health probe exploded');

    const logged = lines.map((line) => JSON.parse(line) as { level: number; code?: string; err?: { message: string } });
    const line = logged.find((entry) => entry.code === 'KOMETA_ERR_INTERNAL');
    assert.ok(line, `a log line for it, got ${lines.join(' | ')}`);
    assert.equal(line.level, 50, 'at level error');
    assert.equal(line.err?.message, 'health probe exploded');
    assert.match((line.err as { stack?: string }).stack ?? '', /health probe exploded/);

    // The hub carries on: another route still answers.
    const publish = await httpRequest(`${hub.url}/pub/room`, { method: 'POST', body: 'hi' });
    assert.equal(publish.status, 201);
  } finally {
    stopLogging();
    unsubscribe('kometa:error', onError);
    await logBroker.close();
    await hub.close();
  }
});

test('a refusal (a KometaError) carries no cause: it is the client’s business, not a bug', async () => {
  const hub = await startHub();
  const events: ErrorEvent[] = [];
  const onError = (message: unknown) => events.push(message as ErrorEvent);
  subscribe('kometa:error', onError);
  try {
    const res = await httpRequest(`${hub.url}/pub/${encodeURIComponent('bad name!')}`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 400);
    const event = events.find((e) => e.status === 400);
    assert.ok(event, 'a kometa:error event');
    assert.equal(event.cause, undefined);
  } finally {
    unsubscribe('kometa:error', onError);
    await hub.close();
  }
});
