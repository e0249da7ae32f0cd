export { Comet, cometErrorChannel, defaultComet } from './comet.js';
export type { CometOptions } from './comet.js';
export type { CometCounters } from './context.js';
export type {
  Chunk,
  CometContext,
  CometErrorReport,
  CometHandler,
  CometOutput,
  CometRequest,
  NextOptions,
  NextResult,
} from './types.js';
export { createSeedHandler, seedHandler } from './seed.js';
