import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { launchBrowser } from '../browser/helpers.js';
import { ADMIN, startOpsHub } from './helpers.js';
import { startLoad } from './load.js';

// docs/dashboard.png is refreshed with KOMETA_UPDATE_SCREENSHOTS=1; every other picture (and ordinary runs) go to a
// temporary folder.
const shots = mkdtempSync(path.join(tmpdir(), 'kometa-dashboard-'));
const docsShot =
  process.env.KOMETA_UPDATE_SCREENSHOTS === '1'
    ? path.resolve(import.meta.dirname, '../../../docs/dashboard.png')
    : path.join(shots, 'dashboard.png');

interface Shown {
  received: number;
  connections: string;
  published: string;
  delivered: string;
  deliveredTotal: string;
  errors: string;
  channels: string[];
  /** A fingerprint of the rates plot's pixels, to see that it was redrawn with new data. */
  plot: string;
}

const readShown = `(() => {
  const text = (id) => document.getElementById(id).textContent;
  const canvas = document.getElementById('plot-rates');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let hash = 0;
  for (let i = 0; i < data.length; i += 97) hash = (hash * 31 + data[i]) >>> 0;
  return {
    received: window.kometaOps.received,
    connections: text('kpi-connections'),
    published: text('kpi-published'),
    delivered: text('kpi-delivered'),
    deliveredTotal: text('kpi-delivered-total'),
    errors: text('kpi-errors'),
    channels: [...document.querySelectorAll('#channels tbody tr')].map((r) => r.dataset.channel),
    plot: String(hash),
  };
})()`;

test(
  'the dashboard follows a hub under load: counters, plots and hot channels move; a channel opens with its messages',
  { timeout: 90_000 },
  async (t) => {
    const hub = await startOpsHub(t, { ops: { sampleIntervalMs: 500 } });
    const stopLoad = startLoad(hub.url, { subscribers: 36, ratePerSecond: 80 });
    t.after(stopLoad);
    const browser = await launchBrowser(t);
    const context = await browser.newContext({ viewport: { width: 1440, height: 1000 }, deviceScaleFactor: 1 });
    t.after(() => context.close());
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(String(error)));

    // The login link sets the cookie and takes the token out of the address bar.
    await page.goto(`${hub.url}/_kometa/?token=${ADMIN}`);
    assert.equal(new URL(page.url()).search, '', 'the token is not left in the address bar');
    await page.waitForFunction('window.kometaOps && window.kometaOps.received >= 3', undefined, { timeout: 15_000 });
    await page.waitForFunction(`document.getElementById('status').dataset.state === 'connected'`, undefined, {
      timeout: 10_000,
    });
    const first = (await page.evaluate(readShown)) as Shown;
    await page.screenshot({ path: path.join(shots, 'dashboard-early.png') });

    // For the picture in docs/, let the plots fill up a little more.
    await page.waitForTimeout(process.env.KOMETA_UPDATE_SCREENSHOTS === '1' ? 40_000 : 4000);
    const second = (await page.evaluate(readShown)) as Shown;
    assert.ok(second.received > first.received, `samples keep arriving (${first.received} → ${second.received})`);
    assert.notEqual(second.plot, first.plot, 'the rates plot was redrawn with new data');
    assert.notEqual(second.deliveredTotal, first.deliveredTotal, 'the delivered total moves');
    assert.ok(Number(second.connections) >= 30, `connections are counted (${second.connections})`);
    assert.ok(Number(second.published) > 0, `publishes per second shown (${second.published})`);
    assert.ok(Number(second.errors) > 0, 'the bad requests show up as errors');
    assert.ok(second.channels.includes('news'), `hot channels listed: ${second.channels.join(', ')}`);
    await page.screenshot({ path: docsShot });

    // Click a channel: its recent messages and its subscribers.
    await page.click('#channels tbody tr[data-channel="news"]');
    await page.waitForFunction(
      `document.querySelectorAll('#drawer-messages li').length > 0 && document.querySelectorAll('#drawer-subs ` +
        `tr').length > 0`,
      undefined,
      { timeout: 10_000 },
    );
    const drawer = await page.evaluate(
      `document.getElementById('drawer-title').textContent + ' ' + ` +
        `document.getElementById('drawer-messages').textContent`,
    );
    assert.match(String(drawer), /^news .*message \d+/);
    await page.screenshot({ path: path.join(shots, 'dashboard-channel.png') });

    // Watch one subscriber's connection: what the hub writes to it, as it writes it.
    await page.click('#drawer-subs button');
    await page.waitForFunction(
      `[...document.querySelectorAll('#wire li.k-chunk')].some((li) => li.textContent.includes('message'))`,
      undefined,
      { timeout: 10_000 },
    );
    await page.click('#drawer-close');

    // The wire view of the seed's staged response, in the dashboard.
    await page.selectOption('#wire-preset', 'seed');
    await page.click('#wire-form button');
    await page.waitForFunction(
      `document.querySelectorAll('#wire li.k-chunk').length >= 5 && document.querySelector('#wire li.k-end')`,
      undefined,
      { timeout: 15_000 },
    );
    const chunks = (await page.evaluate(
      `[...document.querySelectorAll('#wire li.k-chunk')].map((li) => ` +
        `Number(li.querySelector('.t').textContent.replace(' ms', '')))`,
    )) as number[];
    for (let i = 1; i < chunks.length; i++)
      assert.ok(
        chunks[i]! - chunks[i - 1]! >= 950,
        `chunk ${i + 1} came ≥ 1 s after the one before (${chunks[i]! - chunks[i - 1]!} ms)`,
      );
    await page.screenshot({ path: path.join(shots, 'dashboard-wire.png'), fullPage: true });
    assert.deepEqual(errors, []);
    t.diagnostic(`screenshots in ${shots}`);
  },
);
