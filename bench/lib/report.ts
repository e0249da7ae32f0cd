/** The Markdown form of a results document. */
import { presenceSection } from './report-presence.js';

type Row = Record<string, unknown>;
interface Doc {
  date: string;
  quick: boolean;
  repeat: number;
  machine: { cpus: number; model: string; loadAverageAtStart: number[]; note: string };
  versions: Record<string, string>;
  node: string;
  skipped: { system: string; scenario: string; reason: string }[];
  results: Record<string, Row[] | unknown[]>;
}

function table(header: string[], rows: (string | number)[][]): string {
  const cell = (c: string | number) => (typeof c === 'number' && Number.isNaN(c) ? '–' : String(c));
  const line = (cells: (string | number)[]) => `| ${cells.map(cell).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n') + '\n';
}

const k = (n: number) => (n >= 10_000 ? `${Math.round(n / 1000)}k` : String(n));

export function renderMarkdown(doc: Doc): string {
  const { machine } = doc;
  let out = `# kometa bench ${doc.date.slice(0, 16).replace('T', ' ')} UTC${doc.quick ? ' (quick)' : ''}\n\n`;
  out +=
    `Machine: ${machine.cpus} × ${machine.model}; ${machine.note}; ` +
    `load average at start ${machine.loadAverageAtStart.map((l) => l.toFixed(2)).join(' ')}. Node ${doc.node}.\n`;
  out += `Versions: ${Object.entries(doc.versions).map(([s, v]) => `${s} ${v}`).join('; ')}.\n\n`;
  out += targets(doc);
  out += fanoutSection(doc) + idleSection(doc) + channelsSection(doc) + stormSection(doc);
  out += workersSection(doc) + profileSection(doc) + clusterSection(doc);
  // h2 and herd render their own tables (bench/h2.ts, bench/herd.ts).
  for (const name of ['h2', 'herd']) for (const r of (doc.results[name] ?? []) as Row[]) out += String(r.markdown);
  out += presenceSection(doc.results);
  if (doc.skipped.length) {
    const seen = new Set<string>();
    const once = doc.skipped.filter((s) => !seen.has(`${s.system}${s.reason}`) && seen.add(`${s.system}${s.reason}`));
    out += `Skipped: ${once.map((s) => `${s.system} (${s.reason})`).join('; ')}.\n`;
  }
  return out;
}

function fanoutSection(doc: Doc): string {
  const fan = doc.results.fanout as Row[];
  if (!fan?.length) return '';
  let out =
    `## Fan-out: one channel, 100-byte messages\n\n` +
    `Max rate (closed loop, at most 4 messages ahead of the slowest subscriber), median of ${doc.repeat} runs. ` +
    `**CPU-s/M** = server CPU-seconds per million deliveries (lower is better); ` +
    `load % = the load generators' own CPU (100% = one core).\n\n`;
  out += table(
    ['subscribers', 'system', 'transport', 'deliveries/s', 'CPU-s/M', 'p50 ms', 'p99 ms', 'lost', 'load %'],
    fan.map((r) => {
      const m = r.median as Row;
      return [
        ...[k(r.subscribers as number), r.system as string, r.transport as string],
        ...[k(m.deliveriesPerSec as number), m.cpuSecPerMillion as number, m.p50Ms as number, m.p99Ms as number],
        ...[m.lost as number, m.loadCpuPct as number],
      ];
    }),
  );
  out += `\nFixed rates (open loop; a system's ladder stops after its first rate with p99 ≥ 250 ms or a loss):\n\n`;
  const rows: (string | number)[][] = [];
  for (const r of fan) {
    for (const p of r.phases as Row[]) {
      if (p.rate === null) continue;
      rows.push([
        ...[k(r.subscribers as number), r.system as string, p.rate as number, k(p.deliveriesPerSec as number)],
        ...[p.p50Ms as number, p.p99Ms as number, p.maxMs as number, p.lost as number],
        ...[p.cpuSecPerMillion as number, p.serverCpuPct as number, p.loadCpuPct as number],
      ]);
    }
  }
  const header = ['subscribers', 'system', 'msg/s', 'deliveries/s', 'p50 ms', 'p99 ms', 'max ms', 'lost', 'CPU-s/M'];
  out += table([...header, 'server %', 'load %'], rows);
  return out + '\n';
}

