import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tempDataDir } from '../helpers/data-dir.js';
import { httpRequest, publish, waitFor } from '../helpers/hub.js';
import { type KometaProcess, epochOf, seqOf, sseCollector, startKometa } from '../helpers/redis.js';
import { StreamReader } from '../helpers/streams.js';
import { openSocket } from '../ws/helpers.js';

const CHANNELS = Array.from({ length: 10 }, (_, i) => `room${i}`);
const PER_CHANNEL = 100;

type Ids = Map<string, string[]>;

async function startHub(t: { after(fn: () => Promise<void>): void }, dir: string): Promise<KometaProcess> {
  const hub = await startKometa(['--data-dir', dir, '--publish-rate', '0', '--log-level', 'warn']);
  t.after(() => hub.kill());
  return hub;
}

async function publishAll(hub: KometaProcess): Promise<Ids> {
  const ids: Ids = new Map(CHANNELS.map((c) => [c, []]));
  await Promise.all(
    CHANNELS.map(async (channel) => {
      for (let i = 1; i <= PER_CHANNEL; i++)
        ids.get(channel)!.push((await publish(hub.url, channel, `${channel}:${i}`)).id);
    }),
  );
  return ids;
}

/** What a subscriber holding the cursor after message `seen` of `channel` must get: the rest, once, in order. */
function expectedAfter(channel: string, seen: number): string[] {
  return Array.from({ length: PER_CHANNEL - seen }, (_, i) => `${channel}:${seen + i + 1}`);
}

async function viaSse(
  url: string,
  channel: string,
  cursor: string,
  count: number,
): Promise<{ data: string[]; gaps: number }> {
  const sse = sseCollector(`${url}/sub/${channel}?lastEventId=${encodeURIComponent(cursor)}`);
  try {
    await waitFor(() => sse.received.length >= count, 10_000, `${count} SSE messages on ${channel}`);
    return { data: sse.received.map((m) => m.data), gaps: sse.gaps.length };
  } finally {
    sse.close();
  }
}

async function viaStream(url: string, channel: string, cursor: string): Promise<{ data: string[]; gaps: number }> {
  const reader = await StreamReader.open(`${url}/sub/${channel}?transport=stream&since=${encodeURIComponent(cursor)}`);
  try {
    await reader.waitFor((r) => r.text.includes('"type":"live"'), 10_000, 'the live line');
    const lines = reader.json<{ type: string; data?: string }>();
    return {
      data: lines.filter((l) => l.type === 'message').map((l) => l.data!),
      gaps: lines.filter((l) => l.type === 'gap').length,
    };
  } finally {
    reader.close();
  }
}

async function viaPoll(
  url: string,
  channel: string,
  cursor: string,
  count: number,
): Promise<{ data: string[]; gaps: number }> {
  const data: string[] = [];
  let gaps = 0;
  let since = cursor;
  while (data.length < count) {
    const answer = (
      await httpRequest(`${url}/sub/${channel}?transport=poll&timeout=5&since=${encodeURIComponent(since)}`)
    ).json<{
      messages: { data: string }[];
      cursor: string;
      gaps?: unknown[];
    }>();
    data.push(...answer.messages.map((m) => m.data));
    gaps += answer.gaps?.length ?? 0;
    since = answer.cursor;
  }
  return { data, gaps };
}

async function viaWebSocket(
  url: string,
  channel: string,
  cursor: string,
  count: number,
): Promise<{ data: string[]; gaps: number }> {
  const socket = await openSocket(url);
  try {
    socket.send({ type: 'subscribe', channel, cursor });
    await socket.next('subscribed');
    const data: string[] = [];
    while (data.length < count) data.push((await socket.next('message', 10_000)).data as string);
    return { data, gaps: socket.frames.filter((f) => f.type === 'gap').length };
  } finally {
    await socket.close();
  }
}

