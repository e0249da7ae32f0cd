import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { EventSource } from 'eventsource';
import { AccessPolicy } from '../../src/auth/access.js';
import { publish, waitFor } from '../helpers/hub.js';
import { until } from '../presence/helpers.js';
import { type PageRecord, clientScript, launchBrowser, record, seqs, startWebHub, waitForPage } from './helpers.js';

/** A tab of `context` on the hub's blank page, with a client from /kometa.js following `channel` (window.t records). */
async function openTab(
  context: BrowserContext,
  url: string,
  channel: string,
  options: Record<string, unknown> = {},
): Promise<Page> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  await page.goto(`${url}/blank`);
  await page.evaluate(clientScript(channel, options));
  // Subscribed once the channel's head is known (a shared connection resumes every tab from a position).
  const subscribed = `window.k.positions().get(${JSON.stringify(channel)}) !== undefined`;
  await waitForPage(page, `window.k.state === 'connected' && ${subscribed}`);
  assert.deepEqual(errors, []);
  return page;
}

const role = (page: Page) => page.evaluate('window.k.shareRole') as Promise<string | undefined>;

/** Every message 1..n exactly once, in order, no gap, no error. */
function assertAll(r: PageRecord, n: number, label: string): void {
  assert.deepEqual(seqs(r.messages), Array.from({ length: n }, (_, i) => i + 1), label);
  assert.deepEqual(r.gaps, [], label);
  assert.deepEqual(r.errors, [], label);
}

const EIGHT_TABS = 'eight tabs share one connection; closing the leader mid-stream loses and repeats nothing';

test(EIGHT_TABS, { timeout: 180_000 }, async (t) => {
  const hub = await startWebHub(t);
  const browser = await launchBrowser(t);
  const context = await browser.newContext();
  t.after(() => context.close());
  const tabs: Page[] = [];
  for (let i = 0; i < 8; i++) tabs.push(await openTab(context, hub.url, 'feed'));

  const roles = await Promise.all(tabs.map(role));
  assert.equal(roles.filter((r) => r === 'leader').length, 1, roles.join());
  assert.equal(roles.filter((r) => r === 'follower').length, 7, roles.join());
  assert.equal(hub.server.webSocket.connectionCount, 1);
  assert.equal(hub.hub.subscriberCount('feed'), 1);
  const first = await publish(hub.url, 'feed', 'one');
  assert.equal(first.subscribers, 1);
  await Promise.all(tabs.map((tab) => waitForPage(tab, 'window.t.messages.length === 1')));
  for (const tab of tabs) assert.equal(await tab.evaluate('window.k.transport'), 'websocket');

  const leader = tabs[roles.indexOf('leader')]!;
  const others = tabs.filter((tab) => tab !== leader);
  const total = 400;
  const publishRange = async (from: number, to: number) => {
    // Five at a time, without waiting for the tabs.
    for (let i = from; i <= to; i += 5) {
      const batch = Array.from({ length: Math.min(5, to + 1 - i) }, (_, j) => String(i + j));
      await Promise.all(batch.map((data) => publish(hub.url, 'feed', data)));
    }
  };
  await publishRange(2, 100);
  // Cut the leader off from the hub and keep it off, so that what is published next reaches no tab: the next
  // leader has to resume from where the tabs stand to get it (a takeover that starts "from now" loses it).
  await leader.routeWebSocket(/.*/, (ws) => ws.close());
  await leader.route('**/*', (route) => route.abort());
  assert.ok(hub.destroyConnections() >= 1);
  await waitFor(() => hub.hub.subscriberCount('feed') === 0, 10_000, 'the leader to be cut off');
  await publishRange(101, 120);
  // Close the leader tab while publishing goes on.
  const closing = leader.close();
  await publishRange(121, total);
  await closing;
  // Messages arrive in order: once 'last' is there, everything before it is there too, or lost for good.
  await publish(hub.url, 'feed', 'last');
  await Promise.all(others.map((tab) => waitForPage(tab, `window.t.messages.some((m) => m.data === 'last')`, 60_000)));
  for (const [i, tab] of others.entries()) assertAll(await record(tab), total + 1, `tab ${i}`);

  // One of the seven took over, and the hub again holds one connection for all of them.
  const after = await Promise.all(others.map(role));
  assert.equal(after.filter((r) => r === 'leader').length, 1, after.join());
  await waitFor(() => hub.server.webSocket.connectionCount === 1, 10_000, 'the old leader\'s socket to close');
  assert.equal(hub.hub.subscriberCount('feed'), 1);

  // A tab that opts out, and one with other credentials, each open their own.
  const alone = await openTab(context, hub.url, 'feed', { shareConnection: false });
  assert.equal(await role(alone), undefined);
  await waitFor(() => hub.server.webSocket.connectionCount === 2, 10_000);
  const otherUser = await openTab(context, hub.url, 'feed', { token: 'someone-else' });
  assert.equal(await role(otherUser), 'leader');
  await waitFor(() => hub.server.webSocket.connectionCount === 3, 10_000);
  // The hub's own subscriptions: the publish answer counts presence members, where the closed leader's stays for
  // the presence grace period.
  assert.equal(hub.hub.subscriberCount('feed'), 3);
  await publish(hub.url, 'feed', 'three connections');
  for (const tab of [alone, otherUser, ...others]) {
    await waitForPage(tab, `window.t.messages.some((m) => m.data === 'three connections')`);
  }
});

