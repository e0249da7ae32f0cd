import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Hub } from '../core/hub.js';

/** How often the publish rate is looked at. */
const LOOK_EVERY_MS = 5000;

export interface BurstLimits {
  /** Data published within one look that makes it a burst. */
  readonly burstBytes: number;
  /** Data published within one look that counts as quiet. */
  readonly quietBytes: number;
}

const defaultLimits: BurstLimits = { burstBytes: 8 * 1024 * 1024, quietBytes: 64 * 1024 };

/**
 * Decides, one look at a time, when a burst of publishing has given way to
 * quiet: true once per burst, on the first quiet look after it.
 */
export class BurstWatch {
  #seen: number;
  #burst = false;

  constructor(
    publishedBytes: number,
    private readonly limits: BurstLimits = defaultLimits,
  ) {
    this.#seen = publishedBytes;
  }

  look(publishedBytes: number): boolean {
    const published = publishedBytes - this.#seen;
    this.#seen = publishedBytes;
    if (published >= this.limits.burstBytes) this.#burst = true;
    else if (this.#burst && published < this.limits.quietBytes) {
      this.#burst = false;
      return true;
    }
    return false;
  }
}

/**
 * Give the memory of a publish burst back once the hub goes quiet.
 *
 * Each message's data lives in history long enough to be promoted to V8's old
 * space, so a burst leaves tens of MB of dead strings there; V8 collects old
 * space only when allocation pushes the heap to its next limit, so a hub that
 * goes quiet keeps that garbage, and its RSS, indefinitely (bench/
 * memory-stuck-reader.ts). One full collection when a burst has been
 * followed by a quiet look costs ~20-30 ms of pause, at a moment when nothing
 * is being published. The CLI only: a library must not steer its host's GC.
 */
export function reclaimAfterBursts(hub: Hub): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const watch = new BurstWatch(hub.counters.publishedBytes);
  const timer = setInterval(() => {
    if (watch.look(hub.counters.publishedBytes)) gc();
  }, LOOK_EVERY_MS);
  timer.unref();
  return () => clearInterval(timer);
}
