import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseId } from '../../src/client/positions.js';
import {
  oldestPosition,
  planConnection,
  shareName,
  startingPositions,
  unionOfTabs,
} from '../../src/client/shared/plan.js';
import { shareIdentity } from '../../src/client/shared/tabs.js';

const at = (id: string) => parseId(id)!;

test('the shared connection resumes each channel from the oldest position any tab reports, so no tab loses one', () => {
  assert.equal(oldestPosition(['c~e1~7', 'c~e1~5', 'c~e1~9'])?.id, 'c~e1~5');
  // A tab that follows from now (null) does not hold the others back, and all from now means from now.
  assert.equal(oldestPosition([null, 'c~e1~9'])?.id, 'c~e1~9');
  assert.equal(oldestPosition([null, null]), undefined);
  // Two epochs cannot be ordered: the first stays, whatever the sequence numbers say.
  assert.equal(oldestPosition(['c~e2~9', 'c~e1~1'])?.id, 'c~e2~9');
  assert.equal(oldestPosition(['not an id', 'c~e1~3'])?.id, 'c~e1~3');
});

test('the union of the tabs holds every channel any tab follows', () => {
  const union = unionOfTabs([
    new Map([['a', 'a~e~4'], ['b', null]]),
    new Map([['a', 'a~e~2'], ['c', 'c~e~1']]),
    new Map(),
  ]);
  assert.deepEqual([...union].map(([c, p]) => [c, p?.id]), [['a', 'a~e~2'], ['b', undefined], ['c', 'c~e~1']]);
});

test('a new leader starts from its own positions, and from the others\' only on channels it does not follow', () => {
  const tabs = new Map([
    ['me', new Map([['a', 'a~e~90'], ['b', null]])],
    ['old', new Map([['a', 'a~e~3'], ['c', 'c~e~4']])],
  ]);
  const start = startingPositions(tabs, 'me');
  assert.deepEqual([...start.get('me')!], [['a', 'a~e~90'], ['b', null]]);
  assert.deepEqual([...start.get('old')!], [['a', null], ['c', 'c~e~4']]);
  assert.deepEqual([...unionOfTabs(start.values())].map(([c, p]) => [c, p?.id]), [
    ['a', 'a~e~90'],
    ['b', undefined],
    ['c', 'c~e~4'],
  ]);
});

test('the plan follows new channels, drops the ones no tab wants, and rewinds only for an older position', () => {
  const wanted = new Map([
    ['new', at('new~e~3')],
    ['behind', at('behind~e~5')],
    ['ahead', at('ahead~e~9')],
    ['now', undefined],
    ['fresh', at('fresh~e~2')],
    ['other-epoch', at('other-epoch~e2~1')],
  ]);
  const followed = new Map([
    ['behind', at('behind~e~8')],
    ['ahead', at('ahead~e~6')],
    ['now', at('now~e~4')],
    // Subscribed from now and nothing seen yet: no position to compare, so no rewind.
    ['fresh', undefined],
    ['other-epoch', at('other-epoch~e~7')],
    ['gone', at('gone~e~1')],
  ]);
  const plan = planConnection(wanted, followed, wanted);
  assert.deepEqual(plan.follow.map(([c, p]) => [c, p?.id]), [['new', 'new~e~3']]);
  assert.deepEqual(plan.rewind.map(([c, p]) => [c, p.id]), [['behind', 'behind~e~5']]);
  assert.deepEqual(plan.drop, ['gone']);
  assert.deepEqual(planConnection(new Map(), new Map()), { follow: [], rewind: [], drop: [] });
  // Old reports (not asked afresh) never send the connection back: it has served those tabs since.
  assert.deepEqual(planConnection(wanted, followed).rewind, []);
  const asked = new Map([['behind', at('behind~e~2')], ['ahead', at('ahead~e~1')]]);
  assert.deepEqual(planConnection(wanted, followed, asked).rewind.map(([c, p]) => [c, p.id]), [
    ['behind', 'behind~e~2'],
    ['ahead', 'ahead~e~1'],
  ]);
});

test('tabs share only with the same hub, transports and credentials', () => {
  const hub = new URL('https://hub.example/');
  const base = shareName(hub, ['websocket', 'sse'], false, 'x');
  assert.notEqual(shareName(new URL('https://other.example/'), ['websocket', 'sse'], false, 'x'), base);
  assert.notEqual(shareName(hub, ['sse'], false, 'x'), base);
  assert.notEqual(shareName(hub, ['websocket', 'sse'], true, 'x'), base);
  assert.notEqual(shareName(hub, ['websocket', 'sse'], false, 'y'), base);
  assert.equal(shareName(new URL('https://hub.example'), ['websocket', 'sse'], false, 'x'), base);
});

test('Node keeps a connection per client: sharing needs a page with Web Locks and BroadcastChannel', () => {
  assert.equal(shareIdentity({}), undefined);
  assert.equal(shareIdentity({ shareConnection: 'user-1' }), undefined);
});

test('in a page, credentials tabs cannot compare keep their own connection unless the application names them', (t) => {
  const g = globalThis as { document?: unknown; navigator?: unknown };
  const saved = { document: g.document, navigator: Object.getOwnPropertyDescriptor(globalThis, 'navigator') };
  Object.defineProperty(globalThis, 'navigator', { value: { locks: {} }, configurable: true });
  g.document = {};
  t.after(() => {
    if (saved.navigator === undefined) delete (globalThis as { navigator?: unknown }).navigator;
    else Object.defineProperty(globalThis, 'navigator', saved.navigator);
    if (saved.document === undefined) delete g.document;
  });
  const settings = ',,,,,,';
  assert.deepEqual(shareIdentity({}), { settings });
  assert.deepEqual(shareIdentity({ token: 'abc' }), { settings, token: 'abc' });
  // The leader's settings rule the shared connection: tabs with other ones keep to themselves.
  assert.deepEqual(shareIdentity({ backoff: { baseMs: 50 }, idleTimeoutMs: 9 }), { settings: '50,,,,9,,' });
  assert.equal(shareIdentity({ random: () => 0.5 }), undefined);
  assert.equal(shareIdentity({ shareConnection: false }), undefined);
  assert.equal(shareIdentity({ clientId: 'tab-7' }), undefined);
  const ticket = () => 'tkt';
  assert.equal(shareIdentity({ ticket }), undefined);
  assert.equal(shareIdentity({ token: () => 'abc' }), undefined);
  assert.equal(shareIdentity({ fetch: () => undefined }), undefined);
  assert.equal(shareIdentity({ transports: ['sse', { name: 'sse' }] }), undefined);
  assert.deepEqual(shareIdentity({ ticket, shareConnection: 'user-42' }), { settings, key: 'user-42' });
});
