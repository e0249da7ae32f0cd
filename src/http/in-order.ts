import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** Requests that may wait on one connection behind an open-ended response; past it the client is cut. */
const MAX_QUEUED = 32;

interface ConnectionState {
  /** Responses started on the connection and not yet finished. */
  open: number;
  /** Of those, the ones not known to end soon (a stream, a comet handler, anything not marked). */
  openEnded: number;
  /** Requests held back behind an open-ended response. */
  queued: number;
  /** An upgrade that arrived behind unfinished responses, run once they are all done. */
  upgrade: (() => void) | undefined;
}

/** Set on a response that answers promptly: a property, cheaper per request than a WeakSet entry. */
const PROMPT = Symbol('kometa.answersPromptly');
type Marked = ServerResponse & { [PROMPT]?: true };

/**
 * Say, while handling the request, that this response will end on its own
 * soon (a publish, a long-poll): requests pipelined behind it may run at
 * once; their answers wait their turn anyway.
 */
export function answersPromptly(res: ServerResponse): void {
  (res as Marked)[PROMPT] = true;
}

/**
 * HTTP/1.1 pipelining with nothing done unanswered. node:http parses every
 * pipelined request as it arrives and hands each to the handler at once,
 * queueing only the responses; so a publish pipelined behind an SSE stream (a
 * response that never finishes) was stored and never answered. Here a request
 * behind an open-ended response waits until that response is done (its own
 * response then has the socket): behind an endless one it never runs. An
 * upgrade runs only once no response is open on its connection.
 */
export class InOrder {
  readonly #connections = new WeakMap<Socket, ConnectionState>();

  /** Wrap a request listener. */
  requests(handle: Handler): Handler {
    return (req, res) => {
      // HTTP/2 multiplexes independent streams: nothing waits behind anything.
      if (req.httpVersionMajor === 2) {
        handle(req, res);
        return;
      }
      const state = this.#state(req.socket);
      if (res.socket === null && state.openEnded > 0) {
        if (++state.queued > MAX_QUEUED) {
          req.socket.destroy();
          return;
        }
        res.once('socket', () => {
          state.queued--;
          this.#handle(state, handle, req, res);
        });
        return;
      }
      this.#handle(state, handle, req, res);
    };
  }

  /** Run an upgrade now, or after the responses before it on its connection (never, behind an endless one). */
  upgrade(socket: Socket, run: () => void): void {
    const state = this.#connections.get(socket);
    if (state === undefined || state.open === 0) run();
    else state.upgrade = run;
  }

  #handle(state: ConnectionState, handle: Handler, req: IncomingMessage, res: ServerResponse): void {
    state.open++;
    handle(req, res);
    const openEnded = (res as Marked)[PROMPT] !== true && !res.writableFinished;
    if (openEnded) state.openEnded++;
    // 'close' comes once per response: `on` spares the wrapper `once` builds on every request.
    res.on('close', () => {
      if (openEnded) state.openEnded--;
      this.#finished(state);
    });
  }

  #state(socket: Socket): ConnectionState {
    let state = this.#connections.get(socket);
    if (state === undefined) {
      state = { open: 0, openEnded: 0, queued: 0, upgrade: undefined };
      this.#connections.set(socket, state);
    }
    return state;
  }

  #finished(state: ConnectionState): void {
    state.open--;
    if (state.open > 0 || state.upgrade === undefined) return;
    const upgrade = state.upgrade;
    state.upgrade = undefined;
    upgrade();
  }
}