test(
  'after SIGKILL and a restart on the same data dir, every transport resumes from any cursor with no gap and no ' +
    'duplicate',
  { timeout: 120_000 },
  async (t) => {
    const dir = tempDataDir('restart');
    const first = await startHub(t, dir);
    const ids = await publishAll(first);
    await first.kill('SIGKILL');

    const hub = await startHub(t, dir);
    const transports = ['sse', 'stream', 'poll', 'ws'] as const;
    for (const [c, channel] of CHANNELS.entries()) {
      for (const [n, transport] of transports.entries()) {
        // A different cursor for every pair: from the first message to the last but one.
        const seen = 1 + ((c * 37 + n * 23) % (PER_CHANNEL - 1));
        const cursor = ids.get(channel)![seen - 1]!;
        const expected = expectedAfter(channel, seen);
        const got =
          transport === 'sse'
            ? await viaSse(hub.url, channel, cursor, expected.length)
            : transport === 'stream'
              ? await viaStream(hub.url, channel, cursor)
              : transport === 'poll'
                ? await viaPoll(hub.url, channel, cursor, expected.length)
                : await viaWebSocket(hub.url, channel, cursor, expected.length);
        assert.deepEqual(got.data, expected, `${transport} on ${channel} after message ${seen}`);
        assert.equal(got.gaps, 0, `no gap notice for ${transport} on ${channel}`);
      }
    }

    // One subscription over all ten channels, with the cursor a client had for all of them.
    const cursor = CHANNELS.map((channel) => ids.get(channel)![49]!).join(',');
    const all = sseCollector(
      `${hub.url}/sub?${CHANNELS.map((c) => `channel=${c}`).join('&')}&lastEventId=${encodeURIComponent(cursor)}`,
    );
    t.after(async () => all.close());
    await waitFor(() => all.received.length >= 500, 10_000, 'the 500 messages after the cursor');
    assert.equal(all.gaps.length, 0);
    for (const channel of CHANNELS) {
      assert.deepEqual(
        all.received.filter((m) => m.data.startsWith(`${channel}:`)).map((m) => m.data),
        expectedAfter(channel, 50),
      );
    }

    // The sequence continues in the same epoch.
    for (const channel of CHANNELS) {
      const next = await publish(hub.url, channel, 'after the restart');
      assert.equal(epochOf(next.id), epochOf(ids.get(channel)![0]!));
      assert.equal(seqOf(next.id), PER_CHANNEL + 1);
    }
  },
);

test(
  'every publish answered 201 before a SIGKILL is there after the restart, kill after kill',
  { timeout: 90_000 },
  async (t) => {
    const dir = tempDataDir('kill-in-flight');
    const acknowledged = new Map<string, string[]>(CHANNELS.map((c) => [c, []]));
    // Three crashes at different moments of a stream of publishes, on one data dir.
    for (const [round, killAfter] of [150, 420, 777].entries()) {
      const hub = await startHub(t, dir);
      let stop = false;
      let count = 0;
      const publishers = CHANNELS.map(async (channel) => {
        for (let i = 1; !stop && i <= 5_000; i++) {
          try {
            acknowledged.get(channel)!.push((await publish(hub.url, channel, `${channel}:${round}:${i}`)).id);
            count++;
          } catch {
            return; // the process is gone: this publish was never answered
          }
        }
      });
      await waitFor(() => count >= killAfter, 30_000, `${killAfter} acknowledged publishes`);
      await hub.kill('SIGKILL');
      stop = true;
      await Promise.all(publishers);
    }

    const again = await startHub(t, dir);
    for (const channel of CHANNELS) {
      const mine = acknowledged.get(channel)!;
      assert.ok(mine.length > 0);
      const start = `${channel}~${epochOf(mine[0]!)}~0`;
      const stored: string[] = [];
      let since = start;
      for (;;) {
        const answer = (
          await httpRequest(`${again.url}/sub/${channel}?transport=poll&timeout=0&since=${encodeURIComponent(since)}`)
        ).json<{
          messages: { id: string }[];
          cursor: string;
          gaps?: unknown[];
        }>();
        assert.equal(answer.gaps, undefined, `no gap in ${channel}`);
        if (answer.messages.length === 0) break;
        stored.push(...answer.messages.map((m) => m.id));
        since = answer.cursor;
      }
      // One epoch, positions 1, 2, 3 … with no hole and no repeat, across three crashes.
      assert.deepEqual(
        stored.map(seqOf),
        Array.from({ length: stored.length }, (_, i) => i + 1),
      );
      assert.ok(stored.every((id) => epochOf(id) === epochOf(mine[0]!)));
      const kept = new Set(stored);
      assert.deepEqual(
        mine.filter((id) => !kept.has(id)),
        [],
        `every acknowledged message of ${channel} is there`,
      );
      // Publishes written but not yet answered when a process died are kept too: at most one per publisher per crash.
      assert.ok(stored.length <= mine.length + 3, `${channel}: at most the unanswered publishes in flight are extra`);
    }
  },
);

test(
  'kometa serve refuses an unusable --data-dir with one line, and --memory needs none',
  { timeout: 30_000 },
  async (t) => {
    const file = `${tempDataDir('not-a-dir')}/file`;
    await import('node:fs').then((fs) => fs.writeFileSync(file, 'x'));
    await assert.rejects(startKometa(['--data-dir', `${file}/data`]), (error: Error) => {
      assert.match(error.message, /kometa serve: cannot use .*file\/data as the data directory: ENOTDIR/);
      assert.doesNotMatch(error.message, /\n\s+at /, 'no stack trace');
      return true;
    });
    const memory = await startKometa(['--memory']);
    t.after(() => memory.kill());
    assert.match(memory.output(), /history +in memory only \(--memory\)/);
    const durable = await startHub(t, tempDataDir('banner'));
    assert.match(durable.output(), /history +on disk in \/\S+ \(fsync'd before every 201\)/);
  },
);
