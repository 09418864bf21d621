import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PostgresBackend } from '../src/storage/postgresql.js';
import { StorageKeyError } from '../src/storage/backend.js';
import { freePort } from './support/process.js';
import { type PgCluster, pgStart, pgStop, startCluster } from './support/postgres.js';
import { call, expectError, initAndUnseal, type InProcess, restartInProcess, startInProcess } from './support/service.js';

const url = inject('pgUrl');

/** The longest key, in bytes of UTF-8, the backend stores: what a btree index entry holds when the key does not compress. */
const MAX_KEY_BYTES = 2692;

/** `n` distinct CJK characters (3 bytes of UTF-8 each), which do not compress. */
function cjk(n: number): string {
  return Array.from({ length: n }, (_, i) => String.fromCharCode(0x4e00 + ((i * 7919) % 20000))).join('');
}

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

  it('stores keys up to the index limit and refuses longer ones, NUL bytes and unpaired surrogates with StorageKeyError before any statement', async () => {
    const longest = `limit/${cjk(895)}${'a'.repeat(MAX_KEY_BYTES - 6 - 895 * 3)}`;
    expect(Buffer.byteLength(longest)).toBe(MAX_KEY_BYTES);
    const tooLong = `${longest}b`;
    // The limit is PostgreSQL's own: one byte more and the index refuses the row.
    const raw = new pg.Client({ connectionString: url });
    await raw.connect();
    try {
      await expect(raw.query('INSERT INTO kw_contract (path, value) VALUES ($1, $2)', [tooLong, Buffer.from('x')])).rejects.toThrow(/index row size \d+ exceeds btree version 4 maximum 2704/);
    } finally {
      await raw.end();
    }

    await db.put(longest, Buffer.from('fits'));
    expect((await db.get(longest))?.toString()).toBe('fits');
    expect(await db.list('limit/')).toEqual([longest.slice(6)]);
    await expect(db.put(tooLong, Buffer.from('x'))).rejects.toThrow(`storage path "${tooLong}" is too long for PostgreSQL storage: it is 2693 bytes of UTF-8, and the table's index takes at most 2692`);
    await expect(db.transaction([
      { kind: 'put', key: 'limit/first', value: Buffer.from('1') },
      { kind: 'put', key: tooLong, value: Buffer.from('2') },
    ])).rejects.toThrow(StorageKeyError);
    expect(await db.get('limit/first')).toBeUndefined();
    // Reads, deletes and swaps of such a key insert nothing into the index: they answer as for any missing key.
    expect(await db.get(tooLong)).toBeUndefined();
    await db.delete(tooLong);
    expect(await db.compareAndSwap(tooLong, Buffer.from('x'), Buffer.from('y'))).toBe(false);

    await expect(db.put('limit/nul\u0000', Buffer.from('x'))).rejects.toThrow(/control characters/);
    // As UTF-8 an unpaired surrogate becomes U+FFFD: "a\ud800" and "a\udc00" would share a row.
    await expect(db.put('limit/a\ud800', Buffer.from('x'))).rejects.toThrow(/not valid Unicode/);
    await expect(db.get('limit/a\udc00')).rejects.toThrow(StorageKeyError);
    await db.delete(longest);
    await db.put('limit/after', Buffer.from('still writing'));
    expect((await db.get('limit/after'))?.toString()).toBe('still writing');
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
describe('keyward on PostgreSQL over HTTP, through a server restart', () => {
  let kw: InProcess;
  let cluster: PgCluster;
  let keys: string[];
  let root: string;
  beforeAll(async () => {
    cluster = startCluster(await freePort());
    kw = await startInProcess('file', { storage: { type: 'postgresql', connectionUrl: cluster.url, table: 'kw_service', maxParallel: 4 } });
    ({ keys, root } = await initAndUnseal(kw.service.url, 3, 2));
  });
  afterAll(async () => {
    await kw.service.close();
    pgStop(cluster);
  });

  it('stores a secret whose storage path is at the limit, answers 400 past it (never half a KV v2 version), and keeps taking writes', async () => {
    const base = kw.service.url;
    await call(base, 'POST', 'sys/mounts/kv2', { token: root, body: { type: 'kv-v2' } });
    // A mount's entries are under "logical/<uuid>/": 45 bytes before the secret's own path.
    const atLimit = `${cjk(880)}${'a'.repeat(MAX_KEY_BYTES - 45 - 880 * 3)}`;
    expect((await call(base, 'PUT', `secret/${atLimit}`, { token: root, body: { v: 'fits' } })).status).toBe(204);
    expect((await call(base, 'GET', `secret/${atLimit}`, { token: root })).body.data).toEqual({ v: 'fits' });
    await expectError(await call(base, 'PUT', `secret/${atLimit}b`, { token: root, body: { v: 1 } }), 400, /is too long for PostgreSQL storage: it is 2693 bytes of UTF-8, and the table's index takes at most 2692/);
    await expectError(await call(base, 'PUT', 'secret/a%00b', { token: root, body: { v: 1 } }), 400, /control characters/);

    // Its metadata path ("metadata/…") is at the limit, its version path ("versions/…/1") two bytes past it.
    const v2 = `${cjk(879)}${'a'.repeat(MAX_KEY_BYTES - 45 - 'metadata/'.length - 879 * 3)}`;
    await expectError(await call(base, 'POST', `kv2/data/${v2}`, { token: root, body: { data: { v: 1 } } }), 400, /too long for PostgreSQL storage: it is 2694 bytes/);
    expect((await call(base, 'GET', `kv2/metadata/${v2}`, { token: root })).status).toBe(404);

    expect((await call(base, 'POST', 'kv2/data/normal', { token: root, body: { data: { v: 'after' } } })).status).toBe(200);
    expect((await call(base, 'GET', 'kv2/data/normal', { token: root })).body.data.data).toEqual({ v: 'after' });
  });

  it('keeps data across a keyward restart, answers 503 while PostgreSQL is down, and recovers', async () => {
    let base = kw.service.url;
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

