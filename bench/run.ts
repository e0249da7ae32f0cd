/*
 * kometa's benchmark: the hub against the Node floor and the peers, in one run.
 *
 *   npm run bench -- [all|idle|fanout|channels|storm|workers|profile|profile-channels|redis-cluster|h2|herd|
 *                     presence|presence-fanout|presence-joins]
 *                    [--systems a,b] [--quick]
 *                    [--repeat 3] [--kometa-before <dir>] [--out name]
 *                    [--workers 5] [--subscribers 95000]   (the workers scenario)
 *                    [--subscribers 1000] [--profile-dir d] (h2: floors, TLS and HTTP/2; profiles of kometa's h2 cases)
 *                    [--subscribers 10000]                  (herd: a restart under EventSource-like subscribers)
 *                    [--presence-share 1] [--presence-redis] (the presence scenario)
 *
 * This process (pinned to core 1) starts each server on core 0, forks load
 * generators (bench/lib/loader.ts, core 1) that hold the subscribers on raw
 * sockets from 127.0.1.x source addresses, and publishes over raw keep-alive
 * HTTP. Server CPU and memory are read from /proc (the whole process tree);
 * the load's own CPU is reported beside them so that a saturated client is
 * visible. Each scenario is a file of bench/scenarios/. Results:
 * bench/results/<name>.json and .md. docs/benchmarks.md explains the method
 * and the findings.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Bench, MESSAGE_BYTES, RESULTS, benchConfig, log } from './lib/bench.js';
import { hasTaskset, pinSelf } from './lib/procs.js';
import { renderMarkdown } from './lib/report.js';
import { type System, allSystems, redisVersion } from './lib/systems.js';
import { channels } from './scenarios/channels.js';
import { fanout } from './scenarios/fanout.js';
import { idle } from './scenarios/idle.js';
import { presence, presenceFanoutPart, presenceJoinsPart } from './scenarios/presence.js';
import { redisCluster } from './scenarios/redis-cluster.js';
import { storm } from './scenarios/storm.js';
import { workersScenario } from './scenarios/workers.js';
import { h2Scenario } from './scenarios/h2.js';
import { herdScenario } from './scenarios/herd.js';

const SCENARIOS = [
  ...['idle', 'fanout', 'channels', 'storm', 'workers'] as const,
  ...['profile', 'profile-channels', 'redis-cluster', 'h2', 'herd'] as const,
  ...['presence', 'presence-fanout', 'presence-joins'] as const,
] as const;
type Scenario = (typeof SCENARIOS)[number];
/** What `all` runs: the profile, the Redis Cluster comparison, h2 and herd are asked for by name. */
const ALL: Scenario[] = ['idle', 'fanout', 'channels', 'storm', 'workers'];

const RUNNERS: Record<Scenario, (bench: Bench) => Promise<void>> = {
  idle,
  fanout: (bench) => fanout(bench, bench.systems, bench.config.fanout),
  // Rounds (--repeat) go over every system in turn, so that a noisy minute hits all of them alike.
  channels: async (bench) => {
    for (let r = 0; r < channelRounds; r++) await channels(bench, bench.systems, bench.config.channels);
  },
  storm,
  workers: workersScenario,
  profile: async (bench) => {
    const kometas = bench.systems.filter((s) => s.name.startsWith('kometa') && !s.name.endsWith('-ws'));
    await fanout(bench, kometas, [bench.config.profileSubs], { profile: true });
    await channels(bench, kometas, bench.config.profileSubs, { profile: true });
  },
  'profile-channels': (bench) =>
    channels(bench, bench.systems.filter((s) => s.name.startsWith('kometa')), bench.config.channels, { profile: true }),
  'redis-cluster': redisCluster,
  h2: (bench) => h2Scenario(bench, scenarioSubscribers, h2ProfileDir),
  herd: (bench) => herdScenario(bench, scenarioSubscribers),
  presence: (bench) => presence(bench, { share: presenceShare, redis: presenceRedis }),
  'presence-fanout': presenceFanoutPart,
  'presence-joins': (bench) => presenceJoinsPart(bench, { share: presenceShare, redis: presenceRedis }),
};
/** --subscribers as given (h2 and herd have their own defaults; the workers scenario's is 95,000). */
let scenarioSubscribers: number | undefined;
/** --profile-dir: V8 CPU profiles of the h2 scenario's kometa HTTP/2 cases. */
let h2ProfileDir: string | undefined;

/** The share of a joins channel's members that ask for in-band joins and leaves. */
let presenceShare = 1;
/** The presence scenario's joins also through a Redis of its own. */
let presenceRedis = false;
/** The many-channels scenario runs once per system unless --repeat asks for more rounds. */
let channelRounds = 1;

class UsageError extends Error {}

interface Args {
  readonly scenarios: Scenario[];
  readonly bench: Bench;
  readonly out: string | undefined;
}

