import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  CHANNEL_NAME_PATTERN,
  formatCursor,
  formatId,
  parseCursorText,
  parseId,
} from '../../../src/protocol/cursor.js';
import type { GapNotice } from '../../../src/protocol/gap.js';
import { type PollBody, encodePollBody, parsePollBody } from '../../../src/protocol/long-poll.js';
import { type StreamLine, encodeStreamLine, parseStreamLine } from '../../../src/protocol/ndjson.js';
import {
  SseParser,
  encodeSseError,
  encodeSseEvent,
  encodeSseGap,
  encodeSseMessage,
  encodeSseShutdown,
  parseKometaEvent,
  parseSse,
} from '../../../src/protocol/sse.js';
import {
  type ClientFrame,
  type ServerFrame,
  encodeClientFrame,
  encodeServerFrame,
  gapFrame,
  parseClientFrame,
  parseServerFrame,
} from '../../../src/protocol/websocket.js';
import {
  PRESENCE_EVENTS,
  type PresenceMemberData,
  encodePresenceData,
  parsePresenceData,
  presenceKindOf,
} from '../../../src/protocol/presence.js';

/*
 * parse(encode(x)) equals x for every wire format, for any channel name, event
 * name and data, including CR, LF, CRLF, empty strings, non-BMP characters and
 * lone surrogates. Where a format cannot carry something, the test says what
 * it does instead: SSE turns CR and CRLF in data into LF, and a lone surrogate
 * into U+FFFD once the text is UTF-8 bytes; the JSON formats keep both.
 */

const RUNS = { numRuns: 300 };
const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code));
const piece = fc.oneof(
  fc.constantFrom('\r', '\n', '\r\n', '', ' ', ':', 'data: x', '\u0000', '~', ',', '"', '\\'),
  fc.string({ unit: 'grapheme' }),
  fc.string({ unit: 'binary' }),
  loneSurrogate,
);
const text = fc.array(piece, { maxLength: 8 }).map((parts) => parts.join(''));
const channel = fc.stringMatching(CHANNEL_NAME_PATTERN);
const epoch = fc.stringMatching(/^[A-Za-z0-9]{1,32}$/);
const seq = fc.nat({ max: Number.MAX_SAFE_INTEGER });
/** What an SSE event name or id may hold: anything but CR, LF and NUL. */
const sseField = text.map((value) => value.replace(/[\r\n\u0000]/g, ''));
const eventName = fc.option(sseField.filter((name) => name !== ''), { nil: undefined });
const gap: fc.Arbitrary<GapNotice> = fc.record(
  {
    channel,
    reason: fc.constantFrom('history-truncated' as const, 'epoch-changed' as const),
    epoch,
    missed: fc.record({ from: seq, to: seq }, { noNullPrototype: true }),
  },
  { noNullPrototype: true, requiredKeys: ['channel', 'reason', 'epoch'] },
);
const cursorMap = fc
  .uniqueArray(fc.tuple(channel, epoch, seq), { selector: ([name]) => name, minLength: 1, maxLength: 8 })
  .map((entries) => new Map(entries.map(([name, e, s]) => [name, { epoch: e, seq: s }])));
const cursorText = cursorMap.map((map) => formatCursor(map));

function sseLines(data: string): string {
  return data.replace(/\r\n|\r/g, '\n');
}

function viaUtf8(value: string): string {
  return new TextDecoder().decode(new TextEncoder().encode(value));
}

test('cursor: parseCursorText(formatCursor(x)) and parseId(formatId(x)) give x back', () => {
  fc.assert(
    fc.property(cursorMap, (map) => assert.deepEqual(parseCursorText(formatCursor(map), 256), map)),
    RUNS,
  );
  fc.assert(
    fc.property(channel, epoch, seq, (c, e, s) => {
      const id = formatId(c, e, s);
      assert.deepEqual(parseId(id), { channel: c, epoch: e, seq: s, id });
    }),
    RUNS,
  );
});

test('SSE: a message comes back with its id, event and data (CR and CRLF in data become LF)', () => {
  fc.assert(
    fc.property(cursorText, eventName, text, (id, event, data) => {
      const encoded = encodeSseMessage(id, event, data);
      assert.equal(encoded, encodeSseEvent({ id, event, data }), 'the hot path writes what the general encoder does');
      assert.deepEqual(parseSse(encoded), [{ type: event ?? 'message', data: sseLines(data), hasData: true, id }]);
    }),
    RUNS,
  );
});

const sseEvents = fc.array(fc.tuple(sseField, eventName, text), { minLength: 1, maxLength: 4 });

