import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FileBackend } from '../src/storage/file.js';
import { type Baseline, type CrashPoint, unsealsWith, type Walk, walk } from './support/crash-walk.js';
import { freePort, spawnServer, startServerProcess, writeConfig } from './support/process.js';
import { call } from './support/service.js';

/** A baseline with data in KV v1 (`secret/`) and v2 (`kv2/`); where each mount keeps its entries, and the root token's. */
interface Cluster extends Baseline {
  kv1: string;
  kv2: string;
  rootTokenKeys: string[];
}

/**
 * Init is two transactions. Before the reply: its journal, then every entry of a new cluster with
 * the seal config as pending. Once the reply with the shares has left: its journal, the seal
 * config, the pending one removed.
 */
const INIT_COMMIT_WRITES = [
  'journal',
  'rename core/keyring',
  'rename core/root-key',
  'rename core/init-pending',
  'rename core/cluster',
  'rename sys/token/salt',
  expect.stringMatching(/^rename sys\/token\/id\/[0-9a-f]{64}$/),
  expect.stringMatching(/^rename sys\/token\/accessor\/\w+$/),
  'rename core/mounts',
  'rename core/auth',
];
const INIT_CONFIRM_WRITES = ['journal', 'rename core/seal-config', 'delete core/init-pending'];
const INIT_WRITES = [...INIT_COMMIT_WRITES, ...INIT_CONFIRM_WRITES];

