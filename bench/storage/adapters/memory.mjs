// Baseline: kometa's in-memory broker (what `kometa serve --memory` uses). No disk.
import { MemoryBroker } from '../../../dist/src/brokers/memory.js';
import { KEEP_ALL } from './common.mjs';

export const native = false;

export async function open() {
  const broker = new MemoryBroker({ history: KEEP_ALL, maxTotalBytes: 2 ** 40 });
  return {
    publish: (channel, data) => broker.publish(channel, data),
    close: () => broker.close(),
  };
}

export async function readAll() {
  return null; // nothing survives a restart
}
