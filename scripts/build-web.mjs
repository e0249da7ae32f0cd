#!/usr/bin/env node
/*
 * Build what the hub serves to browsers, with esbuild (`npm run build:web`,
 * part of `npm run build`, `npm start` and `npm test`):
 *
 *   dist/web/kometa.js     src/client/index.ts as one ES module (served at /kometa.js)
 *   dist/web/chat.js       src/web/chat.ts (served at /chat.js by `kometa serve`)
 *   dist/web/dashboard.js  src/web/dashboard.ts (served at /_kometa/dashboard.js)
 *
 * The pages import the client from /kometa.js, so a browser loads it once:
 * their imports of src/client/ stay imports of that URL. The HTML and CSS
 * are served from web/ as they are. Any error (a type esbuild cannot strip,
 * a missing module, a bare import) fails the build with a non-zero exit.
 */
import { build } from 'esbuild';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
// --src and --out are for tests (test/client/web-build.test.ts); the defaults are the package's.
const { values } = parseArgs({
  options: { src: { type: 'string', default: 'src' }, out: { type: 'string', default: 'dist/web' } },
});
const src = resolve(root, values.src);
const outdir = resolve(root, values.out);

/** The pages' imports of the client become imports of /kometa.js. */
const clientFromHub = {
  name: 'client-from-hub',
  setup(builder) {
    builder.onResolve({ filter: /(^|\/)client\/index\.js$/ }, () => ({ path: '/kometa.js', external: true }));
  },
};

const common = {
  absWorkingDir: root,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  charset: 'utf8',
  legalComments: 'inline',
  logLevel: 'warning',
  // The client shares nothing with the server but src/protocol/; a package import here is a mistake.
  packages: 'bundle',
  outdir,
};

try {
  await build({
    ...common,
    entryPoints: { kometa: `${src}/client/index.ts` },
    banner: { js: '// kometa client, one ES module. Source: src/client/ of the kometa package.' },
  });
  await build({
    ...common,
    entryPoints: { chat: `${src}/web/chat.ts`, dashboard: `${src}/web/dashboard.ts` },
    plugins: [clientFromHub],
  });
} catch (error) {
  // esbuild has printed each error with its file and line already.
  console.error(`build:web failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
  process.exit(1);
}
