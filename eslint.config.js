// @ts-check
/*
 * ESLint for kometa: `npm run lint` runs it with the layer rules
 * (.dependency-cruiser.cjs). docs/architecture.md says why these rules and
 * lists the overrides below that are left for later.
 */
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const MAX_LEN = { ignoreUrls: true, ignoreRegExpLiterals: true };

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      // Type-aware rules: the TypeScript project service reads tsconfig.json (and tsconfig.web.json for the browser code).
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // Every promise is awaited, returned, handled with .catch, or marked `void` on purpose (a swallowed rejection
      // crashes the process or hides a lost write). node:test's test() and describe() are awaited by the runner.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] }] },
      ],
      // No async function where a void callback is expected (an event listener, a forEach, a server handler).
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // `interface ChannelHead extends Position {}` names a role; that is not an empty type.
      '@typescript-eslint/no-empty-object-type': ['error', { allowInterfaces: 'with-single-extends' }],
      // `const self = this` for getters of a returned object literal.
      '@typescript-eslint/no-this-alias': ['error', { allowedNames: ['self'] }],
      // Channel names, header values and SSE fields are checked for control characters on purpose.
      'no-control-regex': 'off',
      'max-lines-per-function': ['error', { max: 80 }],
      'max-len': ['error', { code: 120, ...MAX_LEN }],
    },
  },
  {
    // Build scripts and the storage comparison: plain ES modules run by node.
    files: ['scripts/**/*.mjs', 'bench/**/*.mjs'],
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        URL: 'readonly',
        global: 'readonly',
        setTimeout: 'readonly',
        setImmediate: 'readonly',
        Buffer: 'readonly',
        performance: 'readonly',
      },
    },
    rules: { 'max-len': ['error', { code: 120, ...MAX_LEN }] },
  },
  {
    // Tests read best as one story per test; they may be long and may use `any` for what they poke at.
    files: ['test/**/*.ts'],
    rules: {
      'max-lines-per-function': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
);
