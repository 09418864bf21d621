import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PostgresBackend } from '../src/storage/postgresql.js';
import { StorageKeyError } from '../src/storage/backend.js';
import { freePort } from './support/process.js';
import { type PgCluster, pgStart, pgStop, startCluster } from './support/postgres.js';
import { call, initAndUnseal, type InProcess, restartInProcess, startInProcess } from './support/service.js';

const url = inject('pgUrl');

describe('PostgreSQL storage backend against a real server', () => {
  let db: PostgresBackend;
  beforeAll(async () => {
    db = await PostgresBackend.open({ connectionUrl: url, table: 'kw_contract', maxConnections: 4, retryForMs: 3000 });
  });
  afterAll(() => db.close());

  it('puts, gets, deletes and lists like the other backends', async () => {
    await db.put('a/b/c', Buffer.from('1'));
    await db.put('a/d', Buffer.from('2'));
    await db.put('a/b', Buffer.from('leaf and folder'));
    await db.put('a/100%_done', Buffer.from('like-escapes'));
    await db.put('ab/x', Buffer.from('not under a/'));
    expect((await db.get('a/b/c'))?.toString()).toBe('1');
    expect(await db.get('a/missing')).toBeUndefined();
    expect(await db.list('a/')).toEqual(['100%_done', 'b', 'b/', 'd']);
    await db.delete('a/b/c');
    expect(await db.list('a/')).toEqual(['100%_done', 'b', 'd']);
    await expect(db.put('../x', Buffer.from('x'))).rejects.toThrow(StorageKeyError);
  });

  it('applies transactions atomically and compares-and-swaps', async () => {
    await db.put('t/old', Buffer.from('old'));
    await db.transaction([
      { kind: 'put', key: 't/1', value: Buffer.from('one') },
      { kind: 'delete', key: 't/old' },
    ]);
    expect((await db.get('t/1'))?.toString()).toBe('one');
    expect(await db.get('t/old')).toBeUndefined();
    expect(await db.compareAndSwap('t/1', Buffer.from('one'), Buffer.from('two'))).toBe(true);
    expect(await db.compareAndSwap('t/1', Buffer.from('one'), Buffer.from('three'))).toBe(false);
    expect((await db.get('t/1'))?.toString()).toBe('two');
  });

  // Without an error listener on the checked-out client, pg would throw from the socket's end and kill the process.
  it('retries a transaction whose connection is cut while it waits, and survives the cut', async () => {
    await db.put('cut/x', Buffer.from('before'));
    const locker = new pg.Client({ connectionString: url });
    await locker.connect();
    try {
      // Holding the row makes the transaction wait on it, so its connection is cut while checked out of the pool.
      await locker.query('BEGIN');
      await locker.query(`SELECT 1 FROM kw_contract WHERE path = 'cut/x' FOR UPDATE`);
      const write = db.transaction([{ kind: 'put', key: 'cut/x', value: Buffer.from('after') }]);
      let waiting: number | undefined;
      while (waiting === undefined) {
        const r = await locker.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))');
        waiting = r.rows[0]?.pid;
        if (waiting === undefined) await sleep(10);
      }
      await locker.query('SELECT pg_terminate_backend($1)', [waiting]);
      await locker.query('COMMIT');
      await write;
    } finally {
      await locker.end();
    }
    expect((await db.get('cut/x'))?.toString()).toBe('after');
  });
});

// Its own PostgreSQL server, since this test stops it (other test files share the global one).
describe('keyward on PostgreSQL, through a server restart', () => {
  let kw: InProcess;
  let cluster: PgCluster;
  beforeAll(async () => {
    cluster = startCluster(await freePort());
    kw = await startInProcess('file', { storage: { type: 'postgresql', connectionUrl: cluster.url, table: 'kw_service', maxParallel: 4 } });
  });
  afterAll(async () => {
    await kw.service.close();
    pgStop(cluster);
  });

  it('keeps data across a keyward restart, answers 503 while PostgreSQL is down, and recovers', async () => {
    let base = kw.service.url;
    const { keys, root } = await initAndUnseal(base, 3, 2);
    expect((await call(base, 'GET', 'sys/seal-status')).body.storage_type).toBe('postgresql');
    for (let i = 0; i < 20; i++) expect((await call(base, 'PUT', `secret/v${i}`, { token: root, body: { i } })).status).toBe(204);

    await kw.service.close();
    kw.service = await restartInProcess(kw);
    base = kw.service.url;
    for (const k of keys.slice(0, 2)) await call(base, 'PUT', 'sys/unseal', { body: { key: k } });
    for (let i = 0; i < 20; i++) expect((await call(base, 'GET', `secret/v${i}`, { token: root })).body.data).toEqual({ i });

    pgStop(cluster);
    const down = await call(base, 'PUT', 'secret/while-down', { token: root, body: { v: 1 } });
    expect(down.status).toBe(503);
    expect(down.body.errors[0]).toMatch(/storage unavailable/);
    pgStart(cluster);
    expect((await call(base, 'PUT', 'secret/after', { token: root, body: { v: 2 } })).status).toBe(204);
    for (let i = 0; i < 20; i++) expect((await call(base, 'GET', `secret/v${i}`, { token: root })).body.data).toEqual({ i });
    expect((await call(base, 'GET', 'secret/after', { token: root })).body.data).toEqual({ v: 2 });
  });
});

