import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { KometaError } from '../core/errors.js';
import { rawProblemResponse } from './problem.js';

/**
 * Requests node:http cannot parse never reach a handler; answer them with
 * the same problem details as everything else (431 head too large, 408 too
 * slow, 400 not HTTP) and close the connection.
 */
export function answerMalformedRequests(server: Server): void {
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const kometaError =
      error.code === 'HPE_HEADER_OVERFLOW'
        ? new KometaError('KOMETA_ERR_HEADERS_TOO_LARGE')
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? new KometaError('KOMETA_ERR_REQUEST_TIMEOUT')
          : new KometaError('KOMETA_ERR_BAD_REQUEST', 'The request could not be parsed as HTTP/1.1');
    socket.end(rawProblemResponse(kometaError));
  });
}

/** Listen and resolve with the port actually bound (port 0 picks a free one). */
export function listen(server: Server, port: number, host: string): Promise<{ port: number; host: string }> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address();
      resolve({ port: typeof address === 'object' && address !== null ? address.port : port, host });
    });
  });
}