const LATE_TAB = 'a late tab subscribing from the start through a shared connection gets the history others have seen';

for (const transport of ['websocket', 'sse', 'poll'] as const) {
  test(`${transport}: ${LATE_TAB}`, { timeout: 90_000 }, async (t) => {
    const hub = await startWebHub(t);
    const browser = await launchBrowser(t);
    const context = await browser.newContext();
    t.after(() => context.close());
    const leader = await openTab(context, hub.url, 'room', { transports: [transport] });
    for (let i = 1; i <= 5; i++) await publish(hub.url, 'room', String(i));
    await waitForPage(leader, 'window.t.messages.length === 5');
    // A late tab follows another channel, then wants the whole history of 'room', which the connection is past.
    const late = await openTab(context, hub.url, 'other', { transports: [transport] });
    await late.evaluate(`window.k.subscribe('room', { from: 'start', onMessage: (m) => window.t.messages.push(m) })`);
    await waitForPage(late, 'window.t.messages.length === 5');
    assert.equal(await role(late), 'follower');
    await publish(hub.url, 'room', '6');
    await waitForPage(late, 'window.t.messages.length === 6');
    await waitForPage(leader, 'window.t.messages.length === 6');
    assertAll(await record(leader), 6, 'first tab');
    assert.deepEqual((await record(late)).messages.map((m) => m.data), ['1', '2', '3', '4', '5', '6']);
    assert.equal(hub.server.webSocket.connectionCount, transport === 'websocket' ? 1 : 0);
    // (Long-poll counts as a subscriber only while a poll is held.)
    await waitFor(() => hub.hub.subscriberCount('room') === 1 && hub.hub.subscriberCount('other') === 1, 10_000);

    // Unsubscribing in one tab changes what the shared connection follows.
    await late.evaluate(`window.k.unsubscribe('other')`);
    await waitFor(() => hub.hub.subscriberCount('other') === 0, 10_000, 'the leader to drop the channel');
    await waitFor(() => hub.hub.subscriberCount('room') === 1, 10_000);
  });
}

const TOO_FAR_BACK = 'a gap the shared connection reports for a tab that joins too far back reaches only that tab';

