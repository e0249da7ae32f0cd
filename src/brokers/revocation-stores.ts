import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { Revocation } from '../core/revocation.js';
import type { RedisCommandLink } from './redis.js';

/** Where revocations are kept so that a node starting later (or again) knows them. */
export interface RevocationStore {
  load(): Promise<Revocation[]>;
  save(revocation: Revocation): Promise<void>;
}

/**
 * The durable store's companion: `revocations.json` in the data directory, rewritten (fsync'd, renamed) on each
 * revocation.
 */
export class FileRevocationStore implements RevocationStore {
  readonly path: string;
  #chain: Promise<void> = Promise.resolve();

  constructor(
    dir: string,
    private readonly now: () => number = Date.now,
  ) {
    this.path = join(dir, 'revocations.json');
  }

  async load(): Promise<Revocation[]> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const now = this.now();
    const list = JSON.parse(text) as Revocation[];
    return Array.isArray(list)
      ? list.filter(
          (r) => typeof r.user === 'string' && typeof r.at === 'number' && typeof r.until === 'number' && r.until > now,
        )
      : [];
  }

  save(revocation: Revocation): Promise<void> {
    const next = this.#chain.then(async () => {
      const byUser = new Map((await this.load()).map((r) => [r.user, r]));
      byUser.set(revocation.user, revocation);
      const temporary = `${this.path}.tmp`;
      const file = await open(temporary, 'w');
      try {
        await file.write(JSON.stringify([...byUser.values()]));
        await file.datasync();
      } finally {
        await file.close();
      }
      await rename(temporary, this.path);
    });
    this.#chain = next.catch(() => {});
    return next;
  }
}

/** One Redis hash, `<prefix>revoked`: user → the revocation; lapsed ones are dropped when read. */
export class RedisRevocationStore implements RevocationStore {
  readonly #key: string;

  constructor(
    private readonly commands: RedisCommandLink,
    prefix: string,
    private readonly now: () => number = Date.now,
  ) {
    this.#key = `${prefix}revoked`;
  }

  async load(): Promise<Revocation[]> {
    const flat = (await this.commands.eval("return redis.call('HGETALL', KEYS[1])", 1, this.#key)) as string[];
    const now = this.now();
    const live: Revocation[] = [];
    const lapsed: string[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const revocation = JSON.parse(flat[i + 1]!) as Revocation;
      if (revocation.until > now) live.push(revocation);
      else lapsed.push(flat[i]!);
    }
    if (lapsed.length > 0)
      await this.commands
        .eval("return redis.call('HDEL', KEYS[1], unpack(ARGV))", 1, this.#key, ...lapsed)
        .catch(() => {});
    return live;
  }

  async save(revocation: Revocation): Promise<void> {
    await this.commands.eval(
      "return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])",
      1,
      this.#key,
      revocation.user,
      JSON.stringify(revocation),
    );
  }
}
