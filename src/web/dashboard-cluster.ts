/*
 * The dashboard's cluster card: every worker of `--workers N` and every node
 * sharing this hub's Redis, with the totals of those that are up. It asks
 * /_kometa/api/cluster every two seconds (the list changes on each member's
 * beat, not on every message, so a poll is enough and keeps the live feed small).
 */
import type { ClusterMember, ClusterSnapshot } from '../ops/stats-types.js';

const POLL_MS = 2000;

function cell(text: string, className?: string): HTMLTableCellElement {
  const td = document.createElement('td');
  if (className !== undefined) td.className = className;
  td.textContent = text;
  return td;
}

function rounded(value: number): string {
  return value >= 10 || Number.isInteger(value) ? String(Math.round(value)) : value.toFixed(1);
}

function mebibytes(value: number): string {
  return `${(value / 1024 ** 2).toFixed(0)} MiB`;
}

function since(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
}

function row(member: ClusterMember, role: string): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.dataset.state = member.state;
  tr.dataset.pid = String(member.pid);
  const name = cell(member.id);
  if (member.self) {
    const mark = document.createElement('span');
    mark.className = 'self';
    mark.textContent = 'this page';
    name.append(mark);
  }
  const c = member.connections;
  tr.append(
    name,
    cell(role),
    cell(member.state === 'up' ? (member.brokerOk ? 'up' : 'up · broker down') : 'down', 'state'),
    cell(String(c.sse + c.stream + c.poll + c.ws), 'num'),
    cell(String(member.subscriptions), 'num'),
    cell(rounded(member.rates.published), 'num'),
    cell(rounded(member.rates.delivered), 'num'),
    cell(mebibytes(member.rss), 'num'),
    cell(since(member.uptime), 'num'),
  );
  return tr;
}

export class ClusterCard {
  /** For tests: the last answer shown. */
  last: ClusterSnapshot | undefined;

  constructor(private readonly fetchJson: (url: string) => Promise<Response>) {
    void this.#refresh();
    setInterval(() => void this.#refresh(), POLL_MS);
  }

  async #refresh(): Promise<void> {
    try {
      const response = await this.fetchJson('/_kometa/api/cluster');
      if (!response.ok) return;
      this.#show((await response.json()) as ClusterSnapshot);
    } catch {
      // The status pill already says when the hub is unreachable; keep the last list.
    }
  }

  #show(snapshot: ClusterSnapshot): void {
    this.last = snapshot;
    const body = document.querySelector('#cluster tbody');
    if (body === null) return;
    const rows: HTMLTableRowElement[] = [];
    const workerPids = new Set((snapshot.workers ?? []).map((m) => m.pid));
    for (const member of snapshot.nodes ?? []) {
      rows.push(row(member, workerPids.has(member.pid) ? `node · worker ${member.worker ?? ''}` : 'node'));
    }
    if (snapshot.nodes === undefined || snapshot.nodes.length === 0) {
      for (const member of snapshot.workers ?? []) rows.push(row(member, `worker ${member.worker ?? ''}`));
    }
    body.replaceChildren(...rows);
    // One process and no Redis: the figures above are the whole deployment, and the card would only repeat them.
    const card = document.getElementById('cluster-card');
    if (card !== null) card.hidden = rows.length === 0;
    const t = snapshot.totals;
    const totals = document.getElementById('cluster-totals');
    if (totals !== null) {
      totals.textContent =
        `${t.up} up${t.down > 0 ? ` · ${t.down} down` : ''} · ${t.connections} connections · ` +
        `${t.subscriptions} subscriptions · ${rounded(t.rates.published)} pub/s · ` +
        `${rounded(t.rates.delivered)} deliv/s`;
    }
    const note = document.getElementById('cluster-note');
    if (note !== null) {
      note.textContent =
        `Each process reports every ${snapshot.beatSeconds}s; one silent for ` +
        `${snapshot.downAfterSeconds}s is shown down.`;
    }
  }
}