test(TOO_FAR_BACK, { timeout: 90_000 }, async (t) => {
  const hub = await startWebHub(t, {}, { history: { maxMessages: 3 } });
  const browser = await launchBrowser(t);
  const context = await browser.newContext();
  t.after(() => context.close());
  const first = await openTab(context, hub.url, 'room');
  const ids: string[] = [];
  for (let i = 1; i <= 10; i++) ids.push((await publish(hub.url, 'room', String(i))).id);
  await waitForPage(first, 'window.t.messages.length === 10');
  // A second tab resumes from an id the application stored long ago: history holds only 8, 9 and 10.
  const late = await openTab(context, hub.url, 'other');
  await late.evaluate(`window.k.subscribe('room', {
    cursor: ${JSON.stringify(ids[1])},
    onMessage: (m) => window.t.messages.push(m),
    onGap: (g) => window.t.gaps.push(g),
  })`);
  await waitForPage(late, 'window.t.messages.length === 3');
  const gaps = (await record(late)).gaps as { reason: string; missed?: { from: number; to: number } }[];
  assert.deepEqual(gaps.map((g) => [g.reason, g.missed]), [['history-truncated', { from: 3, to: 7 }]]);
  await publish(hub.url, 'room', '11');
  await waitForPage(first, 'window.t.messages.length === 11');
  await waitForPage(late, 'window.t.messages.length === 4');
  // The first tab was past the gap: it hears of it no more than of the replayed messages.
  assertAll(await record(first), 11, 'first tab');
  assert.deepEqual(seqs((await record(late)).messages), [8, 9, 10, 11]);
});

const FROZEN = 'a frozen leader tab (Page Lifecycle freeze) hands the connection on, and rejoins as a follower';

test(FROZEN, { timeout: 90_000 }, async (t) => {
  const hub = await startWebHub(t);
  const browser = await launchBrowser(t);
  const context = await browser.newContext();
  t.after(() => context.close());
  const tabs: Page[] = [];
  for (let i = 0; i < 3; i++) tabs.push(await openTab(context, hub.url, 'feed'));
  const leader = tabs.find((_, i) => i === 0)!;
  assert.equal(await role(leader), 'leader');
  for (let i = 1; i <= 10; i++) await publish(hub.url, 'feed', String(i));
  await Promise.all(tabs.map((tab) => waitForPage(tab, 'window.t.messages.length === 10')));

  // What a phone does to a background tab (Page Lifecycle API). Headless Chromium keeps every page visible and
  // will not freeze a visible one (CDP's Page.setWebLifecycleState does nothing to it), so the test sends the
  // events the browser would: this checks the hand-over, not a real freeze.
  await leader.evaluate(`document.dispatchEvent(new Event('freeze'))`);
  const others = tabs.slice(1);
  await waitForPage(others[0]!, `window.t.states.some((s) => s.state === 'connecting' && s.previous === 'connected')`);
  await waitFor(() => hub.hub.subscriberCount('feed') === 1 && hub.server.webSocket.connectionCount === 1, 10_000);
  for (let i = 11; i <= 30; i++) await publish(hub.url, 'feed', String(i));
  await Promise.all(others.map((tab) => waitForPage(tab, 'window.t.messages.length === 30')));
  const roles = await Promise.all(others.map(role));
  assert.equal(roles.filter((r) => r === 'leader').length, 1, roles.join());

  await leader.evaluate(`document.dispatchEvent(new Event('resume'))`);
  await waitForPage(leader, 'window.t.messages.length >= 30');
  assert.equal(await role(leader), 'follower');
  for (const [i, tab] of tabs.entries()) assertAll(await record(tab), 30, `tab ${i}`);
  assert.equal(hub.server.webSocket.connectionCount, 1);
});

