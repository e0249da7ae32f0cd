import type { IncomingMessage, Server } from 'node:http';
import type { Http2SecureServer } from 'node:http2';
import type { Socket } from 'node:net';
import { KometaError } from '../core/errors.js';
import { type TrustProxy, requestClientAddress } from './client-address.js';
import { rawProblemResponse } from './problem.js';

/**
 * Connection limits, in total and per client address, checked as each TCP
 * connection arrives: the one over the limit is told why (429 problem
 * details) and closed, and no request on it is read.
 */
export function limitConnections(
  server: Server | Http2SecureServer,
  secure: boolean,
  maxTotal: number,
  maxPerIp: number,
  rejected: WeakSet<Socket>,
  reserved: WeakSet<Socket>,
  trustProxy: TrustProxy | undefined,
): void {
  if (maxTotal <= 0 && maxPerIp <= 0) return;
  let total = 0;
  const perIp = new Map<string, number>();
  // Past the limit a few connections are still taken, for short requests
  // only: a hub full of subscribers must still let its backends publish.
  const reserve = maxTotal > 0 ? Math.max(16, Math.ceil(maxTotal / 100)) : 0;
  // Over TLS a connection is counted once its handshake is done: only then can it be answered in its protocol.
  server.prependListener(secure ? 'secureConnection' : 'connection', (socket: Socket) => {
    const ip = socket.remoteAddress ?? '';
    // A trusted proxy speaks for many clients: each is counted per request, by its forwarded address
    // (ForwardedConnections).
    const fromIp = trustProxy?.trusts(ip) === true ? 0 : (perIp.get(ip) ?? 0) + 1;
    if ((maxTotal > 0 && total + 1 > maxTotal + reserve) || (maxPerIp > 0 && fromIp > maxPerIp)) {
      const error = new KometaError(
        'KOMETA_ERR_TOO_MANY_CONNECTIONS',
        maxPerIp > 0 && fromIp > maxPerIp
          ? `At most ${maxPerIp} connections per address`
          : `At most ${maxTotal} connections`,
      );
      // node:http attaches its parser to this socket too; the request handler
      // ignores whatever it parses from a rejected one.
      rejected.add(socket);
      socket.on('error', () => socket.destroy());
      // HTTP/2 is answered on its first stream (answerRejectedStream in hub-server.ts).
      if ((socket as Socket & { alpnProtocol?: string | false }).alpnProtocol === 'h2') {
        setTimeout(() => socket.destroy(), 1000).unref();
        return;
      }
      socket.end(rawProblemResponse(error));
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    total++;
    if (maxTotal > 0 && total > maxTotal) reserved.add(socket);
    if (fromIp > 0) perIp.set(ip, fromIp);
    socket.once('close', () => {
      total--;
      if (fromIp === 0) return;
      const left = (perIp.get(ip) ?? 1) - 1;
      if (left === 0) perIp.delete(ip);
      else perIp.set(ip, left);
    });
  });
}

/**
 * --max-connections-per-ip behind a trusted proxy: the proxy's connections
 * carry many clients, so each request (a subscription, an upgrade) on one is
 * counted against the client address the proxy forwarded, until it ends.
 */
export class ForwardedConnections {
  readonly #perClient = new Map<string, number>();

  constructor(
    readonly max: number,
    readonly trust: TrustProxy | undefined,
  ) {}

  /** Count this request, or return the 429 to answer when its client already has too many open. */
  admit(req: IncomingMessage, until: { once(event: 'close', listener: () => void): unknown }): KometaError | undefined {
    if (this.max <= 0 || this.trust === undefined || !this.trust.trusts(req.socket.remoteAddress)) return undefined;
    const client = requestClientAddress(req, this.trust);
    const open = (this.#perClient.get(client) ?? 0) + 1;
    if (open > this.max)
      return new KometaError('KOMETA_ERR_TOO_MANY_CONNECTIONS', `At most ${this.max} connections per address`);
    this.#perClient.set(client, open);
    until.once('close', () => {
      const left = (this.#perClient.get(client) ?? 1) - 1;
      if (left === 0) this.#perClient.delete(client);
      else this.#perClient.set(client, left);
    });
    return undefined;
  }
}