function idleSection(doc: Doc): string {
  const idle = doc.results.idle as Row[];
  if (!idle?.length) return '';
  let out =
    `## Idle subscribers\n\nServer RSS per subscriber over the empty server (whole process tree), ` +
    `and the time to open them all (200 at a time).\n\n`;
  out += table(
    ['subscribers', 'system', 'transport', 'ready', 'KiB each', 'connect ms', 'server RSS MiB'],
    idle.map((r) => [
      ...[k(r.subscribers as number), r.system as string, r.transport as string, r.ready as number],
      ...[r.kibPerSubscriber as number, r.connectMs as number, Math.round((r.rssKiB as number) / 1024)],
    ]),
  );
  return out + '\n';
}

function channelsSection(doc: Doc): string {
  const ch = doc.results.channels as Row[];
  if (!ch?.length) return '';
  let out = `## Many channels: one subscriber per channel, one message to each\n\n`;
  out += table(
    ['subscribers', 'system', 'all delivered ms', 'lost', 'not connected', 'publish failed'].concat(
      ['p50 ms', 'p99 ms', 'CPU-s/M'],
    ),
    ch.map((r) => [
      ...[k(r.subscribers as number), r.system as string, r.allDeliveredMs as number, r.lost as number],
      ...[(r.notConnected as number | undefined) ?? 0, (r.publishFailed as number | undefined) ?? 0],
      ...[r.p50Ms as number, r.p99Ms as number, r.cpuSecPerMillion as number],
    ]),
  );
  return out + '\n' + channelMedians(ch);
}

function stormSection(doc: Doc): string {
  const storm = doc.results.storm as Row[];
  if (!storm?.length) return '';
  let out =
    `## Reconnect storm: every subscriber drops, messages are published, ` +
    `all come back at once with their last id\n\n`;
  out += table(
    [
      ...['subscribers', 'system', 'missed msgs', 'caught up', 'all caught up ms', 'replay deliveries/s'],
      ...['lost', 'duplicates'],
    ],
    storm.map((r) => [
      ...[k(r.subscribers as number), r.system as string, r.missedMessages as number, `${r.caughtUp}/${r.subscribers}`],
      ...[r.allCaughtUpMs as number, k(r.replayPerSec as number), r.lost as number, r.duplicates as number],
    ]),
  );
  return out + '\n';
}

const r2 = (n: number) => (Number.isFinite(n) ? (Math.round(n * 100) / 100).toFixed(2) : '–');

/** The issue's targets, as ratios measured in this run. */
function targets(doc: Doc): string {
  const lines = [...cpuTargets(doc), ...memoryTargets(doc), ...ladderTargets(doc), ...workerTargets(doc)];
  const storm = ((doc.results.storm ?? []) as Row[]).find((r) => r.system === 'kometa');
  if (storm) {
    lines.push(
      `- Reconnect storm of ${k(storm.subscribers as number)}: **${storm.caughtUp}/${storm.subscribers} caught up ` +
        `in ${storm.allCaughtUpMs} ms, lost ${storm.lost}, duplicates ${storm.duplicates}** ` +
        `(${k(storm.replayPerSec as number)} replayed deliveries/s).`,
    );
  }
  return lines.length ? `## Targets\n\n${lines.join('\n')}\n\n` : '';
}

