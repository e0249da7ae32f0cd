import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made: string[] = [];
process.once('exit', () => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/**
 * A data directory of the test's own for `kometa serve` (whose default,
 * ./kometa-data, one directory per process, would be shared by every test
 * running at once). Removed when the test process exits.
 */
export function tempDataDir(what = 'hub'): string {
  const dir = mkdtempSync(join(tmpdir(), `kometa-data-${what}-`));
  made.push(dir);
  return dir;
}

/** The flags that give a spawned `kometa serve` a data directory of its own. */
export function dataDirArgs(what?: string): string[] {
  return ['--data-dir', tempDataDir(what)];
}
