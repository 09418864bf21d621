import * as openpgp from 'openpgp';
import pkcs11js from 'pkcs11js';
import { pino } from 'pino';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TokenBarrier } from '../src/barrier/barrier.js';
import { SealedError } from '../src/barrier/errors.js';
import { InvalidRequestError, NotFoundError } from '../src/core/errors.js';
import { newRootKey, rebuildKey } from '../src/core/quorum.js';
import { REKEY_BACKUP_PATH, REKEY_OPERATION_PATH, type RekeyRequest, type RekeyResult, Rekeyer } from '../src/core/rekey.js';
import { parseSealConfig, SEAL_CONFIG_PATH } from '../src/core/seal-config.js';
import { split } from '../src/crypto/shamir.js';
import { IntegrityError } from '../src/pkcs11/errors.js';
import { Token } from '../src/pkcs11/token.js';
import { InmemBackend } from '../src/storage/inmem.js';
import { freshProcessToken, sideChannel, type TestToken } from './support/softhsm.js';

/**
 * The rekey state machine driven directly, on a SoftHSM2 barrier over in-memory storage: every
 * step's answer, every refusal's message, what is stored, and what is logged.
 */
describe('Rekeyer against SoftHSM2', () => {
  let hsm: TestToken;
  let token: Token;
  let storage: InmemBackend;
  let barrier: TokenBarrier;
  let rekeyer: Rekeyer;
  /** The current shares, hex. */
  let shares: string[];
  let logs: Array<Record<string, unknown>>;

  const request = (over: Partial<RekeyRequest> = {}): RekeyRequest => ({
    secretShares: 3,
    secretThreshold: 2,
    pgpKeys: [],
    backup: false,
    requireVerification: false,
    ...over,
  });
  const hexShares = (keys: Buffer[]) => keys.map((k) => k.toString('hex'));
  const sealConfig = async () => {
    const raw = await storage.get(SEAL_CONFIG_PATH);
    return raw && parseSealConfig(raw);
  };
  /** Whether these shares rebuild the barrier's root key now. */
  const isRoot = (keys: string[]) => barrier.isRootKey(rebuildKey(token, keys.map((k) => Buffer.from(k, 'hex')), 'test'));
  const logged = (msg: string) => logs.filter((l) => l.msg === msg);
  const refusal = (message: string) => new InvalidRequestError(message);
  /** The secret keys this process holds in the token as session objects (working keys). */
  const sessionKeys = (): number => {
    const { p11, slot } = sideChannel(hsm);
    const s = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
    try {
      p11.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_TOKEN, value: false }, { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }]);
      const found = p11.C_FindObjects(s, 1000);
      p11.C_FindObjectsFinal(s);
      return found.length;
    } finally {
      p11.C_CloseSession(s);
    }
  };

  function newRekeyer(persistOperation = false): Rekeyer {
    const stream = { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) };
    return new Rekeyer({ barrier, token, sealConfig, log: pino({ level: 'info' }, stream), persistOperation });
  }

  /** Gives current shares until the threshold; then, as the HTTP layer does once the reply has left, switches. Returns the last answer. */
  async function giveAll(nonce: string, keys = shares.slice(0, 2)) {
    let last: Awaited<ReturnType<Rekeyer['update']>> | undefined;
    for (const key of keys) last = await rekeyer.update(key, nonce);
    if ('keys' in last! && !last.verification_required) await rekeyer.finishStaged(nonce);
    return last!;
  }

  beforeAll(async () => {
    hsm = await freshProcessToken();
    token = new Token(hsm.config);
    token.ensureSealKey(true);
  });

  beforeEach(async () => {
    // A fresh 3-of-2 cluster for each case.
    storage = new InmemBackend();
    barrier = new TokenBarrier(storage, token);
    const { rootKey, keys } = await newRootKey(token, 3, 2, []);
    shares = hexShares(keys);
    const blob = rootKey.blob;
    await barrier.initialize(rootKey, [{ kind: 'put', path: SEAL_CONFIG_PATH, value: Buffer.from('{"type":"shamir","secret_shares":3,"secret_threshold":2}') }]);
    token.releaseKey(rootKey);
    await barrier.unseal(token.loadKey(blob));
    logs = [];
    rekeyer = newRekeyer();
  });

  it('reports no rekey when none runs', async () => {
    expect(await rekeyer.status()).toEqual({
      nonce: '',
      started: false,
      t: 0,
      n: 0,
      progress: 0,
      required: 2,
      pgp_fingerprints: null,
      backup: false,
      verification_required: false,
    });
  });

  it('starts a rekey with a nonce, the new layout and the current threshold, and logs it', async () => {
    const status = await rekeyer.start(request({ secretShares: 5, secretThreshold: 3, requireVerification: true }));
    expect(status).toEqual({
      nonce: expect.stringMatching(/^[0-9a-f-]{36}$/),
      started: true,
      t: 3,
      n: 5,
      progress: 0,
      required: 2,
      pgp_fingerprints: null,
      backup: false,
      verification_required: true,
    });
    expect(await rekeyer.status()).toEqual(status);
    expect(logged('rekey started')).toEqual([expect.objectContaining({ nonce: status.nonce, shares: 5, threshold: 3 })]);
    await expect(rekeyer.start(request())).rejects.toThrow(refusal(`rekey already in progress (nonce ${status.nonce}); cancel it first`));
    // Nothing is stored for a single node.
    expect(await storage.get(REKEY_OPERATION_PATH)).toBeUndefined();
  });

  it('refuses a bad layout without starting', async () => {
    await expect(rekeyer.start(request({ secretShares: 3, secretThreshold: 4 }))).rejects.toThrow(/threshold cannot be larger/);
    await expect(rekeyer.start(request({ pgpKeys: ['a'] }))).rejects.toThrow(/count mismatch .* \(1\) and number of shares \(3\)/);
    await expect(rekeyer.start(request({ backup: true }))).rejects.toThrow(
      refusal('cannot request a backup of the new keys without providing PGP keys'),
    );
    await expect(rekeyer.start(request({ secretShares: 1, secretThreshold: 1, pgpKeys: ['not a key'] }))).rejects.toThrow(/pgp_keys\[0\] is not a valid PGP public key/);
    expect((await rekeyer.status()).started).toBe(false);
    expect(logged('rekey started')).toEqual([]);
  });

  it('refuses while sealed or uninitialized', async () => {
    const sealed = new Rekeyer({ barrier: new TokenBarrier(new InmemBackend(), token), token, sealConfig, log: pino({ level: 'silent' }) });
    await expect(sealed.status()).rejects.toThrow(SealedError);
    await expect(sealed.start(request())).rejects.toThrow(SealedError);
    await expect(sealed.update(shares[0], 'x')).rejects.toThrow(SealedError);
    const uninitialized = new Rekeyer({ barrier, token, sealConfig: async () => undefined, log: pino({ level: 'silent' }) });
    await expect(uninitialized.status()).rejects.toThrow(refusal('Vault is not initialized'));
    await expect(uninitialized.start(request())).rejects.toThrow(refusal('Vault is not initialized'));
  });

  it('takes current shares one at a time under the right nonce', async () => {
    await expect(rekeyer.update(shares[0], 'x')).rejects.toThrow(refusal('no rekey in progress'));
    const { nonce } = await rekeyer.start(request());
    for (const missing of [undefined, '', 42]) {
      await expect(rekeyer.update(shares[0], missing)).rejects.toThrow(refusal("missing 'nonce': give the nonce of the rekey operation"));
    }
    await expect(rekeyer.update(shares[0], `${nonce}x`)).rejects.toThrow(refusal('incorrect nonce'));
    await expect(rekeyer.update('zz', nonce)).rejects.toThrow(/valid hex or base64/);
    await expect(rekeyer.update(shares[0]!.slice(2), nonce)).rejects.toThrow(/decodes to 32 bytes, but a share of this cluster is 33 bytes/);
    expect(await rekeyer.update(shares[0], nonce)).toMatchObject({ nonce, started: true, progress: 1, required: 2 });
    await expect(rekeyer.update(shares[0], nonce)).rejects.toThrow(refusal('given key has already been provided during this rekey operation'));
    expect((await rekeyer.status()).progress).toBe(1);
  });

  it('switches to a new root key at the threshold: new shares work, old ones no longer do', async () => {
    const { nonce } = await rekeyer.start(request({ secretShares: 4, secretThreshold: 3 }));
    const done = (await giveAll(nonce)) as RekeyResult;
    expect(done).toEqual({
      complete: true,
      nonce,
      keys: expect.any(Array),
      keys_base64: expect.any(Array),
      pgp_fingerprints: null,
      backup: false,
      verification_required: false,
    });
    expect(done.keys.map((k) => Buffer.from(k, 'hex').length)).toEqual([33, 33, 33, 33]);
    expect(done.keys_base64.map((k) => Buffer.from(k, 'base64').toString('hex'))).toEqual(done.keys);
    expect(parseSealConfig((await storage.get(SEAL_CONFIG_PATH))!)).toEqual({ type: 'shamir', secret_shares: 4, secret_threshold: 3 });
    expect(isRoot(done.keys.slice(1))).toBe(true);
    expect(isRoot(shares.slice(0, 2))).toBe(false);
    // The keyring in storage is under the new root key: a restarted barrier unseals with it alone.
    const restarted = new TokenBarrier(storage, token);
    await expect(restarted.unseal(rebuildKey(token, shares.slice(1).map((k) => Buffer.from(k, 'hex')), 'old'))).rejects.toThrow(IntegrityError);
    await restarted.unseal(rebuildKey(token, done.keys.slice(0, 3).map((k) => Buffer.from(k, 'hex')), 'new'));
    expect((await rekeyer.status()).started).toBe(false);
    expect((await rekeyer.status()).required).toBe(3);
    expect(logged('rekey complete: new root key in use')).toEqual([expect.objectContaining({ nonce, shares: 4, threshold: 3 })]);
    expect(await storage.get(REKEY_BACKUP_PATH)).toBeUndefined();
  });

  it('rekeys to a single share that is the bare root key', async () => {
    const { nonce } = await rekeyer.start(request({ secretShares: 1, secretThreshold: 1 }));
    const done = (await giveAll(nonce)) as RekeyResult;
    expect(done.keys.map((k) => Buffer.from(k, 'hex').length)).toEqual([32]);
    expect(isRoot(done.keys)).toBe(true);
  });

  it('keeps the rekey open with progress reset when the shares rebuild another key', async () => {
    const { nonce } = await rekeyer.start(request());
    const xs = new Set(shares.map((s) => Buffer.from(s, 'hex')[32]));
    const foreign = split(Buffer.alloc(32, 5), 5, 2).find((s) => !xs.has(s[32]))!;
    await expect(giveAll(nonce, [shares[0]!, foreign.toString('hex')])).rejects.toThrow(
      refusal(`rekey failed: the 2 shares given do not rebuild the current root key; progress has been reset and the rekey (nonce ${nonce}) is still open`),
    );
    expect(await rekeyer.status()).toMatchObject({ nonce, started: true, progress: 0 });
    expect(isRoot(shares.slice(0, 2))).toBe(true);
    await giveAll(nonce);
    expect(isRoot(shares.slice(0, 2))).toBe(false);
  });

  it('says when the current shares cannot be combined at all, and keeps the rekey open', async () => {
    const { nonce } = await rekeyer.start(request());
    // Same x-coordinate, different bytes: two distinct shares that Shamir refuses.
    const clash = Buffer.from(shares[0]!, 'hex');
    clash[0]! ^= 1;
    await expect(giveAll(nonce, [shares[0]!, clash.toString('hex')])).rejects.toThrow(
      /^rekey failed: the shares cannot be combined \(duplicate part detected\); progress has been reset$/,
    );
    expect(await rekeyer.status()).toMatchObject({ nonce, started: true, progress: 0 });
  });

  it('cancels idempotently and logs it', async () => {
    rekeyer.cancel();
    expect(logged('rekey canceled')).toEqual([]);
    const { nonce } = await rekeyer.start(request());
    await rekeyer.update(shares[0], nonce);
    rekeyer.cancel();
    rekeyer.cancel();
    expect(await rekeyer.status()).toMatchObject({ nonce: '', started: false, progress: 0 });
    expect(logged('rekey canceled')).toEqual([expect.objectContaining({ nonce })]);
    await expect(rekeyer.update(shares[1], nonce)).rejects.toThrow(refusal('no rekey in progress'));
    // A new rekey starts from zero.
    const again = await rekeyer.start(request());
    expect(again.nonce).not.toBe(nonce);
    expect(again.progress).toBe(0);
  });

  it('records the rekey as pending until its reply has left: the old and the new shares both open it, then only the new ones', async () => {
    const { nonce } = await rekeyer.start(request());
    await rekeyer.update(shares[0], nonce);
    const done = (await rekeyer.update(shares[1], nonce)) as RekeyResult;
    const recorded = (await rekeyer.pendingRecord())!;
    expect(recorded).toMatchObject({ nonce, config: { type: 'shamir', secret_shares: 3, secret_threshold: 2 } });
    expect(await rekeyer.status()).toMatchObject({ nonce, started: true, t: 2, n: 3, completion_pending: true });
    await expect(rekeyer.start(request())).rejects.toThrow(refusal(`rekey ${nonce} awaits completion: unseal with 2 of its 3 new shares to finish it, or cancel it (DELETE sys/rekey/init) to keep the current shares`));
    expect(isRoot(shares.slice(1))).toBe(true);
    // The new shares open the current root key through the record.
    const newRoot = rebuildKey(token, done.keys.slice(0, 2).map((k) => Buffer.from(k, 'hex')), 'test');
    expect(barrier.isRootKey(barrier.openSealedRoot(newRoot, Buffer.from(recorded.sealed_root, 'base64')))).toBe(true);
    const oldRoot = rebuildKey(token, shares.slice(0, 2).map((k) => Buffer.from(k, 'hex')), 'test');
    expect(() => barrier.openSealedRoot(oldRoot, Buffer.from(recorded.sealed_root, 'base64'))).toThrow(/integrity check failed/);
    await rekeyer.finishStaged('another nonce');
    expect(await rekeyer.pendingRecord()).toBeDefined();
    await rekeyer.finishStaged(nonce);
    expect(await rekeyer.pendingRecord()).toBeUndefined();
    expect(isRoot(done.keys.slice(1))).toBe(true);
    expect(isRoot(shares.slice(0, 2))).toBe(false);
  });

  describe('with verification', () => {
    async function completed(over: Partial<RekeyRequest> = {}) {
      const { nonce } = await rekeyer.start(request({ requireVerification: true, ...over }));
      return (await giveAll(nonce)) as RekeyResult;
    }

    it('keeps the old root key until a threshold of new shares is verified', async () => {
      const done = await completed();
      expect(done.verification_required).toBe(true);
      expect(done.verification_nonce).toMatch(/^[0-9a-f-]{36}$/);
      expect(done.verification_nonce).not.toBe(done.nonce);
      expect(logged('rekey awaiting verification with the new shares')).toEqual([expect.objectContaining({ nonce: done.nonce })]);
      expect(await rekeyer.status()).toMatchObject({ nonce: done.nonce, started: true, verification_nonce: done.verification_nonce });
      expect(rekeyer.verifyStatus()).toEqual({ nonce: done.verification_nonce, started: true, t: 2, n: 3, progress: 0 });
      expect(isRoot(shares.slice(1))).toBe(true);
      expect(isRoot(done.keys.slice(1))).toBe(false);
      await expect(rekeyer.update(shares[0], done.nonce)).rejects.toThrow(
        refusal(`rekey already completed; give a threshold of the new shares to sys/rekey/verify (verification nonce ${done.verification_nonce})`),
      );

      expect(await rekeyer.verify(done.keys[2], done.verification_nonce)).toEqual({ nonce: done.verification_nonce, started: true, t: 2, n: 3, progress: 1 });
      expect(await rekeyer.verify(done.keys[0], done.verification_nonce)).toEqual({ nonce: done.verification_nonce, complete: true });
      expect(isRoot(done.keys.slice(0, 2))).toBe(true);
      expect(isRoot(shares.slice(0, 2))).toBe(false);
      expect((await rekeyer.status()).started).toBe(false);
      expect(() => rekeyer.verifyStatus()).toThrow(refusal('no rekey verification in progress'));
    });

    it('refuses wrong nonces, repeated shares and verification without a pending switch', async () => {
      expect(() => rekeyer.verifyStatus()).toThrow(refusal('no rekey verification in progress'));
      await expect(rekeyer.verify(shares[0], 'x')).rejects.toThrow(refusal('no rekey verification in progress'));
      expect(() => rekeyer.verifyCancel()).toThrow(refusal('no rekey verification in progress'));
      // A rekey that has not reached its threshold has nothing to verify either.
      await rekeyer.start(request({ requireVerification: true }));
      expect(() => rekeyer.verifyStatus()).toThrow(refusal('no rekey verification in progress'));
      await expect(rekeyer.verify(shares[0], 'x')).rejects.toThrow(refusal('no rekey verification in progress'));
      rekeyer.cancel();

      const done = await completed();
      await expect(rekeyer.verify(done.keys[0], done.nonce)).rejects.toThrow(refusal('incorrect verification nonce'));
      await expect(rekeyer.verify(done.keys[0], undefined)).rejects.toThrow(refusal('incorrect verification nonce'));
      await expect(rekeyer.verify('abcd', done.verification_nonce)).rejects.toThrow(/decodes to 2 bytes/);
      await rekeyer.verify(done.keys[0], done.verification_nonce);
      await expect(rekeyer.verify(done.keys[0], done.verification_nonce)).rejects.toThrow(
        refusal('given key has already been provided during this verification operation'),
      );
      expect(rekeyer.verifyStatus().progress).toBe(1);
    });

    it('starts verification over under a fresh nonce when the new shares rebuild another key', async () => {
      const done = await completed();
      const xs = new Set(done.keys.map((s) => Buffer.from(s, 'hex')[32]));
      const foreign = split(Buffer.alloc(32, 6), 5, 2).find((s) => !xs.has(s[32]))!;
      await rekeyer.verify(done.keys[0], done.verification_nonce);
      const failure = await rekeyer.verify(foreign.toString('hex'), done.verification_nonce).catch((e: Error) => e);
      const fresh = rekeyer.verifyStatus();
      expect(fresh.nonce).not.toBe(done.verification_nonce);
      expect(fresh.progress).toBe(0);
      expect(failure).toEqual(refusal(`rekey verification failed: the shares do not rebuild the new root key; start again with the new verification nonce ${fresh.nonce}`));
      await expect(rekeyer.verify(done.keys[1], done.verification_nonce)).rejects.toThrow(refusal('incorrect verification nonce'));
      expect(isRoot(shares.slice(0, 2))).toBe(true);
      await rekeyer.verify(done.keys[1], fresh.nonce);
      expect(await rekeyer.verify(done.keys[2], fresh.nonce)).toEqual({ nonce: fresh.nonce, complete: true });
      expect(isRoot(done.keys.slice(1))).toBe(true);
    });

    it('starts verification over when the new shares cannot be combined', async () => {
      const done = await completed();
      // Same x-coordinate, different bytes: two distinct shares that Shamir refuses.
      const clash = Buffer.from(done.keys[0]!, 'hex');
      clash[0]! ^= 1;
      await rekeyer.verify(done.keys[0], done.verification_nonce);
      await expect(rekeyer.verify(clash.toString('hex'), done.verification_nonce)).rejects.toThrow(
        /^verification failed: the shares cannot be combined \(duplicate part detected\); progress has been reset$/,
      );
      const fresh = rekeyer.verifyStatus();
      expect(fresh.nonce).not.toBe(done.verification_nonce);
      expect(fresh.progress).toBe(0);
    });

    it('forgets the new shares given so far on verify cancel, under a fresh nonce', async () => {
      const done = await completed();
      await rekeyer.verify(done.keys[0], done.verification_nonce);
      const restarted = rekeyer.verifyCancel();
      expect(restarted).toMatchObject({ started: true, progress: 0, t: 2, n: 3 });
      expect(restarted.nonce).not.toBe(done.verification_nonce);
      await rekeyer.verify(done.keys[0], restarted.nonce);
      expect(await rekeyer.verify(done.keys[1], restarted.nonce)).toEqual({ nonce: restarted.nonce, complete: true });
    });

    it('drops the pending root key on cancel: the old shares stay, the new ones never work', async () => {
      const before = sessionKeys();
      const done = await completed();
      expect(sessionKeys()).toBe(before + 1);
      rekeyer.cancel();
      expect(sessionKeys()).toBe(before);
      expect(await rekeyer.status()).toMatchObject({ started: false });
      expect(() => rekeyer.verifyStatus()).toThrow(refusal('no rekey verification in progress'));
      await expect(rekeyer.verify(done.keys[0], done.verification_nonce)).rejects.toThrow(refusal('no rekey verification in progress'));
      expect(isRoot(shares.slice(0, 2))).toBe(true);
    });

    it('ends the rekey when the switch itself fails, keeping the old root key', async () => {
      const done = await completed();
      await rekeyer.verify(done.keys[0], done.verification_nonce);
      const blob = (barrier as unknown as { rootKey: { blob: Buffer } }).rootKey.blob;
      await barrier.seal();
      await expect(rekeyer.verify(done.keys[1], done.verification_nonce)).rejects.toThrow(SealedError);
      await barrier.unseal(token.loadKey(blob));
      expect((await rekeyer.status()).started).toBe(false);
      expect(isRoot(shares.slice(0, 2))).toBe(true);
      expect(parseSealConfig((await storage.get(SEAL_CONFIG_PATH))!)).toMatchObject({ secret_shares: 3, secret_threshold: 2 });
    });
  });

  it('encrypts the new shares to PGP keys and keeps a backup that can be read and deleted', async () => {
    const pairs = await Promise.all(
      [1, 2].map((i) => openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ name: `holder ${i}` }], format: 'object' })),
    );
    const pgpKeys = pairs.map((p) => Buffer.from(p.publicKey.write()).toString('base64'));
    const fingerprints = pairs.map((p) => p.publicKey.getFingerprint().toLowerCase());
    await expect(rekeyer.readBackup()).rejects.toThrow(new NotFoundError('no rekey backup found'));
    const started = await rekeyer.start(request({ secretShares: 2, secretThreshold: 2, pgpKeys, backup: true }));
    expect(started).toMatchObject({ pgp_fingerprints: fingerprints, backup: true });
    const done = (await giveAll(started.nonce)) as RekeyResult;
    expect(done).toMatchObject({ pgp_fingerprints: fingerprints, backup: true });
    const plain: string[] = [];
    for (const [i, encrypted] of done.keys_base64.entries()) {
      expect(Buffer.from(encrypted, 'base64').toString('hex')).toBe(done.keys[i]);
      const message = await openpgp.readMessage({ binaryMessage: Buffer.from(encrypted, 'base64') });
      plain.push((await openpgp.decrypt({ message, decryptionKeys: pairs[i]!.privateKey })).data as string);
    }
    expect(isRoot(plain)).toBe(true);
    expect(await rekeyer.readBackup()).toEqual({
      nonce: started.nonce,
      keys: { [fingerprints[0]!]: [done.keys[0]], [fingerprints[1]!]: [done.keys[1]] },
      keys_base64: { [fingerprints[0]!]: [done.keys_base64[0]], [fingerprints[1]!]: [done.keys_base64[1]] },
    });
    await rekeyer.deleteBackup();
    await expect(rekeyer.readBackup()).rejects.toThrow(NotFoundError);
  });

  it('keeps no backup of PGP-encrypted shares unless asked', async () => {
    const pair = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ name: 'solo' }], format: 'object' });
    const started = await rekeyer.start(request({ secretShares: 1, secretThreshold: 1, pgpKeys: [pair.publicKey.armor()] }));
    const done = (await giveAll(started.nonce)) as RekeyResult;
    expect(done).toMatchObject({ pgp_fingerprints: [pair.publicKey.getFingerprint().toLowerCase()], backup: false });
    expect(await storage.get(REKEY_BACKUP_PATH)).toBeUndefined();
  });

  describe('in a cluster (the operation is recorded)', () => {
    beforeEach(() => {
      rekeyer = newRekeyer(true);
    });
    const record = async () => {
      const raw = await barrier.get(REKEY_OPERATION_PATH);
      return raw && (JSON.parse(raw.toString('utf8')) as { nonce: string; started: string });
    };

    it('records the running rekey and removes the record when it completes', async () => {
      const { nonce } = await rekeyer.start(request());
      const stored = (await record())!;
      expect(stored.nonce).toBe(nonce);
      expect(Math.abs(Date.parse(stored.started) - Date.now())).toBeLessThan(60_000);
      await giveAll(nonce);
      expect(await record()).toBeUndefined();
    });

    it('removes the record on cancel', async () => {
      await rekeyer.start(request());
      rekeyer.cancel();
      await new Promise((r) => setTimeout(r, 50));
      expect(await record()).toBeUndefined();
    });

    it('cancels a rekey left by a failed active node and says so to its callers', async () => {
      expect(await rekeyer.cancelOrphaned()).toBeUndefined();
      const { nonce } = await rekeyer.start(request());
      // The node that takes over: a new Rekeyer on the same barrier.
      const successor = newRekeyer(true);
      expect(await successor.cancelOrphaned()).toBe(nonce);
      expect(await record()).toBeUndefined();
      expect(logged('rekey cancelled: the active node that ran it is gone; start a new rekey')).toEqual([expect.objectContaining({ nonce })]);
      await expect(successor.update(shares[0], nonce)).rejects.toThrow(
        refusal(`rekey ${nonce} was cancelled: the active node running it failed over to this one; start a new rekey`),
      );
      await expect(successor.update(shares[0], 'other')).rejects.toThrow(refusal('no rekey in progress'));
      expect((await successor.status()).started).toBe(false);
      // Once a new rekey runs, the old nonce is just a wrong one.
      await successor.start(request());
      await expect(successor.update(shares[0], nonce)).rejects.toThrow(refusal('incorrect nonce'));
    });
  });
});
