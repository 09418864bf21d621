import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { freePort, type ServerProcess, spawnServer, startServerProcess, writeConfig } from './support/process.js';
import { call } from './support/service.js';
import { type TestToken } from './support/softhsm.js';

/** A stopped, initialized cluster with data in KV v1 and v2; each crash run works on a copy. */
interface Cluster {
  token: TestToken;
  dir: string;
  shares: string[];
  root: string;
}

async function unseal(url: string, shares: string[]): Promise<boolean> {
  let last;
  for (const key of shares) last = await call(url, 'PUT', 'sys/unseal', { body: { key } });
  return last?.body?.sealed === false;
}

/**
 * Kills the server before its Nth physical write during `op`, for N = 1, 2, … until `op`
 * completes; after each crash restarts on the same storage and runs `check` with whether `op`
 * was acknowledged. Returns the number of crash points tried.
 */
async function walk(
  base: Cluster,
  op: (url: string) => Promise<boolean>,
  check: (url: string, acknowledged: boolean) => Promise<void>,
  opts: { unsealFirst?: boolean; unsealAfter?: boolean } = {},
): Promise<number> {
  let points = 0;
  for (let n = 1; n < 60; n++) {
    const dir = await mkdtemp(join(tmpdir(), 'kw-walk-'));
    await cp(join(base.dir, 'storage'), join(dir, 'storage'), { recursive: true });
    const port = await freePort();
    const config = await writeConfig(dir, base.token, port);
    const server: ServerProcess = await spawnServer(config, base.token, port, { KEYWARD_TEST_CRASH_AT_WRITE: String(n) });
    let acknowledged = false;
    try {
      if (opts.unsealFirst ?? true) expect(await unseal(server.url, base.shares.slice(0, 3))).toBe(true);
      acknowledged = await op(server.url);
    } catch {
      // The connection died with the process.
    }
    if (!acknowledged) await Promise.race([server.exited, new Promise((r) => setTimeout(r, 10_000))]);
    const crashed = server.child.exitCode !== null || server.child.signalCode !== null;
    if (!crashed) {
      expect(acknowledged).toBe(true);
      await server.kill();
      await rm(dir, { recursive: true, force: true });
      return points;
    }
    points++;
    const again = await spawnServer(config, base.token, port);
    try {
      if (opts.unsealAfter ?? true) expect(await unseal(again.url, base.shares.slice(1, 4)), `crash at write ${n}: the shares still unseal`).toBe(true);
      await check(again.url, acknowledged);
    } finally {
      await again.kill();
      await rm(dir, { recursive: true, force: true });
    }
  }
  throw new Error('the operation never completed within 60 writes');
}

