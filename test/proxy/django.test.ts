import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { httpRequest, waitFor } from '../helpers/hub.js';
import { RawChunkedRequest } from '../helpers/raw-chunked.js';
import { freePort, startProxy, startPython } from './helpers.js';

// dist/test/proxy/ → the repository root.
const DJANGO_DIR = fileURLToPath(new URL('../../../examples/django/', import.meta.url));
const WSGI_DIR = fileURLToPath(new URL('../../../examples/wsgi/', import.meta.url));

test(
  "Django, the seed's three views behind kometa proxy: five chunks a second apart, in one chunked response",
  { timeout: 60_000 },
  async (t) => {
    const port = await freePort();
    const stack = await startProxy(`http://127.0.0.1:${port}`);
    t.after(() => stack.close());
    const django = await startPython(['manage.py', 'runserver', '--noreload', `127.0.0.1:${port}`], {
      cwd: DJANGO_DIR,
      port,
      env: { KOMETA_CONTROL_URL: stack.controlUrl },
    });
    t.after(() => django.kill());

    // A browser-like client on a bare socket, reading the chunk boundaries kometa really sends.
    const request = new RawChunkedRequest(stack.port, '/', {
      headers: { 'User-Agent': 'Mozilla/5.0 (kometa test)', Accept: 'text/html' },
    });
    const response = await request.response;
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('transfer-encoding'), 'chunked');
    assert.match(
      response.headers.get('content-type') ?? '',
      /^text\/html/,
      "Django's headers, from the first response",
    );
    assert.equal(response.headers.get('kometa-defer'), undefined);
    assert.ok(response.complete);
    assert.deepEqual(
      response.chunks.map((c) => c.data),
      ['First content<br /> ', 'stage1<br /> ', 'stage2<br /> ', 'stage3<br /> ', 'last_stage4<br /> '],
    );
    // Lower bounds only: each stage is requested a second after the one before.
    response.chunks.forEach((chunk, i) => {
      assert.ok(
        chunk.at - response.sentAt >= i * 1000 - 5,
        `chunk ${i} at ${(chunk.at - response.sentAt).toFixed(0)} ms`,
      );
      if (i > 0)
        assert.ok(
          chunk.at - response.chunks[i - 1]!.at >= 900,
          `chunk ${i} came ${(chunk.at - response.chunks[i - 1]!.at).toFixed(0)} ms after chunk ${i - 1}`,
        );
    });
  },
);

test(
  'Django long-poll: a view holds the request with GRIP headers, another view publishes, the waiter gets the news',
  { timeout: 60_000 },
  async (t) => {
    const port = await freePort();
    const stack = await startProxy(`http://127.0.0.1:${port}`);
    t.after(() => stack.close());
    const django = await startPython(['manage.py', 'runserver', '--noreload', `127.0.0.1:${port}`], {
      cwd: DJANGO_DIR,
      port,
      env: { KOMETA_CONTROL_URL: stack.controlUrl },
    });
    t.after(() => django.kill());

    const waiting = httpRequest(`${stack.url}/news/wait/`);
    await waitFor(() => stack.hub.subscriberCount('news') === 1, 10_000, 'the wait to be held');
    const posted = await httpRequest(`${stack.url}/news/post/`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'text=comet+for+wsgi',
    });
    assert.equal(posted.status, 200, posted.body);
    const answer = await waiting;
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.json(), { news: 'comet for wsgi' });
    assert.equal(answer.headers['content-type'], 'application/json');
  },
);

test(
  'a plain wsgiref app: a long-poll view answered by a later publish, and by its own body after Grip-Timeout',
  { timeout: 60_000 },
  async (t) => {
    const port = await freePort();
    const stack = await startProxy(`http://127.0.0.1:${port}`);
    t.after(() => stack.close());
    const wsgi = await startPython(['longpoll.py', String(port)], { cwd: WSGI_DIR, port });
    t.after(() => wsgi.kill());

    const page = await httpRequest(`${stack.url}/hello`);
    assert.equal(page.body, 'plain page at /hello, seen from 127.0.0.1\n', 'ordinary responses pass through');

    const waiting = httpRequest(`${stack.url}/messages`);
    await waitFor(() => stack.hub.subscriberCount('messages') === 1, 10_000, 'the long-poll to be held');
    const published = await fetch(`${stack.controlUrl}/pub/messages`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{"messages":["hi"]}',
    });
    assert.equal(published.status, 201);
    const { id } = (await published.json()) as { id: string };
    const answer = await waiting;
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.json(), { messages: ['hi'] });

    // Resuming with the id it got: what was published meanwhile answers at once.
    await fetch(`${stack.controlUrl}/pub/messages`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{"messages":["while away"]}',
    });
    const resumed = await httpRequest(`${stack.url}/messages?since=${encodeURIComponent(id)}`);
    assert.deepEqual(resumed.json(), { messages: ['while away'] });

    const started = performance.now();
    const quiet = await httpRequest(`${stack.url}/messages?timeout=1`);
    assert.ok(performance.now() - started >= 1000);
    assert.deepEqual(quiet.json(), { messages: [] });
  },
);
