/**
 * Three projects: `unit` (specs beside the code, `*.spec.ts`), `e2e` (`test/*.e2e-spec.ts`,
 * which start a real Redis server and the built gateway/worker processes) and `e2e-cluster`
 * (the same files on a private Redis Cluster). Type checking is
 * `npm run typecheck`'s job, so ts-jest only transpiles.
 */
const { pathsToModuleNameMapper } = require('ts-jest');
const { compilerOptions } = require('./tsconfig.json');

const shared = {
  moduleFileExtensions: ['js', 'json', 'ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.spec.json' }] },
  moduleNameMapper: pathsToModuleNameMapper(compilerOptions.paths, { prefix: '<rootDir>/' }),
  testEnvironment: 'node',
};

module.exports = {
  projects: [
    { ...shared, displayName: 'unit', rootDir: __dirname, testMatch: ['<rootDir>/{apps,libs}/**/*.spec.ts'] },
    {
      ...shared,
      displayName: 'e2e',
      rootDir: __dirname,
      testMatch: ['<rootDir>/test/**/*.e2e-spec.ts'],
      // Failing a cluster master over needs a cluster: that file runs in e2e-cluster only.
      testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/cluster-failover\\.e2e-spec\\.ts$'],
    },
    {
      // The same end-to-end suite against a private 3-master Redis Cluster with replicas;
      // files that never touch Redis (deployment files, docs), start their own single
      // redis-server (process faults, the embedded launcher and the README path on it) or test
      // packaging (the client package, whose build two runs at once would race on) run once, above.
      ...shared,
      displayName: 'e2e-cluster',
      rootDir: __dirname,
      testMatch: ['<rootDir>/test/**/*.e2e-spec.ts'],
      testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/(deploy|docs|k8s|process-faults|client-package|readme|embedded)\\.e2e-spec\\.ts$'],
      setupFiles: ['<rootDir>/test/support/cluster-topology.ts'],
    },
  ],
  // A global option (Jest ignores it inside a project): end-to-end tests start processes
  // and wait on them, which takes seconds on a loaded 2-core machine.
  testTimeout: 60_000,
  // After a failed test a system may be left half-stopped; never let that hang CI. Every
  // process a test starts is killed on exit (see test/support/processes.ts, redis-server.ts).
  forceExit: true,
};
