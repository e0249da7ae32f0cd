/*
 * kometa/client: the browser and Node client of the kometa hub. The hub also
 * serves this module, bundled into one file, at /kometa.js.
 */
export { Kometa } from './kometa.js';
export type {
  ConnectionState,
  KometaOptions,
  KometaSubscription,
  StateChange,
  SubscribeOptions,
  TransportChange,
} from './kometa.js';
export { KometaClientError } from './transport.js';
export type {
  ClientTransport,
  KometaGap,
  KometaMember,
  KometaMessage,
  KometaPresence,
  PublishResult,
  StateReason,
  TransportName,
} from './transport.js';
export { websocketTransport } from './transports/websocket.js';
export type { WebSocketConstructor, WebSocketLike } from './transports/websocket.js';
export { sseTransport } from './transports/sse.js';
export { pollTransport } from './transports/poll.js';
export { backoffDelay } from './backoff.js';
