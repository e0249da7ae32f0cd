import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventSource } from 'eventsource';
import { httpRequest, publish, startHub, waitFor, type TestHub } from '../helpers/hub.js';
import { StreamReader } from '../helpers/streams.js';

interface Received {
  channel: string;
  id: string;
  data: string;
}

/**
 * A subscriber that keeps itself connected the way a real client would:
 * on any drop it reconnects with the last id it saw.
 */
interface ResilientSubscriber {
  readonly received: Received[];
  readonly gaps: unknown[];
  readonly connects: number;
  close(): void;
}

function streamSubscriber(hub: TestHub, query: string): ResilientSubscriber {
  const state = {
    received: [] as Received[],
    gaps: [] as unknown[],
    connects: 0,
    closed: false,
    reader: undefined as StreamReader | undefined,
  };
  let cursor = '';
  const loop = async () => {
    while (!state.closed) {
      try {
        const reader = await StreamReader.open(
          `${hub.url}/sub?${query}&transport=stream&since=${encodeURIComponent(cursor)}`,
        );
        state.reader = reader;
        state.connects++;
        let consumed = 0;
        await reader
          .waitFor((r) => {
            const lines = r.text.split('\n');
            lines.pop();
            for (; consumed < lines.length; consumed++) {
              const line = JSON.parse(lines[consumed]!) as {
                type: string;
                channel: string;
                id: string;
                data: string;
                cursor?: string;
              };
              if (line.type === 'message') {
                state.received.push({ channel: line.channel, id: line.id, data: line.data });
                cursor = line.id;
              } else if (line.type === 'gap') {
                state.gaps.push(line);
                cursor = line.id;
              } else if (line.type === 'live') {
                cursor = line.cursor!;
              }
            }
            return state.closed;
          }, 60_000)
          .catch(() => {});
      } catch {
        // refused while the hub restarts: try again
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  void loop();
  return {
    received: state.received,
    gaps: state.gaps,
    get connects() {
      return state.connects;
    },
    close() {
      state.closed = true;
      state.reader?.close();
    },
  };
}

function pollSubscriber(hub: TestHub, query: string): ResilientSubscriber {
  const state = { received: [] as Received[], gaps: [] as unknown[], connects: 0, closed: false };
  let cursor = '';
  const loop = async () => {
    while (!state.closed) {
      try {
        state.connects++;
        const res = await httpRequest(
          `${hub.url}/sub?${query}&transport=poll&timeout=2&since=${encodeURIComponent(cursor)}`,
        );
        if (res.status === 200) {
          const body = res.json<{ messages: Received[]; cursor: string; gaps?: unknown[] }>();
          state.gaps.push(...(body.gaps ?? []));
          state.received.push(...body.messages);
          cursor = body.cursor;
        }
      } catch {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  };
  void loop();
  return {
    received: state.received,
    gaps: state.gaps,
    get connects() {
      return state.connects;
    },
    close() {
      state.closed = true;
    },
  };
}

function sseSubscriber(hub: TestHub, query: string): ResilientSubscriber & { lastEventIds: (string | undefined)[] } {
  const received: Received[] = [];
  const gaps: unknown[] = [];
  let connects = 0;
  const source = new EventSource(`${hub.url}/sub?${query}`);
  source.onopen = () => connects++;
  source.onmessage = (event) => {
    const channel = event.lastEventId.split(',').length === 1 ? event.lastEventId.split('~')[0]! : '';
    received.push({ channel, id: event.lastEventId, data: event.data });
  };
  source.addEventListener('kometa-gap', (event) => gaps.push(JSON.parse(event.data)));
  return {
    received,
    gaps,
    lastEventIds: [],
    get connects() {
      return connects;
    },
    close: () => source.close(),
  };
}

async function withHub(fn: (hub: TestHub) => Promise<void>): Promise<void> {
  const hub = await startHub({ http: { retryMs: 50 } });
  try {
    await fn(hub);
  } finally {
    await hub.close();
  }
}

test('an EventSource gets 1,000 messages in order, and after the server drops it, exactly the 200 published ' +
  'meanwhile', async () => {
  await withHub(async (hub) => {
    const lastEventIds: (string | undefined)[] = [];
    hub.server.server.on('request', (req) => {
      if (req.url?.startsWith('/sub')) lastEventIds.push(req.headers['last-event-id'] as string | undefined);
    });
    const source = new EventSource(`${hub.url}/sub/news`);
    const received: string[] = [];
    source.onmessage = (event) => received.push(event.data);
    try {
      await waitFor(() => hub.hub.subscriberCount('news') === 1, 5000, 'the subscription');
      for (let i = 1; i <= 1000; i++) await publish(hub.url, 'news', `m${i}`);
      await waitFor(() => received.length >= 1000, 15_000, '1,000 messages');
      assert.deepEqual(
        received,
        Array.from({ length: 1000 }, (_, i) => `m${i + 1}`),
      );

      hub.server.server.closeAllConnections();
      await waitFor(() => hub.hub.subscriberCount('news') === 0, 5000, 'the drop');
      for (let i = 1001; i <= 1200; i++) await hub.hub.publish('news', `m${i}`);
      await waitFor(() => received.length >= 1200, 15_000, 'the 200 after the drop');
      await new Promise((r) => setTimeout(r, 200)); // room for a duplicate to show up, if there were one
      assert.deepEqual(
        received.slice(1000),
        Array.from({ length: 200 }, (_, i) => `m${i + 1001}`),
      );
      assert.equal(received.length, 1200, 'no duplicates');
      assert.equal(lastEventIds.length, 2);
      assert.equal(lastEventIds[0], undefined);
      assert.match(lastEventIds[1]!, /^news~[A-Za-z0-9]+~1000$/, 'the reconnect carried the last id it saw');
    } finally {
      source.close();
    }
  });
});

const transports = [
  ['SSE (eventsource package)', sseSubscriber],
  ['chunked stream', streamSubscriber],
  ['long-poll', pollSubscriber],
] as const;

for (const [name, subscribe] of transports) {
  for (const channels of [['solo'], ['left', 'right']]) {
    test(`${name}, ${channels.length} channel(s): connections dropped mid-stream lose nothing and repeat ` +
      `nothing`, async () => {
      await withHub(async (hub) => {
        const query = channels.map((c) => `channel=${c}`).join('&');
        const subscriber = subscribe(hub, query);
        try {
          await waitFor(() => channels.every((c) => hub.hub.subscriberCount(c) === 1), 5000, 'the subscription');
          const total = 300;
          for (let i = 1; i <= total; i++) {
            const channel = channels[i % channels.length]!;
            await hub.hub.publish(channel, `${channel}-${i}`);
            // Cut every connection twice while messages keep coming, and let
            // the subscriber come back before the second cut.
            if (i === 100 || i === 200) hub.server.server.closeAllConnections();
            if (i === 150 || i === 250) {
              await waitFor(() => subscriber.connects >= (i === 150 ? 2 : 3), 10_000, 'the reconnect');
            }
            if (i % 10 === 0) await new Promise((r) => setImmediate(r));
          }
          await waitFor(() => subscriber.received.length >= total, 20_000, `${total} messages`);
          await new Promise((r) => setTimeout(r, 200));
          assert.equal(subscriber.received.length, total, 'no duplicates');
          for (const channel of channels) {
            const expected = Array.from({ length: total }, (_, i) => i + 1)
              .filter((i) => channels[i % channels.length] === channel)
              .map((i) => `${channel}-${i}`);
            assert.deepEqual(
              subscriber.received.filter((m) => m.data.startsWith(`${channel}-`)).map((m) => m.data),
              expected,
              `every message of ${channel}, in order`,
            );
          }
          assert.deepEqual(subscriber.gaps, [], 'nothing was lost, so no gap');
          assert.ok(subscriber.connects >= 3, `reconnected after each drop (connects: ${subscriber.connects})`);
        } finally {
          subscriber.close();
        }
      });
    });
  }
}

test('resuming from a cursor older than history gives a gap notice, then the retained messages (every ' +
  'transport)', async () => {
  const hub = await startHub({ memory: { history: { maxMessages: 10 } } });
  try {
    const first = await publish(hub.url, 'old', 'm1');
    for (let i = 2; i <= 30; i++) await publish(hub.url, 'old', `m${i}`);
    const cursor = first.id.replace(/~1$/, '~5');

    const poll = (await httpRequest(`${hub.url}/sub/old?transport=poll&since=${cursor}`)).json<{
      messages: { data: string; id: string }[];
      gaps: { reason: string; missed: { from: number; to: number }; id: string }[];
      cursor: string;
    }>();
    assert.deepEqual(
      poll.gaps.map((g) => [g.reason, g.missed]),
      [['history-truncated', { from: 6, to: 20 }]],
    );
    assert.deepEqual(
      poll.messages.map((m) => m.data),
      Array.from({ length: 10 }, (_, i) => `m${i + 21}`),
    );
    assert.match(poll.cursor, /~30$/);

    const stream = await StreamReader.open(`${hub.url}/sub/old?transport=stream&since=${cursor}`);
    await stream.waitFor((r) => r.json().some((l) => l.type === 'live'));
    stream.close();
    const lines = stream.json();
    assert.equal(lines[0]!.type, 'gap');
    assert.deepEqual(lines[0]!.missed, { from: 6, to: 20 });
    assert.deepEqual(
      lines.filter((l) => l.type === 'message').map((l) => l.data),
      poll.messages.map((m) => m.data),
    );

    const sse = await StreamReader.open(`${hub.url}/sub/old`, { 'Last-Event-ID': cursor });
    await sse.waitFor((r) => r.events().some((e) => e.data === 'm30'));
    sse.close();
    const events = sse.events().filter((e) => e.data !== undefined);
    assert.equal(events[0]!.event, 'kometa-gap');
    assert.deepEqual(JSON.parse(events[0]!.data!).missed, { from: 6, to: 20 });
    assert.match(events[0]!.id!, /~20$/, 'resuming from the gap notice does not report the gap again');
    assert.deepEqual(
      events.slice(1).map((e) => e.data),
      poll.messages.map((m) => m.data),
    );
  } finally {
    await hub.close();
  }
});

test('a cursor from an earlier lifetime of the channel (another epoch) gets an epoch-changed gap, then what is ' +
  'there', async () => {
  await withHub(async (hub) => {
    await publish(hub.url, 'reborn', 'after-restart');
    const body = (await httpRequest(`${hub.url}/sub/reborn?transport=poll&since=reborn~oldepoch~41`)).json<{
      messages: { data: string }[];
      gaps: { reason: string }[];
    }>();
    assert.deepEqual(
      body.gaps.map((g) => g.reason),
      ['epoch-changed'],
    );
    assert.deepEqual(
      body.messages.map((m) => m.data),
      ['after-restart'],
    );
  });
});

test('a cursor past the end of the channel is a 400', async () => {
  await withHub(async (hub) => {
    const { id } = await publish(hub.url, 'short', 'one');
    const res = await httpRequest(`${hub.url}/sub/short?transport=poll&since=${id.replace(/~1$/, '~99')}`);
    assert.equal(res.status, 400);
    assert.equal(res.json<{ code: string }>().code, 'KOMETA_ERR_CURSOR_AHEAD');
    assert.equal(hub.hub.subscriberCount('short'), 0, 'the rejected subscription left nothing behind');
  });
});
