import cluster from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

/**
 * /metrics under `kometa serve --workers N`: the workers share one port, so a
 * scrape lands on one of them. That worker asks the primary, which collects
 * every worker's registry (prom-client's AggregatorRegistry: counters and
 * histograms summed, gauges summed unless the metric says otherwise) and
 * answers with the machine's totals.
 */
const ASK = 'kometa:cluster-metrics';
const ANSWER = 'kometa:cluster-metrics:answer';

interface Answer {
  readonly type: typeof ANSWER;
  readonly id: number;
  readonly text?: string;
  readonly error?: string;
}

/**
 * In a worker: offer `registry` to the primary's aggregation, and return how to ask for every worker's metrics.
 * Undefined outside --workers.
 */
export function clusterMetricsReader(registry: Registry): (() => Promise<string>) | undefined {
  if (!cluster.isWorker || process.send === undefined) return undefined;
  new AggregatorRegistry(); // installs prom-client's listener that answers the primary
  AggregatorRegistry.setRegistries([registry]);
  let next = 0;
  const pending = new Map<
    number,
    { resolve: (text: string) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }
  >();
  process.on('message', (message: Partial<Answer>) => {
    if (message?.type !== ANSWER || typeof message.id !== 'number') return;
    const waiting = pending.get(message.id);
    if (waiting === undefined) return;
    pending.delete(message.id);
    clearTimeout(waiting.timer);
    if (typeof message.text === 'string') waiting.resolve(message.text);
    else waiting.reject(new Error(message.error ?? 'no metrics from the primary'));
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = next++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error("the primary did not answer with every worker's metrics"));
      }, 8000);
      pending.set(id, { resolve, reject, timer });
      process.send!({ type: ASK, id });
    });
}

/** In the primary of --workers: answer a worker's request with every worker's metrics. */
export function serveClusterMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, message: { type?: string; id?: number }) => {
    if (message?.type !== ASK || typeof message.id !== 'number') return;
    const id = message.id;
    aggregator.clusterMetrics().then(
      (text) => worker.send({ type: ANSWER, id, text } satisfies Answer),
      (error: unknown) => worker.send({ type: ANSWER, id, error: String(error) } satisfies Answer),
    );
  });
}
