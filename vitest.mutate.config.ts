import { defineConfig } from 'vitest/config';

// The tests StrykerJS runs against each mutant of the security-critical modules: the unit tests and
// the native tests that drive keyward in the test process (tests of spawned servers cannot see a
// mutant, so they would only slow the run down).
export default defineConfig({
  test: {
    projects: [
      {
        plugins: [
          {
            name: 'keyward-process-per-file',
            // StrykerJS forces worker threads, but SoftHSM2 reads SOFTHSM2_CONF once per process
            // (and a thread's process.env never reaches it): keep one process per test file.
            configureVitest({ project }) {
              project.config.pool = 'forks';
            },
          },
        ],
        test: {
          name: 'mutate',
          include: [
            'test/**/*.test.ts',
            'native-test/barrier.test.ts',
            'native-test/barrier-upgrade.test.ts',
            'native-test/barrier-ops.test.ts',
            'native-test/token.test.ts',
            'native-test/token-recovery.test.ts',
            'native-test/rekey.test.ts',
            'native-test/rotate.test.ts',
            'native-test/generate-root.test.ts',
            'native-test/http-bad-input.test.ts',
            'native-test/acl.test.ts',
            'native-test/token-store.test.ts',
            'native-test/quorum.test.ts',
            'native-test/rekeyer.test.ts',
          ],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
