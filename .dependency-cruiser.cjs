/*
 * Layer rules of kometa (shared/DESIGN.md, "Layers"), checked by
 * `npm run lint:layers`. Arrows point inward: a folder under src/ imports only
 * the layers below it. docs/architecture.md explains each rule; change the two
 * together. Type-only imports count: a type pulls a layer in as surely as a value.
 */
const layer = (name) => `^src/${name}/`;
const NETWORK = '^(node:)?(http|https|http2|net|tls|dgram|cluster|child_process)$';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'Import cycles make load order matter and layers meaningless; move the shared part into its own module.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'core-imports-only-protocol',
      severity: 'error',
      comment: 'core/ (channel, history, cursor, hub, errors, the Broker interface) imports nothing else from src/ but the wire formats of protocol/.',
      from: { path: layer('core') },
      to: { path: '^src/', pathNot: '^src/(core|protocol)/' },
    },
    {
      name: 'core-has-no-network',
      severity: 'error',
      comment: 'core/ is pure: no node:http, sockets or processes (DESIGN.md: "no node:http here").',
      from: { path: '^src/(core|protocol)/' },
      to: { dependencyTypes: ['core'], path: NETWORK },
    },
    {
      name: 'protocol-is-innermost',
      severity: 'error',
      comment: 'protocol/ holds the wire formats shared by the server and the browser client: it imports nothing but itself (no core, nothing from node_modules or node:).',
      from: { path: layer('protocol') },
      to: { pathNot: layer('protocol') },
    },
    {
      name: 'transports-never-import-brokers',
      severity: 'error',
      comment: 'A transport turns frames into bytes on one kind of connection; it never knows a broker exists.',
      from: { path: layer('transports') },
      to: { path: layer('brokers') },
    },
    {
      name: 'transports-import-only-lower-layers',
      severity: 'error',
      comment: 'transports/ sit on core and protocol only.',
      from: { path: layer('transports') },
      to: { path: '^src/', pathNot: '^src/(core|protocol|transports)/' },
    },
    {
      name: 'brokers-import-only-lower-layers',
      severity: 'error',
      comment: 'brokers/ implement core\'s Broker interface; they import core and protocol only.',
      from: { path: layer('brokers') },
      to: { path: '^src/', pathNot: '^src/(core|protocol|brokers)/' },
    },
    {
      name: 'client-imports-only-protocol',
      severity: 'error',
      comment: 'client/ runs in browsers: it shares only protocol/ with the server, and imports no package or node: module.',
      from: { path: layer('client') },
      to: { pathNot: '^src/(client|protocol)/' },
    },
    {
      name: 'web-imports-only-client',
      severity: 'error',
      comment: 'web/ (chat, dashboard) is browser code: client/, protocol/ and the dashboard\'s JSON types only.',
      from: { path: layer('web') },
      to: { pathNot: '^src/(web|client|protocol)/|^src/ops/stats-types[.]ts$' },
    },
    {
      name: 'nothing-imports-client-or-web',
      severity: 'error',
      comment: 'Server code never imports the browser client or pages (the hub serves them as built files); only cli/ (kometa tail) runs the client in Node.',
      from: { path: '^src/', pathNot: '^src/(client|web|cli)/|^src/index[.]ts$' },
      to: { path: '^src/(client|web)/' },
    },
    {
      name: 'server-layers-stay-below-the-apps',
      severity: 'error',
      comment: 'core, protocol, transports, brokers, auth, http and comet never import adapters, proxy, ops or cli.',
      from: { path: '^src/(core|protocol|transports|brokers|auth|http|comet)/' },
      to: { path: '^src/(adapters|proxy|ops|cli)/' },
    },
    {
      name: 'only-cli-imports-cli',
      severity: 'error',
      comment: 'cli/ is the only place that prints or exits; nothing else may depend on it.',
      from: { pathNot: '^src/cli/|^test/|^bench/' },
      to: { path: layer('cli') },
    },
    {
      name: 'src-never-imports-tests-or-bench',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench|examples)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^dist/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
