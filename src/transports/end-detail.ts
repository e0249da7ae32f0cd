/** What the SSE and NDJSON streams say when the hub ends them, so both say the same. */
export const END_DETAIL = {
  disconnected: 'Disconnected by the application',
  tokenExpired: 'The credential expired; subscribe again with a fresh one to resume',
  slowConsumer: 'The subscriber did not read fast enough; reconnect to resume from history',
} as const;
