import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventSource } from 'eventsource';
import { MemoryBroker } from '../../src/brokers/memory.js';
import { KometaError } from '../../src/core/errors.js';
import type { ChannelHead } from '../../src/core/message.js';
import { httpRequest, startHub, waitFor } from '../helpers/hub.js';

/** A store that can be switched off, as Redis can go away. */
class SwitchableBroker extends MemoryBroker {
  down = false;
  override async head(channel: string): Promise<ChannelHead> {
    if (this.down) throw new KometaError('KOMETA_ERR_BROKER_UNAVAILABLE');
    return super.head(channel);
  }
}

test('an EventSource that connects while the store is down is told to retry, and comes back by itself', async (t) => {
  const broker = new SwitchableBroker();
  broker.down = true;
  const hub = await startHub({ broker, http: { retryMs: 100 } });
  t.after(() => hub.close());
  let attempts = 0;
  hub.server.server.on('request', (req) => req.url?.startsWith('/sub') && attempts++);
  const source = new EventSource(`${hub.url}/sub/later`);
  t.after(() => source.close());
  const errors: string[] = [];
  const received: string[] = [];
  source.addEventListener('kometa-error', (event) => errors.push(JSON.parse(event.data).code));
  source.onmessage = (event) => received.push(event.data);
  await waitFor(() => attempts >= 3, 5000, 'a few attempts during the outage');
  assert.ok(errors.every((code) => code === 'KOMETA_ERR_BROKER_UNAVAILABLE') && errors.length >= 2);
  assert.notEqual(source.readyState, EventSource.CLOSED, 'EventSource did not give up');

  const poll = await httpRequest(`${hub.url}/sub/later?transport=poll`);
  assert.equal(poll.status, 503, 'other transports get the plain 503');

  broker.down = false;
  await waitFor(() => hub.hub.subscriberCount('later') === 1, 5000, 'the subscriber to be back');
  await hub.hub.publish('later', 'after the outage');
  await waitFor(() => received.length === 1, 5000, 'the message');
  assert.deepEqual(received, ['after the outage']);
});