describe('crash consistency: kill -9 at every storage write of init, unseal, KV writes, rotate and rewrap', () => {
  let base: Cluster;
  const total: Record<string, number> = {};

  beforeAll(async () => {
    const { server, token, dir } = await startServerProcess();
    const init = await call(server.url, 'PUT', 'sys/init', { body: { secret_shares: 5, secret_threshold: 3 } });
    await unseal(server.url, init.body.keys.slice(0, 3));
    const root = init.body.root_token;
    await call(server.url, 'POST', 'sys/mounts/kv2', { token: root, body: { type: 'kv-v2' } });
    await call(server.url, 'PUT', 'secret/app', { token: root, body: { v: 'old' } });
    await call(server.url, 'POST', 'kv2/data/app', { token: root, body: { data: { v: 'old' } } });
    expect(await server.stop()).toBe(0);
    base = { token, dir, shares: init.body.keys, root };
  });

  it('sys/init: not initialized (and init works then), or initialized with the shares it acknowledged', async () => {
    const empty: Cluster = { ...base, dir: await mkdtemp(join(tmpdir(), 'kw-walk-empty-')) };
    await mkdir(join(empty.dir, 'storage'));
    let shares: string[] = [];
    total.init = await walk(
      empty,
      async (url) => {
        shares = [];
        const r = await call(url, 'PUT', 'sys/init', { body: { secret_shares: 3, secret_threshold: 2 } });
        shares = r.status === 200 ? r.body.keys : [];
        return r.status === 200;
      },
      async (url, acked) => {
        const initialized = (await call(url, 'GET', 'sys/init')).body.initialized;
        if (acked) expect(initialized).toBe(true);
        if (!initialized) {
          const again = await call(url, 'PUT', 'sys/init', { body: { secret_shares: 3, secret_threshold: 2 } });
          expect(again.status).toBe(200);
          shares = again.body.keys;
        }
        // A crash after the commit but before the reply leaves shares no one received (as in Vault).
        if (!shares.length) return;
        expect(await unseal(url, shares.slice(0, 2))).toBe(true);
        expect((await call(url, 'GET', 'sys/seal-status')).body.t).toBe(2);
      },
      { unsealFirst: false, unsealAfter: false },
    );
  });

  it('unseal: writes nothing, so it has no crash point', async () => {
    total.unseal = await walk(
      base,
      async (url) => unseal(url, base.shares.slice(0, 3)),
      async () => undefined,
      { unsealFirst: false },
    );
    expect(total.unseal).toBe(0);
  });

  it('KV v1 write: the old value or the new one, the new one once acknowledged', async () => {
    total.kvV1 = await walk(
      base,
      async (url) => (await call(url, 'PUT', 'secret/app', { token: base.root, body: { v: 'new' } })).status === 204,
      async (url, acked) => {
        const v = (await call(url, 'GET', 'secret/app', { token: base.root })).body.data.v;
        expect(acked ? ['new'] : ['old', 'new']).toContain(v);
      },
    );
  });

  it('KV v2 write (a transaction of version and metadata): one whole version, never half of one', async () => {
    total.kvV2 = await walk(
      base,
      async (url) => (await call(url, 'POST', 'kv2/data/app', { token: base.root, body: { data: { v: 'new' } } })).status === 200,
      async (url, acked) => {
        const read = await call(url, 'GET', 'kv2/data/app', { token: base.root });
        expect(read.status).toBe(200);
        const { data, metadata } = read.body.data;
        expect(acked ? [{ v: 'new' }] : [{ v: 'old' }, { v: 'new' }]).toContainEqual(data);
        expect(metadata.version).toBe(data.v === 'new' ? 2 : 1);
      },
    );
  });

  it('rotate: the old term or the next one, and every value readable', async () => {
    total.rotate = await walk(
      base,
      async (url) => (await call(url, 'POST', 'sys/rotate', { token: base.root })).status === 204,
      async (url, acked) => {
        const term = (await call(url, 'GET', 'sys/key-status', { token: base.root })).body.term;
        expect(acked ? [2] : [1, 2]).toContain(term);
        expect((await call(url, 'GET', 'secret/app', { token: base.root })).body.data).toEqual({ v: 'old' });
        expect((await call(url, 'PUT', 'secret/after', { token: base.root, body: { v: 1 } })).status).toBe(204);
        expect((await call(url, 'GET', 'secret/after', { token: base.root })).body.data).toEqual({ v: 1 });
      },
    );
  });

  it('rewrap: every value readable at every point, and the job resumes after the restart and completes', async () => {
    const rotated: Cluster = { ...base, dir: await mkdtemp(join(tmpdir(), 'kw-walk-rotated-')) };
    await cp(join(base.dir, 'storage'), join(rotated.dir, 'storage'), { recursive: true });
    const port = await freePort();
    const server = await spawnServer(await writeConfig(rotated.dir, base.token, port), base.token, port);
    await unseal(server.url, base.shares.slice(0, 3));
    for (let i = 0; i < 3; i++) await call(server.url, 'PUT', `secret/r${i}`, { token: base.root, body: { i } });
    await call(server.url, 'POST', 'sys/rotate', { token: base.root });
    expect(await server.stop()).toBe(0);

    const rewrapDone = async (url: string) => {
      for (let i = 0; i < 200; i++) {
        const state = (await call(url, 'GET', 'sys/rotate/rewrap', { token: base.root })).body.data.state;
        if (state === 'done') return true;
        await new Promise((r) => setTimeout(r, 25));
      }
      return false;
    };
    total.rewrap = await walk(
      rotated,
      async (url) => (await call(url, 'POST', 'sys/rotate/rewrap', { token: base.root })).status === 200 && (await rewrapDone(url)),
      async (url) => {
        expect((await call(url, 'GET', 'secret/app', { token: base.root })).body.data).toEqual({ v: 'old' });
        for (let i = 0; i < 3; i++) expect((await call(url, 'GET', `secret/r${i}`, { token: base.root })).body.data).toEqual({ i });
        expect((await call(url, 'GET', 'kv2/data/app', { token: base.root })).body.data.data).toEqual({ v: 'old' });
        // A job that was running resumes by itself; one that never started is started again.
        const state = (await call(url, 'GET', 'sys/rotate/rewrap', { token: base.root })).body.data.state;
        if (state !== 'running' && state !== 'done') await call(url, 'POST', 'sys/rotate/rewrap', { token: base.root });
        expect(await rewrapDone(url)).toBe(true);
        const pruned = await call(url, 'POST', 'sys/rotate/prune', { token: base.root });
        expect(pruned.body.data.pruned).toEqual([1]);
      },
    );
    console.log(`crash walk: ${JSON.stringify(total)} crash points, 0 failures`);
    expect(Object.values(total).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(20);
  });
});