/** Reads a copy of a run's storage, opened as a restart opens it (its journal replayed). */
async function readStored<T>(storage: string, read: (stored: FileBackend) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'kw-walk-read-'));
  try {
    await cp(storage, join(dir, 'storage'), { recursive: true });
    return await read(await FileBackend.open(join(dir, 'storage')));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Every entry init stores is there, and the seal config is whole with the counts asked for. */
async function expectWholeInitState(storage: string, where: string): Promise<void> {
  await readStored(storage, async (stored) => {
    expect(await stored.list('core/'), where).toEqual(['auth', 'cluster', 'keyring', 'mounts', 'root-key', 'seal-config']);
    expect(JSON.parse((await stored.get('core/seal-config'))!.toString('utf8')), where).toEqual({ type: 'shamir', secret_shares: 3, secret_threshold: 2 });
    expect(await stored.get('core/init-pending'), where).toBeUndefined();
    expect(await stored.get('sys/token/salt'), where).toBeDefined();
    expect(await stored.list('sys/token/id/'), where).toHaveLength(1);
    expect(await stored.list('sys/token/accessor/'), where).toHaveLength(1);
  });
}

describe('crash consistency: kill -9 at every storage write of init, unseal, KV writes, rotate and rewrap', () => {
  let base: Cluster;
  const total: Record<string, number> = {};

  beforeAll(async () => {
    const { server, token, dir } = await startServerProcess();
    const init = await call(server.url, 'PUT', 'sys/init', { body: { secret_shares: 5, secret_threshold: 3 } });
    await unsealsWith(server.url, init.body.keys.slice(0, 3));
    const root = init.body.root_token;
    await call(server.url, 'POST', 'sys/mounts/kv2', { token: root, body: { type: 'kv-v2' } });
    await call(server.url, 'PUT', 'secret/app', { token: root, body: { v: 'old' } });
    await call(server.url, 'POST', 'kv2/data/app', { token: root, body: { data: { v: 'old' } } });
    const mounts = (await call(server.url, 'GET', 'sys/mounts', { token: root })).body.data;
    expect(await server.stop()).toBe(0);
    const rootTokenKeys = await readStored(join(dir, 'storage'), async (stored) => [
      ...(await stored.list('sys/token/accessor/')).map((key) => `sys/token/accessor/${key}`),
      ...(await stored.list('sys/token/id/')).map((key) => `sys/token/id/${key}`),
    ]);
    base = { token, dir, shares: init.body.keys, root, kv1: `logical/${mounts['secret/'].uuid}`, kv2: `logical/${mounts['kv2/'].uuid}`, rootTokenKeys };
  });

  it('sys/init: uninitialized (and init works then) unless its reply left; once it left, its shares open the service', async () => {
    const empty: Baseline = { ...base, dir: await mkdtemp(join(tmpdir(), 'kw-walk-empty-')) };
    await mkdir(join(empty.dir, 'storage'));
    let shares: string[] = [];
    let root = '';
    const outcomes = { initAgain: 0, openedByReceivedShares: 0, lockouts: 0 };
    const result = await walk(
      empty,
      async (url) => {
        shares = [];
        const r = await call(url, 'PUT', 'sys/init', { body: { secret_shares: 3, secret_threshold: 2 } });
        if (r.status === 200) ({ keys: shares, root_token: root } = r.body);
        return r.status === 200;
      },
      async (url, point, storage) => {
        const where = `crash before write ${point.n} (${point.write})`;
        const status = (await call(url, 'GET', 'sys/seal-status')).body;
        if (!point.acknowledged) {
          // The shares never reached the client: uninitialized, with nothing to lose, and init works.
          expect(shares, where).toEqual([]);
          expect(status, where).toMatchObject({ initialized: false, sealed: true });
          expect(status.init_pending === true, where).toBe(point.journals > 0);
          const again = await call(url, 'PUT', 'sys/init', { body: { secret_shares: 3, secret_threshold: 2 } });
          expect(again.status, where).toBe(200);
          expect((await call(url, 'GET', 'sys/seal-status')).body, where).toMatchObject({ initialized: true, t: 2, n: 3 });
          expect(await unsealsWith(url, again.body.keys.slice(0, 2)), where).toBe(true);
          // Nothing of the attempt that reached no one is left: one root token, the new one.
          await expectWholeInitState(storage, where);
          outcomes.initAgain++;
          return;
        }
        // The client has the shares: they open the service (confirming the init if the crash came first).
        expect(status, where).toMatchObject({ sealed: true, t: 2, n: 3 });
        if (!(await unsealsWith(url, shares.slice(1, 3)))) {
          outcomes.lockouts++;
          return;
        }
        expect((await call(url, 'GET', 'sys/seal-status')).body, where).toMatchObject({ initialized: true, sealed: false });
        expect((await call(url, 'GET', 'auth/token/lookup-self', { token: root })).status, where).toBe(200);
        expect((await call(url, 'PUT', 'sys/init', { body: { secret_shares: 3, secret_threshold: 2 } })).status, where).toBe(400);
        await expectWholeInitState(storage, where);
        outcomes.openedByReceivedShares++;
      },
      { unsealFirst: false, unsealAfter: false },
    );
    expectWalked(result, INIT_WRITES);
    total.init = result.points.length;
    console.log(`init: ${total.init} crash points: ${outcomes.initAgain} came back uninitialized with the shares never received, ${outcomes.openedByReceivedShares} opened by the shares received, ${outcomes.lockouts} lockouts`);
    expect(outcomes).toEqual({ initAgain: INIT_COMMIT_WRITES.length, openedByReceivedShares: INIT_CONFIRM_WRITES.length, lockouts: 0 });
  });

  it('unseal: writes nothing, so it has no crash point', async () => {
    const result = await walk(
      base,
      async (url) => unsealsWith(url, base.shares.slice(0, 3)),
      async () => undefined,
      { unsealFirst: false },
    );
    expect(result).toEqual({ points: [], writes: [] });
    total.unseal = 0;
  });

  it('KV v1 write: the old value before its journal, the new one after', async () => {
    const writes = ['journal', `rename ${base.kv1}/app`];
    const result = await walk(
      base,
      async (url) => (await call(url, 'PUT', 'secret/app', { token: base.root, body: { v: 'new' } })).status === 204,
      async (url, point) => {
        const v = (await call(url, 'GET', 'secret/app', { token: base.root })).body.data.v;
        expect(v, `crash before write ${point.n} (${point.write})`).toBe(committed(point) ? 'new' : 'old');
      },
    );
    expectWalked(result, writes);
    total.kvV1 = result.points.length;
  });

  it('KV v2 write (a transaction of version and metadata): the old version before its journal, the whole new one after', async () => {
    const writes = ['journal', `rename ${base.kv2}/versions/app/2`, `rename ${base.kv2}/metadata/app`];
    const result = await walk(
      base,
      async (url) => (await call(url, 'POST', 'kv2/data/app', { token: base.root, body: { data: { v: 'new' } } })).status === 200,
      async (url, point) => {
        const where = `crash before write ${point.n} (${point.write})`;
        const read = await call(url, 'GET', 'kv2/data/app', { token: base.root });
        expect(read.status, where).toBe(200);
        const { data, metadata } = read.body.data;
        expect({ data, version: metadata.version }, where).toEqual(committed(point) ? { data: { v: 'new' }, version: 2 } : { data: { v: 'old' }, version: 1 });
      },
    );
    expectWalked(result, writes);
    total.kvV2 = result.points.length;
  });

  it('rotate: the old term before its journal, the next one after, and every value readable', async () => {
    const writes = ['journal', 'rename core/keyring'];
    const result = await walk(
      base,
      async (url) => (await call(url, 'POST', 'sys/rotate', { token: base.root })).status === 204,
      async (url, point) => {
        const where = `crash before write ${point.n} (${point.write})`;
        expect((await call(url, 'GET', 'sys/key-status', { token: base.root })).body.term, where).toBe(committed(point) ? 2 : 1);
        expect((await call(url, 'GET', 'secret/app', { token: base.root })).body.data, where).toEqual({ v: 'old' });
        expect((await call(url, 'PUT', 'secret/after', { token: base.root, body: { v: 1 } })).status, where).toBe(204);
        expect((await call(url, 'GET', 'secret/after', { token: base.root })).body.data, where).toEqual({ v: 1 });
      },
    );
    expectWalked(result, writes);
    total.rotate = result.points.length;
  });

  it('rewrap: every value readable at every point, and the job resumes after the restart and completes', async () => {
    const rotated: Cluster = { ...base, dir: await mkdtemp(join(tmpdir(), 'kw-walk-rotated-')) };
    await cp(join(base.dir, 'storage'), join(rotated.dir, 'storage'), { recursive: true });
    const port = await freePort();
    const server = await spawnServer(await writeConfig(rotated.dir, base.token, port), base.token, port);
    await unsealsWith(server.url, base.shares.slice(0, 3));
    for (let i = 0; i < 3; i++) await call(server.url, 'PUT', `secret/r${i}`, { token: base.root, body: { i } });
    await call(server.url, 'POST', 'sys/rotate', { token: base.root });
    expect(await server.stop()).toBe(0);

    const rewrapState = async (url: string) => (await call(url, 'GET', 'sys/rotate/rewrap', { token: base.root })).body.data.state;
    const rewrapDone = async (url: string) => {
      for (let i = 0; i < 200; i++) {
        if ((await rewrapState(url)) === 'done') return true;
        await new Promise((r) => setTimeout(r, 25));
      }
      return false;
    };
    // The job reports done before its record of that is written (the write is queued first): a
    // write acknowledged after it is queued behind it, so the run is over only once that one is.
    const rewrapAndFence = async (url: string) =>
      (await call(url, 'POST', 'sys/rotate/rewrap', { token: base.root })).status === 200 &&
      (await rewrapDone(url)) &&
      (await call(url, 'PUT', 'secret/fence', { token: base.root, body: { v: 1 } })).status === 204;
    const result = await walk(
      rotated,
      rewrapAndFence,
      async (url, point) => {
        const where = `crash before write ${point.n} (${point.write})`;
        expect((await call(url, 'GET', 'secret/app', { token: base.root })).body.data, where).toEqual({ v: 'old' });
        for (let i = 0; i < 3; i++) expect((await call(url, 'GET', `secret/r${i}`, { token: base.root })).body.data, where).toEqual({ i });
        expect((await call(url, 'GET', 'kv2/data/app', { token: base.root })).body.data.data, where).toEqual({ v: 'old' });
        // The job's first batch records it as running: once that journal is on disk it resumes by itself.
        if (committed(point)) expect(['running', 'done'], where).toContain(await rewrapState(url));
        else {
          expect(await rewrapState(url), where).toBe('idle');
          expect((await call(url, 'POST', 'sys/rotate/rewrap', { token: base.root })).status, where).toBe(200);
        }
        expect(await rewrapDone(url), where).toBe(true);
        const pruned = await call(url, 'POST', 'sys/rotate/prune', { token: base.root });
        expect(pruned.body.data.pruned, where).toEqual([1]);
      },
    );
    // Its entries: the job record (started, then done) around one compare-and-swap per value under term 1, then the fence.
    const values = ['core/auth', 'core/cluster', 'core/mounts', 'core/root-key', `${base.kv1}/app`, ...[0, 1, 2].map((i) => `${base.kv1}/r${i}`)];
    values.push(`${base.kv2}/metadata/app`, `${base.kv2}/versions/app/1`, ...base.rootTokenKeys, 'sys/token/salt');
    const renames = ['core/rewrap', ...values.sort(), 'core/rewrap', `${base.kv1}/fence`].map((key) => `rename ${key}`);
    expect(result.writes.filter((w) => w !== 'journal'), 'the entries the completed run wrote').toEqual(renames);
    // Four workers share group commits, so how many journals a run writes depends on fsync timing:
    // one per batch, between one per four values and one per value; the job record's last write
    // and the fence may share one.
    const journals = result.writes.length - renames.length;
    expect(journals, 'journal writes of the completed run').toBeGreaterThanOrEqual(1 + Math.ceil(values.length / 4) + 1);
    expect(journals, 'journal writes of the completed run').toBeLessThanOrEqual(1 + values.length + 2);
    // Each run crashed before one of those writes (its own: runs may batch differently).
    for (const p of result.points) expect(['journal', ...renames], `crash before write ${p.n}`).toContain(p.write);
    total.rewrap = result.points.length;
    console.log(`crash walk: ${JSON.stringify(total)} crash points, 0 failures`);
    // Two server starts per crash point, 24 points: on a busy 2-core machine that passed 120 s.
  }, 300_000);
});

/** Single-batch operations: once the batch's journal is on disk the operation is committed. */
function committed(point: CrashPoint): boolean {
  return point.journals > 0;
}

/** The walk crashed before each write the operation makes, in order, and no other. */
function expectWalked(result: Walk, writes: unknown[]): void {
  expect(result.writes, 'the writes of the run that completed').toEqual(writes);
  expect(result.points.map((p) => p.write), 'the writes the runs crashed before').toEqual(writes);
}
