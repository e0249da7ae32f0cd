// kometa's own durable store: segmented log + group commit (one write + one fdatasync per batch).
import { DurableBroker } from '../../../dist/src/brokers/durable.js';
import { KEEP_ALL } from './common.mjs';

export const native = false;

const options = (dir) => ({ dir, history: KEEP_ALL, maxTotalBytes: 2 ** 40 });

export async function open(dir) {
  const broker = await DurableBroker.open(options(dir)); // fsyncIntervalMs 0: publish resolves after fdatasync
  return {
    publish: (channel, data) => broker.publish(channel, data),
    close: () => broker.close(),
  };
}

/** Reopen: reads every segment back and rebuilds the in-memory index. */
export async function readAll(dir, channels) {
  const broker = await DurableBroker.open(options(dir));
  let count = 0;
  for (const channel of channels) count += (await broker.read(channel, 0)).messages.length;
  await broker.close();
  return count;
}