function cpuTargets(doc: Doc): string[] {
  const lines: string[] = [];
  const fan = (doc.results.fanout ?? []) as Row[];
  const cpu = (system: string, n: number) => {
    const row = fan.find((r) => r.system === system && r.subscribers === n);
    return ((row?.median as Row | undefined)?.cpuSecPerMillion as number | undefined) ?? NaN;
  };
  for (const n of [...new Set(fan.map((r) => r.subscribers as number))]) {
    const k0 = cpu('kometa', n);
    lines.push(
      `- CPU per million deliveries, ${k(n)} subscribers: kometa ${k0} CPU-s/M = ` +
        `**${r2(k0 / cpu('floor', n))}× the floor** (target ≤ 0.8), **${r2(k0 / cpu('nchan', n))}× Nchan** ` +
        `(target ≤ 1); kometa over WebSocket ${r2(cpu('kometa-ws', n) / cpu('floor', n))}× the floor.`,
    );
    const sio = cpu('socketio', n);
    if (Number.isFinite(sio)) {
      lines.push(
        `- Deliveries per server CPU-second, ${k(n)} subscribers: kometa **${r2(sio / k0)}× Socket.IO** ` +
          `(target ≥ 3); kometa over WebSocket ${r2(sio / cpu('kometa-ws', n))}×.`,
      );
    }
  }
  return lines;
}

function memoryTargets(doc: Doc): string[] {
  const idle = (doc.results.idle ?? []) as Row[];
  const biggest = Math.max(0, ...idle.map((r) => r.subscribers as number));
  if (biggest <= 0) return [];
  const mem = (system: string, transport: string) => {
    const row = idle.find((r) => r.system === system && r.transport === transport && r.subscribers === biggest);
    return (row?.kibPerSubscriber as number | undefined) ?? NaN;
  };
  const floor = mem('floor', 'sse');
  return [
    `- Memory per idle subscriber at ${k(biggest)}: kometa SSE ${mem('kometa', 'sse')} KiB = ` +
      `**${r2(mem('kometa', 'sse') / floor)}× the floor** (target ≤ 1.1; floor ${floor} KiB, ` +
      `Nchan ${mem('nchan', 'sse')} KiB); long-poll ${r2(mem('kometa', 'poll') / floor)}×, ` +
      `WebSocket ${r2(mem('kometa', 'ws') / floor)}×.`,
  ];
}

function ladderTargets(doc: Doc): string[] {
  const fan = (doc.results.fanout ?? []) as Row[];
  const top = Math.max(0, ...fan.map((r) => r.subscribers as number));
  if (top <= 0) return [];
  const ladder = (system: string) =>
    ((fan.find((r) => r.system === system && r.subscribers === top)?.phases ?? []) as Row[]).filter(
      (p) => p.rate !== null,
    );
  const held = (phases: Row[], ms: number) =>
    phases.filter((p) => (p.p99Ms as number) < ms && p.lost === 0).map((p) => p.rate as number);
  const floorHeld = held(ladder('floor'), 100);
  const floorRate = floorHeld.length ? Math.max(...floorHeld) : undefined;
  const kometaHeld = held(ladder('kometa'), 100);
  const at = (system: string, rate: number) => ladder(system).find((p) => p.rate === rate);
  if (floorRate !== undefined) {
    const kp = at('kometa', floorRate);
    return [
      `- Fixed rate at ${k(top)} subscribers: the floor's highest rate with p99 < 100 ms is ${floorRate} msg/s ` +
        `(p99 ${at('floor', floorRate)?.p99Ms} ms); kometa at that rate: **p99 ${kp?.p99Ms ?? '?'} ms, ` +
        `lost ${kp?.lost ?? '?'}**; kometa's highest: ${kometaHeld.length ? Math.max(...kometaHeld) : 'none'} msg/s.`,
    ];
  }
  const first = ladder('floor')[0];
  // One message to every subscriber already takes about 100 ms here (the load generator reads them all on one
  // core), so compare at 250 ms too.
  const floor250 = held(ladder('floor'), 250);
  const rate250 = floor250.length ? Math.max(...floor250) : undefined;
  const kometa250 = held(ladder('kometa'), 250);
  const k250 = rate250 === undefined ? undefined : at('kometa', rate250);
  return [
    `- Fixed rate at ${k(top)} subscribers: the floor holds no rate with p99 < 100 ms here ` +
      `(at ${first?.rate ?? '?'} msg/s its p99 is ${first?.p99Ms ?? '?'} ms, ` +
      `kometa's ${at('kometa', (first?.rate as number) ?? 0)?.p99Ms ?? '?'} ms: one message to ${k(top)} ` +
      `subscribers takes about that long to write and read on one core each). ` +
      `With p99 < 250 ms: the floor's highest rate is ${rate250 ?? 'none'} msg/s ` +
      `(p99 ${rate250 === undefined ? '–' : at('floor', rate250)?.p99Ms} ms); kometa at that rate ` +
      `**p99 ${k250?.p99Ms ?? '–'} ms, lost ${k250?.lost ?? '–'}**; ` +
      `kometa's highest: ${kometa250.length ? Math.max(...kometa250) : 'none'} msg/s ` +
      `(p99 < 100 ms: ${kometaHeld.length ? Math.max(...kometaHeld) + ' msg/s' : 'none'}).`,
  ];
}

