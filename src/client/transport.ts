import type { GapWithId } from '../protocol/gap.js';
import type { PresenceMemberData } from '../protocol/presence.js';
import { type ChannelPosition, parseId } from './positions.js';

export type TransportName = 'websocket' | 'sse' | 'poll';

/** A message as the application receives it. */
export interface KometaMessage {
  readonly channel: string;
  /** The message's id in its channel (`channel~epoch~seq`): store it to resume later with `cursor`. */
  readonly id: string;
  readonly event?: string;
  /** The published text (JSON is the common case; the client never parses it). */
  readonly data: string;
}

/** Who joined or left: `client`, `user` (null when anonymous), signed `info`, `transport`, `since`. */
export type KometaMember = PresenceMemberData;

/** A join or a leave of a channel (`presence: true`); its id is a position of the channel, like a message's. */
export interface KometaPresence {
  readonly channel: string;
  readonly id: string;
  readonly type: 'join' | 'leave';
  readonly member: KometaMember;
}

/** The hub runs without `--presence-events`: a subscription that asked for joins and leaves goes on without them. */
export const PRESENCE_OFF = 'KOMETA_ERR_PRESENCE_EVENTS_OFF';

/** Messages after the channel's last position are gone: the application is told instead of missing them silently. */
export type KometaGap = GapWithId;

/** Why the connection state changed. */
export type StateReason =
  /** The client started connecting. */
  | 'connect'
  /** A transport connected. */
  | 'open'
  /** The connection broke (socket closed, request failed, server unreachable). */
  | 'network'
  /** Nothing arrived on the connection for too long. */
  | 'idle-timeout'
  /** The hub is shutting down or restarting. */
  | 'server-shutdown'
  /** The hub closed the connection because the client did not read fast enough; it resumes from history. */
  | 'slow-consumer'
  /** The hub rejected something the client sent (a bug in the client or a proxy in the way). */
  | 'protocol-error'
  /** The hub refused the connection with an error status. */
  | 'server-error'
  /** `close()` was called. */
  | 'client-closed'
  /**
   * The application's backend ended the connection (POST /disconnect, KOMETA_ERR_DISCONNECTED): the client stays
   * disconnected.
   */
  | 'server-disconnect'
  /**
   * The hub answered 401 (no credential, or one it refuses). Without a `token` or `ticket` function that could
   * bring a new one the client stays disconnected; with one it retries with backoff.
   */
  | 'unauthorized';

/** What a transport reports when its connection ends. */
export interface TransportClose {
  readonly reason: Exclude<StateReason, 'connect' | 'open' | 'client-closed'>;
  /** Whether the connection had opened: a transport that never opens is skipped in favour of the next one. */
  readonly opened: boolean;
  readonly detail?: string;
  /** The hub's problem code, when it gave one. */
  readonly code?: string;
  /** The server's own hint for how long to wait. */
  readonly retryAfterMs?: number;
}

/** An error the hub reported, with its stable code (docs/errors.md). */
export class KometaClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status?: number,
    readonly channel?: string,
  ) {
    super(message);
    this.name = 'KometaClientError';
  }
}

/**
 * What the client gives a transport: where to connect, which channels to
 * follow from where, and callbacks for what arrives. Callbacks from a
 * connection the client has replaced are ignored by the client.
 */
export interface TransportHost {
  readonly base: URL;
  readonly fetch: typeof fetch;
  /** This client's id, sent as `client=` so that the backend can address it (POST /disconnect). */
  readonly clientId: string;
  /** Access token, if the application configured one (sent as `Authorization: Bearer` or `token=`). */
  token(): Promise<string | undefined>;
  /** A fresh subscribe ticket for this request, if the application gives them (sent as `ticket=`). */
  ticket?(): Promise<string | undefined>;
  /** Channels to follow and the position to resume each from (undefined: from now). */
  channels(): ReadonlyMap<string, ChannelPosition | undefined>;
  /** Whether the channel's joins and leaves are wanted (`presence=1`, the subscribe frame's flag). */
  presence(channel: string): boolean;
  opened(): void;
  message(message: KometaMessage): void;
  gap(gap: KometaGap): void;
  /** Where the hub says a channel stands (after a subscribe, a poll, an id-only SSE event). */
  position(position: ChannelPosition): void;
  /** The hub refused one channel; the client stops following it. */
  channelError(channel: string, error: KometaClientError): void;
  closed(close: TransportClose): void;
}

export interface PublishResult {
  readonly channel: string;
  readonly id: string;
  readonly subscribers: number;
}

export interface TransportConnection {
  /** The channel set changed: subscribe/unsubscribe, or re-open the request for the new set. */
  update(): void;
  /** Publish over this connection, when the transport can (WebSocket); otherwise the client uses HTTP. */
  publish?(channel: string, data: string, event: string | undefined): Promise<PublishResult> | undefined;
  close(): void;
}

export interface TransportTimings {
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly pollTimeoutSeconds: number;
}

/** One way of reaching the hub. The client is given an ordered list of these and falls back down it. */
export interface ClientTransport {
  readonly name: TransportName;
  /** False when this runtime lacks what the transport needs (e.g. no WebSocket in Node 20 unless one is given). */
  available(): boolean;
  open(host: TransportHost, timings: TransportTimings): TransportConnection;
}

