import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort, spawnServer, startServerProcess, writeConfig } from './support/process.js';
import { call } from './support/service.js';
import { type TestToken } from './support/softhsm.js';

const VALUES = 5;

interface Baseline {
  token: TestToken;
  dir: string;
  shares: string[];
  root: string;
}

/** An initialized, populated cluster on disk, stopped cleanly: each crash run starts from a copy. */
async function baseline(): Promise<Baseline> {
  const { server, token, dir } = await startServerProcess();
  const init = await call(server.url, 'PUT', 'sys/init', { body: { secret_shares: 5, secret_threshold: 3 } });
  for (const k of init.body.keys.slice(0, 3)) await call(server.url, 'PUT', 'sys/unseal', { body: { key: k } });
  for (let i = 0; i < VALUES; i++) {
    expect((await call(server.url, 'PUT', `secret/v${i}`, { token: init.body.root_token, body: { i } })).status).toBe(204);
  }
  expect(await server.stop()).toBe(0);
  return { token, dir, shares: init.body.keys, root: init.body.root_token };
}

/** Unseals with the given shares; true when the server ends up unsealed. */
async function unsealsWith(url: string, shares: string[]): Promise<boolean> {
  await call(url, 'PUT', 'sys/unseal', { body: { reset: true } });
  let last;
  for (const key of shares) last = await call(url, 'PUT', 'sys/unseal', { body: { key } });
  return last!.status === 200 && last!.body.sealed === false;
}

async function crashRun(base: Baseline, crashAt: number, verify: boolean): Promise<{ crashed: boolean; newShares?: string[]; newThreshold: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'kw-crash-run-'));
  await cp(join(base.dir, 'storage'), join(dir, 'storage'), { recursive: true });
  const port = await freePort();
  const config = await writeConfig(dir, base.token, port);
  const server = await spawnServer(config, base.token, port, { KEYWARD_TEST_CRASH_AT_WRITE: String(crashAt) });
  const url = server.url;
  expect(await unsealsWith(url, base.shares.slice(0, 3))).toBe(true);
  const init = await call(url, 'PUT', 'sys/rekey/init', { body: { secret_shares: 3, secret_threshold: 2, require_verification: verify } });
  let done;
  let newShares: string[] | undefined;
  let requestFailed = false;
  try {
    for (const key of base.shares.slice(2, 5)) done = await call(url, 'PUT', 'sys/rekey/update', { body: { key, nonce: init.body.nonce } });
    newShares = done!.body.keys;
    if (verify) {
      const nonce = done!.body.verification_nonce;
      for (const key of newShares!.slice(0, 2)) done = await call(url, 'PUT', 'sys/rekey/verify', { body: { key, nonce } });
    }
  } catch {
    requestFailed = true;
  }
  // A request that failed must have failed because the process killed itself.
  if (requestFailed) await Promise.race([server.exited, new Promise((r) => setTimeout(r, 10_000))]);
  const crashed = server.child.exitCode !== null || server.child.signalCode !== null;
  if (!crashed) {
    expect(done!.body.complete).toBe(true);
    await server.kill();
  }
  expect(server.child.signalCode ?? 'SIGKILL').toBe('SIGKILL');

  // Restart on the same storage without the hook and see which shares open it.
  const again = await spawnServer(config, base.token, port);
  try {
    const old = await unsealsWith(again.url, base.shares.slice(0, 3));
    if (old) await call(again.url, 'PUT', 'sys/seal', { token: base.root });
    const fresh = newShares ? await unsealsWith(again.url, newShares.slice(1, 3)) : undefined;
    const status = (await call(again.url, 'GET', 'sys/seal-status')).body;
    const where = `crash at write ${crashAt}`;
    if (newShares) expect(old !== fresh, `${where}: old shares ${old}, new shares ${fresh}`).toBe(true);
    // Whole states only: the old config with the old root key, or the new config.
    expect(status, where).toMatchObject(old ? { t: 3, n: 5 } : { t: 2, n: 3 });
    // Unsealed with whichever set opens it; when the new shares never reached the client there is none to try.
    const readable = old ? await unsealsWith(again.url, base.shares.slice(0, 3)) : fresh;
    if (readable) {
      for (let i = 0; i < VALUES; i++) {
        expect((await call(again.url, 'GET', `secret/v${i}`, { token: base.root })).body.data, `${where}, value ${i}`).toEqual({ i });
      }
    }
    return { crashed, newShares, newThreshold: status.t };
  } finally {
    await again.kill();
    await rm(dir, { recursive: true, force: true });
  }
}

describe('rekey commit survives kill -9 at every storage write', () => {
  for (const verify of [true, false]) {
    it(`${verify ? 'with' : 'without'} verification: exactly the old or the new shares unseal afterwards`, async () => {
      const base = await baseline();
      let points = 0;
      let oldStates = 0;
      let newStates = 0;
      for (let n = 1; n < 20; n++) {
        const r = await crashRun(base, n, verify);
        if (!r.crashed) break;
        points++;
        if (r.newThreshold === 3) oldStates++;
        else newStates++;
      }
      // The commit is one journal write, its entries and the journal's removal: several crash points, both outcomes seen.
      console.log(`rekey ${verify ? 'with' : 'without'} verification: ${points} crash points, ${oldStates} came back old, ${newStates} new`);
      expect(points).toBeGreaterThanOrEqual(4);
      expect(oldStates).toBeGreaterThan(0);
      expect(newStates).toBeGreaterThan(0);
    });
  }
});
