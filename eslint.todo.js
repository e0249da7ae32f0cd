/*
 * Lint debt left for later (issue 12), one entry per file, so that `npm run lint` passes today and nothing gets
 * worse: each file's limit is what it is now (a ratchet), to be brought down to the defaults in eslint.config.js.
 * Do not add to these lists; remove a file's entry once it is fixed. docs/architecture.md explains.
 */

/**
 * max-len: the longest line in each file, over the 120 of eslint.config.js.
 * @type {Record<string, number>}
 */
export const longLines = {
  // TODO(issue 12): long lines that came with the merges of issues 13, 14, 15, 17 and 19 (help strings, comments, tables).
  'test/helpers/failover.ts': 248,
  'test/redis/cluster.test.ts': 246,
  'test/redis/sentinel.test.ts': 262,
  'test/redis/settings.test.ts': 125,
  'src/brokers/idempotency-file.ts': 122,
  'src/brokers/redis-backend.ts': 134,
  'src/brokers/revocation-stores.ts': 128,
  'src/cli/tools.ts': 125,
  'src/core/sink.ts': 129,
  'src/http/batch.ts': 124,
  'src/http/connections.ts': 133,
  'src/server/index.ts': 152,
  'test/backend/batch.test.ts': 129,
  'test/backend/disconnect.test.ts': 159,
  'test/backend/history.test.ts': 147,
  'test/backend/idempotency-store.test.ts': 130,
  'test/backend/idempotency.test.ts': 134,
  'test/backend/openapi.test.ts': 127,
  'test/backend/sdk.test.ts': 127,
  'test/backend/snippets.test.ts': 130,
  'test/backend/units.test.ts': 131,
  'bench/memory-stuck-reader.ts': 156,
  'bench/storage/compare.mjs': 442,
  'src/auth/access.ts': 149,
  'src/cli/main.ts': 128,
  'src/cli/settings.ts': 322,
  'src/client/kometa.ts': 138,
  'src/client/transport.ts': 167,
  'src/client/transports/poll.ts': 171,
  'src/ops/cluster-metrics.ts': 145,
  'test/brokers/conformance.ts': 150,
  'test/brokers/durable-store.test.ts': 154,
  'test/brokers/redis.test.ts': 136,
  'test/client/tickets.test.ts': 136,
  'test/deploy/nginx.test.ts': 144,
  'test/deploy/systemd.test.ts': 128,
  'test/hardening/pipelining.test.ts': 175,
  'test/helpers/redis.ts': 144,
  'test/hub/claims.test.ts': 170,
  'test/hub/data-dir.test.ts': 246,
  'test/hub/restart.test.ts': 123,
  'test/redis/publish-503.test.ts': 142,
  'test/redis/workers-metrics.test.ts': 121,
  // TODO(issue 12): hardened in parallel for issue 14 (src/http, src/transports, src/core/hub.ts): wrap after it lands.
  'src/core/hub.ts': 178,
  'src/http/body.ts': 170,
  'src/http/web.ts': 138,
  'src/transports/chunked.ts': 162,
  'src/transports/stream.ts': 133,
  'src/transports/websocket.ts': 146,
  // TODO(issue 12): the durable broker work (src/brokers): wrap after it lands.
  'src/brokers/memory.ts': 125,
  // TODO(issue 12): tests and test helpers, being reworked for issue 15: wrap after it lands.
  'test/browser/chat.test.ts': 163,
  'test/browser/helpers.ts': 151,
  'test/browser/resilience.test.ts': 175,
  'test/browser/transports.test.ts': 152,
  'test/client/bundle.test.ts': 123,
  'test/client/node.test.ts': 161,
  'test/comet/disconnect.test.ts': 169,
  'test/comet/errors.test.ts': 139,
  'test/comet/examples.test.ts': 155,
  'test/comet/matrix.test.ts': 154,
  'test/helpers/comet-servers.ts': 133,
  'test/helpers/hub.ts': 158,
  'test/helpers/raw-chunked.ts': 149,
  'test/hub/bad-input.test.ts': 176,
  'test/hub/cli.test.ts': 159,
  'test/hub/cursor.test.ts': 141,
  'test/hub/history.test.ts': 122,
  'test/hub/resume.test.ts': 145,
  'test/hub/transports.test.ts': 190,
  'test/ops/access.test.ts': 171,
  'test/ops/cli.test.ts': 173,
  'test/ops/dashboard.test.ts': 183,
  'test/ops/helpers.ts': 165,
  'test/ops/load.ts': 199,
  'test/ops/metrics.test.ts': 150,
  'test/proxy/cli.test.ts': 148,
  'test/proxy/defer.test.ts': 163,
  'test/proxy/django.test.ts': 168,
  'test/proxy/errors.test.ts': 160,
  'test/proxy/helpers.ts': 194,
  'test/proxy/hold.test.ts': 168,
  'test/proxy/instructions.test.ts': 173,
  'test/proxy/passthrough.test.ts': 158,
  'test/proxy/publish.test.ts': 186,
  'test/proxy/serve-grip.test.ts': 162,
  'test/redis/broker.test.ts': 184,
  'test/redis/liveness.test.ts': 134,
  'test/redis/nodes.test.ts': 169,
  'test/redis/outage.test.ts': 147,
  'test/redis/tickets.test.ts': 154,
  'test/security/access.test.ts': 186,
  'test/security/isolation.test.ts': 193,
  'test/ws/helpers.ts': 126,
  'test/ws/websocket.test.ts': 127,
  // TODO(issue 12): benchmarks: wrap when bench/run.ts is split by scenario (issue 12).
  'bench/comet-loop-delay.ts': 243,
  'bench/fuzz.ts': 203,
  'bench/lib/loader.ts': 150,
  'bench/lib/procs.ts': 148,
  'bench/lib/profile.ts': 138,
  'bench/lib/protocol.ts': 149,
  'bench/lib/publisher.ts': 135,
  'bench/lib/systems.ts': 175,
  'bench/redis-fanout.ts': 276,
  'bench/redis-pubsub-vs-xread.ts': 165,
  'bench/servers/better-sse.ts': 137,
  'bench/servers/node-floor.ts': 137,
  'bench/servers/pushpin-origin.ts': 139,
  'bench/servers/socketio.ts': 137,
  // TODO(issue 12): the rest of src/: core/ (other than hub.ts) and the public index, left alone while issue 12's
  // protocol work may move them; ops.ts's long lines are the sign-in page's HTML, to move into web/.
  'src/core/channel-name.ts': 137,
  'src/ops/ops.ts': 143,
};

/**
 * max-lines-per-function: the longest function in each file, over the 80 lines of eslint.config.js.
 * @type {Record<string, number>}
 */
export const longFunctions = {
  // TODO(issue 12): split runServer.
  'bench/comet-loop-delay.ts': 147,
  // TODO(issue 12): split main.
  'bench/fuzz.ts': 94,
};
