// better-sqlite3 12.x: WAL, synchronous=FULL, one transaction per batch of pending publishes.
// better-sqlite3 is synchronous: the commit (and its fsync) runs on the main thread.
import Database from 'better-sqlite3';
import { join } from 'node:path';

export const native = true;

function db(dir) {
  const database = new Database(join(dir, 'kometa.sqlite'));
  database.pragma('journal_mode = WAL');
  database.pragma('synchronous = FULL');
  database.exec(`CREATE TABLE IF NOT EXISTS messages (
    channel TEXT NOT NULL, seq INTEGER NOT NULL, time INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (channel, seq)) WITHOUT ROWID`);
  return database;
}

export async function open(dir) {
  const database = db(dir);
  const insert = database.prepare('INSERT INTO messages VALUES (?, ?, ?, ?)');
  const commit = database.transaction((batch) => {
    for (const w of batch) insert.run(w.channel, w.seq, w.time, w.data);
  });
  const seqs = new Map();
  let queue = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const batch = queue;
    queue = [];
    try {
      commit(batch);
    } catch (error) {
      for (const w of batch) w.reject(error);
      return;
    }
    for (const w of batch) w.resolve(w.seq);
  };
  return {
    publish(channel, data) {
      const seq = (seqs.get(channel) ?? 0) + 1;
      seqs.set(channel, seq);
      return new Promise((resolve, reject) => {
        queue.push({ channel, seq, time: Date.now(), data, resolve, reject });
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush); // everything that arrives in this turn shares the transaction
        }
      });
    },
    close: async () => database.close(),
  };
}

export async function readAll(dir) {
  const database = db(dir);
  const index = new Map();
  let count = 0;
  for (const row of database.prepare('SELECT channel, seq, time, data FROM messages ORDER BY channel, seq').iterate()) {
    let list = index.get(row.channel);
    if (list === undefined) index.set(row.channel, (list = []));
    list.push(row);
    count++;
  }
  database.close();
  return count;
}