function workerTargets(doc: Doc): string[] {
  const workerRows = (doc.results.workers ?? []) as Row[];
  if (!workerRows.length) return [];
  const med = (by: (r: Row) => number) => {
    const sorted = workerRows.map(by).sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };
  const first = workerRows[0]!;
  const clean = workerRows.filter(
    (w) =>
      w.ready === w.subscribers &&
      Object.keys(w.errorCodes as object).length === 0 &&
      (w.delivery as Row).lost === 0,
  ).length;
  const perWorker = workerRows.flatMap((w) => (w.perWorker as Row[]).map((p) => p.subscribers as number));
  const lost = med((r) => ((r.delivery as Row).lost as number | null | undefined) ?? NaN);
  return [
    `- Idle subscribers over ${first.workers} worker processes (--redis, one port), ` +
      `median of ${workerRows.length} runs: **${med((r) => r.ready as number)}/${first.subscribers} connected, ` +
      `${med((r) => r.failed as number)} failed, ` +
      `${Number.isNaN(lost) ? '– (publishes refused)' : lost} lost** of one message per subscriber ` +
      `(${clean}/${workerRows.length} runs without an error or a loss); ` +
      `connect ${Math.round(med((r) => r.connectMs as number))} ms, ` +
      `server RSS ${Math.round(med((r) => r.rssKiB as number) / 1024)} MiB = ` +
      `${med((r) => r.kibPerSubscriber as number)} KiB per subscriber; ` +
      `per worker ${Math.min(...perWorker)}–${Math.max(...perWorker)}.`,
  ];
}

function workersSection(doc: Doc): string {
  let out = '';
  const workers = doc.results.workers as Row[];
  if (workers?.length) {
    out += `## Idle subscribers over worker processes: kometa serve --redis --workers\n\n`;
    out +=
      `Idle SSE subscribers spread over channels, opened from several load processes (at most 10k sockets each); ` +
      `the open-files limit is per process. Server RSS is the whole tree (primary + workers; Redis beside it); ` +
      `per worker: the sockets each worker PID holds (/proc/<pid>/fd) over what it held before. ` +
      `Then one message is published to every channel and every subscriber must get it.\n\n`;
    out += table(
      [
        ...['workers', 'subscribers', 'ready', 'failed', 'errors', 'connect ms', 'server RSS MiB', 'KiB each'],
        ...['per worker', 'redis MiB', 'delivered', 'lost', 'all delivered ms'],
      ],
      workers.map((r) => {
        const d = r.delivery as Row;
        const codes = Object.entries(r.errorCodes as Record<string, number>);
        const errors = codes.map(([code, n]) => `${code} ${n}`).join(', ') || '0';
        return [
          r.workers as number,
          k(r.subscribers as number),
          r.ready as number,
          r.failed as number,
          errors + (r.stoppedFor ? ` (stopped: ${r.stoppedFor})` : '') + (r.connectError ? ` (${r.connectError})` : ''),
          r.connectMs as number,
          Math.round((r.rssKiB as number) / 1024),
          r.kibPerSubscriber as number,
          (r.perWorker as Row[]).map((w) => w.subscribers).join(' / '),
          Math.round((r.redisRssKiB as number) / 1024),
          d.delivered === undefined ? '–' : `${d.delivered}/${d.subscribersAtPublish}`,
          (d.publishFailed as number | undefined)
            ? `– (${d.publishFailed as number} publishes refused)`
            : ((d.lost as number | undefined) ?? '–'),
          (d.allDeliveredMs as number | undefined) ?? '–',
        ];
      }),
    );
    out += '\n';
  }
  return out;
}

