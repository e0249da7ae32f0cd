import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { Kometa, type KometaClientError, type StateChange, type TransportName } from '../client/index.js';
import { isValidChannelName } from '../core/channel-name.js';
import { inspectWire } from '../ops/wire.js';
import { idSeqText } from '../protocol/cursor.js';
import { runDoctor } from './doctor.js';
import { WireFormatter, paint } from './wire-format.js';

/** Exit codes of tail, publish and doctor (docs/operations.md). */
export const EXIT = { ok: 0, refused: 1, usage: 2, unreachable: 3 } as const;

type Tool = 'tail' | 'publish' | 'doctor';

const TOOL_USAGE: Record<Tool, string> = {
  tail:
    'Usage: kometa tail <channel> [--url <hub>] [--token <t>] [--from start] [--count <n>] [--timeout <s>] [--json] ' +
    `[--transport sse|poll|websocket]
       kometa tail <channel> --wire [--url <hub>] [--token <t>] [--timeout <s>]      the subscription as on the wire
       kometa tail <http://…/any/path> --wire [--timeout <s>]                      any URL as on the wire (e.g. /seed)

Prints each message as it is published. Exit: 0 done (count reached, timeout, Ctrl-C, stream ended),
1 the hub refused (bad channel, no credential, not allowed), 2 usage, 3 the hub cannot be reached.
--url defaults to $KOMETA_URL or http://127.0.0.1:8080; --token to $KOMETA_TOKEN.`,
  publish:
    `Usage: kometa publish <channel> <data | -> [--url <hub>] [--token <t>] [--event <name>] ` +
    `[--idempotency-key <key>]
       kometa publish --batch <file | -> [--url <hub>] [--token <t>]

Publishes one message (data '-' reads it from stdin). Prints its id and how many subscribers it reached.
With --idempotency-key, running it again with the same key publishes nothing and prints the first id.
--batch publishes a file of items (a JSON array, or one JSON item per line) in one POST /pub
(docs/backends.md), printing one line per item: its id(s), or its error.
Exit: 0 published, 1 the hub refused (its problem details are printed; with --batch: any item failed),
2 usage, 3 the hub cannot be reached.`,
  doctor: `Usage: kometa doctor <hub url> [--token <t>] [--idle <s>] [--json]

Checks, from this machine, what stands between it and the hub: buffering proxies, idle cut-offs,
HTTP/1.1 vs HTTP/2, WebSocket upgrades; says which transport will work and what to change.
Takes at most --idle seconds (default 20) plus a few. Exit: 0 every transport works,
1 some do not (the report says what to change), 2 usage, 3 the hub cannot be reached or no transport works.`,
};

function usageError(tool: Tool, message: string): number {
  process.stderr.write(`kometa ${tool}: ${message}\n${TOOL_USAGE[tool]}\n`);
  return EXIT.usage;
}

function parseToolArgs(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      help: { type: 'boolean', short: 'h' },
      url: { type: 'string' },
      token: { type: 'string' },
      wire: { type: 'boolean' },
      json: { type: 'boolean' },
      from: { type: 'string' },
      count: { type: 'string' },
      timeout: { type: 'string' },
      transport: { type: 'string' },
      event: { type: 'string' },
      idle: { type: 'string' },
      batch: { type: 'string' },
      'idempotency-key': { type: 'string' },
    },
  });
}

type ToolArgs = ReturnType<typeof parseToolArgs>;

/** A number of seconds (or a count): undefined when not given, null when not a number. */
function seconds(value: string | undefined): number | undefined | null {
  if (value === undefined) return undefined;
  return /^\d+(\.\d+)?$/.test(value) ? Number(value) : null;
}

export async function runTool(tool: Tool, argv: string[]): Promise<number> {
  let parsed: ToolArgs;
  try {
    parsed = parseToolArgs(argv);
  } catch (error) {
    return usageError(tool, (error as Error).message);
  }
  if (parsed.values.help === true) {
    process.stdout.write(`${TOOL_USAGE[tool]}\n`);
    return EXIT.ok;
  }
  const base = parsed.values.url ?? (process.env.KOMETA_URL || 'http://127.0.0.1:8080');
  if (!/^https?:\/\/[^/]+/.test(base) || !URL.canParse(base)) {
    return usageError(tool, `--url must be an http:// or https:// URL, got ${JSON.stringify(base)}`);
  }
  const token = parsed.values.token ?? (process.env.KOMETA_TOKEN || undefined);
  if (tool === 'doctor') return doctorCommand(parsed, token);
  if (tool === 'publish') return publishCommand(parsed, base, token);
  return tailCommand(parsed, base, token);
}

