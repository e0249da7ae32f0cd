import { type FileHandle, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { type KeyState, MAX_IDEMPOTENCY_KEYS, MemoryIdempotencyStore } from '../core/idempotency.js';

/** The file beside the durable store's segments; the store itself never reads it. */
export const IDEMPOTENCY_FILE = 'idempotency.log';

/**
 * Idempotency keys that survive a restart: the durable store's companion. Keys
 * are held in memory (as MemoryIdempotencyStore) and every completed key is
 * appended to `idempotency.log` in the data directory, one JSON line
 * `{"k","f","r","e"}` (key, fingerprint, answer, expiry in ms since 1970), and
 * fsync'd before its publish is answered: keys that complete together share
 * one write and one fsync. At start the file is read back (expired lines and
 * a torn last line are dropped) and rewritten with only what is still in its
 * window; it is rewritten the same way whenever it holds twice as many lines
 * as live keys, so it stays bounded by the window.
 *
 * Reservations (a publish in progress) are not written: a process that dies
 * mid-publish leaves no pending key behind, and a retry after the restart
 * publishes (the message may then exist twice if the first attempt was
 * stored but not answered, as docs/storage.md says of any publish).
 */
export class FileIdempotencyStore extends MemoryIdempotencyStore {
  #file: FileHandle;
  #lines: number;
  #queue: { line: string; done: () => void; failed: (error: unknown) => void }[] = [];
  #writing: Promise<void> | undefined;
  #closed = false;
  #checkedAt = 0;

  private constructor(
    readonly path: string,
    file: FileHandle,
    lines: number,
    maxKeys: number,
    now: () => number,
  ) {
    super(maxKeys, now);
    this.#file = file;
    this.#lines = lines;
  }

  static async open(
    dir: string,
    options: { maxKeys?: number; now?: () => number } = {},
  ): Promise<FileIdempotencyStore> {
    const path = join(dir, IDEMPOTENCY_FILE);
    const now = options.now ?? Date.now;
    let text = '';
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const live = new Map<string, { f: string; r: string; e: number }>();
    for (const line of text.split('\n')) {
      if (line === '') continue;
      let entry: { k?: unknown; f?: unknown; r?: unknown; e?: unknown };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        break; // a torn last line: the process died while writing it, before its publish was answered
      }
      if (
        typeof entry.k !== 'string' ||
        typeof entry.f !== 'string' ||
        typeof entry.r !== 'string' ||
        typeof entry.e !== 'number'
      )
        break;
      if (entry.e > now()) live.set(entry.k, { f: entry.f, r: entry.r, e: entry.e });
      else live.delete(entry.k);
    }
    const file = await rewrite(
      path,
      [...live].map(([k, v]) => ({ k, ...v })),
    );
    const store = new FileIdempotencyStore(path, file, live.size, options.maxKeys ?? MAX_IDEMPOTENCY_KEYS, now);
    for (const [k, v] of live) store.remember(k, { state: 'done', fingerprint: v.f, result: v.r }, v.e);
    return store;
  }

  override async complete(key: string, print: string, result: string, ttlMs: number): Promise<void> {
    if (this.#closed) throw new Error('the idempotency store is closed');
    const expiresAt = this.now() + ttlMs;
    // Kept in memory at once (repeats answered from here even if the disk fails), on disk before the publish is
    // answered.
    this.remember(key, { state: 'done', fingerprint: print, result } satisfies KeyState, expiresAt);
    await new Promise<void>((done, failed) => {
      this.#queue.push({ line: `${JSON.stringify({ k: key, f: print, r: result, e: expiresAt })}\n`, done, failed });
      this.#kick();
    });
  }

  /** One write and one fsync for every line queued while the previous one was on its way. */
  #kick(): void {
    if (this.#writing !== undefined || this.#queue.length === 0) return;
    const batch = this.#queue;
    this.#queue = [];
    this.#writing = (async () => {
      try {
        if (this.#lines > 1000 && this.now() - this.#checkedAt > 1000) {
          // At most once a second: drop what expired, and rewrite the file if most of it is dead.
          this.#checkedAt = this.now();
          this.sweep();
          if (this.#lines > 2 * this.size) await this.#compact();
        }
        await this.#file.write(batch.map((entry) => entry.line).join(''));
        await this.#file.datasync();
        this.#lines += batch.length;
        for (const entry of batch) entry.done();
      } catch (error) {
        for (const entry of batch) entry.failed(error);
      }
    })().finally(() => {
      this.#writing = undefined;
      this.#kick();
    });
  }

  async #compact(): Promise<void> {
    this.sweep();
    const entries: { k: string; f: string; r: string; e: number }[] = [];
    for (const [k, { state, expiresAt }] of this.entries) {
      if (state.state === 'done') entries.push({ k, f: state.fingerprint, r: state.result, e: expiresAt });
    }
    await this.#file.close();
    this.#file = await rewrite(this.path, entries);
    this.#lines = entries.length;
  }

  override async close(): Promise<void> {
    this.#closed = true;
    while (this.#writing !== undefined) await this.#writing;
    await this.#file.close();
  }
}

/** Write `entries` to a new file, fsync it, put it in place of `path`, and return it opened for appending. */
async function rewrite(
  path: string,
  entries: readonly { k: string; f: string; r: string; e: number }[],
): Promise<FileHandle> {
  const temporary = `${path}.tmp`;
  const out = await open(temporary, 'w');
  try {
    await out.write(entries.map((entry) => `${JSON.stringify(entry)}\n`).join(''));
    await out.datasync();
  } finally {
    await out.close();
  }
  await rename(temporary, path);
  return open(path, 'a');
}
