import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { tempDataDir } from '../helpers/data-dir.js';
import { freePort, launchBrowser, startCli, startWebHub, stopProcess } from './helpers.js';

// The screenshots in docs/ are refreshed with KOMETA_UPDATE_SCREENSHOTS=1; ordinary runs write to a temporary folder.
const docs =
  process.env.KOMETA_UPDATE_SCREENSHOTS === '1'
    ? path.resolve(import.meta.dirname, '../../../docs')
    : mkdtempSync(path.join(tmpdir(), 'kometa-chat-'));

async function join(
  browser: Browser,
  url: string,
  name: string,
  viewport: { width: number; height: number },
  mobile = false,
): Promise<Page> {
  const context = await browser.newContext({
    viewport,
    ...(mobile ? { isMobile: true, hasTouch: true, deviceScaleFactor: 2 } : {}),
  });
  const page = await context.newPage();
  await page.goto(url);
  await page.fill('#name-input', name);
  await page.click('#name-form button');
  await page.waitForSelector('#status[data-state="connected"]', { timeout: 15_000 });
  return page;
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

test(
  'the chat works for two people in two browser contexts, with history for whoever joins later',
  { timeout: 90_000 },
  async (t) => {
    const hub = await startWebHub(t);
    const browser = await launchBrowser(t);
    const ada = await join(browser, `${hub.url}/#general`, 'Ada', { width: 1100, height: 700 });
    const grace = await join(browser, `${hub.url}/#general`, 'Grace', { width: 390, height: 760 }, true);

    const script: [Page, string][] = [
      [ada, 'Morning! Is the deploy still on for 3pm?'],
      [grace, 'Yes, I just pushed the last migration.'],
      [grace, 'Staging is green, all checks passed.'],
      [ada, 'Great, I will watch the dashboards.'],
      [ada, 'Ping me if the queue depth climbs.'],
      [grace, 'Will do. Coffee first.'],
    ];
    for (const [page, text] of script) {
      await say(page, text);
      // Everyone sees each line before the next is sent, so the conversation reads in order.
      for (const viewer of [ada, grace])
        await viewer.locator('.bubble', { hasText: text }).waitFor({ timeout: 10_000 });
    }
    for (const viewer of [ada, grace]) {
      assert.deepEqual(
        await viewer.locator('.bubble').allTextContents(),
        script.map(([, text]) => text),
      );
    }
    // Own lines on the right, others' with their name.
    assert.equal(await ada.locator('.msg.mine').count(), 3);
    assert.deepEqual(await ada.locator('.msg:not(.mine):not(.cont) .who').allTextContents(), ['Grace', 'Grace']);

    // A third person opening the room later gets its history.
    const late = await join(browser, `${hub.url}/#general`, 'Linus', { width: 800, height: 600 });
    await late.locator('.bubble', { hasText: 'Coffee first' }).waitFor({ timeout: 10_000 });
    assert.equal(await late.locator('.bubble').count(), script.length);

    // Rooms are separate channels over the same connection.
    await grace.click('.chips a[href="#random"]');
    await grace.locator('#room-title', { hasText: 'random' }).waitFor();
    await say(grace, 'Anyone up for lunch?');
    await grace.locator('.bubble', { hasText: 'lunch' }).waitFor({ timeout: 10_000 });
    assert.equal(await ada.locator('.bubble', { hasText: 'lunch' }).count(), 0);
    assert.equal(hub.server.webSocket.connectionCount, 3);

    mkdirSync(docs, { recursive: true });
    await ada.screenshot({ path: path.resolve(docs, 'chat.png') });
    await grace.click('.chips a[href="#general"]');
    await grace.locator('.bubble', { hasText: 'Coffee first' }).waitFor({ timeout: 10_000 });
    await grace.screenshot({ path: path.resolve(docs, 'chat-phone.png') });
  },
);

test(
  'the chat keeps its rooms across a restart of kometa serve: nothing lost, nothing twice, no gap',
  { timeout: 90_000 },
  async (t) => {
    const port = await freePort();
    const dir = tempDataDir('chat');
    let server = await startCli(port, dir);
    t.after(() => stopProcess(server, 'SIGKILL'));
    const url = `http://127.0.0.1:${port}`;
    const browser = await launchBrowser(t);
    const ada = await join(browser, `${url}/#general`, 'Ada', { width: 900, height: 600 });
    const before = ['Before the deploy: one', 'Before the deploy: two'];
    for (const text of before) {
      await say(ada, text);
      await ada.locator('.bubble', { hasText: text }).waitFor({ timeout: 10_000 });
    }
    // A crash, not a clean stop: the history must come from the disk.
    await stopProcess(server, 'SIGKILL');
    server = await startCli(port, dir);
    await ada.waitForSelector('#status[data-state="connected"]', { timeout: 30_000 });
    await say(ada, 'After the restart');
    await ada.locator('.bubble', { hasText: 'After the restart' }).waitFor({ timeout: 10_000 });

    const later = await join(browser, `${url}/#general`, 'Grace', { width: 900, height: 600 });
    await later.locator('.bubble', { hasText: 'After the restart' }).waitFor({ timeout: 10_000 });
    const expected = [...before, 'After the restart'];
    assert.deepEqual(await later.locator('.bubble').allTextContents(), expected, 'the room as it was, for a newcomer');
    assert.deepEqual(
      await ada.locator('.bubble').allTextContents(),
      expected,
      'the page that lived through the restart',
    );
    assert.equal(await ada.locator('.notice').count(), 0, 'no gap notice: nothing was lost');
  },
);
