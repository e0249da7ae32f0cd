export { Hub, defaultHubLimits } from './core/hub.js';
export type { HubLimits, PublishResult, HubCounters } from './core/hub.js';
export type { Broker, BrokerHealth, ChannelStats, PublishOptions } from './core/broker.js';
export type { Message, GapNotice, GapReason, HistoryRead, ChannelHead } from './core/message.js';
export type { Encoder, Sink } from './core/sink.js';
export type { Cursor, Position } from './core/cursor.js';
export { parseCursor, formatCursor, formatId } from './core/cursor.js';
export { KometaError, errorCodes, toProblem } from './core/errors.js';
export type { ErrorCode, ProblemDetails } from './core/errors.js';
export { isValidChannelName, assertChannelName } from './core/channel-name.js';
export { defaultHistoryLimits } from './core/history.js';
export type { HistoryLimits } from './core/history.js';
export { MemoryBroker } from './brokers/memory.js';
export type { MemoryBrokerOptions } from './brokers/memory.js';
export { DataDirError, DurableBroker } from './brokers/durable.js';
export type { DurableBrokerOptions } from './brokers/durable.js';
export { HubHttp, createHubServer, defaultHubHttpOptions } from './http/hub-server.js';
export type { HubHttpOptions, HubServer } from './http/hub-server.js';
export { InOrder, answersPromptly } from './http/in-order.js';
export { Comet, cometErrorChannel, defaultComet, createSeedHandler, seedHandler } from './comet/index.js';
export type {
  Chunk,
  CometContext,
  CometCounters,
  CometErrorReport,
  CometHandler,
  CometOptions,
  CometOutput,
  CometRequest,
  NextOptions,
  NextResult,
} from './comet/index.js';
export { nodeComet } from './adapters/node-http.js';
export { GripProxy, createProxyServer, createControlServer, proxyErrorChannel } from './proxy/index.js';
export type { ProxyOptions, ProxyErrorReport, ProxyServer, ControlOptions } from './proxy/index.js';
export { AccessPolicy } from './auth/access.js';
export type { AccessOptions, AuthorizeHook, Action } from './auth/access.js';
