import { BlockList, isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';

/**
 * `--trust-proxy`: which peers may tell kometa who the client is.
 *
 * Without it, X-Forwarded-For is never believed: the client is the TCP peer.
 * With a list of addresses, CIDR ranges or the names `loopback` and `private`,
 * X-Forwarded-For is read from the right: each entry added by a trusted proxy
 * is skipped, and the first address that is not a trusted proxy is the client
 * (an entry a client wrote itself sits further left and is never reached
 * through an untrusted hop). With a hop count n, the peer and the n-1 proxies
 * before it are trusted whatever their address: the client is the entry n
 * places from the right.
 */
export interface TrustProxy {
  /** Is this TCP peer a trusted proxy (may its X-Forwarded-* headers be believed)? */
  trusts(peer: string | undefined): boolean;
  /** The client's address, given the TCP peer and the X-Forwarded-For value(s). */
  clientAddress(peer: string | undefined, forwardedFor: string | readonly string[] | undefined): string;
}

const NAMED: Record<string, readonly string[]> = {
  loopback: ['127.0.0.0/8', '::1/128'],
  private: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
};

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) is 10.0.0.1. */
export function normalizeAddress(address: string): string {
  const trimmed = address.trim();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(trimmed);
  return mapped ? mapped[1]! : trimmed;
}

/**
 * Parse the setting: '' (trust no one), a hop count ('1', '2', …), or a
 * comma-separated list of addresses, CIDR ranges and named ranges.
 * Throws on anything else, so a typo is caught at start.
 */
export function parseTrustProxy(spec: string | number | readonly string[] | undefined): TrustProxy | undefined {
  if (spec === undefined || spec === '' || spec === 0 || spec === '0') return undefined;
  if (typeof spec === 'number' || (typeof spec === 'string' && /^\d+$/.test(spec.trim()))) {
    const hops = Number(spec);
    if (!Number.isSafeInteger(hops) || hops < 1 || hops > 32) throw new Error(`--trust-proxy: a hop count is 1 to 32, not ${spec}`);
    return byHops(hops);
  }
  const entries = (typeof spec === 'string' ? spec.split(',') : spec).map((s) => s.trim()).filter((s) => s !== '');
  const list = new BlockList();
  for (const entry of entries.flatMap((e) => NAMED[e.toLowerCase()] ?? [e])) {
    const [address, bits, extra] = entry.split('/');
    const family = isIP(address ?? '');
    if (family === 0 || extra !== undefined) throw new Error(`--trust-proxy: "${entry}" is not an address, a CIDR range, loopback, private or a hop count`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) {
      list.addAddress(address!, type);
    } else {
      const prefix = Number(bits);
      if (!/^\d+$/.test(bits) || prefix > (family === 4 ? 32 : 128)) throw new Error(`--trust-proxy: bad prefix length in "${entry}"`);
      list.addSubnet(address!, prefix, type);
    }
  }
  return byList(list);
}

function check(list: BlockList, address: string): boolean {
  const family = isIP(address);
  return family !== 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** Every X-Forwarded-For entry, left to right, across repeated header lines. */
function hopsOf(forwardedFor: string | readonly string[] | undefined): string[] {
  if (forwardedFor === undefined) return [];
  const joined = typeof forwardedFor === 'string' ? forwardedFor : forwardedFor.join(',');
  return joined
    .split(',')
    .map(normalizeAddress)
    .filter((s) => s !== '');
}

function byList(list: BlockList): TrustProxy {
  const trusts = (peer: string | undefined) => peer !== undefined && check(list, normalizeAddress(peer));
  return {
    trusts,
    clientAddress(peer, forwardedFor) {
      const direct = normalizeAddress(peer ?? '');
      if (!trusts(direct)) return direct;
      const hops = hopsOf(forwardedFor);
      let client = direct;
      for (let i = hops.length - 1; i >= 0; i--) {
        const hop = hops[i]!;
        if (isIP(hop) === 0) return client; // garbage: stop at the last address a trusted proxy vouched for
        client = hop;
        if (!check(list, hop)) return hop;
      }
      return client;
    },
  };
}

function byHops(count: number): TrustProxy {
  return {
    trusts: (peer) => peer !== undefined,
    clientAddress(peer, forwardedFor) {
      const chain = [normalizeAddress(peer ?? ''), ...hopsOf(forwardedFor).reverse()];
      // Never past garbage: an entry that is not an address ends the chain.
      let client = chain[0]!;
      for (let i = 1; i < chain.length && i <= count; i++) {
        if (isIP(chain[i]!) === 0) break;
        client = chain[i]!;
      }
      return client;
    },
  };
}

/** The client address of a request: the TCP peer, or what trusted proxies say. */
export function requestClientAddress(req: IncomingMessage, trust: TrustProxy | undefined): string {
  const peer = req.socket.remoteAddress;
  if (trust === undefined) return normalizeAddress(peer ?? '');
  return trust.clientAddress(peer, req.headers['x-forwarded-for']);
}
