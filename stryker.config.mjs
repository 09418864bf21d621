// Mutation testing of the security-critical modules: `npm run mutate [group]` (scripts/mutate.sh).
// Not part of CI: it takes long. Each group keeps its own incremental results and report, so a
// rerun retests only the mutants whose code or covering tests changed.
const GROUPS = {
  'crypto-core': ['src/crypto/**/*.ts', 'src/core/{quorum,shares,rekey,policy,token-store,seal-config}.ts'],
  'barrier-token': ['src/barrier/**/*.ts', 'src/pkcs11/**/*.ts', 'src/storage/file.ts'],
};
const group = process.env.KEYWARD_MUTATE_GROUP ?? 'crypto-core';
if (!GROUPS[group]) throw new Error(`unknown mutation group ${group}; one of ${Object.keys(GROUPS).join(', ')}`);

export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutate.config.ts', related: false },
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.build.json',
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  coverageAnalysis: 'perTest',
  mutate: GROUPS[group],
  ignorePatterns: ['dist', 'reports', '.stryker-tmp*'],
  tempDirName: `.stryker-tmp-${group}`,
  reporters: ['clear-text', 'progress-append-only', 'html', 'json'],
  htmlReporter: { fileName: `reports/mutation/${group}.html` },
  jsonReporter: { fileName: `reports/mutation/${group}.json` },
  incremental: true,
  incrementalFile: `reports/stryker-incremental-${group}.json`,
  concurrency: 1,
  timeoutMS: 20_000,
  thresholds: { high: 90, low: 85, break: 85 },
};