function profileSection(doc: Doc): string {
  let out = '';
  const prof = doc.results.profile as Row[];
  if (prof?.length) {
    out += `## Profile runs (server under --cpu-prof)\n\n`;
    for (const r of prof) {
      if (r.scenario === 'channels') {
        out +=
          `### ${r.system}, many channels, ${k(r.subscribers as number)} subscribers each on its own channel: ` +
          `all delivered in ${r.allDeliveredMs} ms, ${r.cpuSecPerMillion} CPU-s/M\n\n`;
      } else {
        const m = r.median as Row;
        out +=
          `### ${r.system}, fan-out to ${k(r.subscribers as number)} subscribers: ` +
          `${k(m.deliveriesPerSec as number)} deliveries/s, ${m.cpuSecPerMillion} CPU-s/M\n\n`;
      }
      const p = r.profile as { top: { fn: string; where: string; selfPct: number }[] } | undefined;
      if (p) out += table(['self %', 'function', 'where'], p.top.map((e) => [e.selfPct, e.fn, e.where])) + '\n';
    }
  }
  return out;
}

function clusterSection(doc: Doc): string {
  const rows = (doc.results['redis-cluster'] ?? []) as Row[];
  if (!rows.length) return '';
  const first = rows[0]!;
  let out = `## Fan-out through one Redis and a 3-master Redis Cluster\n\n`;
  out +=
    `${first.nodes as number} kometa nodes on each, ${first.channels as number} channels × ` +
    `${first.perChannel as number} chunked-stream subscribers per channel per node, ${first.messages as number} ` +
    'messages of 100 bytes round-robin over channels and nodes (32 in flight). Per CPU-second: kometa and Redis ' +
    'together.\n\n';
  out += table(
    ['Redis', 'deliveries', 'deliveries/s', 'deliveries per CPU-second', 'kometa CPU s', 'Redis CPU s'],
    rows.map((r) => [
      r.setup as string,
      r.deliveries as number,
      r.perSecond as number,
      r.perCpuSecond as number,
      r2(r.kometaCpu as number),
      r2(r.redisCpu as number),
    ]),
  );
  const one = rows.find((r) => r.setup === 'one Redis');
  const many = rows.find((r) => r.setup !== 'one Redis');
  if (one !== undefined && many !== undefined) {
    const ratio = (many.perCpuSecond as number) / (one.perCpuSecond as number);
    out += `\nCluster / one Redis, deliveries per CPU-second: **${r2(ratio)}×**.\n`;
  }
  return out + '\n';
}

/** With several rounds: each system's median CPU-s/M, and its ratios to the Node floor and to Nchan of the same run. */
function channelMedians(rows: Row[]): string {
  const bySystem = new Map<string, number[]>();
  for (const r of rows) {
    const name = r.system as string;
    bySystem.set(name, [...(bySystem.get(name) ?? []), r.cpuSecPerMillion as number]);
  }
  if (![...bySystem.values()].some((v) => v.length > 1)) return '';
  const median = (v: number[]): number => {
    const s = [...v].sort((a, b) => a - b);
    return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const medians = new Map([...bySystem].map(([name, v]) => [name, median(v)]));
  const ratio = (name: string, base: string): string => {
    const b = medians.get(base);
    return b === undefined ? '–' : `${(medians.get(name)! / b).toFixed(2)}×`;
  };
  let out = `Medians over ${Math.max(...[...bySystem.values()].map((v) => v.length))} rounds:\n\n`;
  out += table(
    ['system', 'CPU-s/M (each round)', 'median', 'vs floor', 'vs nchan'],
    [...bySystem].map(([name, v]) => [
      ...[name, v.join(', '), medians.get(name)!],
      ...[ratio(name, 'floor'), ratio(name, 'nchan')],
    ]),
  );
  return out + '\n';
}
