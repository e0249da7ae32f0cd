import { DurableBroker } from '../brokers/durable.js';
import { FileIdempotencyStore } from '../brokers/idempotency-file.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisControlBus, RedisIdempotencyStore } from '../brokers/redis-backend.js';
import { FileRevocationStore, RedisRevocationStore } from '../brokers/revocation-stores.js';
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
function create(broker: Broker): BackendServices {
  if (broker instanceof RedisBroker) {
    const { commands, subscriber, prefix } = broker.links;
    return {
      idempotency: new RedisIdempotencyStore(commands, prefix),
      control: new RedisControlBus(commands, subscriber, prefix),
      revocations: new RedisRevocationStore(commands, prefix),
    };
  }
  if (broker instanceof DurableBroker) {
    return {
      idempotency: FileIdempotencyStore.open(broker.dataDir),
      control: new LocalControlBus(),
      revocations: new FileRevocationStore(broker.dataDir),
    };
  }
  return { idempotency: new MemoryIdempotencyStore(), control: new LocalControlBus() };
}

const shared = new WeakMap<Broker, { services: BackendServices; users: number }>();

/**
 * The services of `broker`, shared by every server of this process on it (a
 * proxy's public port and its control port keep the same keys, and an order
 * sent on one reaches connections on the other). `release` closes them when
 * the last server lets go.
 */
export function acquireBackendServices(broker: Broker): { services: BackendServices; release: () => Promise<void> } {
  let entry = shared.get(broker);
  if (entry === undefined) {
    entry = { services: create(broker), users: 0 };
    shared.set(broker, entry);
  }
  entry.users++;
  const held = entry;
  let released = false;
  return {
    services: held.services,
    release: async () => {
      if (released) return;
      released = true;
      if (--held.users > 0) return;
      shared.delete(broker);
      const store = await held.services.idempotency;
      await Promise.all([store.close(), held.services.control.close()]);
    },
  };
}
