import { createServer } from 'node:net';
import type { TestProject } from 'vitest/node';
import { type PgCluster, pgStop, startCluster } from './postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Connection URL of the PostgreSQL server the tests share (tests that stop a server start their own). */
    pgUrl: string;
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
    return () => undefined;
  }
  const cluster: PgCluster = startCluster(await freePort());
  project.provide('pgUrl', cluster.url);
  return () => pgStop(cluster);
}
