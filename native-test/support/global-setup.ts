import { createServer } from 'node:net';
import type { TestProject } from 'vitest/node';
import { type PgCluster, pgStop, startCluster } from './postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Connection URL of the PostgreSQL server the tests use. */
    pgUrl: string;
    /** The throwaway cluster's data directory and port ('' and 0 when KEYWARD_TEST_PG_URL names a server). */
    pgDataDir: string;
    pgPort: number;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

/** Uses the PostgreSQL server named by KEYWARD_TEST_PG_URL, or starts a throwaway one and stops it afterwards. */
export default async function setup(project: TestProject): Promise<() => void> {
  const given = process.env.KEYWARD_TEST_PG_URL;
  if (given) {
    project.provide('pgUrl', given);
    project.provide('pgDataDir', '');
    project.provide('pgPort', 0);
    return () => undefined;
  }
  const cluster: PgCluster = startCluster(await freePort());
  project.provide('pgUrl', cluster.url);
  project.provide('pgDataDir', cluster.dataDir);
  project.provide('pgPort', cluster.port);
  return () => pgStop(cluster);
}
