import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type ClientHttp2Session, connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { MemoryBroker } from '../../src/brokers/memory.js';
import { Hub } from '../../src/core/hub.js';
import { type HubHttpOptions, type HubServer, createSecureHubServer } from '../../src/http/hub-server.js';
import type { Http2SecureServer } from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface SelfSigned {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly certPath: string;
  readonly keyPath: string;
  readonly dir: string;
}

/** A self-signed certificate for 127.0.0.1 and localhost, made by openssl as docs/tls.md tells a developer to. */
export function selfSigned(t: TestContext, commonName = 'kometa-test', dir?: string): SelfSigned {
  const where = dir ?? mkdtempSync(join(tmpdir(), 'kometa-tls-'));
  if (dir === undefined) t.after(() => rmSync(where, { recursive: true, force: true }));
  const certPath = join(where, 'cert.pem');
  const keyPath = join(where, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-keyout', keyPath, '-out', certPath, '-subj', `/CN=${commonName}`,
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ], { stdio: 'ignore' });
  return { cert: readFileSync(certPath), key: readFileSync(keyPath), certPath, keyPath, dir: where };
}

export interface SecureTestHub {
  readonly url: string;
  readonly port: number;
  readonly hub: Hub;
  readonly server: HubServer<Http2SecureServer>;
  readonly tls: SelfSigned;
  close(): Promise<void>;
}

/** A hub over HTTPS (HTTP/2 + HTTP/1.1) on 127.0.0.1 and a free port, in-memory. */
export async function startSecureHub(
  t: TestContext,
  http: Partial<HubHttpOptions> = {},
  fallback?: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<SecureTestHub> {
  const tls = selfSigned(t);
  const broker = new MemoryBroker();
  const hub = new Hub(broker);
  const server = createSecureHubServer(hub, tls, { shutdownGraceMs: 500, ...http }, fallback);
  const { port } = await server.listen(0, '127.0.0.1');
  let closed = false;
  const handle: SecureTestHub = {
    url: `https://127.0.0.1:${port}`,
    port,
    hub,
    server,
    tls,
    close: async () => {
      if (closed) return;
      closed = true;
      await server.close();
      await broker.close();
    },
  };
  t.after(() => handle.close());
  return handle;
}

/** An HTTP/2 client session that trusts the test's certificate; closed when the test ends. */
export function h2Session(t: TestContext, url: string, ca: Buffer): ClientHttp2Session {
  const session = connect(url, { ca, servername: 'localhost' });
  session.on('error', () => {});
  t.after(() => session.destroy());
  return session;
}
