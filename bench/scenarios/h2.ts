/*
 * h2: server CPU per delivery of SSE over plain HTTP/1.1, HTTP/1.1 over TLS
 * and HTTP/2 (1 and 100 streams per connection), with Node's own floors for
 * each measured in the same run (bench/h2.ts, bench/servers/tls-floor.ts).
 */
import { type Bench, log } from '../lib/bench.js';
import { h2Comparison, renderH2 } from '../h2.js';

export async function h2Scenario(bench: Bench, subscribers: number | undefined, profileDir?: string): Promise<void> {
  const { quick, repeat } = bench.config;
  const rows = await h2Comparison(
    {
      subscribers: subscribers ?? (quick ? 200 : 1000),
      rate: 100,
      seconds: quick ? 2 : 5,
      rounds: repeat,
      profileDir,
      log,
    },
    bench.port(),
  );
  bench.results.h2!.push({ rows, markdown: renderH2(rows) });
}
