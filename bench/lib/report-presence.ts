/** The Markdown of the presence scenario's results (bench/scenarios/presence*.ts). */

type Row = Record<string, unknown>;

function table(header: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.map(String).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n') + '\n';
}

export function presenceSection(results: Record<string, unknown[]>): string {
  const rows = (results.presence ?? []) as Row[];
  if (rows.length === 0) return '';
  return fanoutPart(rows.filter((r) => r.part === 'fanout')) + joinsPart(rows.filter((r) => r.part === 'joins'));
}

function fanoutPart(rows: Row[]): string {
  if (rows.length === 0) return '';
  let out =
    `## Presence: fan-out with presence off, on, and with --presence-events\n\n` +
    'One channel, plain SSE subscribers (none asked for joins and leaves), 100-byte messages, closed loop; rounds ' +
    'over the three servers in turn. **CPU-s/M** = server CPU-seconds per million deliveries: each phase, then the ' +
    'median, and its ratio to `--no-presence` in this run.\n\n';
  out += table(
    ['subscribers', 'server', 'CPU-s/M (each phase)', 'median CPU-s/M', 'vs no presence', 'deliveries/s', 'lost'],
    rows.map((r) => {
      const m = r.median as Row;
      return [
        ...[r.subscribers as number, r.system as string, (r.cpuSecPerMillion as number[]).join(', ')],
        ...[(m.cpuSecPerMillion as number).toFixed(2), `${(r.ratioToOff as number).toFixed(2)}×`],
        ...[Math.round(m.deliveriesPerSec as number), m.lost as number],
      ];
    }),
  );
  return out + '\n';
}

function joinsPart(rows: Row[]): string {
  if (rows.length === 0) return '';
  let out =
    `## Presence: one join or leave on a big channel (--presence-events)\n\n` +
    'One channel; `watching` of its members subscribed with `?presence=1` (clients `m<i>`), the rest plain. ' +
    'One step at a time, ' +
    'each waited for until every subscriber that should have it has it: an ordinary message (to all), a new ' +
    'client joining (an event to the watching ones), the same clients leaving, and a client in and out of ' +
    'another, empty channel (the connection alone). Server CPU ms per step (with Redis: kometa and Redis), median ' +
    'of the rounds.\n\n';
  out += table(
    ['broker', 'members', 'watching', 'message ms', 'join ms', 'leave ms', 'connection ms', 'join / message']
      .concat('leave / message'),
    rows.map((r) => {
      const cpu = r.medianCpuMs as Record<string, number>;
      return [
        ...[r.broker as string, r.members as number, r.watching as number],
        ...[cpu.message!, cpu.join!, cpu.leave!, cpu.connection!],
        ...[`${(r.joinToMessage as number).toFixed(2)}×`, `${(r.leaveToMessage as number).toFixed(2)}×`],
      ];
    }),
  );
  out += '\nEvery step reached everyone (median time until the last subscriber had it), and the counts:\n\n';
  out += table(
    ['broker', 'members', 'message ms', 'join ms', 'leave ms', 'each watching one saw joins/leaves', 'plain saw']
      .concat('lost'),
    rows.map((r) => {
      const lat = r.medianLatencyMs as Record<string, number>;
      const check = r.check as Row;
      const counts = (c: unknown) =>
        Object.entries(c as Record<string, number>)
          .map(([k, n]) => `${k}: ${n}`)
          .join(', ');
      return [
        ...[r.broker as string, r.members as number, lat.message!, lat.join!, lat.leave!],
        `${counts(check.watchingByJoinsLeaves)} (expected ${check.expected as string})`,
        ...[counts(check.plainByJoinsLeaves) || '–', check.messagesLost as number],
      ];
    }),
  );
  const setup = rows.map((r) => {
    const s = r.setup as Row;
    return `${r.broker as string} ${r.members as number}: ${s.ms as number} ms, ` +
      `${s.serverCpuSec as number} server CPU-s, ${s.eventsSeen as number} events seen`;
  });
  out +=
    '\nBuilding the channel (each member joins as a plain subscriber, the watching ones subscribe again with ' +
    '?presence=1 as the same client, then their plain subscriptions close; no event may be seen): ' +
    `${setup.join('; ')}.\n`;
  return out + '\n';
}