function doctorCommand({ values, positionals }: ToolArgs, token: string | undefined): Promise<number> | number {
  const target = positionals[0] ?? values.url;
  if (target === undefined || positionals.length > 1) return usageError('doctor', 'give one hub URL');
  if (!/^https?:\/\//.test(target) || !URL.canParse(target)) {
    return usageError('doctor', `not an http:// or https:// URL: ${target}`);
  }
  const idle = seconds(values.idle);
  if (idle === null || (idle !== undefined && idle > 120)) {
    return usageError('doctor', '--idle is a number of seconds, at most 120');
  }
  return runDoctor({ url: new URL(target), token, idleSeconds: idle ?? 20, json: values.json === true });
}

async function publishCommand(
  { values, positionals }: ToolArgs,
  base: string,
  token: string | undefined,
): Promise<number> {
  if (values.batch !== undefined) {
    if (positionals.length > 0)
      return usageError('publish', '--batch takes the items from its file, not from arguments');
    let text: string;
    try {
      text = values.batch === '-' ? await readStdin() : readFileSync(values.batch, 'utf8');
    } catch (error) {
      return usageError('publish', `cannot read ${values.batch}: ${(error as Error).message}`);
    }
    return publishBatchFile(base, text, token);
  }
  const [channel, data, ...rest] = positionals;
  if (channel === undefined || data === undefined || rest.length > 0) {
    return usageError('publish', 'give a channel and the data');
  }
  if (!isValidChannelName(channel)) {
    return usageError('publish', `not a valid channel name: ${JSON.stringify(channel)} (docs/protocol.md)`);
  }
  const body = data === '-' ? await readStdin() : data;
  return publish(base, channel, body, token, values.event, values['idempotency-key']);
}

async function tailCommand(
  { values, positionals }: ToolArgs,
  base: string,
  token: string | undefined,
): Promise<number> {
  const [target, ...rest] = positionals;
  if (target === undefined || rest.length > 0) return usageError('tail', 'give one channel (or a URL with --wire)');
  const timeout = seconds(values.timeout);
  const count = seconds(values.count);
  if (timeout === null) return usageError('tail', '--timeout is a number of seconds');
  if (count === null || (count !== undefined && !Number.isInteger(count))) {
    return usageError('tail', '--count is a whole number');
  }
  const isUrl = /^https?:\/\//.test(target);
  if (isUrl && !URL.canParse(target)) return usageError('tail', `not a URL: ${target}`);
  if (!isUrl && !isValidChannelName(target)) {
    return usageError('tail', `not a valid channel name: ${JSON.stringify(target)} (a URL starts with http://)`);
  }
  if (values.from !== undefined && values.from !== 'start' && values.from !== 'now') {
    return usageError('tail', '--from is start or now');
  }
  const transport = values.transport ?? 'sse';
  if (!['sse', 'poll', 'websocket', 'stream'].includes(transport)) {
    return usageError('tail', '--transport is sse, poll, websocket or stream');
  }
  if (isUrl || values.wire === true) {
    const query = transport === 'sse' ? '' : `?transport=${transport === 'websocket' ? 'sse' : transport}`;
    const url = isUrl ? new URL(target) : new URL(`/sub/${encodeURIComponent(target)}${query}`, base);
    return tailWire(url, token, timeout);
  }
  if (transport === 'stream') {
    return usageError('tail', '--transport stream is for --wire; the client speaks sse, poll and websocket');
  }
  // The client retries quietly for ever; a terminal user wants to know at once that the hub is not there or says no.
  const refused = await preflight(base, target, token);
  if (refused !== undefined) return refused;
  return tailChannel(base, target, {
    token,
    from: values.from === 'start' ? 'start' : 'now',
    count,
    timeoutSeconds: timeout,
    json: values.json === true,
    transport: transport as TransportName,
  });
}

/** One long-poll that answers at once: does the hub exist, and does it let this credential follow the channel? */
async function preflight(base: string, channel: string, token: string | undefined): Promise<number | undefined> {
  const url = new URL(`/sub/${encodeURIComponent(channel)}?transport=poll&timeout=0`, base);
  let response: Response;
  try {
    response = await fetch(url, {
      headers: token === undefined ? {} : { Authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(10_000),
    });
  } catch (error) {
    process.stderr.write(`kometa tail: cannot reach ${url.origin}: ${causeOf(error)}\n`);
    return EXIT.unreachable;
  }
  const text = await response.text();
  if (response.ok) return undefined;
  process.stderr.write(`kometa tail: the hub refused: ${describeProblem(response.status, text)}\n`);
  return response.status >= 500 ? EXIT.unreachable : EXIT.refused;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\n$/, '');
}

