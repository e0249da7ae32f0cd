import { MemoryBroker } from '../../src/brokers/memory.js';
import { brokerConformance } from './conformance.js';

brokerConformance({
  name: 'memory',
  boundsTotal: true,
  async make(t, setup = {}) {
    const broker = new MemoryBroker({ history: setup.history, clock: setup.clock, maxTotalBytes: setup.maxTotalBytes });
    t.after(() => broker.close());
    return broker;
  },
});