test('the chat in three tabs of one browser uses one connection', { timeout: 90_000 }, async (t) => {
  const hub = await startWebHub(t);
  const browser = await launchBrowser(t);
  const context = await browser.newContext({ viewport: { width: 900, height: 600 } });
  t.after(() => context.close());
  const pages: Page[] = [];
  for (let i = 0; i < 3; i++) {
    const page = await context.newPage();
    await page.goto(`${hub.url}/#general`);
    if (i === 0) {
      await page.fill('#name-input', 'Ada');
      await page.click('#name-form button');
    }
    await page.waitForSelector('#status[data-state="connected"]', { timeout: 15_000 });
    pages.push(page);
  }
  const lines = ['One connection for all my tabs', 'Every tab sees every line', 'Only the leader tab holds the socket'];
  for (const [i, text] of lines.entries()) {
    await pages[i]!.fill('#text', text);
    await pages[i]!.press('#text', 'Enter');
    for (const page of pages) await page.locator('.bubble', { hasText: text }).waitFor({ timeout: 10_000 });
  }
  for (const page of pages) assert.deepEqual(await page.locator('.bubble').allTextContents(), lines);
  assert.equal(hub.server.webSocket.connectionCount, 1);
  const shots = mkdtempSync(path.join(tmpdir(), 'kometa-tabs-'));
  await pages[2]!.screenshot({ path: path.join(shots, 'chat-tabs.png') });
  t.diagnostic(`screenshot: ${path.join(shots, 'chat-tabs.png')}`);
});

const PRESENCE_TABS = 'joins and leaves through a shared connection reach the tabs that asked, once, across a takeover';

for (const transport of ['websocket', 'sse'] as const) {
  test(`${transport}: ${PRESENCE_TABS}`, { timeout: 90_000 }, async (t) => {
    const hub = await startWebHub(t, {}, {}, { graceMs: 300, events: true });
    const browser = await launchBrowser(t);
    const context = await browser.newContext();
    t.after(() => context.close());
    // The first tab leads, and does not ask; the second asks; the third does not.
    const tabs: Page[] = [];
    for (let i = 0; i < 3; i++) tabs.push(await openTab(context, hub.url, 'room', { transports: [transport] }));
    const [first, asking, plain] = tabs as [Page, Page, Page];
    assert.equal(await role(first), 'leader');
    await asking.evaluate(`(() => {
      const seen = (window.presence = []);
      const push = (e) => seen.push({ type: e.type, id: e.id, client: e.member.client, transport: e.member.transport });
      window.k.subscribe('room', { presence: true, onJoin: push, onLeave: push });
    })()`);
    const outsiders = async () => {
      const all = (await asking.evaluate('window.presence')) as { type: string; id: string; client: string }[];
      return all.filter((e) => e.client.startsWith('outsider'));
    };
    // Joins come from the moment the leader's connection asks for them: wait until an outsider's join gets through.
    const outsider = new EventSource(`${hub.url}/sub/room?client=outsider-1`);
    t.after(() => outsider.close());
    await until(async () => (await outsiders()).length === 1, 10_000, 'the first join relayed');
    await publish(hub.url, 'room', 'hi');
    outsider.close();
    await until(async () => (await outsiders()).length === 2, 10_000, 'the leave relayed');

    // The leader tab closes: another takes over and resumes; the tab that asked still gets joins, and none twice.
    await first.close();
    await until(async () => (await Promise.all([asking, plain].map(role))).includes('leader'), 10_000, 'a takeover');
    const second = new EventSource(`${hub.url}/sub/room?client=outsider-2`);
    t.after(() => second.close());
    await until(async () => (await outsiders()).length === 3, 10_000, 'a join after the takeover');
    await publish(hub.url, 'room', 'again');
    await waitForPage(plain, `window.t.messages.some((m) => m.data === 'again')`);
    await waitForPage(asking, `window.t.messages.some((m) => m.data === 'again')`);
    const seen = await outsiders();
    const expected = ['join:outsider-1', 'leave:outsider-1', 'join:outsider-2'];
    assert.deepEqual(seen.map((e) => `${e.type}:${e.client}`), expected);
    const all = (await asking.evaluate('window.presence')) as { id: string }[];
    assert.equal(new Set(all.map((e) => e.id)).size, all.length, 'no event twice');
    // Messages reached every tab once; no tab's onMessage saw a join or a leave.
    for (const tab of [asking, plain]) {
      const r = await record(tab);
      assert.deepEqual(r.messages.map((m) => m.data), ['hi', 'again']);
      assert.deepEqual(r.errors, []);
    }
  });
}