function parse(argv: string[]): Args | 'help' {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      systems: { type: 'string' },
      quick: { type: 'boolean', default: false },
      repeat: { type: 'string' },
      'kometa-before': { type: 'string' },
      out: { type: 'string' },
      workers: { type: 'string' },
      subscribers: { type: 'string' },
      'profile-dir': { type: 'string' },
      'presence-share': { type: 'string' },
      'presence-redis': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return 'help';
  const quick = values.quick === true;
  const scenarioArg = positionals[0] ?? 'all';
  const scenarios = scenarioArg === 'all' ? ALL : scenarioArg.split(',').map(toScenario);
  const repeat = Number(values.repeat ?? (quick ? 1 : 3));
  if (values.repeat !== undefined) channelRounds = repeat;
  const workers = Number(values.workers ?? (quick ? 2 : 5));
  const subscribers = Number(values.subscribers ?? (quick ? 4000 : 95_000));
  if (values.subscribers !== undefined) scenarioSubscribers = subscribers;
  h2ProfileDir = values['profile-dir'];
  presenceShare = Number(values['presence-share'] ?? 1);
  presenceRedis = values['presence-redis'] === true;
  if (!(presenceShare > 0 && presenceShare <= 1)) throw new UsageError('--presence-share: a number in (0, 1]');
  const systems = chooseSystems(allSystems(values['kometa-before']), values.systems);
  return { scenarios, bench: new Bench(benchConfig(quick, repeat, workers, subscribers), systems), out: values.out };
}

function toScenario(name: string): Scenario {
  if ((SCENARIOS as readonly string[]).includes(name)) return name as Scenario;
  throw new UsageError(`unknown scenario ${name}; one of all, ${SCENARIOS.join(', ')}`);
}

function chooseSystems(all: System[], wanted: string | undefined): System[] {
  if (wanted === undefined) return all.filter((s) => s.channelsOnly !== true);
  const names = wanted.split(',');
  for (const name of names) {
    if (!all.some((s) => s.name === name)) {
      throw new UsageError(`unknown system ${name}; one of ${all.map((s) => s.name).join(', ')}`);
    }
  }
  return all.filter((s) => names.includes(s.name));
}

/** Stop everything this run started on a signal, at its end, and after 40 minutes whatever happens. */
function guard(bench: Bench): void {
  process.on('exit', () => bench.cleanup());
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      log(`${signal}: stopping everything this bench started`);
      bench.cleanup();
      process.exit(130);
    });
  }
  const hardDeadline = setTimeout(() => {
    log('hard deadline (40 min) reached; stopping');
    bench.cleanup();
    process.exit(3);
  }, 40 * 60_000);
  hardDeadline.unref();
}

async function run({ scenarios, bench, out }: Args): Promise<void> {
  const { systems, config } = bench;
  pinSelf();
  const startedAt = new Date();
  const loadAverageAtStart = loadavg();
  log(
    `kometa bench: ${scenarios.join(', ')}${config.quick ? ' (quick)' : ''}; ` +
      `systems ${systems.map((s) => s.name).join(', ')}; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`,
  );
  if (!hasTaskset()) log('taskset not found: server and load share the cores');
  for (const scenario of scenarios) {
    log(`--- ${scenario}`);
    await RUNNERS[scenario](bench);
  }
  const usesRedis = scenarios.includes('workers') || scenarios.includes('redis-cluster') || presenceRedis;
  const document = {
    date: startedAt.toISOString(),
    durationSec: Math.round((Date.now() - startedAt.getTime()) / 1000),
    quick: config.quick,
    repeat: config.repeat,
    scenarios,
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model ?? '?',
      loadAverageAtStart,
      taskset: hasTaskset(),
      note: '2 cores, shared with other work; server on core 0, load generators and publisher on core 1',
    },
    versions: {
      ...Object.fromEntries(systems.map((s) => [s.name, s.unavailable() === null ? s.version() : 'not installed'])),
      ...(usesRedis ? { redis: redisVersion() } : {}),
    },
    node: process.versions.node,
    systems: Object.fromEntries(systems.map((s) => [s.name, s.description])),
    messageBytes: MESSAGE_BYTES,
    skipped: bench.skipped,
    results: bench.results,
  };
  mkdirSync(RESULTS, { recursive: true });
  const name = out ?? `${startedAt.toISOString().slice(0, 19).replace(/[:T]/g, '-')}${config.quick ? '-quick' : ''}`;
  writeFileSync(join(RESULTS, `${name}.json`), JSON.stringify(document, null, 2) + '\n');
  const markdown = renderMarkdown(document);
  writeFileSync(join(RESULTS, `${name}.md`), markdown);
  process.stdout.write(markdown);
  log(`results: bench/results/${name}.json and .md (${document.durationSec} s)`);
}

function usage(): string {
  const text = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]!;
  return text.replace(/^\/\*\n?/, '').replace(/^ \* ?/gm, '') + '\n';
}

async function main(): Promise<number> {
  let args: Args | 'help';
  try {
    args = parse(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    return 2;
  }
  if (args === 'help') {
    process.stdout.write(usage());
    return 0;
  }
  guard(args.bench);
  try {
    await run(args);
    return 0;
  } catch (error) {
    log(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return 1;
  } finally {
    args.bench.cleanup();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then((code) => process.exit(code), () => process.exit(1));
}