test('SSE: split anywhere and sent as UTF-8, the stream parses the same (lone surrogates become U+FFFD)', () => {
  fc.assert(
    fc.property(sseEvents, fc.nat(), (items, at0) => {
      const stream = items.map(([id, event, data]) => encodeSseEvent({ retry: 1000, id, event, data })).join('');
      const bytes = new TextEncoder().encode(stream);
      const at = at0 % (bytes.length + 1);
      const decoder = new TextDecoder();
      const parser = new SseParser();
      const events: unknown[] = [];
      parser.feed(decoder.decode(bytes.subarray(0, at), { stream: true }), (e) => events.push(e));
      parser.feed(decoder.decode(bytes.subarray(at), { stream: true }), (e) => events.push(e));
      const expected = items.map(([id, event, data]) => ({
        type: viaUtf8(event ?? 'message'),
        data: viaUtf8(sseLines(data)),
        hasData: true,
        id: viaUtf8(id),
      }));
      assert.deepEqual(events, expected);
    }),
    RUNS,
  );
});

test('SSE: the hub\'s own events (gap, error, shutdown) come back as sent', () => {
  fc.assert(
    fc.property(gap, cursorText, text, text, fc.integer({ min: 1, max: 1e9 }), (notice, id, code, detail, retryMs) => {
      assert.deepEqual(parseSse(encodeSseGap(notice, id)).map(parseKometaEvent), [{ kind: 'gap', gap: notice, id }]);
      assert.deepEqual(parseSse(encodeSseError(code, detail)).map(parseKometaEvent), [{ kind: 'error', code, detail }]);
      assert.deepEqual(parseSse(encodeSseShutdown(retryMs)).map(parseKometaEvent), [{ kind: 'shutdown', retryMs }]);
    }),
    RUNS,
  );
});

test('SSE: the encoder refuses an id or event name that would break the framing', () => {
  for (const bad of ['a\nb', 'a\rb', 'a\u0000b']) {
    assert.throws(() => encodeSseEvent({ id: bad }), RangeError);
    assert.throws(() => encodeSseEvent({ event: bad, data: 'x' }), RangeError);
  }
});

const streamLine: fc.Arbitrary<StreamLine> = fc.oneof(
  fc.record(
    { type: fc.constant('message' as const), channel, id: cursorText, event: sseField, data: text },
    { noNullPrototype: true, requiredKeys: ['type', 'channel', 'id', 'data'] },
  ),
  fc.tuple(gap, cursorText).map(([notice, id]) => ({ type: 'gap' as const, ...notice, id })),
  cursorText.map((cursor) => ({ type: 'live' as const, cursor })),
  fc.constant({ type: 'heartbeat' as const }),
  fc.nat().map((retryMs) => ({ type: 'shutdown' as const, retryMs })),
  fc.record({ type: fc.constant('error' as const), code: text, detail: text }, { noNullPrototype: true }),
);

test('NDJSON: every line type comes back exactly, lone surrogates included, as one line of UTF-8', () => {
  fc.assert(
    fc.property(streamLine, (line) => {
      const encoded = encodeStreamLine(line);
      assert.equal(encoded.indexOf('\n'), encoded.length - 1, 'one line');
      assert.deepEqual(parseStreamLine(viaUtf8(encoded)), line);
    }),
    RUNS,
  );
});

const pollBody: fc.Arbitrary<PollBody> = fc.record(
  {
    messages: fc.array(
      fc.record(
        { channel, id: cursorText, event: sseField, data: text },
        { noNullPrototype: true, requiredKeys: ['channel', 'id', 'data'] },
      ),
      { maxLength: 5 },
    ),
    cursor: fc.oneof(fc.constant(''), cursorText),
    gaps: fc.array(
      fc.tuple(gap, cursorText).map(([notice, id]) => ({ ...notice, id })),
      { minLength: 1, maxLength: 3 },
    ),
  },
  { noNullPrototype: true, requiredKeys: ['messages', 'cursor'] },
);

test('long-poll: the body comes back exactly, lone surrogates included', () => {
  fc.assert(
    fc.property(pollBody, (body) => assert.deepEqual(parsePollBody(viaUtf8(encodePollBody(body))), body)),
    RUNS,
  );
});

