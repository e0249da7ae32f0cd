import { readFileSync } from 'node:fs';
import { AccessPolicy } from '../auth/access.js';
import { SettingsError, type Settings } from './settings.js';

function list(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** The access policy `kometa serve` settings describe; throws SettingsError for a key it cannot use. */
export async function accessFromSettings(settings: Settings): Promise<AccessPolicy> {
  let publicKey: string | undefined;
  if (settings.jwtPublicKey !== '') {
    try {
      publicKey = readFileSync(settings.jwtPublicKey, 'utf8');
    } catch (error) {
      throw new SettingsError(`cannot read --jwt-public-key ${settings.jwtPublicKey}: ${(error as Error).message}`);
    }
  }
  try {
    return await AccessPolicy.create({
      tokens: { secret: settings.jwtSecret || undefined, publicKey },
      publisherKey: settings.publisherKey || undefined,
      publicSubscribe: list(settings.publicSubscribe),
      publicPublish: list(settings.publicPublish),
      allowedOrigins: list(settings.allowedOrigins),
      ticketSecret: settings.ticketSecret || undefined,
    });
  } catch (error) {
    throw new SettingsError(`access control: ${(error as Error).message}`);
  }
}

/** The soft open-files limit of this process (Linux), to keep clear of it; undefined where unknown. */
export function openFilesLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = Number(line?.split(/\s{2,}/)[1]);
    return Number.isFinite(soft) ? soft : undefined;
  } catch {
    return undefined;
  }
}
