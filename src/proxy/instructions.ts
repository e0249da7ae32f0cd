import type { IncomingHttpHeaders } from 'node:http';
import { isValidChannelName } from '../core/channel-name.js';
import { KometaError } from '../core/errors.js';
import { HeaderSyntaxError, parseElement, parseList } from './header-params.js';

/*
 * What an origin asks of the proxy, read from its response headers: GRIP
 * (https://pushpin.org/docs/protocols/grip/, as Pushpin understands it) and
 * kometa's own `Kometa-Defer`.
 */

export type HoldMode = 'response' | 'stream';

export interface GripChannel {
  readonly name: string;
  /** "the ID of data that was last published to the specified channel (used to avoid a race condition)" */
  readonly prevId: string | undefined;
}

export interface KeepAlive {
  readonly data: Buffer;
  readonly timeoutMs: number;
  /** `idle` (the default): only after that long without a write; `interval`: every period regardless. */
  readonly mode: 'idle' | 'interval';
}

export interface Hold {
  readonly mode: HoldMode;
  readonly channels: readonly GripChannel[];
  /** Response holds: answer with the origin's own response after this long. */
  readonly timeoutMs: number;
  /** Stream holds only. */
  readonly keepAlive: KeepAlive | undefined;
}

export interface NextLink {
  /** As the origin wrote it; resolved against the request's URL and checked to stay on the origin. */
  readonly url: string;
  /** Stream holds: ask the origin again after this long (Pushpin's default is 120 s). */
  readonly timeoutMs: number;
}

export interface Defer {
  readonly delayMs: number;
  readonly url: string;
}

export interface Instructions {
  readonly hold: Hold | undefined;
  /**
   * `Grip-Status`: the status the client sees instead of the origin's (for origins that cannot send e.g. 304
   * with Grip headers).
   */
  readonly status: { readonly code: number; readonly reason: string | undefined } | undefined;
  readonly next: NextLink | undefined;
  readonly defer: Defer | undefined;
}

export interface InstructionLimits {
  /** GRIP: "If omitted, the proxy SHOULD use a default of 55 seconds." */
  readonly defaultHoldTimeoutMs: number;
  /** Longer `Grip-Timeout`s are cut to this. */
  readonly maxHoldTimeoutMs: number;
  /** GRIP: keep-alive "If omitted, the proxy SHOULD use a default of 55 seconds." */
  readonly defaultKeepAliveMs: number;
  /** Shorter keep-alive timeouts are raised to this (0 would spin). */
  readonly minKeepAliveMs: number;
  /** Pushpin's DEFAULT_NEXTLINK_TIMEOUT. */
  readonly defaultNextLinkTimeoutMs: number;
  /** Shorter next-link timeouts are raised to this, so an origin cannot make the proxy poll it in a loop. */
  readonly minNextLinkTimeoutMs: number;
  /** Longer `Kometa-Defer` delays are cut to this. */
  readonly maxDeferDelayMs: number;
  readonly maxChannels: number;
}

export const defaultInstructionLimits: InstructionLimits = {
  defaultHoldTimeoutMs: 55_000,
  maxHoldTimeoutMs: 3_600_000,
  defaultKeepAliveMs: 55_000,
  minKeepAliveMs: 1_000,
  defaultNextLinkTimeoutMs: 120_000,
  minNextLinkTimeoutMs: 1_000,
  maxDeferDelayMs: 60_000,
  maxChannels: 64,
};

/** Response headers the client never sees: they are instructions for the proxy. */
export function isInstructionHeader(lowerName: string): boolean {
  return lowerName.startsWith('grip-') || lowerName === 'kometa-defer';
}

export function hasInstructions(headers: IncomingHttpHeaders): boolean {
  return (
    headers['grip-hold'] !== undefined || headers['grip-link'] !== undefined || headers['kometa-defer'] !== undefined
  );
}

const MAX_URL_LENGTH = 2048;
const MAX_ID_LENGTH = 256;
const SECONDS = /^\d{1,9}$/;
const DECIMAL_SECONDS = /^\d{1,9}(\.\d{1,3})?$/;

function malformed(detail: string): KometaError {
  return new KometaError('KOMETA_ERR_ORIGIN_INSTRUCTION', detail);
}