interface Problem {
  readonly code?: string;
  readonly status?: number;
  readonly detail?: string;
  readonly title?: string;
}

async function publish(
  base: string,
  channel: string,
  data: string,
  token: string | undefined,
  event: string | undefined,
  idempotencyKey?: string,
): Promise<number> {
  const url = new URL(
    `/pub/${encodeURIComponent(channel)}${event === undefined ? '' : `?event=${encodeURIComponent(event)}`}`,
    base,
  );
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: {
        'Content-Type': 'text/plain; charset=utf-8',
        ...(token === undefined ? {} : { Authorization: `Bearer ${token}` }),
        ...(idempotencyKey === undefined ? {} : { 'Idempotency-Key': idempotencyKey }),
      },
      body: data,
      signal: AbortSignal.timeout(10_000),
    });
  } catch (error) {
    process.stderr.write(`kometa publish: cannot reach ${url.origin}: ${causeOf(error)}\n`);
    return EXIT.unreachable;
  }
  const text = await response.text();
  if (response.status !== 201) {
    process.stderr.write(`kometa publish: ${describeProblem(response.status, text)}\n`);
    return EXIT.refused;
  }
  const result = JSON.parse(text) as { id: string; subscribers: number };
  const subscribers = `${result.subscribers} ${result.subscribers === 1 ? 'subscriber' : 'subscribers'}`;
  const replayed =
    response.headers.get('idempotent-replayed') === 'true' ? ', a replay: nothing new was published' : '';
  process.stdout.write(`${result.id}  (${subscribers} here${replayed})\n`);
  return EXIT.ok;
}

type BatchLine = { channel?: string; id?: string; replayed?: boolean; error?: Problem; channels?: BatchLine[] };

/** `kometa publish --batch`: one POST /pub, one line per item. */
async function publishBatchFile(base: string, text: string, token: string | undefined): Promise<number> {
  const url = new URL('/pub', base);
  const ndjson = !text.trimStart().startsWith('[');
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: {
        'Content-Type': ndjson ? 'application/x-ndjson' : 'application/json',
        ...(token === undefined ? {} : { Authorization: `Bearer ${token}` }),
      },
      body: text,
      signal: AbortSignal.timeout(30_000),
    });
  } catch (error) {
    process.stderr.write(`kometa publish: cannot reach ${url.origin}: ${causeOf(error)}\n`);
    return EXIT.unreachable;
  }
  const body = await response.text();
  if (response.status !== 200) {
    process.stderr.write(`kometa publish: ${describeProblem(response.status, body)}\n`);
    return EXIT.refused;
  }
  const answer = JSON.parse(body) as { results: BatchLine[]; published: number; failed: number };
  const line = (result: BatchLine): string => {
    if (result.channels !== undefined) return result.channels.map(line).join('  ');
    if (result.error !== undefined)
      return `${result.channel ?? '-'}: ${result.error.code} ${result.error.detail ?? ''}`.trim();
    return `${result.id}${result.replayed === true ? ' (replay)' : ''}`;
  };
  answer.results.forEach((result, i) => process.stdout.write(`${i + 1}\t${line(result)}\n`));
  process.stderr.write(`${answer.published} published, ${answer.failed} failed\n`);
  return answer.failed > 0 ? EXIT.refused : EXIT.ok;
}

function describeProblem(status: number, body: string): string {
  try {
    const problem = JSON.parse(body) as Problem;
    if (problem.code !== undefined) return `${status} ${problem.code}: ${problem.detail ?? problem.title ?? ''}`;
  } catch {
    // not problem details: a proxy's page, most likely
  }
  return `${status} ${body.slice(0, 200).replace(/\s+/g, ' ')}`;
}

function causeOf(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}

/** The exchange as on the wire, until it ends, the timeout, or Ctrl-C. */
async function tailWire(url: URL, token: string | undefined, timeoutSeconds: number | undefined): Promise<number> {
  const formatter = new WireFormatter(paint(process.stdout.isTTY === true));
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  const accept: [string, string][] =
    url.pathname.startsWith('/sub') && !url.search.includes('transport=') ? [['Accept', 'text/event-stream']] : [];
  const result = await inspectWire({
    origin: new URL(url.origin),
    requests: [
      {
        path: url.pathname + url.search,
        headers: [
          ...accept,
          ...(token === undefined ? [] : ([['Authorization', `Bearer ${token}`]] as [string, string][])),
        ],
      },
    ],
    timeoutMs: (timeoutSeconds ?? 24 * 3600) * 1000,
    maxText: process.stdout.isTTY === true ? Math.max(40, (process.stdout.columns ?? 120) - 40) : 160,
    signal: controller.signal,
    onEvent: (event) => process.stdout.write(`${formatter.format(event)}\n`),
  });
  process.off('SIGINT', onSignal);
  const connected = result.events.some((e) => e.type === 'connect');
  if (!connected) return EXIT.unreachable;
  const response = result.events.find((e) => e.type === 'response');
  if (response !== undefined && response.type === 'response' && response.status >= 400) return EXIT.refused;
  return EXIT.ok;
}

