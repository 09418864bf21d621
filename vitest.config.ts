import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // One process per test file: SoftHSM2 reads SOFTHSM2_CONF once per process, at C_Initialize.
    pool: 'forks',
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/**/*.test.ts'], testTimeout: 30_000 } },
      {
        extends: true,
        test: {
          name: 'native',
          include: ['native-test/**/*.test.ts'],
          globalSetup: ['native-test/support/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
