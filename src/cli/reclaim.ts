import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Hub } from '../core/hub.js';

/** How often the publish rate is looked at. */
const LOOK_EVERY_MS = 5000;
/** Data published within one look that makes it a burst. */
const BURST_BYTES = 8 * 1024 * 1024;
/** Data published within one look that counts as quiet. */
const QUIET_BYTES = 64 * 1024;

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
  let seen = hub.counters.publishedBytes;
  let burst = false;
  const timer = setInterval(() => {
    const published = hub.counters.publishedBytes - seen;
    seen = hub.counters.publishedBytes;
    if (published >= BURST_BYTES) burst = true;
    else if (burst && published < QUIET_BYTES) {
      burst = false;
      gc();
    }
  }, LOOK_EVERY_MS);
  timer.unref();
  return () => clearInterval(timer);
}
