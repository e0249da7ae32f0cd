import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchBrowser, startWebHub, waitForPage } from '../browser/helpers.js';

/** A page in its own browser context (another person), with the presence reads it makes counted. */
async function join(browser: Browser, url: string, name: string): Promise<{ page: Page; reads: () => number }> {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  let reads = 0;
  page.on('request', (request) => {
    if (new URL(request.url()).pathname.endsWith('/presence')) reads++;
  });
  await page.goto(url);
  await page.fill('#name-input', name);
  await page.click('#name-form button');
  await page.waitForSelector('#status[data-state="connected"]', { timeout: 15_000 });
  return { page, reads: () => reads };
}

const online = (page: Page) => page.locator('#online li .who').allTextContents();
const showing = (names: string[]) => `JSON.stringify(window.kometaChat.online) === '${JSON.stringify(names)}'`;

for (const events of [true, false]) {
  const how = events
    ? 'with --presence-events, live from in-band joins and leaves after one read per room'
    : 'without --presence-events, by polling the presence endpoint';
  test(`the chat shows who is online in the room, ${how}: two people see each other, a closed tab disappears`,
    { timeout: 90_000 }, async (t) => {
      const hub = await startWebHub(t, {}, {}, { events });
      const browser = await launchBrowser(t);
      const ada = await join(browser, `${hub.url}/#general`, 'Ada Lovelace');
      const grace = await join(browser, `${hub.url}/#general`, 'Grace');
      for (const { page } of [ada, grace]) {
        await waitForPage(page, showing(['Ada Lovelace', 'Grace']));
        assert.deepEqual(await online(page), ['Ada Lovelace', 'Grace']);
        assert.equal(await page.locator('#online-count').textContent(), '2');
        assert.equal(await page.evaluate('window.kometaChat.polling'), !events);
      }
      const readsBefore = ada.reads();
      // One read on opening the page, one when the name is set (a new client id: the room is joined again).
      assert.ok(!events || readsBefore <= 2, `${readsBefore} reads`);
      // Another room has its own list.
      await grace.page.click('.rooms a[href="#random"]');
      await waitForPage(grace.page, showing(['Grace']));
      await waitForPage(ada.page, showing(['Ada Lovelace']), 20_000);
      await grace.page.click('.rooms a[href="#general"]');
      await waitForPage(ada.page, showing(['Ada Lovelace', 'Grace']), 20_000);
      if (events) await ada.page.screenshot({ path: '/tmp/kometa-chat-presence.png' });

      // Grace closes her tab: she leaves once the grace period (5 s) is over.
      await grace.page.context().close();
      await waitForPage(ada.page, showing(['Ada Lovelace']), 20_000);
      assert.deepEqual(await online(ada.page), ['Ada Lovelace']);
      // With the flag, Ada read no list after she joined #general: everything since came in-band. Without, she polled.
      if (events) assert.equal(ada.reads(), readsBefore);
      else assert.ok(ada.reads() >= readsBefore + 3, `${ada.reads()} reads, ${readsBefore} before`);
    });
}