const ref = fc.oneof(fc.integer(), fc.string({ maxLength: 64 }));
const clientFrame: fc.Arbitrary<ClientFrame> = fc.oneof(
  fc.record(
    { type: fc.constant('subscribe' as const), channel: text, cursor: text, presence: fc.constant(true), ref },
    { noNullPrototype: true, requiredKeys: ['type', 'channel'] },
  ),
  fc.record(
    { type: fc.constant('unsubscribe' as const), channel: text, ref },
    { noNullPrototype: true, requiredKeys: ['type', 'channel'] },
  ),
  fc.record(
    {
      type: fc.constant('publish' as const),
      channel: text,
      data: text,
      event: text,
      idempotencyKey: text,
      exclude: fc.oneof(fc.constant(true as const), text),
      ref,
    },
    { noNullPrototype: true, requiredKeys: ['type', 'channel', 'data'] },
  ),
  fc.record({ type: fc.constant('ping' as const), ref }, { noNullPrototype: true, requiredKeys: ['type'] }),
);

const serverFrame: fc.Arbitrary<ServerFrame> = fc.oneof(
  fc.record(
    { type: fc.constant('message' as const), channel, id: cursorText, event: sseField, data: text },
    { noNullPrototype: true, requiredKeys: ['type', 'channel', 'id', 'data'] },
  ),
  fc.tuple(gap, cursorText).map(([notice, id]) => gapFrame(notice, id)),
  fc.record(
    { type: fc.constant('subscribed' as const), channel, cursor: cursorText, ref },
    { noNullPrototype: true, requiredKeys: ['type', 'channel', 'cursor'] },
  ),
  fc.record(
    { type: fc.constant('published' as const), channel, id: cursorText, subscribers: fc.nat(), ref },
    { noNullPrototype: true, requiredKeys: ['type', 'channel', 'id', 'subscribers'] },
  ),
  fc.record({ type: fc.constant('pong' as const), ref }, { noNullPrototype: true, requiredKeys: ['type'] }),
  fc.record(
    {
      type: fc.constant('error' as const),
      code: text,
      status: fc.nat(),
      title: text,
      detail: text,
      channel: text,
      ref,
    },
    { noNullPrototype: true, requiredKeys: ['type', 'code', 'status', 'title', 'detail'] },
  ),
);

test('WebSocket: client and server frames come back exactly, lone surrogates included', () => {
  fc.assert(
    fc.property(clientFrame, (f) => assert.deepEqual(parseClientFrame(viaUtf8(encodeClientFrame(f))), f)),
    RUNS,
  );
  fc.assert(
    fc.property(serverFrame, (f) => assert.deepEqual(parseServerFrame(viaUtf8(encodeServerFrame(f))), f)),
    RUNS,
  );
});

const presenceMember: fc.Arbitrary<PresenceMemberData> = fc.record(
  {
    client: text,
    user: fc.option(text, { nil: null }),
    info: fc.oneof(fc.constant(null), fc.jsonValue().filter((v) => v !== null)),
    transport: fc.constantFrom('sse', 'stream', 'poll', 'ws', 'library'),
    since: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  },
  { noNullPrototype: true },
);
const presenceKind = fc.constantFrom('join' as const, 'leave' as const);

test('presence: a join or leave comes back as itself through SSE, NDJSON, long-poll and WebSocket', () => {
  fc.assert(
    fc.property(presenceKind, presenceMember, channel, cursorText, (kind, member, name, id) => {
      const event = PRESENCE_EVENTS[kind];
      const data = encodePresenceData(member);
      // JSON of the member: one line, no lone surrogate left bare, so even SSE carries it exactly.
      const back = (got: { event?: string | undefined; data: string }) => {
        assert.equal(presenceKindOf(got.event), kind);
        assert.deepEqual(parsePresenceData(got.data), JSON.parse(JSON.stringify(member)));
      };
      const [sse] = parseSse(viaUtf8(encodeSseMessage(id, event, data)));
      back({ event: sse!.type, data: sse!.data });
      const line = parseStreamLine(viaUtf8(encodeStreamLine({ type: 'message', channel: name, id, event, data })));
      assert.equal(line.type, 'message');
      if (line.type === 'message') back(line);
      const body = encodePollBody({ messages: [{ channel: name, id, event, data }], cursor: id });
      const poll = parsePollBody(viaUtf8(body));
      back(poll.messages[0]!);
      const frame = parseServerFrame(viaUtf8(encodeServerFrame({ type: 'message', channel: name, id, event, data })));
      if (frame.type === 'message') back(frame);
      else assert.fail(`a ${frame.type} frame`);
    }),
    RUNS,
  );
  assert.equal(presenceKindOf('kometa-gap'), undefined);
  assert.equal(presenceKindOf(undefined), undefined);
  assert.throws(() => parsePresenceData('{"client":1}'), SyntaxError);
});
