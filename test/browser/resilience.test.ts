import assert from 'node:assert/strict';
import { test } from 'node:test';
import { publish, waitFor } from '../helpers/hub.js';
import {
  freePort,
  launchBrowser,
  openClientPage,
  record,
  seqs,
  startCli,
  startWebHub,
  stopProcess,
  waitForPage,
} from './helpers.js';

for (const transport of ['websocket', 'sse', 'poll'] as const) {
  test(
    `${transport}: the hub cuts every connection mid-stream, and everything published meanwhile arrives once, in order`,
    { timeout: 60_000 },
    async (t) => {
      const hub = await startWebHub(t);
      const browser = await launchBrowser(t);
      const page = await openClientPage(browser, t, `${hub.url}/blank`, 'feed', { transports: [transport] });
      await waitForPage(page, `window.k.state === 'connected'`);
      await waitFor(() => hub.hub.subscriberCount('feed') === 1, 10_000);
      for (let i = 0; i < 150; i++) {
        await publish(hub.url, 'feed', String(i));
        if (i === 50 || i === 100) {
          assert.ok(hub.destroyConnections() > 0);
          // Keep publishing while the page is cut off and reconnecting.
        }
        // Let the page come back before the second cut, so that it cuts something.
        if (i === 75) await waitFor(() => hub.hub.subscriberCount('feed') === 1, 10_000, 'the page to reconnect');
      }
      await waitForPage(page, 'window.t.messages.length >= 150');
      await new Promise((r) => setTimeout(r, 100));
      const r = await record(page);
      assert.deepEqual(
        r.messages.map((m) => m.data),
        Array.from({ length: 150 }, (_, i) => String(i)),
      );
      assert.deepEqual(r.gaps, []);
      // A long-poll cut between answers may go unnoticed: the browser retries a GET on a fresh connection by itself.
      if (transport !== 'poll')
        assert.ok(
          r.states.some((s) => s.previous === 'connected' && s.state === 'connecting'),
          JSON.stringify(r.states),
        );
      assert.equal(r.states.at(-1)!.state, 'connected');
    },
  );

  test(
    `${transport}: kometa serve is restarted (in-memory): the page reconnects, gets a gap event, then every new ` +
      `message once, in order`,
    { timeout: 60_000 },
    async (t) => {
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      let server = await startCli(port);
      t.after(() => stopProcess(server, 'SIGKILL'));
      const browser = await launchBrowser(t);
      // The chat page (served by kometa serve), with a client of the test's own beside the chat's.
      const page = await openClientPage(browser, t, `${base}/?transport=${transport}#restart`, 'feed', {
        transports: [transport],
      });
      await waitForPage(page, `window.k.state === 'connected' && window.kometaChat.client.state === 'connected'`);
      for (let i = 0; i < 20; i++) await publish(base, 'feed', `before-${i}`);
      await publish(
        base,
        'chat.restart',
        JSON.stringify({ name: 'Ada', text: 'before the restart', sent: Date.now() }),
      );
      await waitForPage(page, 'window.t.messages.length >= 20 && window.kometaChat.count === 1');

      await stopProcess(server, 'SIGKILL');
      await waitForPage(page, `window.k.state === 'connecting'`);
      server = await startCli(port);
      for (let i = 0; i < 20; i++) await publish(base, 'feed', `after-${i}`);
      await publish(
        base,
        'chat.restart',
        JSON.stringify({ name: 'Grace', text: 'after the restart', sent: Date.now() }),
      );

      await waitForPage(page, 'window.t.messages.length >= 40 && window.kometaChat.count === 2', 20_000);
      await new Promise((r) => setTimeout(r, 100));
      const r = await record(page);
      assert.deepEqual(
        r.messages.map((m) => m.data),
        [...Array.from({ length: 20 }, (_, i) => `before-${i}`), ...Array.from({ length: 20 }, (_, i) => `after-${i}`)],
      );
      assert.deepEqual(
        r.gaps.map((g) => [g.channel, g.reason]),
        [['feed', 'epoch-changed']],
      );
      // The chat tells its user too, instead of going quiet.
      const notices = await page.locator('.notice').allTextContents();
      assert.equal(notices.length, 1);
      assert.match(notices[0]!, /restarted/);
      assert.deepEqual(
        seqs(r.messages.slice(20)),
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
    },
  );
}

test(
  'when the hub refuses WebSocket, the page falls back to SSE and notices nothing but the state change',
  { timeout: 60_000 },
  async (t) => {
    const hub = await startWebHub(t, { websocket: false });
    const browser = await launchBrowser(t);
    const page = await openClientPage(browser, t, `${hub.url}/blank`, 'news', {});
    await waitForPage(page, `window.k.state === 'connected'`);
    await waitFor(() => hub.hub.subscriberCount('news') === 1, 10_000);
    await publish(hub.url, 'news', 'through SSE');
    await page.evaluate(`window.k.publish('news', 'from the page')`);
    await waitForPage(page, 'window.t.messages.length >= 2');
    const r = await record(page);
    assert.deepEqual(
      r.messages.map((m) => m.data),
      ['through SSE', 'from the page'],
    );
    assert.deepEqual(
      r.states.map((s) => [s.state, s.reason, s.transport]),
      [
        ['connecting', 'connect', undefined],
        ['connected', 'open', 'sse'],
      ],
    );
    assert.deepEqual(r.gaps, []);
    assert.deepEqual(r.errors, []);
  },
);
