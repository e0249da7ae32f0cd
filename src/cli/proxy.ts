import type { Hub } from '../core/hub.js';
import type { HubServer } from '../http/hub-server.js';
import { createControlServer } from '../proxy/control.js';
import { GripProxy } from '../proxy/proxy.js';
import { type ProxyServer, createProxyServer } from '../proxy/server.js';
import { parseTrustProxy } from '../http/client-address.js';
import type { Settings } from './settings.js';

/** What `kometa proxy` and `kometa serve --origin` run beside the hub. */
export interface Proxying {
  readonly proxy: GripProxy;
  /** The public port of `kometa proxy` (every path to the origin); unused by `serve --origin`. */
  readonly publicServer: ProxyServer;
  readonly control: HubServer;
  banner(base: string): string;
  close(): Promise<void>;
}

/**
 * Start the proxy and its control port (127.0.0.1 only: it takes publishes
 * with no access control, like Pushpin's). Returns an exit code when the
 * settings or the port do not allow it; only the CLI prints.
 */
export async function startProxying(hub: Hub, settings: Settings, command: string): Promise<Proxying | number> {
  let proxy: GripProxy;
  try {
    proxy = new GripProxy(hub, {
      origin: settings.origin,
      maxQueueBytes: settings.maxQueueBytes,
      trustProxy: parseTrustProxy(settings.trustProxy),
      ...(settings.gripSigKey === '' ? {} : { sigKey: settings.gripSigKey }),
      onError: (report) => process.stderr.write(`kometa: proxy ${report.method} ${report.path}: ${report.code} ${report.detail}${report.phase === 'mid-response' ? ' (response cut)' : ''}\n`),
    });
  } catch (error) {
    process.stderr.write(`kometa ${command}: --origin ${(error as Error).message}\n`);
    return 2;
  }
  const control = createControlServer(hub, {
    maxPublishBytes: Math.max(1024 * 1024, settings.maxMessageBytes * 4),
    http: { maxBodyBytes: settings.maxMessageBytes, shutdownGraceMs: settings.shutdownGrace * 1000, maxQueueBytes: settings.maxQueueBytes },
  });
  let controlPort: number;
  try {
    ({ port: controlPort } = await control.listen(settings.controlPort, '127.0.0.1'));
  } catch (error) {
    process.stderr.write(`kometa ${command}: cannot listen on 127.0.0.1:${settings.controlPort} (--control-port): ${(error as Error).message}\n`);
    proxy.close();
    return 1;
  }
  const publicServer = createProxyServer(proxy, {
    headersTimeoutMs: settings.headersTimeout * 1000,
    keepAliveTimeoutMs: settings.keepAliveTimeout * 1000,
    maxHeaderBytes: settings.maxHeaderBytes,
    shutdownGraceMs: settings.shutdownGrace * 1000,
  });
  const controlBase = `http://127.0.0.1:${controlPort}`;
  return {
    proxy,
    publicServer,
    control,
    banner: (base) =>
      `  proxy      ${base}/… → ${proxy.origin.base.origin} (GRIP, Kometa-Defer)\n` +
      `  control    curl -d '{"items":[{"channel":"demo","formats":{"http-stream":{"content":"hi\\n"}}}]}' -H 'Content-Type: application/json' ${controlBase}/publish/\n` +
      `             curl -d 'hello' ${controlBase}/pub/demo\n`,
    close: async () => {
      await control.close();
      proxy.close();
    },
  };
}
