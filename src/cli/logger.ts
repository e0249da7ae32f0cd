import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { ErrorEvent, SubscriberDropEvent } from '../core/diagnostics.js';
import { errorChannel, subscriberDropChannel } from '../core/diagnostics.js';
import type { Broker } from '../core/broker.js';

export type { Logger };

/**
 * The CLI's structured log: JSON lines (one per notable event) for log
 * collectors, or pino-pretty's coloured lines when stdout is a terminal.
 * Nothing is logged per message; the library itself never logs — it
 * reports on diagnostics channels, and this is where they become lines.
 */
export function createLogger(level: string, format: 'auto' | 'json' | 'pretty' = 'auto'): Logger {
  const usePretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  const options = { name: 'kometa', level, base: { pid: process.pid } };
  if (!usePretty) return pino(options);
  // Synchronous, in this thread: a CLI's few lines do not need a worker.
  return pino(
    options,
    pretty({
      colorize: true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,name',
      singleLine: true,
      sync: true,
    }),
  );
}

/** Repeats of one kind of event within this window are summed into one line. */
const SUMMARY_MS = 10_000;

/**
 * Turn the library's diagnostics into log lines: slow consumers closed
 * (the first at once, then one summary per ten seconds while it goes on),
 * server errors (5xx; 4xx are the client's business and only at debug),
 * and the broker going down and coming back. Returns a function that stops.
 */
export function logDiagnostics(log: Logger, broker: Broker): () => void {
  let dropped = 0;
  let lastDropLine = -Infinity;
  let dropTimer: NodeJS.Timeout | undefined;
  const flushDrops = () => {
    dropTimer = undefined;
    if (dropped === 0) return;
    log.warn(
      { event: 'slow-consumers', count: dropped },
      `${dropped} more slow consumers closed in the last ${SUMMARY_MS / 1000} s`,
    );
    dropped = 0;
    lastDropLine = performance.now();
  };
  const onDrop = (message: unknown) => {
    const event = message as SubscriberDropEvent;
    // Monotonic: a wall-clock step must not silence the log or flood it.
    if (performance.now() - lastDropLine >= SUMMARY_MS && dropTimer === undefined) {
      lastDropLine = performance.now();
      log.warn(
        {
          event: 'slow-consumer',
          transport: event.transport,
          queuedBytes: event.queuedBytes,
          remote: event.remoteAddress,
        },
        'slow consumer closed (it resumes from history)',
      );
      return;
    }
    dropped++;
    dropTimer ??= setTimeout(flushDrops, SUMMARY_MS).unref();
  };
  const onError = (message: unknown) => {
    const event = message as ErrorEvent;
    if (event.status >= 500 && event.code !== 'KOMETA_ERR_DRAINING' && event.code !== 'KOMETA_ERR_SLOW_CONSUMER') {
      const fields = { event: 'error', code: event.code, status: event.status, transport: event.transport };
      // An unexpected throw: its stack is what the operator needs to find the bug.
      if (event.cause !== undefined) log.error({ ...fields, err: event.cause }, 'a request failed unexpectedly');
      else log.error(fields, 'answered a client with a server error');
    } else {
      log.debug(
        { event: 'error', code: event.code, status: event.status, transport: event.transport },
        'refused a request',
      );
    }
  };
  subscriberDropChannel.subscribe(onDrop);
  errorChannel.subscribe(onError);

  let up = broker.health().ok;
  const watch = setInterval(() => {
    const health = broker.health();
    if (health.ok === up) return;
    up = health.ok;
    if (health.ok) log.info({ event: 'broker-up' }, 'broker is back');
    else
      log.error(
        { event: 'broker-down', reason: health.reason },
        'broker unreachable: publishes answer 503 until it is back',
      );
  }, 1000);
  watch.unref();

  return () => {
    clearInterval(watch);
    clearTimeout(dropTimer);
    subscriberDropChannel.unsubscribe(onDrop);
    errorChannel.unsubscribe(onError);
  };
}
