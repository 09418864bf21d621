import * as openpgp from 'openpgp';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Baseline, type CrashPoint, unsealsWith, walk } from './support/crash-walk.js';
import { startServerProcess } from './support/process.js';
import { call } from './support/service.js';

const VALUES = 5;

/** The switch to the new root key: its journal, the keyring under the new root key, `core/root-key`, the seal config. */
const SWITCH_WRITES = ['journal', 'rename core/keyring', 'rename core/root-key', 'rename core/seal-config'];

/**
 * Without verification the rekey is recorded as pending before the reply (its journal, the
 * record, and the backup when asked for); the switch follows once the reply has left, removing
 * the record.
 */
const pendingWrites = (backup: boolean) => ['journal', 'rename core/rekey-pending', ...(backup ? ['rename core/rekey-backup'] : [])];
const SWITCH_AFTER_REPLY_WRITES = [...SWITCH_WRITES, 'delete core/rekey-pending'];

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

interface Variant {
  name: string;
  verify: boolean;
  pgp: boolean;
}

const VARIANTS: Variant[] = [
  { name: 'without verification', verify: false, pgp: false },
  { name: 'without verification, shares encrypted to PGP keys, with a backup', verify: false, pgp: true },
  { name: 'with verification', verify: true, pgp: false },
];

describe('rekey survives kill -9 at every storage write, and never locks the operators out', () => {
  let holders: Array<{ publicKey: string; privateKey: openpgp.PrivateKey }>;

  beforeAll(async () => {
    const pairs = await Promise.all(
      [1, 2, 3].map((i) => openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ name: `holder ${i}` }], format: 'object' })),
    );
    holders = pairs.map((p) => ({ publicKey: Buffer.from(p.publicKey.write()).toString('base64'), privateKey: p.privateKey }));
  });

  /** The shares as an operator types them: PGP-encrypted ones decrypted by their holders first. */
  const plainShares = async (answer: { keys: string[]; keys_base64: string[] }, pgp: boolean): Promise<string[]> => {
    if (!pgp) return answer.keys;
    return Promise.all(
      answer.keys_base64.map(async (encrypted, i) => {
        const message = await openpgp.readMessage({ binaryMessage: Buffer.from(encrypted, 'base64') });
        return String((await openpgp.decrypt({ message, decryptionKeys: holders[i]!.privateKey })).data);
      }),
    );
  };

  for (const variant of VARIANTS) {
    it(`${variant.name}: the shares the client holds open the service at every crash point`, async () => {
      const base = await baseline();
      let newShares: string[] = [];
      const outcomes = { old: 0, new: 0, lockouts: 0 };
      const rekey = async (url: string) => {
        newShares = [];
        const body = { secret_shares: 3, secret_threshold: 2, require_verification: variant.verify, ...(variant.pgp ? { pgp_keys: holders.map((h) => h.publicKey), backup: true } : {}) };
        const init = await call(url, 'PUT', 'sys/rekey/init', { body });
        let done;
        for (const key of base.shares.slice(2, 5)) done = await call(url, 'PUT', 'sys/rekey/update', { body: { key, nonce: init.body.nonce } });
        newShares = await plainShares(done!.body, variant.pgp);
        if (variant.verify) {
          const nonce = done!.body.verification_nonce;
          for (const key of newShares.slice(0, 2)) done = await call(url, 'PUT', 'sys/rekey/verify', { body: { key, nonce } });
        }
        return done!.body.complete === true;
      };
      const check = async (url: string, point: CrashPoint) => {
        const where = `crash before write ${point.n} (${point.write})`;
        // With verification the switch waits for the new shares to come back, so it is done once its journal is on
        // disk; without, the new shares open the service as soon as the client has received them.
        const newOnesOpen = variant.verify ? point.journals > 0 : newShares.length > 0;
        const status = (await call(url, 'GET', 'sys/seal-status')).body;
        if (!newOnesOpen) {
          outcomes.old++;
          if (!(await unsealsWith(url, base.shares.slice(0, 3)))) {
            outcomes.lockouts++;
            return;
          }
          expect(status, where).toMatchObject({ t: 3, n: 5 });
          // A rekey recorded before its reply could leave stays reported, for an operator to finish or discard.
          expect(status.rekey_pending !== undefined, where).toBe(!variant.verify && point.journals > 0);
          await expectEveryValue(url, base.root, where);
          return;
        }
        outcomes.new++;
        if (!(await unsealsWith(url, newShares.slice(1, 3)))) {
          outcomes.lockouts++;
          return;
        }
        // Unsealing with the new shares finished the switch, if the crash came before it.
        const after = (await call(url, 'GET', 'sys/seal-status')).body;
        expect(after, where).toMatchObject({ sealed: false, t: 2, n: 3 });
        expect(after.rekey_pending, where).toBeUndefined();
        await expectEveryValue(url, base.root, where);
        expect((await call(url, 'PUT', 'sys/seal', { token: base.root })).status, where).toBe(204);
        expect(await unsealsWith(url, base.shares.slice(0, 3)), `${where}: the old shares, after the switch`).toBe(false);
        if (variant.pgp) {
          expect(await unsealsWith(url, newShares.slice(0, 2)), where).toBe(true);
          const backup = await call(url, 'GET', 'sys/rekey/backup', { token: base.root });
          expect(Object.keys(backup.body.data.keys), where).toHaveLength(3);
        }
      };
      const result = await walk(base, rekey, check, { unsealAfter: false });
      const expected = variant.verify ? SWITCH_WRITES : [...pendingWrites(variant.pgp), ...SWITCH_AFTER_REPLY_WRITES];
      expect(result.writes, 'the writes of the run that completed').toEqual(expected);
      expect(result.points.map((p) => p.write), 'the writes the runs crashed before').toEqual(expected);
      console.log(`rekey ${variant.name}: ${result.points.length} crash points, ${outcomes.old} opened by the old shares, ${outcomes.new} by the new ones, ${outcomes.lockouts} lockouts`);
      const beforeReply = variant.verify ? 1 : pendingWrites(variant.pgp).length;
      expect(outcomes).toEqual({ old: beforeReply, new: expected.length - beforeReply, lockouts: 0 });
    });
  }
});
