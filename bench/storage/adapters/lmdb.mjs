// lmdb-js: its own batching (writes of one event turn share one transaction, committed off the main thread);
// a publish counts as stored only once that transaction is flushed (separateFlushed: await .flushed).
import { open as openLmdb } from 'lmdb';
import { join } from 'node:path';

export const native = true;

const db = (dir) => openLmdb({ path: join(dir, 'data.mdb'), encoding: 'string', separateFlushed: true });

export async function open(dir) {
  const database = db(dir);
  const seqs = new Map();
  return {
    async publish(channel, data) {
      const seq = (seqs.get(channel) ?? 0) + 1;
      seqs.set(channel, seq);
      const committed = database.put([channel, seq], `${Date.now()}|${data}`);
      await Promise.all([committed, committed.flushed]);
      return seq;
    },
    close: () => database.close(),
  };
}

export async function readAll(dir) {
  const database = db(dir);
  const index = new Map();
  let count = 0;
  for (const { key, value } of database.getRange()) {
    const [channel, seq] = key;
    const bar = value.indexOf('|');
    let list = index.get(channel);
    if (list === undefined) index.set(channel, (list = []));
    list.push({ channel, seq, time: Number(value.slice(0, bar)), data: value.slice(bar + 1) });
    count++;
  }
  await database.close();
  return count;
}
