import { describe, expect, it } from 'vitest';
import { type Baseline, type CrashPoint, unsealsWith, walk } from './support/crash-walk.js';
import { startServerProcess } from './support/process.js';
import { call } from './support/service.js';

const VALUES = 5;

/** The commit is one transaction: its journal, then the keyring under the new root key, `core/root-key` and the seal config. */
const COMMIT_WRITES = ['journal', 'rename core/keyring', 'rename core/root-key', 'rename core/seal-config'];

/** An initialized, populated cluster on disk, stopped cleanly: each crash run starts from a copy. */
async function baseline(): Promise<Baseline> {
  const { server, token, dir } = await startServerProcess();
  const init = await call(server.url, 'PUT', 'sys/init', { body: { secret_shares: 5, secret_threshold: 3 } });
  expect(await unsealsWith(server.url, init.body.keys.slice(0, 3))).toBe(true);
  for (let i = 0; i < VALUES; i++) {
    expect((await call(server.url, 'PUT', `secret/v${i}`, { token: init.body.root_token, body: { i } })).status).toBe(204);
  }
  expect(await server.stop()).toBe(0);
  return { token, dir, shares: init.body.keys, root: init.body.root_token };
}

async function expectEveryValue(url: string, root: string, where: string): Promise<void> {
  for (let i = 0; i < VALUES; i++) {
    expect((await call(url, 'GET', `secret/v${i}`, { token: root })).body.data, `${where}, value ${i}`).toEqual({ i });
  }
}

describe('rekey commit survives kill -9 at every storage write', () => {
  for (const verify of [true, false]) {
    it(`${verify ? 'with' : 'without'} verification: the old shares before the commit's journal, the new ones after`, async () => {
      const base = await baseline();
      let newShares: string[] = [];
      const outcomes = { old: 0, new: 0, sharesNeverReceived: 0 };
      const rekey = async (url: string) => {
        newShares = [];
        const init = await call(url, 'PUT', 'sys/rekey/init', { body: { secret_shares: 3, secret_threshold: 2, require_verification: verify } });
        let done;
        for (const key of base.shares.slice(2, 5)) done = await call(url, 'PUT', 'sys/rekey/update', { body: { key, nonce: init.body.nonce } });
        newShares = done!.body.keys;
        if (verify) {
          const nonce = done!.body.verification_nonce;
          for (const key of newShares.slice(0, 2)) done = await call(url, 'PUT', 'sys/rekey/verify', { body: { key, nonce } });
        }
        return done!.body.complete === true;
      };
      const check = async (url: string, point: CrashPoint) => {
        const where = `crash before write ${point.n} (${point.write})`;
        const committed = point.journals > 0;
        // Whole states only: the old config with the old root key, or the new config with the new one.
        expect(await unsealsWith(url, base.shares.slice(0, 3)), `${where}: the old shares unseal`).toBe(!committed);
        expect((await call(url, 'GET', 'sys/seal-status')).body, where).toMatchObject(committed ? { t: 2, n: 3 } : { t: 3, n: 5 });
        if (!committed) {
          outcomes.old++;
          await expectEveryValue(url, base.root, where);
          expect((await call(url, 'PUT', 'sys/seal', { token: base.root })).status, where).toBe(204);
          if (newShares.length) expect(await unsealsWith(url, newShares), `${where}: the new shares unseal`).toBe(false);
          return;
        }
        outcomes.new++;
        // Without verification the new shares come in the reply to the commit, which the crash cut off.
        if (!newShares.length) {
          outcomes.sharesNeverReceived++;
          return;
        }
        expect(await unsealsWith(url, newShares.slice(1, 3)), `${where}: the new shares unseal`).toBe(true);
        await expectEveryValue(url, base.root, where);
      };
      const result = await walk(base, rekey, check, { unsealAfter: false });
      expect(result.writes, 'the writes of the run that completed').toEqual(COMMIT_WRITES);
      expect(result.points.map((p) => p.write), 'the writes the runs crashed before').toEqual(COMMIT_WRITES);
      console.log(
        `rekey ${verify ? 'with' : 'without'} verification: ${result.points.length} crash points, ${outcomes.old} came back old, ` +
          `${outcomes.new} new (${outcomes.sharesNeverReceived} of them with the new shares never received: issue #14)`,
      );
      // Old only before the journal; new at every point after it, unsealed with the new shares when the client has them.
      expect(outcomes).toEqual({ old: 1, new: COMMIT_WRITES.length - 1, sharesNeverReceived: verify ? 0 : COMMIT_WRITES.length - 1 });
    });
  }
});
