import { crc32 } from 'node:zlib';

/**
 * The durable store's record: one message (or one channel head) in a segment
 * file. Little-endian, length-prefixed and checksummed, so a record torn by a
 * crash in the middle of a write is recognised on start and never served.
 *
 *   u32 body length | u32 CRC-32 of body | body
 *   body: u8 kind | f64 lsn | f64 time | f64 seq | u8 epoch length | epoch
 *         | u16 channel length | channel | u16 event length + 1 (0: none) | event | data (the rest)
 *
 * `lsn` numbers records in publish order across all channels; a record copied
 * forward by compaction keeps its lsn, so start-up can put everything back in
 * the order it was published, whatever file it is in now.
 */
export const RECORD_MESSAGE = 1;
/** A channel whose messages are all gone keeps its position: kind 2 has no event and no data. */
export const RECORD_HEAD = 2;

export interface StoredRecord {
  readonly kind: typeof RECORD_MESSAGE | typeof RECORD_HEAD;
  readonly lsn: number;
  readonly time: number;
  readonly seq: number;
  readonly epoch: string;
  readonly channel: string;
  readonly event: string | undefined;
  readonly data: string;
  /** Bytes of `data` in UTF-8, when known (read back, or counted once at publish), so not counted again. */
  readonly dataBytes?: number;
}

const FRAME_HEADER = 8;
const FIXED_BODY = 1 + 8 + 8 + 8 + 1 + 2 + 2;
/** A body longer than this is not a record but garbage that happens to parse. */
export const MAX_RECORD_BODY = 64 * 1024 * 1024;

export function encodeRecord(record: StoredRecord): Buffer {
  // Strings are written straight into the frame: one allocation per record (epochs are ASCII).
  const channelBytes = Buffer.byteLength(record.channel, 'utf8');
  const eventBytes = record.event === undefined ? 0 : Buffer.byteLength(record.event, 'utf8');
  const dataBytes = record.dataBytes ?? Buffer.byteLength(record.data, 'utf8');
  const bodyLength = FIXED_BODY + record.epoch.length + channelBytes + eventBytes + dataBytes;
  const frame = Buffer.allocUnsafe(FRAME_HEADER + bodyLength);
  let at = FRAME_HEADER;
  at = frame.writeUInt8(record.kind, at);
  at = frame.writeDoubleLE(record.lsn, at);
  at = frame.writeDoubleLE(record.time, at);
  at = frame.writeDoubleLE(record.seq, at);
  at = frame.writeUInt8(record.epoch.length, at);
  at += frame.write(record.epoch, at, 'latin1');
  at = frame.writeUInt16LE(channelBytes, at);
  at += frame.write(record.channel, at, 'utf8');
  at = frame.writeUInt16LE(record.event === undefined ? 0 : eventBytes + 1, at);
  if (record.event !== undefined) at += frame.write(record.event, at, 'utf8');
  frame.write(record.data, at, 'utf8');
  frame.writeUInt32LE(bodyLength, 0);
  frame.writeUInt32LE(crc32(frame.subarray(FRAME_HEADER)), 4);
  return frame;
}

export type DecodeResult =
  | { readonly ok: true; readonly record: StoredRecord; readonly next: number }
  | { readonly ok: false; readonly reason: 'end' | 'torn' | 'checksum' | 'malformed' };

/** The record at `offset` of `buffer`, or why there is none. */
export function decodeRecord(buffer: Buffer, offset: number): DecodeResult {
  if (offset === buffer.length) return { ok: false, reason: 'end' };
  if (offset + FRAME_HEADER > buffer.length) return { ok: false, reason: 'torn' };
  const bodyLength = buffer.readUInt32LE(offset);
  if (bodyLength < FIXED_BODY || bodyLength > MAX_RECORD_BODY) return { ok: false, reason: 'malformed' };
  const start = offset + FRAME_HEADER;
  const end = start + bodyLength;
  if (end > buffer.length) return { ok: false, reason: 'torn' };
  const body = buffer.subarray(start, end);
  if (crc32(body) !== buffer.readUInt32LE(offset + 4)) return { ok: false, reason: 'checksum' };
  try {
    return { ok: true, record: parseBody(body), next: end };
  } catch {
    return { ok: false, reason: 'malformed' };
  }
}

function parseBody(body: Buffer): StoredRecord {
  let at = 0;
  const kind = body.readUInt8(at++);
  if (kind !== RECORD_MESSAGE && kind !== RECORD_HEAD) throw new RangeError('unknown record kind');
  const lsn = body.readDoubleLE(at);
  const time = body.readDoubleLE(at + 8);
  const seq = body.readDoubleLE(at + 16);
  at += 24;
  const epochLength = body.readUInt8(at++);
  const epoch = body.toString('latin1', at, (at += epochLength));
  const channelLength = body.readUInt16LE(at);
  at += 2;
  const channel = body.toString('utf8', at, (at += channelLength));
  const eventField = body.readUInt16LE(at);
  at += 2;
  const event = eventField === 0 ? undefined : body.toString('utf8', at, (at += eventField - 1));
  if (at > body.length) throw new RangeError('fields run past the record');
  return { kind, lsn, time, seq, epoch, channel, event, data: body.toString('utf8', at), dataBytes: body.length - at };
}