function single(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

function checkUrl(url: string, header: string): string {
  if (url === '' || url.length > MAX_URL_LENGTH || /[\s\u0000-\u001f\u007f]/.test(url)) {
    throw malformed(`${header} names an invalid URL`);
  }
  return url;
}

/**
 * Read the instructions from an origin's response headers. Throws a
 * KometaError (KOMETA_ERR_ORIGIN_INSTRUCTION, a 502) for anything that
 * cannot be followed exactly, rather than guessing.
 */
export function parseInstructions(
  headers: IncomingHttpHeaders,
  limits: InstructionLimits = defaultInstructionLimits,
): Instructions {
  try {
    return parse(headers, limits);
  } catch (error) {
    if (error instanceof HeaderSyntaxError) throw malformed(`unparsable GRIP header: ${error.message}`);
    throw error;
  }
}

function parse(headers: IncomingHttpHeaders, limits: InstructionLimits): Instructions {
  const mode = parseHoldMode(single(headers, 'grip-hold'));
  const channels = parseChannels(single(headers, 'grip-channel'), limits);
  // GRIP: "At least one `Grip-Channel` header MUST be present if `Grip-Hold` is present."
  if (mode !== undefined && channels.length === 0) throw malformed('Grip-Hold without a Grip-Channel');
  const timeoutMs = parseTimeout(single(headers, 'grip-timeout'), limits);
  const keepAliveText = single(headers, 'grip-keep-alive');
  const keepAlive = keepAliveText === undefined ? undefined : parseKeepAlive(keepAliveText, limits);
  const status = parseStatus(single(headers, 'grip-status'));
  const next = parseNextLink(single(headers, 'grip-link'), limits);
  const defer = parseDefer(single(headers, 'kometa-defer'), limits);
  if (defer !== undefined) {
    if (mode !== undefined) throw malformed('Kometa-Defer cannot be combined with Grip-Hold');
    if (next !== undefined) throw malformed('Kometa-Defer cannot be combined with a Grip-Link next link');
  }
  const streamKeepAlive = mode === 'stream' ? keepAlive : undefined;
  return {
    hold: mode === undefined ? undefined : { mode, channels, timeoutMs, keepAlive: streamKeepAlive },
    status,
    next,
    defer,
  };
}

/** GRIP: "The hold mode, either `response` or `stream`." */
function parseHoldMode(text: string | undefined): HoldMode | undefined {
  if (text === undefined) return undefined;
  const value = text.trim();
  if (value !== 'response' && value !== 'stream') throw malformed("Grip-Hold must be 'response' or 'stream'");
  return value;
}

function parseChannels(text: string | undefined, limits: InstructionLimits): GripChannel[] {
  const channels: GripChannel[] = [];
  if (text === undefined) return channels;
  for (const element of parseList(text)) {
    if (!isValidChannelName(element.value)) {
      throw malformed(
        'Grip-Channel names an invalid channel (kometa channel names are 1-128 characters of A-Z a-z 0-9 _ - . : @)',
      );
    }
    const prevId = element.params.get('prev-id');
    if (prevId !== undefined && (prevId === '' || prevId.length > MAX_ID_LENGTH)) {
      throw malformed('Grip-Channel has an invalid prev-id');
    }
    if (!channels.some((c) => c.name === element.value)) channels.push({ name: element.value, prevId });
  }
  if (channels.length > limits.maxChannels) {
    throw malformed(`Grip-Channel names more than ${limits.maxChannels} channels`);
  }
  return channels;
}

function parseTimeout(text: string | undefined, limits: InstructionLimits): number {
  if (text === undefined) return limits.defaultHoldTimeoutMs;
  if (!SECONDS.test(text.trim())) throw malformed('Grip-Timeout must be a whole number of seconds');
  return Math.min(Number(text.trim()) * 1000, limits.maxHoldTimeoutMs);
}

function parseStatus(text: string | undefined): Instructions['status'] {
  if (text === undefined) return undefined;
  const match = /^(\d{3})(?: (.{0,128}))?$/.exec(text.trim());
  if (match === null || Number(match[1]) < 100) {
    throw malformed('Grip-Status must be a status code, optionally followed by a reason');
  }
  return { code: Number(match[1]), reason: match[2] };
}

function parseNextLink(text: string | undefined, limits: InstructionLimits): NextLink | undefined {
  if (text === undefined) return undefined;
  let next: NextLink | undefined;
  for (const element of parseList(text)) {
    if (element.value.length <= 2 || !element.value.startsWith('<') || !element.value.endsWith('>')) {
      throw malformed('Grip-Link must be <url>; rel=…');
    }
    // Other relations (Pushpin's `gone`) are not supported and are ignored.
    if (element.params.get('rel') !== 'next') continue;
    const url = checkUrl(element.value.slice(1, -1), 'Grip-Link');
    let timeoutMs = limits.defaultNextLinkTimeoutMs;
    const timeout = element.params.get('timeout');
    if (timeout !== undefined) {
      if (!SECONDS.test(timeout)) throw malformed('Grip-Link timeout must be a whole number of seconds');
      timeoutMs = Math.max(Number(timeout) * 1000, limits.minNextLinkTimeoutMs);
    }
    next = { url, timeoutMs };
  }
  return next;
}

function parseDefer(text: string | undefined, limits: InstructionLimits): Defer | undefined {
  if (text === undefined) return undefined;
  const element = parseElement(text);
  if (!DECIMAL_SECONDS.test(element.value)) {
    throw malformed('Kometa-Defer must start with a number of seconds, e.g. Kometa-Defer: 1; next="/stage/"');
  }
  const url = element.params.get('next');
  if (url === undefined) throw malformed('Kometa-Defer needs next="<url>"');
  const delayMs = Math.min(Math.round(Number(element.value) * 1000), limits.maxDeferDelayMs);
  return { delayMs, url: checkUrl(url, 'Kometa-Defer') };
}

/**
 * GRIP: "`Grip-Keep-Alive`: Data to be sent to the client after a certain
 * amount of activity passes. … Defined parameters are `timeout` and `format`
 * … Allowed values are `raw`, `cstring`, and `base64`. If omitted, `raw` is
 * assumed." Pushpin adds `mode=idle|interval`.
 */
function parseKeepAlive(text: string, limits: InstructionLimits): KeepAlive {
  const element = parseElement(text);
  if (element.value === '') throw malformed('Grip-Keep-Alive cannot be empty');
  let timeoutMs = limits.defaultKeepAliveMs;
  const timeout = element.params.get('timeout');
  if (timeout !== undefined) {
    if (!SECONDS.test(timeout)) throw malformed('Grip-Keep-Alive timeout must be a whole number of seconds');
    timeoutMs = Math.max(Number(timeout) * 1000, limits.minKeepAliveMs);
  }
  const modeText = element.params.get('mode') ?? 'idle';
  if (modeText !== 'idle' && modeText !== 'interval') {
    throw malformed(`no such Grip-Keep-Alive mode '${modeText.slice(0, 32)}'`);
  }
  const format = element.params.get('format') ?? 'raw';
  let data: Buffer;
  if (format === 'raw') data = Buffer.from(element.value, 'latin1');
  else if (format === 'cstring') data = unescapeCString(element.value);
  else if (format === 'base64') data = Buffer.from(element.value, 'base64');
  else throw malformed(`no such Grip-Keep-Alive format '${format.slice(0, 32)}'`);
  return { data, timeoutMs, mode: modeText };
}

/** Backslash escapes as Pushpin reads them (`\\ \r \n \t \xHH`); anything else is an error, not a guess. */
export function unescapeCString(text: string): Buffer {
  const bytes: number[] = [];
  const raw = Buffer.from(text, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c !== 0x5c) {
      bytes.push(c);
      continue;
    }
    const e = raw[++i];
    if (e === 0x5c) bytes.push(0x5c);
    else if (e === 0x72) bytes.push(0x0d);
    else if (e === 0x6e) bytes.push(0x0a);
    else if (e === 0x74) bytes.push(0x09);
    else if (e === 0x78) {
      const hex = raw.subarray(i + 1, i + 3).toString('latin1');
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw malformed('Grip-Keep-Alive has a bad \\x escape');
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      throw malformed('Grip-Keep-Alive has an unknown escape (cstring format takes \\\\ \\r \\n \\t \\xHH)');
    }
  }
  return Buffer.from(bytes);
}
