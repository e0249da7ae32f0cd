// classic-level (LevelDB): one batch({ sync: true }) per batch of pending publishes, one in flight at a time.
import { ClassicLevel } from 'classic-level';
import { join } from 'node:path';

export const native = true;

const key = (channel, seq) => `${channel}\u0000${String(seq).padStart(12, '0')}`;
const db = (dir) => new ClassicLevel(join(dir, 'level'), { keyEncoding: 'utf8', valueEncoding: 'utf8' });

export async function open(dir) {
  const database = db(dir);
  await database.open();
  const seqs = new Map();
  let queue = [];
  let flushing = false;
  const flush = async () => {
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      try {
        await database.batch(batch.map((w) => ({ type: 'put', key: key(w.channel, w.seq), value: `${w.time}|${w.data}` })), { sync: true });
      } catch (error) {
        for (const w of batch) w.reject(error);
        continue;
      }
      for (const w of batch) w.resolve(w.seq);
    }
    flushing = false;
  };
  return {
    publish(channel, data) {
      const seq = (seqs.get(channel) ?? 0) + 1;
      seqs.set(channel, seq);
      return new Promise((resolve, reject) => {
        queue.push({ channel, seq, time: Date.now(), data, resolve, reject });
        if (!flushing) {
          flushing = true;
          setImmediate(flush);
        }
      });
    },
    close: () => database.close(),
  };
}

export async function readAll(dir) {
  const database = db(dir);
  await database.open();
  const index = new Map();
  let count = 0;
  const iterator = database.iterator();
  for (let entries = await iterator.nextv(1000); entries.length > 0; entries = await iterator.nextv(1000)) {
    for (const [k, v] of entries) {
      const cut = k.indexOf('\u0000');
      const bar = v.indexOf('|');
      const channel = k.slice(0, cut);
      let list = index.get(channel);
      if (list === undefined) index.set(channel, (list = []));
      list.push({ channel, seq: Number(k.slice(cut + 1)), time: Number(v.slice(0, bar)), data: v.slice(bar + 1) });
      count++;
    }
  }
  await iterator.close();
  await database.close();
  return count;
}
