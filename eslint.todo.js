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
  // TODO(issue 12): help text tables; being edited on another branch, to wrap after it lands.
  'src/cli/settings.ts': 322,
  // TODO(issue 12): being edited on another branch, to wrap after it lands.
  'src/core/hub.ts': 178,
};

/**
 * max-lines-per-function: the longest function in each file, over the 80 lines of eslint.config.js.
 * @type {Record<string, number>}
 */
export const longFunctions = {};
