import assert from 'node:assert/strict';
import { test } from 'node:test';
import { wsCloseCode } from '../../../src/core/errors.js';
import { WS_CLOSE, isHubErrorCloseCode } from '../../../src/protocol/websocket.js';

/* The client reads close codes from protocol/websocket.ts; the hub derives them from its error table. */
test('the close codes the client acts on are the ones the hub closes with', () => {
  assert.equal(wsCloseCode('KOMETA_ERR_WS_FRAME'), WS_CLOSE.badFrame);
  assert.equal(wsCloseCode('KOMETA_ERR_DISCONNECTED'), WS_CLOSE.disconnected);
  assert.equal(wsCloseCode('KOMETA_ERR_SLOW_CONSUMER'), WS_CLOSE.slowConsumer);
  assert.equal(wsCloseCode('KOMETA_ERR_DRAINING'), WS_CLOSE.goingAway);
  assert.equal(wsCloseCode('KOMETA_ERR_WS_BINARY'), WS_CLOSE.unsupportedData);
  assert.equal(wsCloseCode('KOMETA_ERR_INTERNAL'), WS_CLOSE.internalError);
  assert.ok(isHubErrorCloseCode(wsCloseCode('KOMETA_ERR_TOKEN_EXPIRED')));
  assert.ok(!isHubErrorCloseCode(WS_CLOSE.goingAway));
});
