import { DurableBroker } from '../brokers/durable.js';
import { FileIdempotencyStore } from '../brokers/idempotency-file.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisControlBus, RedisIdempotencyStore } from '../brokers/redis-backend.js';
import type { Broker } from '../core/broker.js';
import { LocalControlBus } from '../core/control.js';
import { MemoryIdempotencyStore } from '../core/idempotency.js';
import type { BackendServices } from './backend-routes.js';

/**
 * Where the backend API keeps its state, following the broker: with Redis,
 * idempotency keys in Redis and disconnect orders over its pub/sub (every node
 * sharing it agrees); with the durable store, keys in `idempotency.log` in
 * its data directory (they survive a restart); in memory otherwise.
 */
export function backendServicesFor(broker: Broker): BackendServices {
  if (broker instanceof RedisBroker) {
    const { commands, subscriber, prefix } = broker.links;
    return { idempotency: new RedisIdempotencyStore(commands, prefix), control: new RedisControlBus(commands, subscriber, prefix) };
  }
  if (broker instanceof DurableBroker) return { idempotency: FileIdempotencyStore.open(broker.dataDir), control: new LocalControlBus() };
  return { idempotency: new MemoryIdempotencyStore(), control: new LocalControlBus() };
}
