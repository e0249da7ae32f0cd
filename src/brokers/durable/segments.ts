import {
  closeSync,
  constants,
  fdatasync,
  close as fsClose,
  open as fsOpen,
  write as fsWrite,
  fstatSync,
  fsyncSync,
  ftruncate,
  openSync,
} from 'node:fs';
import { open, readFile, readdir, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type StoredRecord, decodeRecord } from './records.js';

/**
 * One file of the log. Its records are those written while it was the active
 * file, plus records copied forward from older files by compaction. `live`
 * counts the bytes of records the broker still retains, so compaction can
 * pick the file with the most to reclaim.
 */
export interface Segment {
  /** The lsn the log was at when the file was started; its name. */
  readonly id: number;
  readonly path: string;
  size: number;
  live: number;
}

/** Hears each record read back: what it holds, the file it is in, its size there. */
export type RecordVisitor = (record: StoredRecord, segment: Segment, bytes: number) => void;

/** A file cut short at a record that did not check out: what start-up repaired. */
export interface Repair {
  readonly file: string;
  readonly offset: number;
  readonly droppedBytes: number;
  readonly reason: string;
}

const SEGMENT_NAME = /^seg-(\d{16})\.log$/;

function segmentName(id: number): string {
  return `seg-${String(id).padStart(16, '0')}.log`;
}

/** fsync a directory, so a file created or renamed in it survives a power loss. */
export function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Write a small file whole or not at all: temp file, fsync, rename, fsync the directory. */
export async function writeFileAtomic(dir: string, name: string, text: string): Promise<void> {
  const temp = join(dir, `${name}.tmp`);
  await writeFile(temp, text, { flush: true });
  await rename(temp, join(dir, name));
  syncDirectory(dir);
}

/**
 * Read every segment of `dir` in order. A record that is torn (the tail of a
 * write a crash interrupted), fails its checksum or does not parse ends its
 * file: the file is truncated there, so the bad bytes are never served and
 * the next write does not land behind them.
 */
export async function readSegments(dir: string, visit: RecordVisitor): Promise<{ segments: Segment[]; repairs: Repair[] }> {
  const names = (await readdir(dir)).filter((name) => SEGMENT_NAME.test(name)).sort();
  const segments: Segment[] = [];
  const repairs: Repair[] = [];
  for (const name of names) {
    const path = join(dir, name);
    const buffer = await readFile(path);
    const segment: Segment = { id: Number(SEGMENT_NAME.exec(name)![1]), path, size: 0, live: 0 };
    let offset = 0;
    for (;;) {
      const decoded = decodeRecord(buffer, offset);
      if (!decoded.ok) {
        if (decoded.reason !== 'end') {
          repairs.push({ file: name, offset, droppedBytes: buffer.length - offset, reason: decoded.reason });
          const handle = await open(path, 'r+');
          try {
            await handle.truncate(offset);
            await handle.sync();
          } finally {
            await handle.close();
          }
        }
        break;
      }
      visit(decoded.record, segment, decoded.next - offset);
      offset = decoded.next;
    }
    segment.size = offset;
    segments.push(segment);
  }
  return { segments, repairs };
}

/**
 * The file being appended to. Appends are positional writes at the known end,
 * so a failed write can be cut back off with one truncate and the file never
 * holds half a batch that was answered as failed. Plain fd callbacks rather
 * than FileHandle promises: this is the per-batch hot path, and each promise
 * hop cost more than the write itself.
 */
export class ActiveSegment {
  /** A failed write whose bytes could not be cut off yet: the next append cuts them first. */
  #tornTail = false;

  private constructor(
    readonly segment: Segment,
    private readonly fd: number,
  ) {}

  static async create(dir: string, id: number): Promise<ActiveSegment> {
    const path = join(dir, segmentName(id));
    const fd = await new Promise<number>((resolve, reject) =>
      fsOpen(path, constants.O_RDWR | constants.O_CREAT, 0o644, (error, fd) => (error ? reject(error) : resolve(fd))),
    );
    const { size } = fstatSync(fd);
    syncDirectory(dir);
    return new ActiveSegment({ id, path, size, live: 0 }, fd);
  }

  static async reopen(segment: Segment): Promise<ActiveSegment> {
    const fd = await new Promise<number>((resolve, reject) =>
      fsOpen(segment.path, constants.O_RDWR, (error, fd) => (error ? reject(error) : resolve(fd))),
    );
    return new ActiveSegment(segment, fd);
  }

  /** Append `data`; on any failure put the file back as it was and rethrow. */
  append(data: Buffer, sync: boolean): Promise<void> {
    const start = this.segment.size;
    return new Promise<void>((resolve, reject) => {
      const fail = (error: Error) => {
        ftruncate(this.fd, start, (truncateError) => {
          if (truncateError) this.#tornTail = true;
          reject(error);
        });
      };
      const done = () => {
        this.segment.size = start + data.length;
        resolve();
      };
      const writeFrom = (offset: number) => {
        fsWrite(this.fd, data, offset, data.length - offset, start + offset, (error, written) => {
          if (error) return fail(error);
          if (offset + written < data.length) return writeFrom(offset + written);
          if (!sync) return done();
          fdatasync(this.fd, (syncError) => (syncError ? fail(syncError) : done()));
        });
      };
      if (!this.#tornTail) return writeFrom(0);
      ftruncate(this.fd, start, (error) => {
        if (error) return reject(error);
        this.#tornTail = false;
        writeFrom(0);
      });
    });
  }

  sync(): Promise<void> {
    return new Promise((resolve, reject) => fdatasync(this.fd, (error) => (error ? reject(error) : resolve())));
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => fsClose(this.fd, (error) => (error ? reject(error) : resolve())));
  }
}

export async function removeSegment(segment: Segment): Promise<void> {
  await unlink(segment.path);
}
