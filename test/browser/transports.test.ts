import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type PageRecord, launchBrowser, openClientPage, record, seqs, startWebHub, waitForPage } from './helpers.js';

for (const transport of ['websocket', 'sse', 'poll'] as const) {
  test(
    `${transport}: two pages in one room exchange 200 messages and each receives all of them once, in order`,
    { timeout: 90_000 },
    async (t) => {
      const hub = await startWebHub(t);
      const browser = await launchBrowser(t);
      const pages = await Promise.all(
        ['A', 'B'].map(() =>
          openClientPage(browser, t, `${hub.url}/blank`, 'room.exchange', { transports: [transport] }),
        ),
      );
      for (const page of pages)
        await waitForPage(page, `window.k.state === 'connected' && window.k.transport === '${transport}'`);
      await waitForPageCount(() => hub.hub.subscriberCount('room.exchange') === 2);
      // Both pages publish at once, 100 each, every publish awaited before the next.
      await Promise.all(
        pages.map((page, i) =>
          page.evaluate(`(async () => {
          for (let n = 0; n < 100; n++) await window.k.publish('room.exchange', JSON.stringify({ from: '${
            'AB'[i]
          }', n }));
        })()`),
        ),
      );
      for (const page of pages) await waitForPage(page, 'window.t.messages.length >= 200');
      await new Promise((r) => setTimeout(r, 100));
      const records: PageRecord[] = await Promise.all(pages.map(record));
      for (const r of records) {
        assert.equal(r.messages.length, 200);
        const order = seqs(r.messages);
        assert.deepEqual(
          order,
          [...order].sort((a, b) => a - b),
          'in channel order',
        );
        assert.equal(new Set(order).size, 200, 'each once');
        for (const from of ['A', 'B']) {
          const ns = r.messages
            .map((m) => JSON.parse(m.data) as { from: string; n: number })
            .filter((d) => d.from === from)
            .map((d) => d.n);
          assert.deepEqual(
            ns,
            Array.from({ length: 100 }, (_, n) => n),
            `${from}'s messages in the order sent`,
          );
        }
        assert.deepEqual(r.gaps, []);
        assert.deepEqual(r.errors, []);
      }
      assert.deepEqual(records[0]!.messages, records[1]!.messages, 'both pages saw the same sequence');
    },
  );
}

async function waitForPageCount(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