/** Query string for a multi-channel HTTP subscription resuming from the joined positions. */
export function subscribeQuery(
  channels: ReadonlyMap<string, ChannelPosition | undefined>,
  transport: 'sse' | 'poll',
  clientId?: string,
  presence?: (channel: string) => boolean,
): URLSearchParams {
  const query = new URLSearchParams();
  if (clientId !== undefined) query.set('client', clientId);
  const cursor: string[] = [];
  let joins = false;
  for (const [channel, position] of channels) {
    query.append('channel', channel);
    if (position !== undefined) cursor.push(position.id);
    joins ||= presence?.(channel) === true;
  }
  // One request serves every channel: presence=1 applies to all, and the client drops the joins nobody asked for.
  if (joins) query.set('presence', '1');
  query.set('transport', transport);
  if (cursor.length > 0) query.set(transport === 'sse' ? 'lastEventId' : 'since', cursor.join(','));
  return query;
}

/** Add `ticket=` to a subscribe URL when the application gives tickets. */
export async function withTicket(host: TransportHost, url: URL): Promise<URL> {
  const ticket = await host.ticket?.();
  if (ticket !== undefined && ticket !== '') url.searchParams.set('ticket', ticket);
  return url;
}

export async function authHeaders(host: TransportHost, accept: string): Promise<Record<string, string>> {
  const headers: Record<string, string> = { Accept: accept };
  const token = await host.token();
  if (token !== undefined) headers.Authorization = `Bearer ${token}`;
  return headers;
}

/** Turn a failed HTTP answer into the reason the connection ended, reading the problem body when there is one. */
export async function closeForResponse(
  response: Response,
  opened: boolean,
): Promise<TransportClose & { problem?: { code?: string; channel?: string; detail?: string } }> {
  let problem: { code?: string; channel?: string; detail?: string } | undefined;
  try {
    problem = (await response.json()) as { code?: string; channel?: string; detail?: string };
  } catch {
    problem = undefined;
  }
  const retryAfter = Number(response.headers.get('retry-after'));
  const detail = `${response.status} ${problem?.code ?? ''} ${problem?.detail ?? ''}`.trim();
  const code = problem?.code === undefined ? {} : { code: problem.code };
  if (problem?.code === 'KOMETA_ERR_DISCONNECTED')
    return { reason: 'server-disconnect', opened, detail: problem.detail ?? detail, ...code };
  if (response.status === 401) return { reason: 'unauthorized', opened, detail, ...code };
  if (response.status === 503 && problem?.code === 'KOMETA_ERR_DRAINING') {
    return {
      reason: 'server-shutdown',
      opened,
      detail,
      ...(retryAfter > 0 ? { retryAfterMs: retryAfter * 1000 } : {}),
      problem,
    };
  }
  return { reason: 'server-error', opened, detail, ...code, ...(problem === undefined ? {} : { problem }) };
}

/**
 * A refusal that is about channels, not the connection: one channel the credential may not follow, or
 * presence asked of a hub without `--presence-events` (then every channel that asked). Reported per channel;
 * the client then re-opens for what is left. False when the refusal is about the connection.
 */
export function refuseChannels(
  host: TransportHost,
  close: Awaited<ReturnType<typeof closeForResponse>>,
  channels: ReadonlyMap<string, unknown>,
  status: number,
): boolean {
  const code = close.problem?.code ?? 'KOMETA_ERR';
  const named = close.problem?.channel;
  const refused =
    code === PRESENCE_OFF
      ? [...channels.keys()].filter((channel) => host.presence(channel))
      : named !== undefined && channels.has(named) ? [named] : [];
  for (const channel of refused) {
    host.channelError(channel, new KometaClientError(code, close.detail ?? '', status, channel));
  }
  return refused.length > 0;
}

export interface ChannelInfo {
  readonly epoch: string;
  readonly headSeq: number;
  /** Sequence of the oldest message history still holds, or undefined when it holds none. */
  readonly oldestSeq: number | undefined;
}

/** `GET /channels/<channel>`: the channel's epoch, last sequence and oldest retained message. */
export async function fetchChannelInfo(
  host: Pick<TransportHost, 'base' | 'fetch' | 'token' | 'ticket'>,
  channel: string,
  signal?: AbortSignal,
): Promise<ChannelInfo> {
  const headers = await authHeaders(host as TransportHost, 'application/json');
  const response = await host.fetch(
    await withTicket(host as TransportHost, new URL(`/channels/${encodeURIComponent(channel)}`, host.base)),
    {
      headers,
      cache: 'no-store',
      ...(signal === undefined ? {} : { signal }),
    },
  );
  if (!response.ok) {
    const close = await closeForResponse(response, false);
    const code = close.code ?? 'KOMETA_CLIENT_HTTP';
    throw new KometaClientError(code, `GET /channels: ${close.detail}`, response.status, channel);
  }
  type Info = { epoch?: string; last: string | null; history: { oldestSeq: number | null } };
  const info = (await response.json()) as Info;
  const last = info.last === null ? undefined : parseId(info.last);
  const epoch = info.epoch ?? last?.epoch;
  if (epoch === undefined) {
    throw new KometaClientError('KOMETA_CLIENT_HTTP', 'GET /channels did not name the epoch', response.status, channel);
  }
  return { epoch, headSeq: last === undefined ? 0 : last.seq, oldestSeq: info.history.oldestSeq ?? undefined };
}
