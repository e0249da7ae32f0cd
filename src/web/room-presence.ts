/*
 * Who is online in one chat room: the presence endpoint read once, then kept
 * current by the room's in-band joins and leaves (the subscription's
 * `presence: true`, docs/presence.md).
 *
 * The read and the events race, and a room joined with `from: 'start'` also
 * replays the old joins and leaves its history holds. So the channel's last id
 * is read first (the mark): every event at or before it happened before the
 * member list was read and is in it already; events after it are applied on
 * top of the list, in order. Each event sets or removes one client, so the
 * last event about a client decides, whether or not the list already had it.
 */
import type { KometaPresence } from '../client/index.js';
import { parseId } from '../protocol/cursor.js';

export interface OnlineMember {
  readonly client: string;
  readonly info: unknown;
}

interface Mark {
  readonly epoch: string;
  readonly seq: number;
}

async function getJson<T>(path: string): Promise<T> {
  const response = await fetch(path, { cache: 'no-store' });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return (await response.json()) as T;
}

export class RoomPresence {
  readonly #members = new Map<string, OnlineMember>();
  /** Events that came while a read was under way: applied once it ends. */
  #pending: KometaPresence[] | undefined = [];
  #mark: Mark | undefined;
  #generation = 0;

  constructor(
    readonly channel: string,
    private readonly show: (members: OnlineMember[]) => void,
  ) {}

  /** A join or a leave of the room, from the subscription. */
  event(event: KometaPresence): void {
    if (this.#pending !== undefined) {
      this.#pending.push(event);
      return;
    }
    if (this.#apply(event)) this.show([...this.#members.values()]);
  }

  /**
   * Read the member list (and, unless only polling, the mark first). On a failed read the list stays as it was.
   * One page is plenty for a chat room.
   */
  async read(withMark: boolean): Promise<void> {
    const generation = ++this.#generation;
    this.#pending ??= [];
    const path = `/channels/${encodeURIComponent(this.channel)}`;
    try {
      const head = withMark ? await getJson<{ epoch?: string; last: string | null }>(path) : undefined;
      const page = await getJson<{ members: OnlineMember[] }>(`${path}/presence?limit=200`);
      if (generation !== this.#generation) return;
      if (head !== undefined) {
        const last = head.last === null ? undefined : parseId(head.last);
        this.#mark = { epoch: head.epoch ?? last?.epoch ?? '', seq: last?.seq ?? 0 };
      }
      this.#members.clear();
      for (const member of page.members) this.#members.set(member.client, member);
    } catch {
      // Offline or refused: keep the list, and the events, as they are.
      if (generation !== this.#generation) return;
    }
    const pending = this.#pending ?? [];
    this.#pending = undefined;
    for (const event of pending) this.#apply(event);
    this.show([...this.#members.values()]);
  }

  /** Apply one event unless the last read already has it; true when it was applied. */
  #apply(event: KometaPresence): boolean {
    const position = parseId(event.id);
    const mark = this.#mark;
    if (position !== undefined && mark !== undefined && position.epoch === mark.epoch && position.seq <= mark.seq) {
      return false;
    }
    if (event.type === 'join') this.#members.set(event.member.client, event.member);
    else this.#members.delete(event.member.client);
    return true;
  }
}
