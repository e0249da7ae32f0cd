import type { Grant } from '../auth/grant.js';
import { isValidClientId } from '../core/channel-name.js';

/** One subscriber connection, as POST /disconnect finds it. Transports register theirs while open. */
export interface ConnectionEntry {
  /** The user of its credential: a token's `sub`, or the `user` a ticket was minted for. */
  readonly user: string | undefined;
  /** The id the client gave itself (`?client=` on /sub and /ws). */
  readonly client: string | undefined;
  /**
   * End it with the disconnect reason. With a channel: only if it follows that
   * channel — a WebSocket drops that one subscription, an HTTP subscription
   * (one request for all its channels) ends. Returns whether it did anything.
   */
  end(channel: string | undefined, detail: string): boolean;
}

export interface DisconnectOrder {
  readonly user?: string;
  readonly client?: string;
  readonly channel?: string;
  /** Said to the client in the error's `detail`. */
  readonly reason?: string;
}

/** The client id a request gives, if it is a well-formed one (anything else is ignored: ids are a convenience, not a credential). */
export function clientIdOf(url: URL): string | undefined {
  const id = url.searchParams.get('client');
  return id !== null && isValidClientId(id) ? id : undefined;
}

/** The user a grant speaks for: a token's `sub` or a ticket's `user`; none for anonymous callers and the publisher key. */
export function userOf(grant: Grant): string | undefined {
  if (grant.subject.startsWith('token:')) return grant.subject.slice(6);
  if (grant.subject.startsWith('user:')) return grant.subject.slice(5);
  return undefined;
}

/** This process's open subscriber connections, indexed by user and by client id. */
export class ConnectionRegistry {
  readonly #byUser = new Map<string, Set<ConnectionEntry>>();
  readonly #byClient = new Map<string, Set<ConnectionEntry>>();

  /** Register a connection; returns the function that forgets it (call it when it closes). */
  add(entry: ConnectionEntry): () => void {
    if (entry.user === undefined && entry.client === undefined) return () => {};
    if (entry.user !== undefined) index(this.#byUser, entry.user, entry);
    if (entry.client !== undefined) index(this.#byClient, entry.client, entry);
    return () => {
      if (entry.user !== undefined) unindex(this.#byUser, entry.user, entry);
      if (entry.client !== undefined) unindex(this.#byClient, entry.client, entry);
    };
  }

  /** End every matching connection here; returns how many. */
  disconnect(order: DisconnectOrder): number {
    const matches = new Set<ConnectionEntry>();
    const byUser = order.user === undefined ? undefined : this.#byUser.get(order.user);
    const byClient = order.client === undefined ? undefined : this.#byClient.get(order.client);
    if (order.user !== undefined && order.client !== undefined) {
      for (const entry of byUser ?? []) if (byClient?.has(entry)) matches.add(entry);
    } else {
      for (const entry of byUser ?? byClient ?? []) matches.add(entry);
    }
    const detail = `Disconnected by the application${order.reason ? `: ${order.reason}` : ''}; do not reconnect by yourself`;
    let ended = 0;
    for (const entry of matches) if (entry.end(order.channel, detail)) ended++;
    return ended;
  }

  get size(): number {
    let n = 0;
    for (const set of this.#byUser.values()) n += set.size;
    for (const set of this.#byClient.values()) n += set.size;
    return n;
  }
}

function index(map: Map<string, Set<ConnectionEntry>>, key: string, entry: ConnectionEntry): void {
  let set = map.get(key);
  if (set === undefined) map.set(key, (set = new Set()));
  set.add(entry);
}

function unindex(map: Map<string, Set<ConnectionEntry>>, key: string, entry: ConnectionEntry): void {
  const set = map.get(key);
  if (set === undefined) return;
  set.delete(entry);
  if (set.size === 0) map.delete(key);
}
