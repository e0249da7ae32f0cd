import type { Socket } from 'node:net';
import type { Server } from 'node:http';

/** Every socket a server accepts, so a test can cut them all at once (a network failure, as the client sees it). */
export function trackSockets(server: Server): { destroyAll(): number } {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return {
    destroyAll() {
      const count = sockets.size;
      for (const socket of sockets) socket.destroy();
      return count;
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
