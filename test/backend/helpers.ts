import WebSocket from 'ws';
import { httpRequest, type SimpleResponse } from '../helpers/hub.js';

export interface Delivery {
  readonly channel: string;
  readonly id: string;
  readonly data: string;
}

/** One `ws` connection following many channels; resolves once every subscribe is acknowledged. */
export async function wsFollower(
  baseUrl: string,
  channels: readonly string[],
  query = '',
): Promise<{ got: Delivery[]; ws: WebSocket; closed: Promise<{ code: number; reason: string }>; close(): void }> {
  const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/ws${query}`, { perMessageDeflate: false });
  const got: Delivery[] = [];
  let subscribed = 0;
  let ready: () => void = () => {};
  const allSubscribed = new Promise<void>((resolve) => (ready = resolve));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  ws.on('message', (raw) => {
    const frame = JSON.parse(raw.toString()) as { type: string; channel: string; id: string; data: string };
    if (frame.type === 'message') got.push({ channel: frame.channel, id: frame.id, data: frame.data });
    else if (frame.type === 'subscribed' && ++subscribed === channels.length) ready();
  });
  ws.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  for (const channel of channels) ws.send(JSON.stringify({ type: 'subscribe', channel }));
  if (channels.length === 0) ready();
  await allSubscribed;
  return { got, ws, closed, close: () => ws.terminate() };
}

export function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<SimpleResponse> {
  return httpRequest(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

export const SECRET = 'test-secret-that-is-long-enough-for-hs256';

/** An HS256 token for the test secret with a `kometa` claim. */
export async function token(claim: Record<string, unknown>, sub?: string): Promise<string> {
  const { SignJWT } = await import('jose');
  const jwt = new SignJWT({ kometa: claim }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
  if (sub !== undefined) jwt.setSubject(sub);
  return jwt.sign(new TextEncoder().encode(SECRET));
}
