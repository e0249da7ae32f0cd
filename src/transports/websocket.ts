import type { WebSocket } from 'ws';
import { reportDrop } from '../core/diagnostics.js';
import { wsCloseCode } from '../core/errors.js';
import type { GapNotice, Message } from '../core/message.js';
import type { Encoder, EndReason, Sink } from '../core/sink.js';
import { type ServerFrame, encodeMessageFrame, encodeServerFrame, gapFrame } from '../protocol/websocket.js';

/*
 * WebSocket transport: bytes on one upgraded connection.
 *
 * The `ws` package does the handshake, parses what the client sends, answers
 * pings and runs the closing handshake. What the hub sends is framed here,
 * because the hub encodes a message once and hands the same Buffer to every
 * subscriber of the channel: a complete, unmasked text frame (RFC 6455
 * section 5.2; "A server MUST NOT mask any frames that it sends to the
 * client") is bytes that can be shared, and several of them concatenated are
 * still valid. permessage-deflate is off, so the frames need no per-connection
 * state. Frames are written to the socket directly; `ws` writes its own
 * control frames (pong, close) to the same socket synchronously, so the order
 * of bytes on the wire is the order of the calls.
 */

/** A complete FIN text frame (opcode 0x1) around a UTF-8 payload. */
export function wsTextFrame(payload: string | Buffer): Buffer {
  // Text is encoded straight into the frame: one allocation, no temporary Buffer.
  const length = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
  // "the length of the payload: if 0-125, that is the payload length. If 126,
  //  the following 2 bytes ... If 127, the following 8 bytes".
  const headerLength = length < 126 ? 2 : length < 0x10000 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerLength + length);
  frame[0] = 0x81;
  if (length < 126) {
    frame[1] = length;
  } else if (length < 0x10000) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(length / 0x1_0000_0000), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  if (typeof payload === 'string') frame.write(payload, headerLength);
  else payload.copy(frame, headerLength);
  return frame;
}

/** The JSON of a `message` frame. The id is the channel's own id: a WebSocket subscription follows one channel. */
export function wsMessageJson(message: Message, id: string): string {
  return encodeMessageFrame(message.channel, id, message.event, message.data);
}

export const wsEncoder: Encoder = {
  name: 'ws',
  message: (message, cursor) => wsTextFrame(wsMessageJson(message, cursor)),
};

/**
 * Where a connection's frames go: the upgraded TCP socket, or over HTTP/2
 * (RFC 8441) the request's stream, whose queue grows the same way when the
 * peer stops reading (its flow-control window shuts).
 */
export interface WsOutput {
  write(bytes: Buffer): boolean;
  readonly writableLength: number;
  readonly remoteAddress?: string | undefined;
}

export interface WsConnectionLimits {
  /** Outgoing bytes that may wait on the socket before the connection is closed as a slow consumer. */
  readonly maxQueueBytes: number;
}

/** How long a closing handshake may take before the socket is cut (a peer that never reads would hold it forever). */
const CLOSE_GRACE_MS = 5_000;

/**
 * One WebSocket connection as the hub writes to it: shared frames straight to
 * the socket, with a bounded queue. It never looks up a channel.
 */
export class WsConnection {
  #closing = false;
  /** Publishes read from this connection and not yet answered; a graceful close waits for them. */
  #publishing = 0;
  #closeWhenAnswered: { code: number; reason: string } | undefined;
  /** Set by the server's sweep; cleared by any sign of life (a frame or a pong). */
  alive = true;

  constructor(
    readonly ws: WebSocket,
    readonly socket: WsOutput,
    private readonly limits: WsConnectionLimits,
    /** Called once, when the connection starts closing for any reason. */
    private readonly onClosing: () => void,
  ) {
    ws.once('close', () => this.#markClosing());
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** Write encoded frames. Over the bound, the connection is closed as a slow consumer and resumes from history. */
  write(frames: Buffer): void {
    if (this.#closing) return;
    this.socket.write(frames);
    if (this.socket.writableLength > this.limits.maxQueueBytes) {
      reportDrop({
        transport: 'ws',
        reason: 'slow-consumer',
        queuedBytes: this.socket.writableLength,
        remoteAddress: this.socket.remoteAddress,
      });
      this.close(wsCloseCode('KOMETA_ERR_SLOW_CONSUMER'), 'KOMETA_ERR_SLOW_CONSUMER');
    }
  }

  send(frame: ServerFrame): void {
    this.write(wsTextFrame(encodeServerFrame(frame)));
  }

  /** Start the closing handshake with a code and a reason (at most 123 bytes, per RFC 6455 section 5.5). */
  close(code: number, reason: string): void {
    if (this.#closing) return;
    this.#markClosing();
    this.ws.close(code, reason);
    setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS).unref();
  }

  /** A publish frame was read: its answer must go out before a graceful close. */
  publishStarted(): void {
    this.#publishing++;
  }

  publishAnswered(): void {
    this.#publishing--;
    const pending = this.#closeWhenAnswered;
    if (this.#publishing === 0 && pending !== undefined) this.close(pending.code, pending.reason);
  }

  /** Close once every publish read from the connection has been answered (a drain). */
  closeGracefully(code: number, reason: string): void {
    if (this.#publishing === 0) this.close(code, reason);
    else this.#closeWhenAnswered ??= { code, reason };
  }

  terminate(): void {
    this.#markClosing();
    this.ws.terminate();
  }

  #markClosing(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.onClosing();
  }
}

/** One channel's subscription on a WebSocket connection, as the hub sees it. */
export class WsSink implements Sink {
  readonly encoder = wsEncoder;

  constructor(private readonly connection: WsConnection) {}

  push(frames: Buffer): void {
    this.connection.write(frames);
  }

  gap(notice: GapNotice, cursor: string): void {
    this.connection.send(gapFrame(notice, cursor));
  }

  /* The `subscribed` frame already told the client where delivery starts. */
  live(): void {}

  end(reason: EndReason): void {
    if (reason === 'token-expired' || reason === 'disconnected') {
      const code = reason === 'token-expired' ? 'KOMETA_ERR_TOKEN_EXPIRED' : 'KOMETA_ERR_DISCONNECTED';
      this.connection.close(wsCloseCode(code), code);
      return;
    }
    // Shutdown: publishes this client sent are answered first (201 or an error), then 1001.
    this.connection.closeGracefully(wsCloseCode('KOMETA_ERR_DRAINING'), 'KOMETA_ERR_DRAINING');
  }
}
