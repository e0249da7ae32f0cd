import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TestContext } from 'node:test';
import type { AccessPolicy } from '../../src/auth/access.js';
import { MemoryBroker } from '../../src/brokers/memory.js';
import { seedFallback } from '../../src/cli/seed-route.js';
import { Comet } from '../../src/comet/comet.js';
import { Hub } from '../../src/core/hub.js';
import { type HubServer, createHubServer } from '../../src/http/hub-server.js';
import { withChat } from '../../src/http/web.js';
import { KometaOps, type OpsOptions } from '../../src/ops/ops.js';

export const ADMIN = 'test-admin-token-0123456789';
export const METRICS = 'test-metrics-token-abcdef';

export interface OpsHub {
  readonly url: string;
  readonly port: number;
  readonly hub: Hub;
  readonly server: HubServer;
  readonly ops: KometaOps;
  close(): Promise<void>;
}

/** A hub as `kometa serve` builds it: the operator's view in front of the chat and /seed. */
export async function startOpsHub(
  t: TestContext,
  options: { ops?: OpsOptions; access?: AccessPolicy; maxQueueBytes?: number } = {},
): Promise<OpsHub> {
  const broker = new MemoryBroker();
  const hub = new Hub(broker);
  const comet = new Comet({ hub });
  // The server's handler reads `ops`, which needs the server: assigned once, after it.
  // eslint-disable-next-line prefer-const
  let ops: KometaOps | undefined;
  const fallback = withChat(seedFallback(comet));
  const server = createHubServer(
    hub,
    {
      shutdownGraceMs: 200,
      publishRate: 0,
      access: options.access,
      ...(options.maxQueueBytes === undefined ? {} : { maxQueueBytes: options.maxQueueBytes }),
    },
    (req: IncomingMessage, res: ServerResponse) => {
      if (ops === undefined || !ops.handle(req, res)) fallback(req, res);
    },
  );
  ops = new KometaOps(
    { hub, http: server.http, webSocket: server.webSocket },
    { adminToken: ADMIN, metricsToken: METRICS, access: options.access, ...options.ops },
  );
  const { port } = await server.listen(0, '127.0.0.1');
  const handle: OpsHub = {
    url: `http://127.0.0.1:${port}`,
    port,
    hub,
    server,
    ops,
    close: async () => {
      ops.close();
      await server.close();
      await broker.close();
    },
  };
  t.after(() => handle.close());
  return handle;
}
