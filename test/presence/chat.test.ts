import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchBrowser, startWebHub, waitForPage } from '../browser/helpers.js';

async function join(browser: Browser, url: string, name: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  await page.goto(url);
  await page.fill('#name-input', name);
  await page.click('#name-form button');
  await page.waitForSelector('#status[data-state="connected"]', { timeout: 15_000 });
  return page;
}

const online = (page: Page) => page.locator('#online li .who').allTextContents();

const WHO = 'the chat shows who is online in the room, live: two people see each other, a closed tab disappears';
test(WHO, { timeout: 90_000 }, async (t) => {
  const hub = await startWebHub(t);
  const browser = await launchBrowser(t);
  const ada = await join(browser, `${hub.url}/#general`, 'Ada Lovelace');
  const grace = await join(browser, `${hub.url}/#general`, 'Grace');
  for (const page of [ada, grace]) {
    await waitForPage(page, `JSON.stringify(window.kometaChat.online) === '["Ada Lovelace","Grace"]'`);
    assert.deepEqual(await online(page), ['Ada Lovelace', 'Grace']);
    assert.equal(await page.locator('#online-count').textContent(), '2');
  }
  // Another room has its own list.
  await grace.click('.rooms a[href="#random"]');
  await waitForPage(grace, `JSON.stringify(window.kometaChat.online) === '["Grace"]'`);
  await waitForPage(ada, `JSON.stringify(window.kometaChat.online) === '["Ada Lovelace"]'`, 20_000);
  await grace.click('.rooms a[href="#general"]');
  await waitForPage(ada, `JSON.stringify(window.kometaChat.online) === '["Ada Lovelace","Grace"]'`, 20_000);

  // Grace closes her tab: she leaves once the grace period (5 s) is over.
  await grace.context().close();
  await waitForPage(ada, `JSON.stringify(window.kometaChat.online) === '["Ada Lovelace"]'`, 20_000);
  assert.deepEqual(await online(ada), ['Ada Lovelace']);
});
