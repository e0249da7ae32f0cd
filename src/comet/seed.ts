import type { CometHandler } from './types.js';

/**
 * The seed's deferred view (2007, Django over libevent), as one async
 * handler: a first chunk, then a stage a second, in one chunked response,
 * without holding up anything else in the process.
 */
export function createSeedHandler(delayMs = 1000): CometHandler {
  return async (ctx) => {
    // The first stage decides status and headers, as in the seed.
    await ctx.write('First content<br />');
    for (let stage = 1; stage <= 3; stage++) {
      await ctx.sleep(delayMs);
      await ctx.write(`stage${stage}<br />`);
    }
    await ctx.sleep(delayMs);
    ctx.end('last_stage4<br />');
  };
}

export const seedHandler: CometHandler = createSeedHandler(1000);