interface TailOptions {
  readonly token: string | undefined;
  readonly from: 'start' | 'now';
  readonly count: number | undefined;
  readonly timeoutSeconds: number | undefined;
  readonly json: boolean;
  readonly transport: TransportName;
}

type KometaWebSocket = NonNullable<ConstructorParameters<typeof Kometa>[1]>['WebSocket'];

/** The client stops for good on these (no credential to renew, or the backend said not to come back): so does tail. */
function stoppedForGood(change: StateChange): boolean {
  return change.state === 'disconnected' && (change.reason === 'unauthorized' || change.reason === 'server-disconnect');
}

function describeStop(change: StateChange): string {
  return [change.reason, change.code, change.detail].filter((part) => part !== undefined).join(' ');
}

/** Follow a channel with the kometa client (so it resumes after drops, and says when something was lost). */
function tailChannel(base: string, channel: string, options: TailOptions): Promise<number> {
  const p = paint(process.stdout.isTTY === true);
  const err = paint(process.stderr.isTTY === true);
  const client = new Kometa(base, {
    transports: [options.transport],
    ...(options.transport === 'websocket' ? { WebSocket: WebSocket as unknown as KometaWebSocket } : {}),
    ...(options.token === undefined ? {} : { token: options.token }),
    backoff: { baseMs: 250, maxMs: 5000 },
  });
  return new Promise<number>((resolve) => {
    let received = 0;
    let everConnected = false;
    let finished = false;
    const finish = (code: number) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      process.off('SIGINT', onSignal);
      client.close();
      resolve(code);
    };
    const onSignal = () => finish(EXIT.ok);
    process.once('SIGINT', onSignal);
    const timer =
      options.timeoutSeconds === undefined
        ? undefined
        : setTimeout(() => finish(EXIT.ok), options.timeoutSeconds * 1000);
    client.on('state', (change) => {
      if (change.state === 'connected') {
        const transport = change.transport ?? (everConnected ? '' : options.transport);
        if (!everConnected) {
          process.stderr.write(err.dim(`following ${channel} on ${base} (${transport}); Ctrl-C to stop\n`));
        } else {
          process.stderr.write(err.green(`reconnected (${transport}); nothing missed unless a gap is shown\n`));
        }
        everConnected = true;
        return;
      }
      if (!finished && stoppedForGood(change)) {
        process.stderr.write(err.red(`kometa tail: the hub refused (${describeStop(change)})\n`));
        finish(EXIT.refused);
        return;
      }
      if (finished || change.reason === 'client-closed' || change.previous !== 'connected') return;
      const detail = change.detail === undefined ? '' : `: ${change.detail}`;
      process.stderr.write(err.yellow(`connection lost (${change.reason}${detail}); reconnecting…\n`));
    });
    client.subscribe(channel, {
      from: options.from,
      onMessage: (message) => {
        received++;
        if (options.json) {
          process.stdout.write(
            `${JSON.stringify({
              id: message.id,
              channel: message.channel,
              ...(message.event === undefined ? {} : { event: message.event }),
              data: message.data,
            })}\n`,
          );
        } else {
          const seq = idSeqText(message.id);
          const time = new Date().toISOString().slice(11, 23);
          const event = message.event === undefined ? '' : `  ${p.magenta(message.event)}`;
          process.stdout.write(`${p.dim(time)}  ${p.cyan(`#${seq}`)}${event}  ${message.data}\n`);
        }
        if (options.count !== undefined && received >= options.count) finish(EXIT.ok);
      },
      onGap: (gap) => {
        const gone = gap.missed === undefined ? '' : ` (messages ${gap.missed.from}–${gap.missed.to} are gone)`;
        process.stderr.write(err.yellow(`gap: ${gap.reason}${gone}\n`));
      },
      onError: (error: KometaClientError) => {
        const refusal = `${error.status ?? ''} ${error.code}: ${error.message}`;
        process.stderr.write(err.red(`kometa tail: the hub refused: ${refusal}\n`));
        finish(EXIT.refused);
      },
    });
  });
}
