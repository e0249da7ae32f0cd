import { createHash, randomBytes } from 'node:crypto';
import { constants, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { access, mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Broker, BrokerHealth, ChannelStats, PublishOptions } from '../core/broker.js';
import { type Clock, systemClock } from '../core/clock.js';
import { formatId } from '../core/cursor.js';
import { KometaError } from '../core/errors.js';
import { type HistoryLimits, defaultHistoryLimits } from '../core/history.js';
import { type ChannelHead, type HistoryRead, type Message, withExclude } from '../core/message.js';
import { DEFAULT_MAX_TOTAL_HISTORY_BYTES, MemoryBroker } from './memory.js';
import { RECORD_HEAD, RECORD_MESSAGE, type StoredRecord, encodeRecord } from './durable/records.js';
import {
  ActiveSegment,
  type Repair,
  type Segment,
  readSegments,
  removeSegment,
  writeFileAtomic,
} from './durable/segments.js';

export interface DurableBrokerOptions {
  /** The data directory; created if missing. One process at a time may use it. */
  readonly dir: string;
  readonly history?: Partial<HistoryLimits>;
  /** Bytes of records (data plus about 50 bytes of header each) kept across all channels, on disk and in memory. */
  readonly maxTotalBytes?: number;
  /**
   * A segment file is closed and a new one started past this size. Default:
   * 1/32 of maxTotalBytes, between 64 KiB and 8 MiB (8 MiB for the default
   * 256 MiB), so the one segment the disk may pass the total by stays small.
   */
  readonly segmentBytes?: number;
  /**
   * 0 (default): a publish resolves once its record is written and fsync'd
   * (publishes that arrive together share one fsync). More than 0: a publish
   * resolves once written to the operating system, and the file is fsync'd
   * this often; a kernel crash or power loss may lose up to that much.
   */
  readonly fsyncIntervalMs?: number;
  readonly clock?: Clock;
  /**
   * A channel with no message left and no subscriber is forgotten (disk and
   * memory) after this long. Default: the history age.
   */
  readonly forgetAfterMs?: number;
}

/** The data directory cannot be used: said in one line, for the CLI to print. */
export class DataDirError extends Error {}

/** A retained message and where its record is on disk. */
interface DiskMessage extends Message {
  segment: Segment;
  readonly recordBytes: number;
  readonly lsn: number;
  dropped: boolean;
}

/** One record waiting for the next group commit. */
interface PendingWrite {
  readonly frame: Buffer;
  written(segment: Segment): void;
  failed(error: unknown): void;
}

interface Meta {
  readonly format: 1;
  readonly token: string;
  readonly generation: number;
}

const META_FILE = 'kometa.json';
const LOCK_FILE = 'LOCK';

/** 1/32 of the total, between 64 KiB and 8 MiB. */
export function defaultSegmentBytes(maxTotalBytes: number): number {
  return Math.min(8 * 1024 * 1024, Math.max(64 * 1024, Math.floor(maxTotalBytes / 32)));
}

/**
 * The embedded default: history on disk, so one node restarts without loss.
 *
 * Shape: an append-only log in segment files (the Kafka / JetStream file
 * store shape), and the retained messages also in memory (a MemoryBroker
 * used as the index), so reads and fan-out never touch the disk. The disk is
 * written once per message and read only at start-up.
 *
 * Durability: publishes are queued and written together, one write and one
 * fdatasync per batch (group commit); a publish resolves, and so the hub
 * answers 201, only after its batch is on disk. A write that fails is cut
 * back off the file and every publish in it rejects with 503
 * KOMETA_ERR_STORE_WRITE; the next publish tries again.
 *
 * Space: the same retention as in memory (count, bytes, age per channel, a
 * total across channels counted in record bytes). Records the index lets go
 * of become garbage in their segment. Before each write, the flush deletes
 * closed segments with nothing live, and while that write would take the
 * files past the total it evacuates the closed segment with the most garbage
 * (copies its live records to the end of the log, fsyncs, deletes it). The
 * flush is the only writer, so publishes cannot outrun reclaiming: the data
 * directory stays within the total plus one segment (plus the live part of a
 * second while it is being copied).
 *
 * Positions: each channel's epoch is written in its records, so a restart
 * keeps every epoch and sequence. A channel that has not been stored gets an
 * epoch from the directory's token and a generation number, which goes up
 * whenever channels are forgotten: a forgotten channel that comes back gets a
 * new epoch, never old positions again.
 */
export class DurableBroker implements Broker {
  readonly #dir: string;
  readonly #clock: Clock;
  readonly #segmentBytes: number;
  readonly #fsyncIntervalMs: number;
  readonly #forgetAfterMs: number;
  readonly #maxTotalBytes: number;
  readonly #index: MemoryBroker;
  /** Every segment file, oldest first; the last is the active one. */
  #segments: Segment[] = [];
  #active!: ActiveSegment;
  #meta: Meta;
  #nextLsn = 1;
  #diskBytes = 0;
  #queue: PendingWrite[] = [];
  #flushing = false;
  #drained: (() => void)[] = [];
  /** Positions handed out to publishes still waiting for their write. */
  readonly #pending = new Map<string, ChannelHead>();
  /** The messages whose records each segment holds (dropped ones too, until the segment goes). */
  readonly #members = new Map<Segment, DiskMessage[]>();
  /** Where each channel's newest record is, and when it was published. */
  readonly #heads = new Map<string, { segment: Segment; time: number }>();
  #listener: (message: Message) => void = () => {};
  #failure: string | undefined;
  #dirty = false;
  #syncTimer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #repairs: Repair[] = [];
  #unbornEpoch: { generation: number; epoch: string } | undefined;

  private constructor(options: DurableBrokerOptions, meta: Meta) {
    this.#dir = options.dir;
    this.#meta = meta;
    this.#clock = options.clock ?? systemClock;
    this.#fsyncIntervalMs = options.fsyncIntervalMs ?? 0;
    this.#maxTotalBytes = options.maxTotalBytes ?? DEFAULT_MAX_TOTAL_HISTORY_BYTES;
    this.#segmentBytes = options.segmentBytes ?? defaultSegmentBytes(this.#maxTotalBytes);
    const history = { ...defaultHistoryLimits, ...options.history };
    this.#forgetAfterMs = options.forgetAfterMs ?? history.maxAgeMs;
    this.#index = new MemoryBroker({
      history,
      maxTotalBytes: this.#maxTotalBytes,
      clock: this.#clock,
      totalSizeOf: (message) => (message as DiskMessage).recordBytes,
      epochOf: () => this.#epochOf(),
      onDrop: (message) => {
        const stored = message as DiskMessage;
        stored.dropped = true;
        stored.segment.live -= stored.recordBytes;
      },
    });
  }

  /** Open (or create) the data directory and read back what it holds. */
  static async open(options: DurableBrokerOptions): Promise<DurableBroker> {
    const dir = resolve(options.dir);
    await prepareDirectory(dir);
    takeLock(dir);
    try {
      const broker = new DurableBroker({ ...options, dir }, await loadMeta(dir));
      await broker.#recover();
      return broker;
    } catch (error) {
      releaseLock(dir);
      if (error instanceof DataDirError) throw error;
      throw new DataDirError(`cannot read the data directory ${dir}: ${describe(error)}`);
    }
  }

  /**
   * The epoch of every channel not stored yet: one per directory token and
   * generation (a cursor entry names its channel, so channels need not differ),
   * hashed once per generation rather than once per new channel.
   */
  #epochOf(): string {
    const { token, generation } = this.#meta;
    if (this.#unbornEpoch?.generation !== generation) {
      const digest = createHash('sha256').update(`${token}\u0000${generation}`).digest();
      this.#unbornEpoch = { generation, epoch: digest.readBigUInt64BE(0).toString(36).slice(0, 10) };
    }
    return this.#unbornEpoch.epoch;
  }

  // ---- start-up -------------------------------------------------------

  async #recover(): Promise<void> {
    // Read straight into the messages the index will keep: start-up time is
    // mostly allocation and GC, so no wrapper objects per record.
    const messages: DiskMessage[] = [];
    const heads: { record: StoredRecord; segment: Segment }[] = [];
    // One string per channel name and epoch, not one per record: less to keep and to collect.
    const strings = new Map<string, string>();
    const intern = (text: string): string => {
      const known = strings.get(text);
      if (known !== undefined) return known;
      strings.set(text, text);
      return text;
    };
    const { segments, repairs } = await readSegments(this.#dir, (record, segment, bytes) => {
      if (record.kind === RECORD_HEAD) heads.push({ record, segment });
      else messages.push(toMessage(record, segment, bytes, intern(record.channel), intern(record.epoch)));
      if (record.lsn >= this.#nextLsn) this.#nextLsn = record.lsn + 1;
    });
    this.#repairs.push(...repairs);
    this.#segments = segments;
    for (const segment of segments) this.#members.set(segment, []);
    this.#diskBytes = segments.reduce((sum, segment) => sum + segment.size, 0);
    this.#replayInOrder(messages, heads);
    await this.#forgetExpired(() => false);
    const last = this.#segments.at(-1);
    if (last !== undefined && last.size < this.#segmentBytes) this.#active = await ActiveSegment.reopen(last);
    else await this.#startSegment();
    // Dead segments left by the last run, and anything over the total now (the limits may have changed).
    await this.#reclaimSpace(0);
    if (this.#fsyncIntervalMs > 0) {
      this.#syncTimer = setInterval(() => this.#syncNow(), this.#fsyncIntervalMs);
      this.#syncTimer.unref();
    }
  }

  /**
   * Everything back in the order it was published (copies made by compaction
   * kept their lsn; one found twice, because the process died between copying
   * and deleting, counts once). A channel's newer lifetime comes after its
   * older one, so adopting in this order leaves each channel in its latest.
   */
  #replayInOrder(messages: DiskMessage[], heads: { record: StoredRecord; segment: Segment }[]): void {
    messages.sort((a, b) => a.lsn - b.lsn);
    heads.sort((a, b) => a.record.lsn - b.record.lsn);
    const now = this.#clock.now();
    let h = 0;
    let lastLsn = -1;
    for (const message of messages) {
      while (h < heads.length && heads[h]!.record.lsn < message.lsn) this.#replayHead(heads[h++]!);
      if (message.lsn === lastLsn) continue;
      lastLsn = message.lsn;
      this.#replayMessage(message, now);
    }
    while (h < heads.length) this.#replayHead(heads[h++]!);
  }

  #replayHead({ record, segment }: { record: StoredRecord; segment: Segment }): void {
    this.#index.adoptHead(record.channel, record.epoch, record.seq);
    this.#heads.set(record.channel, { segment, time: record.time });
  }

  #replayMessage(message: DiskMessage, now: number): void {
    const headSeq = this.#index.headSeqIn(message.channel, message.epoch);
    if (headSeq !== undefined && message.seq <= headSeq) return;
    // A hole (a damaged file lost records in the middle): what came before it
    // is not served as if it were contiguous; subscribers get a gap instead.
    if (headSeq !== undefined && message.seq > headSeq + 1) this.#index.forget(message.channel);
    message.segment.live += message.recordBytes;
    this.#members.get(message.segment)!.push(message);
    this.#heads.set(message.channel, { segment: message.segment, time: message.time });
    this.#index.adopt(message, now);
  }

  // ---- publishing and the group commit -------------------------------

  async publish(channel: string, data: string, options: PublishOptions = {}): Promise<Message> {
    if (this.#closed) throw new KometaError('KOMETA_ERR_BROKER_UNAVAILABLE', 'The message store is closed');
    const head = this.#pending.get(channel) ?? this.#index.headNow(channel);
    const record: StoredRecord = {
      kind: RECORD_MESSAGE,
      lsn: this.#nextLsn++,
      time: this.#clock.now(),
      seq: head.seq + 1,
      epoch: head.epoch,
      channel,
      event: options.event,
      data,
      dataBytes: Buffer.byteLength(data),
    };
    const frame = encodeRecord(record);
    const message = toMessage(record, undefined as unknown as Segment, frame.length);
    this.#pending.set(channel, { epoch: record.epoch, seq: record.seq });
    return new Promise<Message>((resolvePublish, rejectPublish) => {
      this.#enqueue({
        frame,
        written: (segment) => {
          try {
            this.#commit(message, segment, options.exclude);
          } catch (error) {
            rejectPublish(error);
            return;
          }
          resolvePublish(message);
        },
        failed: (error) => rejectPublish(storeError(this.#dir, error)),
      });
    });
  }

  /** A message's record is on disk: it becomes part of history and goes out to subscribers. */
  #commit(message: DiskMessage, segment: Segment, exclude: string | undefined): void {
    message.segment = segment;
    segment.live += message.recordBytes;
    this.#members.get(segment)!.push(message);
    const pending = this.#pending.get(message.channel);
    if (pending !== undefined && pending.seq === message.seq) this.#pending.delete(message.channel);
    this.#heads.set(message.channel, { segment, time: message.time });
    this.#index.adopt(message, message.time);
    this.#listener(withExclude(message, exclude));
  }

  #enqueue(write: PendingWrite): void {
    this.#queue.push(write);
    if (this.#flushing) return;
    this.#flushing = true;
    // Wait for the rest of this turn of the event loop: every publish whose
    // request arrived with this one joins its batch and shares its fsync.
    setImmediate(() => void this.#flush());
  }

  async #flush(): Promise<void> {
    do {
      const batch = this.#queue;
      this.#queue = [];
      const data = batch.length === 1 ? batch[0]!.frame : Buffer.concat(batch.map((write) => write.frame));
      if (this.#mayReclaim(data.length)) await this.#reclaimSpace(data.length);
      if (batch.length === 0) continue;
      try {
        await this.#append(data, this.#fsyncIntervalMs === 0);
      } catch (error) {
        this.#writeFailed(batch, error);
        continue;
      }
      this.#failure = undefined;
      const segment = this.#active.segment;
      for (const write of batch) write.written(segment);
    } while (this.#queue.length > 0);
    this.#flushing = false;
    for (const resolveDrained of this.#drained.splice(0)) resolveDrained();
  }

  /** Start a flush with nothing to write, so that space is reclaimed (after the sweep forgot channels). */
  #kick(): void {
    if (this.#flushing || this.#closed) return;
    this.#flushing = true;
    setImmediate(() => void this.#flush());
  }

  async #append(data: Buffer, sync: boolean): Promise<void> {
    if (this.#active.segment.size > 0 && this.#active.segment.size + data.length > this.#segmentBytes)
      await this.#rollSegment();
    await this.#active.append(data, sync);
    this.#diskBytes += data.length;
    this.#dirty = !sync;
  }

  /**
   * Nothing of a failed batch was kept (the file was cut back), so neither is
   * anything queued behind it numbered after it: all of it is refused, and
   * numbering starts again from what is on disk.
   */
  #writeFailed(batch: PendingWrite[], error: unknown): void {
    this.#failure = `cannot write to ${this.#dir}: ${describe(error)}`;
    this.#pending.clear();
    const behind = this.#queue;
    this.#queue = [];
    for (const write of [...batch, ...behind]) write.failed(error);
  }

  async #rollSegment(): Promise<void> {
    if (this.#dirty) await this.#active.sync();
    this.#dirty = false;
    await this.#active.close();
    await this.#startSegment();
  }

  async #startSegment(): Promise<void> {
    // Copied-forward records reuse old lsns, so the next lsn alone may name a file that exists.
    const id = Math.max(this.#nextLsn, (this.#segments.at(-1)?.id ?? 0) + 1);
    this.#active = await ActiveSegment.create(this.#dir, id);
    this.#segments.push(this.#active.segment);
    this.#members.set(this.#active.segment, []);
  }

  #syncNow(): void {
    if (!this.#dirty || this.#closed) return;
    this.#dirty = false;
    this.#active.sync().catch((error: unknown) => {
      this.#failure = `cannot sync ${this.#dir}: ${describe(error)}`;
    });
  }

  /** Resolves once everything queued so far is written (or has failed). */
  #drain(): Promise<void> {
    if (!this.#flushing) return Promise.resolve();
    return new Promise((resolveDrained) => this.#drained.push(resolveDrained));
  }

  // ---- reclaiming space ----------------------------------------------

  /**
   * Runs in the flush, before each write, so that it is the only writer and
   * publishes cannot outrun it: closed segments with nothing live go, and
   * while the next write would take the files past the total, the closed
   * segment with the most garbage is evacuated. A failure here is reported
   * but does not refuse the publishes; the disk may then pass the bound
   * until it heals.
   */
  async #reclaimSpace(incoming: number): Promise<void> {
    try {
      for (const segment of this.#segments.filter((s) => s !== this.#active.segment && s.live === 0))
        await this.#evacuate(segment);
      while (this.#diskBytes + incoming > this.#maxTotalBytes) {
        const victim = this.#mostGarbage();
        if (victim === undefined) break;
        await this.#evacuate(victim);
      }
    } catch (error) {
      this.#failure = `cannot reclaim space in ${this.#dir}: ${describe(error)}`;
    }
  }

  /** Cheap test, before each write, of whether #reclaimSpace has anything to do. */
  #mayReclaim(incoming: number): boolean {
    if (this.#diskBytes + incoming > this.#maxTotalBytes) return true;
    for (const segment of this.#segments) if (segment.live === 0 && segment !== this.#active.segment) return true;
    return false;
  }

  /** The closed segment with the most bytes to reclaim. */
  #mostGarbage(): Segment | undefined {
    let best: Segment | undefined;
    for (const segment of this.#segments) {
      if (segment === this.#active.segment || segment.size - segment.live <= 0) continue;
      if (best === undefined || segment.size - segment.live > best.size - best.live) best = segment;
    }
    return best;
  }

  /** Rewrite what `victim` still holds (live messages, heads of emptied channels) at the end of the log; delete it. */
  async #evacuate(victim: Segment): Promise<void> {
    const moving = (this.#members.get(victim) ?? []).filter(
      (message) => !message.dropped && message.segment === victim,
    );
    const heads: StoredRecord[] = [];
    for (const [channel, head] of this.#heads) {
      if (head.segment !== victim || this.#index.retainedCount(channel) > 0) continue;
      const { epoch, seq } = this.#index.headNow(channel);
      heads.push({
        kind: RECORD_HEAD,
        lsn: this.#nextLsn++,
        time: head.time,
        seq,
        epoch,
        channel,
        event: undefined,
        data: '',
      });
    }
    if (moving.length > 0 || heads.length > 0) {
      const frames = [
        ...moving.map((message) => encodeRecord({ kind: RECORD_MESSAGE, ...message })),
        ...heads.map(encodeRecord),
      ];
      // Always fsync'd: the copies must be on disk before the originals go.
      await this.#append(Buffer.concat(frames), true);
      const to = this.#active.segment;
      for (const message of moving) this.#moved(message, victim, to);
      for (const head of heads) {
        if (this.#heads.get(head.channel)?.segment === victim)
          this.#heads.set(head.channel, { segment: to, time: head.time });
      }
    }
    await removeSegment(victim);
    this.#segments = this.#segments.filter((segment) => segment !== victim);
    this.#members.delete(victim);
    this.#diskBytes -= victim.size;
  }

  #moved(message: DiskMessage, from: Segment, to: Segment): void {
    const head = this.#heads.get(message.channel);
    if (head?.segment === from && this.#index.headNow(message.channel).seq === message.seq) {
      this.#heads.set(message.channel, { segment: to, time: head.time });
    }
    from.live -= message.recordBytes;
    message.segment = to;
    to.live += message.recordBytes;
    this.#members.get(to)!.push(message);
  }

  /**
   * Channels with nothing left and no subscriber, past the grace time: gone
   * from memory, and from disk as their segments go.
   */
  async #forgetExpired(isWatched: (channel: string) => boolean): Promise<void> {
    const now = this.#clock.now();
    const expired: string[] = [];
    for (const channel of this.#index.channels()) {
      if (channel.retained > 0 || isWatched(channel.name) || this.#pending.has(channel.name)) continue;
      if ((this.#heads.get(channel.name)?.time ?? 0) + this.#forgetAfterMs <= now) expired.push(channel.name);
    }
    if (expired.length === 0) return;
    // Written before anything is forgotten: a channel that comes back must
    // never get its old epoch (and so old positions) again.
    this.#meta = { ...this.#meta, generation: this.#meta.generation + 1 };
    await writeFileAtomic(this.#dir, META_FILE, JSON.stringify(this.#meta));
    for (const channel of expired) {
      this.#index.forget(channel);
      this.#heads.delete(channel);
    }
  }

  // ---- the rest of the Broker interface --------------------------------

  read(channel: string, afterSeq: number): Promise<HistoryRead> {
    return this.#index.read(channel, afterSeq);
  }

  head(channel: string): Promise<ChannelHead> {
    return this.#index.head(channel);
  }

  stats(channel: string): Promise<ChannelStats> {
    return this.#index.stats(channel);
  }

  setListener(listener: (message: Message) => void): void {
    this.#listener = listener;
  }

  // One process holds the directory: every message already reaches its listener.
  watch(): void {}
  unwatch(): void {}

  health(): BrokerHealth {
    return this.#failure === undefined ? { ok: true } : { ok: false, reason: this.#failure };
  }

  sweep(isWatched: (channel: string) => boolean): void {
    this.#index.sweep();
    this.#forgetExpired(isWatched)
      .then(() => this.#kick())
      .catch((error: unknown) => {
        this.#failure = `cannot update ${join(this.#dir, META_FILE)}: ${describe(error)}`;
      });
  }

  /** Where the history lives, what start-up had to repair, and how much disk it takes now. */
  get dataDir(): string {
    return this.#dir;
  }

  get repairs(): readonly Repair[] {
    return this.#repairs;
  }

  get diskBytes(): number {
    return this.#diskBytes;
  }

  /** Each segment file: its size and how much of it is still retained. */
  get segments(): readonly { readonly id: number; readonly size: number; readonly live: number }[] {
    return this.#segments.map(({ id, size, live }) => ({ id, size, live }));
  }

  get channelCount(): number {
    return this.#index.channelCount;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Publishes already accepted are written (and answered) before the files close.
    await this.#drain();
    clearInterval(this.#syncTimer);
    try {
      if (this.#dirty) await this.#active.sync();
      await this.#active.close();
    } finally {
      releaseLock(this.#dir);
      await this.#index.close();
    }
  }
}

function toMessage(
  record: StoredRecord,
  segment: Segment,
  recordBytes: number,
  channel = record.channel,
  epoch = record.epoch,
): DiskMessage {
  return {
    channel,
    epoch,
    seq: record.seq,
    id: formatId(channel, epoch, record.seq),
    event: record.event,
    data: record.data,
    time: record.time,
    size: record.dataBytes ?? Buffer.byteLength(record.data),
    segment,
    recordBytes,
    lsn: record.lsn,
    dropped: false,
  };
}

function storeError(dir: string, error: unknown): KometaError {
  return new KometaError(
    'KOMETA_ERR_STORE_WRITE',
    `The message was not stored: cannot write to ${dir} (${describe(error)}); retry shortly`,
  );
}

function describe(error: unknown): string {
  if (error instanceof Error)
    return 'code' in error && typeof error.code === 'string'
      ? `${error.code}: ${error.message.replace(/^\w+: /, '')}`
      : error.message;
  return String(error);
}

async function prepareDirectory(dir: string): Promise<void> {
  try {
    // Not recursive first: a recursive mkdir reports a read-only parent as ENOENT.
    await mkdir(dir).catch(async (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') await mkdir(dir, { recursive: true });
      else if (error.code !== 'EEXIST') throw error;
    });
    await access(dir, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (error) {
    throw new DataDirError(`cannot use ${dir} as the data directory: ${describe(error)}`);
  }
}

async function loadMeta(dir: string): Promise<Meta> {
  let text: string;
  try {
    text = await readFile(join(dir, META_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    const meta: Meta = { format: 1, token: randomBytes(12).toString('base64url'), generation: 0 };
    await writeFileAtomic(dir, META_FILE, JSON.stringify(meta));
    return meta;
  }
  const meta = JSON.parse(text) as Partial<Meta>;
  if (meta.format !== 1 || typeof meta.token !== 'string' || typeof meta.generation !== 'number') {
    throw new DataDirError(
      `${join(dir, META_FILE)} is not a kometa data directory file of a format this version reads`,
    );
  }
  return meta as Meta;
}

/** Directories this process has open (the lock file cannot tell: it holds our own pid either way). */
const openHere = new Set<string>();

/** One process per directory: a second kometa on the same data would number messages twice. */
function takeLock(dir: string): void {
  if (openHere.has(dir))
    throw new DataDirError(`${dir} is in use by another kometa process (pid ${process.pid}, this one)`);
  const path = join(dir, LOCK_FILE);
  try {
    writeFileSync(path, String(process.pid), { flag: 'wx' });
    openHere.add(dir);
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
      throw new DataDirError(`cannot lock ${dir}: ${describe(error)}`);
  }
  const holder = Number(readFileSync(path, 'utf8'));
  if (Number.isInteger(holder) && holder !== process.pid && processAlive(holder)) {
    throw new DataDirError(`${dir} is in use by another kometa process (pid ${holder})`);
  }
  // Left by a process that is gone (killed, crashed), or by an earlier run
  // with our pid (pid 1 in a container): take it over.
  writeFileSync(path, String(process.pid));
  openHere.add(dir);
}

function releaseLock(dir: string): void {
  openHere.delete(dir);
  try {
    unlinkSync(join(dir, LOCK_FILE));
  } catch {
    // Already gone: nothing to release.
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
