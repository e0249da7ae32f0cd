import { createHash, randomBytes } from 'node:crypto';
import { type Socket, connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { connect as http2Connect } from 'node:http2';
import type { WireEvent } from '../ops/stats-types.js';
import { type WireResult, inspectWire } from '../ops/wire.js';
import { paint } from './wire-format.js';

/*
 * `kometa doctor <url>`: what stands between this machine and the hub, seen
 * from the client's side. Every check runs at once and each is bounded, so
 * the whole takes about --idle seconds. The hub's /_kometa/probe streams a
 * few SSE events at known intervals with the same headers as a real
 * subscription: whether they arrive spaced as sent is the buffering test.
 */

export interface DoctorOptions {
  readonly url: URL;
  readonly token: string | undefined;
  readonly idleSeconds: number;
  readonly json: boolean;
}

type Verdict = 'ok' | 'warn' | 'fail' | 'unknown';

interface Finding {
  readonly check: string;
  readonly verdict: Verdict;
  readonly summary: string;
  readonly advice?: string;
}

const PROBE_CHUNKS = 4;
const PROBE_INTERVAL_MS = 700;

function header(result: WireResult, name: string): string | undefined {
  const response = result.events.find((e): e is Extract<WireEvent, { type: 'response' }> => e.type === 'response');
  return response?.headers.find(([n]) => n.toLowerCase() === name)?.[1];
}

function statusOf(result: WireResult): number | undefined {
  const response = result.events.find((e): e is Extract<WireEvent, { type: 'response' }> => e.type === 'response');
  return response?.status;
}

function auth(token: string | undefined): [string, string][] {
  return token === undefined ? [] : [['Authorization', `Bearer ${token}`]];
}

/** When each probe event (by its number) first arrived, from the chunks' text, however a proxy re-chunked them. */
function probeArrivals(result: WireResult): Map<number, number> {
  const arrivals = new Map<number, number>();
  for (const event of result.events) {
    if (event.type !== 'chunk') continue;
    for (const match of event.text.matchAll(/"n":(\d+)/g)) {
      const n = Number(match[1]);
      if (!arrivals.has(n)) arrivals.set(n, event.t);
    }
  }
  return arrivals;
}

/** Open a WebSocket by hand (so a refusal's status is seen), then send one ping frame and wait for the hub's pong. */
interface UpgradeCheck {
  readonly ok: boolean;
  readonly status?: number;
  readonly detail: string;
}

function checkWebSocket(url: URL, token: string | undefined, timeoutMs: number): Promise<UpgradeCheck> {
  return new Promise((resolve) => {
    const secure = url.protocol === 'https:';
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(url.port) || (secure ? 443 : 80);
    const key = randomBytes(16).toString('base64');
    // RFC 6455 section 4.2.2: the accept value is SHA-1 of the key and this GUID.
    const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    let buffer = Buffer.alloc(0);
    let upgraded = false;
    let done = false;
    const finish = (value: UpgradeCheck) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(value);
    };
    const timer = setTimeout(() => {
      finish({ ok: false, detail: upgraded ? 'upgraded, but no frame came back' : 'no answer to the upgrade request' });
    }, timeoutMs);
    const onConnect = () => {
      socket.write(
        `GET /ws HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
          `Origin: ${url.origin}\r\n${token === undefined ? '' : `Authorization: Bearer ${token}\r\n`}\r\n`,
      );
    };
    const socket: Socket = secure
      ? tlsConnect({ host, port, servername: host, ALPNProtocols: ['http/1.1'] }, onConnect)
      : netConnect({ host, port }, onConnect);
    socket.on('error', (error) => finish({ ok: false, detail: error.message }));
    socket.on('close', () => {
      const detail = upgraded ? 'closed right after the upgrade' : 'closed without answering the upgrade';
      finish({ ok: false, detail });
    });
    socket.on('data', (data: Buffer) => {
      buffer = Buffer.concat([buffer, data]);
      if (!upgraded) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = buffer.subarray(0, end).toString('latin1');
        buffer = buffer.subarray(end + 4);
        const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(head)?.[1] ?? 0);
        if (status !== 101) {
          const answered = status || 'something that is not HTTP';
          finish({ ok: false, status, detail: `answered ${answered} instead of 101 Switching Protocols` });
          return;
        }
        if (!head.toLowerCase().includes(`sec-websocket-accept: ${accept.toLowerCase()}`)) {
          const detail = '101, but with a wrong Sec-WebSocket-Accept (something rewrote the handshake)';
          finish({ ok: false, status, detail });
          return;
        }
        upgraded = true;
        // A masked text frame (clients must mask, RFC 6455 section 5.3) with a ping request.
        const payload = Buffer.from('{"type":"ping","ref":"doctor"}');
        const mask = randomBytes(4);
        const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
        const frame = Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
        socket.write(frame);
      }
      if (upgraded && buffer.length >= 2) {
        const text = buffer.subarray(2).toString('utf8');
        if (text.includes('"pong"') || text.includes('"type"')) {
          finish({ ok: true, status: 101, detail: 'upgraded, and frames go both ways' });
        }
      }
    });
  });
}

/** HTTP/2 is only offered over TLS (browsers do not speak cleartext h2): ask for it in ALPN. */
function checkAlpn(url: URL, timeoutMs: number): Promise<string | undefined> {
  if (url.protocol !== 'https:') return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const tls = { host, port: Number(url.port) || 443, servername: host, ALPNProtocols: ['h2', 'http/1.1'] };
    const socket = tlsConnect(tls, () => {
      const protocol = socket.alpnProtocol;
      socket.destroy();
      resolve(protocol === false ? 'http/1.1' : (protocol ?? 'http/1.1'));
    });
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.on('error', () => resolve(undefined));
  });
}

/**
 * Offering h2 in ALPN is not the same as answering over it (a balancer may
 * offer h2 and then fail to pass streams on): ask /healthz over HTTP/2 and
 * say what came back.
 */
function checkHttp2(
  origin: URL,
  path: string,
  token: string | undefined,
  timeoutMs: number,
): Promise<number | undefined> {
  return new Promise((resolve) => {
    const session = http2Connect(origin);
    const done = (status: number | undefined) => {
      clearTimeout(timer);
      session.destroy();
      resolve(status);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    session.on('error', () => done(undefined));
    const headers: Record<string, string> = { ':path': path };
    for (const [name, value] of auth(token)) headers[name.toLowerCase()] = value;
    const req = session.request(headers);
    req.on('response', (answer) => done(Number(answer[':status'])));
    req.on('error', () => done(undefined));
    req.end();
  });
}

/** Which protocol a client offering both gets: the ALPN answer, and over HTTP/2 the status /healthz came back with. */
async function checkProtocol(origin: URL, prefix: string, token: string | undefined, timeoutMs: number) {
  const alpn = await checkAlpn(origin, timeoutMs);
  const h2Status = alpn === 'h2' ? await checkHttp2(origin, `${prefix}/healthz`, token, timeoutMs) : undefined;
  return { alpn, h2Status };
}

type Works = { websocket: boolean; sse: boolean; poll: boolean };

/** Everything the doctor looks at, asked for at once. */
async function probeAll(options: DoctorOptions, origin: URL, prefix: string) {
  const { token } = options;
  const idleMs = options.idleSeconds * 1000;
  const channel = `kometa-doctor.${randomBytes(4).toString('hex')}`;
  const sse: [string, string][] = [['Accept', 'text/event-stream'], ...auth(token)];
  const probePath = `${prefix}/_kometa/probe?chunks=${PROBE_CHUNKS}&interval=${PROBE_INTERVAL_MS}`;
  const [health, probe, idle, poll, ws, protocol] = await Promise.all([
    inspectWire({ origin, requests: [{ path: `${prefix}/healthz`, headers: auth(token) }], timeoutMs: 5000 }),
    inspectWire({
      origin,
      requests: [{ path: probePath, headers: sse }],
      timeoutMs: PROBE_CHUNKS * PROBE_INTERVAL_MS + 6000,
      // Whole text: a buffering proxy hands all the events over in one piece, and each must be found in it.
      maxText: 8192,
    }),
    inspectWire({
      origin,
      requests: [{ path: `${prefix}/_kometa/probe?chunks=2&interval=${idleMs}`, headers: sse }],
      timeoutMs: idleMs + 5000,
      maxText: 8192,
    }),
    inspectWire({
      origin,
      requests: [{ path: `${prefix}/sub/${channel}?transport=poll&timeout=1`, headers: auth(token) }],
      timeoutMs: 6000,
    }),
    checkWebSocket(new URL(`${prefix}/ws`, origin), token, 5000),
    checkProtocol(origin, prefix, token, 5000),
  ]);
  return { health, probe, idle, poll, ws, protocol };
}

/** Does the hub answer /healthz, and what is in between (a proxy, a CDN)? */
function reachFindings(health: WireResult, connectMs: number, prefix: string): Finding[] {
  const findings: Finding[] = [];
  const healthStatus = statusOf(health);
  findings.push({
    check: 'reach',
    verdict: healthStatus === 200 ? 'ok' : healthStatus === 503 ? 'warn' : 'fail',
    summary:
      healthStatus === 200
        ? `the hub answers (TCP connect ${connectMs.toFixed(1)} ms)`
        : healthStatus === 503
          ? 'the hub answers, but says its message store is down (publishes get 503)'
          : `GET ${prefix}/healthz answered ${healthStatus ?? 'nothing'}: is this a kometa hub?`,
  });
  const cache = header(health, 'x-cache');
  const via = [
    header(health, 'via'),
    header(health, 'server'),
    header(health, 'cf-ray') === undefined ? undefined : 'Cloudflare',
    cache === undefined ? undefined : `cache (${cache})`,
  ].filter((v): v is string => v !== undefined);
  if (via.length > 0) findings.push({ check: 'proxy', verdict: 'ok', summary: `in between: ${via.join(', ')}` });
  return findings;
}

/** Buffering: were the probe's events spread out as they were sent? And is the stream compressed? */
function bufferingFindings(probe: WireResult, prefix: string): { findings: Finding[]; streaming: boolean | undefined } {
  const probeStatus = statusOf(probe);
  if (probeStatus === 404 || probeStatus === undefined) {
    const why =
      probeStatus === 404
        ? `${prefix}/_kometa/probe is not there (a hub without the operator's view, or a proxy that does not pass it)`
        : 'the probe got no answer';
    const finding: Finding = { check: 'buffering', verdict: 'unknown', summary: `cannot test streaming: ${why}` };
    return { findings: [finding], streaming: undefined };
  }
  if (probeStatus !== 200) {
    const finding: Finding = { check: 'buffering', verdict: 'unknown', summary: `the probe answered ${probeStatus}` };
    return { findings: [finding], streaming: undefined };
  }
  const findings: Finding[] = [];
  const arrivals = probeArrivals(probe);
  const first = arrivals.get(1);
  const last = arrivals.get(PROBE_CHUNKS);
  const response = probe.events.find((e) => e.type === 'response');
  const sent = (PROBE_CHUNKS - 1) * PROBE_INTERVAL_MS;
  let streaming: boolean;
  if (first === undefined || last === undefined) {
    streaming = false;
    findings.push({
      check: 'buffering',
      verdict: 'fail',
      summary: `the probe's ${PROBE_CHUNKS} events did not all arrive`,
      advice: 'Something cut the stream: see the idle check, and the proxy\'s logs.',
    });
  } else if (last - first < sent * 0.5) {
    streaming = false;
    const headersLate = response !== undefined && response.t > sent * 0.5;
    const headersWaited = headersLate ? `, and even the headers waited ${Math.round(response.t)} ms` : '';
    findings.push({
      check: 'buffering',
      verdict: 'fail',
      summary:
        `a proxy buffers streamed responses: ${PROBE_CHUNKS} events sent over ${(sent / 1000).toFixed(1)} s ` +
        `arrived within ${Math.round(last - first)} ms${headersWaited}`,
      advice:
        'SSE and stream subscribers would get messages late, in bursts. Turn buffering off for the hub\'s paths: ' +
        'nginx: `proxy_buffering off;` (kometa sends `X-Accel-Buffering: no`, which nginx honours unless ' +
        '`proxy_ignore_headers` drops it); ' +
        'Apache: `ProxyPass … flushpackets=on`; HAProxy: `option http-no-delay`; ' +
        'a CDN: bypass caching for /sub and /ws. ' +
        'Until then, WebSocket or long-poll work through it.',
    });
  } else {
    streaming = true;
    findings.push({
      check: 'buffering',
      verdict: 'ok',
      summary:
        `streamed responses arrive as sent (${PROBE_CHUNKS} events sent over ${sent} ms ` +
        `arrived over ${Math.round(last - first)} ms)`,
    });
  }
  const encoding = header(probe, 'content-encoding');
  if (encoding !== undefined) {
    findings.push({
      check: 'compression',
      verdict: 'warn',
      summary: `something compresses the event stream (Content-Encoding: ${encoding})`,
      advice:
        'Compressing a stream holds bytes back until a block fills. ' +
        'Turn compression off for text/event-stream (nginx: `gzip off;` in the hub\'s location).',
    });
  }
  return { findings, streaming };
}

/** Idle cut-off: does a connection survive --idle seconds of silence? */
function idleFinding(idle: WireResult, idleSeconds: number): { finding?: Finding; idleOk: boolean | undefined } {
  if (statusOf(idle) !== 200) return { idleOk: undefined };
  if (probeArrivals(idle).has(2)) {
    const summary =
      `a quiet connection survives ${idleSeconds} s ` +
      '(the hub\'s heartbeat, every 15 s by default, keeps longer ones alive)';
    return { idleOk: true, finding: { check: 'idle', verdict: 'ok', summary } };
  }
  const close = idle.events.find((e): e is Extract<WireEvent, { type: 'close' }> => e.type === 'close');
  const at = close === undefined ? undefined : Math.round(close.t / 1000);
  const after = at === undefined ? '' : ` after about ${at} s`;
  return {
    idleOk: false,
    finding: {
      check: 'idle',
      verdict: 'fail',
      summary: `a quiet connection was cut${after} (asked to stay ${idleSeconds} s)`,
      advice:
        'Raise the proxy\'s idle timeout (nginx: `proxy_read_timeout 1h;`; AWS ALB: idle timeout; ' +
        `HAProxy: \`timeout tunnel 1h\`) or set \`kometa serve --heartbeat\` below ${at ?? idleSeconds} s.`,
    },
  };
}

/** Long-poll: whole responses, the transport that goes through almost anything. */
function pollFinding(pollStatus: number | undefined): Finding {
  if (pollStatus === 200) return { check: 'long-poll', verdict: 'ok', summary: 'long-poll works' };
  if (pollStatus === 401 || pollStatus === 403) {
    return {
      check: 'long-poll',
      verdict: 'unknown',
      summary: `subscribing needs a credential here (${pollStatus})`,
      advice: 'Pass one with --token to test subscriptions too.',
    };
  }
  return { check: 'long-poll', verdict: 'fail', summary: `a long-poll answered ${pollStatus ?? 'nothing'}` };
}

function websocketFinding(ws: { ok: boolean; detail: string }): Finding {
  if (ws.ok) return { check: 'websocket', verdict: 'ok', summary: `WebSocket ${ws.detail}` };
  return {
    check: 'websocket',
    verdict: 'fail',
    summary: `WebSocket upgrade blocked: ${ws.detail}`,
    advice:
      'Clients fall back to SSE or long-poll. To allow it, nginx: `proxy_http_version 1.1; ' +
      'proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";` ' +
      'in the location for /ws; other proxies: enable WebSocket (or "upgrade") support.',
  };
}

function httpVersionFinding(protocol: { alpn: string | undefined; h2Status: number | undefined }, url: URL): Finding {
  const { alpn, h2Status } = protocol;
  if (alpn === 'h2' && h2Status !== undefined && h2Status < 500) {
    return {
      check: 'http-version',
      verdict: 'ok',
      summary:
        `a client offering h2 gets HTTP/2 (ALPN h2; /healthz answered ${h2Status} over it): ` +
        'a browser puts every SSE and poll request of a page on one connection',
    };
  }
  if (alpn === 'h2') {
    const answered = h2Status === undefined ? 'got no answer' : `answered ${h2Status}`;
    return {
      check: 'http-version',
      verdict: 'warn',
      summary: `h2 is offered in ALPN but /healthz over HTTP/2 ${answered}`,
      advice: 'Something between here and the hub announces HTTP/2 and does not carry it; browsers will use it anyway.',
    };
  }
  const offered =
    url.protocol === 'https:'
      ? 'only HTTP/1.1 is offered (no h2 in ALPN)'
      : 'plain http: browsers speak HTTP/1.1 to it';
  return {
    check: 'http-version',
    verdict: 'warn',
    summary: `${offered}; a browser opens at most six connections per origin`,
    advice:
      'Each open SSE or stream request holds one of the six, across all tabs of the site: ' +
      'a user with many tabs stalls. ' +
      'The kometa client shares one connection per page and prefers WebSocket (not counted in the six); ' +
      'serving over HTTPS with HTTP/2 lifts the limit.',
  };
}

export async function runDoctor(options: DoctorOptions): Promise<number> {
  const { url } = options;
  const origin = new URL(url.origin);
  const prefix = url.pathname.replace(/\/+$/, '');
  const out = paint(process.stdout.isTTY === true && !options.json);
  if (!options.json) {
    const about = Math.ceil(options.idleSeconds + 2);
    process.stdout.write(out.dim(`kometa doctor: checking ${url.origin}${prefix} (about ${about} s)…\n`));
  }
  const { health, probe, idle, poll, ws, protocol } = await probeAll(options, origin, prefix);

  const connect = health.events.find((e): e is Extract<WireEvent, { type: 'connect' }> => e.type === 'connect');
  if (connect === undefined) {
    const error = health.events.find((e): e is Extract<WireEvent, { type: 'error' }> => e.type === 'error');
    const finding: Finding = {
      check: 'reach',
      verdict: 'fail',
      summary: `cannot connect to ${url.host}: ${error?.message ?? 'no answer'}`,
      advice: 'Is the hub running, and is this the right host and port?',
    };
    return report(options, [finding], { websocket: false, sse: false, poll: false }, 3);
  }
  const buffering = bufferingFindings(probe, prefix);
  const { finding: idleCheck, idleOk } = idleFinding(idle, options.idleSeconds);
  const pollStatus = statusOf(poll);
  const findings: Finding[] = [
    ...reachFindings(health, connect.ms, prefix),
    ...buffering.findings,
    ...(idleCheck === undefined ? [] : [idleCheck]),
    pollFinding(pollStatus),
    websocketFinding(ws),
    httpVersionFinding(protocol, url),
  ];

  const pollOk = pollStatus === 200 || pollStatus === 401 || pollStatus === 403;
  const sseOk = buffering.streaming === true && idleOk !== false && pollOk;
  const works: Works = { websocket: ws.ok, sse: sseOk, poll: pollOk };
  const working = Object.values(works).filter(Boolean).length;
  const anyFail = findings.some((f) => f.verdict === 'fail');
  return report(options, findings, works, working === 0 ? 3 : anyFail || working < 3 ? 1 : 0);
}

function report(options: DoctorOptions, findings: readonly Finding[], works: Works, code: number): number {
  if (options.json) {
    const json = { url: options.url.href, findings, transports: works, exitCode: code };
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    return code;
  }
  const p = paint(process.stdout.isTTY === true);
  const marks: Record<Verdict, string> = {
    ok: p.green('✓'),
    warn: p.yellow('!'),
    fail: p.red('✗'),
    unknown: p.dim('?'),
  };
  const mark = (verdict: Verdict) => marks[verdict];
  const lines: string[] = [];
  for (const finding of findings) {
    lines.push(`${mark(finding.verdict)} ${p.bold(finding.check.padEnd(12))} ${finding.summary}`);
    if (finding.advice !== undefined && finding.verdict !== 'ok') {
      lines.push(`  ${' '.repeat(13)}${p.dim('→')} ${finding.advice}`);
    }
  }
  const yes = (ok: boolean) => (ok ? p.green('works') : p.red('does not work'));
  lines.push('', p.bold('Transports from here:'));
  lines.push(`  websocket  ${yes(works.websocket)}`);
  lines.push(`  sse        ${yes(works.sse)}${works.sse ? '' : p.dim('  (the client falls back to the next)')}`);
  lines.push(`  long-poll  ${yes(works.poll)}`);
  const best = works.websocket ? 'WebSocket' : works.sse ? 'SSE' : works.poll ? 'long-poll' : undefined;
  const heavier = ' (slower to start and heavier than WebSocket)';
  lines.push(
    '',
    best === undefined
      ? p.red('Nothing gets through: fix the findings marked ✗ above.')
      : code === 0
        ? p.green(`All good: browsers will use ${best}.`)
        : `Browsers will use ${p.bold(best)}${best === 'WebSocket' ? '' : heavier}; ` +
          'fix the ✗ above for the others.',
  );
  process.stdout.write(`${lines.join('\n')}\n`);
  return code;
}
