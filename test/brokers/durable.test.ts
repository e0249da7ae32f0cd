import { DurableBroker } from '../../src/brokers/durable.js';
import { tempDataDir } from '../helpers/data-dir.js';
import { brokerConformance } from './conformance.js';

brokerConformance({
  name: 'durable',
  boundsTotal: true,
  async make(t, setup = {}) {
    const broker = await DurableBroker.open({
      dir: tempDataDir('conformance'),
      history: setup.history,
      clock: setup.clock,
      maxTotalBytes: setup.maxTotalBytes,
    });
    t.after(() => broker.close());
    return broker;
  },
});
