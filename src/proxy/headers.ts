import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { TrustProxy } from '../http/client-address.js';
import { isInstructionHeader } from './instructions.js';

/*
 * Header handling of a reverse proxy (RFC 9110 section 7.6.1): hop-by-hop
 * fields, and those the Connection field names, concern one connection and
 * are not forwarded; everything else passes in both directions, in order,
 * with its case and repetitions kept (raw header lists, not objects, so two
 * Set-Cookie fields stay two).
 */

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** A flat raw header list, as node:http's `rawHeaders`: name, value, name, value, … */
export type RawHeaders = string[];

function connectionTokens(raw: readonly string[]): Set<string> {
  const tokens = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== 'connection') continue;
    for (const token of raw[i + 1]!.split(',')) tokens.add(token.trim().toLowerCase());
  }
  return tokens;
}

function filter(raw: readonly string[], drop: (lowerName: string) => boolean): RawHeaders {
  const named = connectionTokens(raw);
  const out: RawHeaders = [];
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named.has(lower) || drop(lower)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

/** Fields that describe a request body, left out of the GET requests for later stages. */
const BODY_FIELDS = new Set(['content-length', 'content-type', 'content-encoding', 'transfer-encoding', 'expect']);

export interface ForwardContext {
  /** The Grip-Sig token for this request. */
  readonly gripSig: string | undefined;
  /** Proxies in front of kometa whose X-Forwarded-Proto is kept (`--trust-proxy`). */
  readonly trustProxy?: TrustProxy | undefined;
}

/**
 * Headers for a request to the origin, from the client's request. A client's
 * own `Grip-Sig` is dropped (it must not be able to pass for the proxy), and
 * the X-Forwarded-* fields say who asked and how: `X-Forwarded-For` is
 * appended to (an origin should trust only its last entry),
 * `X-Forwarded-Proto` and `X-Forwarded-Host` are set. `Host` is the client's,
 * as the client sent it.
 */
export function originRequestHeaders(req: IncomingMessage, context: ForwardContext, options: { stage: boolean; cookie?: string | undefined }): RawHeaders {
  let forwardedFor = '';
  const out = filter(req.rawHeaders, (lower) => {
    if (lower === 'x-forwarded-for') return true;
    if (lower === 'x-forwarded-proto' || lower === 'x-forwarded-host' || lower === 'grip-sig') return true;
    if (options.stage && BODY_FIELDS.has(lower)) return true;
    // Later stages carry the cookie jar kept across stages instead.
    return lower === 'cookie' && options.cookie !== undefined;
  });
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() === 'x-forwarded-for') forwardedFor += (forwardedFor === '' ? '' : ', ') + req.rawHeaders[i + 1]!;
  }
  const address = req.socket.remoteAddress ?? '';
  out.push('X-Forwarded-For', forwardedFor === '' ? address : `${forwardedFor}, ${address}`);
  // Behind a trusted proxy (TLS ends at nginx), the scheme the client used is the proxy's word, not ours.
  const incomingProto = context.trustProxy?.trusts(address) === true ? headerFirst(req.headers['x-forwarded-proto']) : undefined;
  out.push('X-Forwarded-Proto', incomingProto ?? ((req.socket as Partial<TLSSocket>).encrypted === true ? 'https' : 'http'));
  if (req.headers.host !== undefined) out.push('X-Forwarded-Host', req.headers.host);
  if (options.cookie !== undefined && options.cookie !== '') out.push('Cookie', options.cookie);
  if (context.gripSig !== undefined) out.push('Grip-Sig', context.gripSig);
  return out;
}

function headerFirst(value: string | string[] | undefined): string | undefined {
  const first = (Array.isArray(value) ? value[0] : value)?.split(',')[0]?.trim().toLowerCase();
  return first === 'http' || first === 'https' ? first : undefined;
}

/**
 * The origin's response headers as the client sees them: hop-by-hop fields
 * and instructions (`Grip-*`, `Kometa-Defer`) removed. `keepLength: false`
 * also drops Content-Length, for responses whose body kometa extends or
 * replaces.
 */
export function clientResponseHeaders(raw: readonly string[], keepLength: boolean): RawHeaders {
  return filter(raw, (lower) => isInstructionHeader(lower) || (!keepLength && lower === 'content-length'));
}

/** Replace or add fields (case-insensitive), keeping the rest in order. */
export function overrideHeaders(base: readonly string[], fields: readonly (readonly [string, string])[]): RawHeaders {
  const replaced = new Set(fields.map(([name]) => name.toLowerCase()));
  const out: RawHeaders = [];
  for (let i = 0; i < base.length; i += 2) {
    if (!replaced.has(base[i]!.toLowerCase())) out.push(base[i]!, base[i + 1]!);
  }
  for (const [name, value] of fields) {
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower === 'content-length') continue;
    out.push(name, value);
  }
  return out;
}

/**
 * The Cookie header for the next stage: the client's cookies, updated by the
 * `Set-Cookie` fields of the stages so far (name=value only; attributes are
 * the browser's business, and the browser gets only the first response's).
 */
export function mergeCookies(cookieHeader: string | undefined, setCookies: readonly string[]): string {
  const jar = new Map<string, string>();
  for (const pair of (cookieHeader ?? '').split(';')) {
    const eq = pair.indexOf('=');
    if (eq > 0) jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
  }
  for (const line of setCookies) {
    const first = line.split(';', 1)[0]!;
    const eq = first.indexOf('=');
    if (eq > 0) jar.set(first.slice(0, eq).trim(), first.slice(eq + 1).trim());
  }
  return [...jar].map(([name, value]) => `${name}=${value}`).join('; ');
}

export function setCookiesOf(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'set-cookie') out.push(raw[i + 1]!);
  return out;
}
