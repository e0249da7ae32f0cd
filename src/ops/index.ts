/*
 * kometa/ops: the operator's view of a hub — /metrics, the dashboard at
 * /_kometa/, the wire inspector — for applications that build their own
 * server. `kometa serve` mounts it by itself (docs/operations.md).
 */
export { KometaOps, STATS_CHANNEL } from './ops.js';
export type { OpsOptions } from './ops.js';
export type { AdminGateOptions, AdminScope } from './admin.js';
export type { OpsSources } from './sources.js';
export type { StatsSample, WireEvent } from './stats-types.js';
export { inspectWire } from './wire.js';
export type { WireOptions, WireRequest, WireResult } from './wire.js';
export type { ErrorEvent, FanOutEvent, SubscriberDropEvent } from '../core/diagnostics.js';
export { errorChannel, fanOutChannel, subscriberDropChannel } from '../core/diagnostics.js';