test('tabs sharing a connection to a hub that wants a token they lack all stop, with the reason', async (t) => {
  const access = await AccessPolicy.create({ tokens: { secret: 'a-secret-that-is-long-enough-for-hs256!' } });
  const hub = await startWebHub(t, { access });
  const browser = await launchBrowser(t);
  const context = await browser.newContext();
  t.after(() => context.close());
  const tabs: Page[] = [];
  const asked = [0, 0];
  for (let i = 0; i < 2; i++) {
    const page = await context.newPage();
    page.on('request', (request) => {
      if (/^\/(sub|channels)\b/.test(new URL(request.url()).pathname)) asked[i]!++;
    });
    await page.goto(`${hub.url}/blank`);
    await page.evaluate(clientScript('room', { transports: ['sse'] }));
    tabs.push(page);
  }
  for (const tab of tabs) {
    await waitForPage(tab, `window.t.states.some((s) => s.state === 'disconnected')`);
    const states = (await record(tab)).states as { state: string; reason: string; code?: string }[];
    assert.deepEqual(states.at(-1), { ...states.at(-1), state: 'disconnected', reason: 'unauthorized',
      code: 'KOMETA_ERR_UNAUTHORIZED' });
  }
  assert.deepEqual((await Promise.all(tabs.map(role))).sort(), [undefined, undefined]);
  // No retrying: each tab looks its channel's head up, and a leader's connection asks once.
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.ok(asked.every((n) => n <= 2), asked.join());
});

test('tabs sharing a connection the backend disconnects all stop, and no tab takes the lead to connect again',
  { timeout: 90_000 }, async (t) => {
    const secret = 'a-secret-that-is-long-enough-for-hs256!';
    const access = await AccessPolicy.create({ publisherKey: 'backend-key', tokens: { secret } });
    const hub = await startWebHub(t, { access });
    const { SignJWT } = await import('jose');
    const token = await new SignJWT({ kometa: { subscribe: ['**'] } })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('u1')
      .setIssuedAt()
      .sign(new TextEncoder().encode(secret));
    const browser = await launchBrowser(t);
    const context = await browser.newContext();
    t.after(() => context.close());
    // The race under test: the next tab is granted the connection's lock before it hears that the leader stopped.
    // Holding back the stop between tabs makes that order certain instead of rare.
    await context.addInitScript(`{
      const Original = BroadcastChannel;
      window.BroadcastChannel = class extends Original {
        set onmessage(handler) {
          super.onmessage = (event) => {
            const stop = event.data?.t === 'state' && event.data.s?.state === 'disconnected';
            if (stop) setTimeout(() => handler(event), 1000);
            else handler(event);
          };
        }
      };
    }`);
    const tabs: Page[] = [];
    for (let i = 0; i < 3; i++) tabs.push(await openTab(context, hub.url, 'room', { token, transports: ['sse'] }));
    assert.equal(hub.hub.subscriberCount('room'), 1);
    let subscribesAfter = 0;
    let cut = false;
    for (const tab of tabs) {
      tab.on('request', (request) => {
        if (cut && new URL(request.url()).pathname.startsWith('/sub')) subscribesAfter++;
      });
    }
    cut = true;
    const answer = await fetch(`${hub.url}/disconnect`, {
      method: 'POST',
      headers: { Authorization: 'Bearer backend-key', 'Content-Type': 'application/json' },
      body: JSON.stringify({ user: 'u1' }),
    });
    assert.equal(answer.status, 200, await answer.text());
    for (const tab of tabs) {
      await waitForPage(tab, `window.t.states.some((s) => s.state === 'disconnected')`);
      const states = (await record(tab)).states as { state: string; reason: string }[];
      assert.equal(states.at(-1)?.reason, 'server-disconnect', JSON.stringify(states));
    }
    // Long enough for a tab granted the lock to have connected (backoff here is 50–500 ms): none does.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(subscribesAfter, 0);
    assert.equal(hub.hub.subscriberCount('room'), 0);
    assert.deepEqual((await Promise.all(tabs.map(role))).sort(), [undefined, undefined, undefined]);
  });
