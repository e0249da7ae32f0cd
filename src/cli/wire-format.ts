import type { WireEvent } from '../ops/stats-types.js';

/** ANSI colours when writing to a terminal; the same text without them when piped. */
export interface Paint {
  dim(text: string): string;
  bold(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  blue(text: string): string;
  magenta(text: string): string;
  cyan(text: string): string;
}

export function paint(enabled: boolean): Paint {
  const wrap = (
    open: number,
    close: number,
  ) => (text: string) => (enabled ? `\x1b[${open}m${text}\x1b[${close}m` : text);
  return {
    dim: wrap(2, 22),
    bold: wrap(1, 22),
    red: wrap(31, 39),
    green: wrap(32, 39),
    yellow: wrap(33, 39),
    blue: wrap(34, 39),
    magenta: wrap(35, 39),
    cyan: wrap(36, 39),
  };
}

/** Headers worth a second look when reading a comet exchange: framing, keep-alive, caching, buffering. */
const NOTABLE = new Set([
  'transfer-encoding',
  'content-length',
  'connection',
  'keep-alive',
  'etag',
  'last-modified',
  'cache-control',
  'if-none-match',
  'if-modified-since',
  'x-accel-buffering',
  'content-type',
  'content-encoding',
  'via',
]);

function size(bytes: number): string {
  return bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${bytes} B`;
}

/**
 * Format wire events as lines for a terminal: the time since the start in
 * the left column, then what happened. Stateful for the gap between chunks.
 */
export class WireFormatter {
  #lastChunkAt = -1;

  constructor(private readonly p: Paint) {}

  format(event: WireEvent): string {
    const p = this.p;
    const time = p.dim(`${event.t.toFixed(1).padStart(9)} ms`);
    const indent = ' '.repeat(15);
    const headers = (list: readonly (readonly [string, string])[]) =>
      list
        .map(([name, value]) => {
          const shown = NOTABLE.has(name.toLowerCase()) ? p.bold(name) : p.dim(name);
          return `${indent}${shown}${p.dim(':')} ${value}`;
        })
        .join('\n');
    switch (event.type) {
      case 'connect': {
        const tls = event.tls === undefined ? '' : `, ${event.tls}`;
        return `${time}  ${p.cyan('connect')}   ${event.remote}  ${p.dim(`(TCP ${event.ms.toFixed(1)} ms${tls})`)}`;
      }
      case 'request': {
        const [line = '', ...rest] = event.head.split('\r\n');
        const pairs = rest.map((h): [string, string] => [
          h.slice(0, h.indexOf(':')),
          h.slice(h.indexOf(':') + 1).trim(),
        ]);
        this.#lastChunkAt = -1;
        const reused = event.reused ? p.green('   (same connection: keep-alive)') : '';
        return `${time}  ${p.blue('→')} ${p.bold(line)}${reused}\n${headers(pairs)}`;
      }
      case 'response': {
        const colour = event.status >= 400 ? p.red : event.status >= 300 ? p.yellow : p.green;
        const note = event.status === 304 ? p.green('   (not modified: the cached copy is used)') : '';
        const status = colour(p.bold(`HTTP/${event.httpVersion} ${event.status} ${event.statusText}`));
        return `${time}  ${p.magenta('←')} ${status}${note}\n${headers(event.headers)}`;
      }
      case 'chunk': {
        const label = `${{ chunked: 'chunk', write: 'write', read: 'data' }[event.framing]} ${event.n}`;
        const gap = this.#lastChunkAt < 0 ? '' : p.dim(`  +${(event.t - this.#lastChunkAt).toFixed(1)} ms`);
        this.#lastChunkAt = event.t;
        const text = `${event.text}${event.truncated ? p.dim(' …') : ''}`;
        return `${time}  ${p.yellow(label.padEnd(9))} ${p.magenta(size(event.size).padStart(9))}  ${text}${gap}`;
      }
      case 'end': {
        this.#lastChunkAt = -1;
        const pieces = `${event.chunks} ${event.chunks === 1 ? 'piece' : 'pieces'}, ${size(event.bytes)}`;
        return `${time}  ${p.dim('end')}       ${pieces}; connection ${event.keepAlive ? 'kept alive' : 'closed'}`;
      }
      case 'close':
        return `${time}  ${p.dim('close')}     ${event.reason}`;
      case 'error':
        return `${time}  ${p.red('error')}     ${event.message}`;
    }
  }
}
