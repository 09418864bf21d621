import { randomBytes } from 'node:crypto';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { split } from '../src/crypto/shamir.js';
import { call, expectError, initAndUnseal, type InProcess, type Reply, startInProcess } from './support/service.js';

describe('rekey against SoftHSM2', () => {
  let kw: InProcess;
  let base: string;
  let root: string;
  let shares: string[];

  const status = async () => (await call(base, 'GET', 'sys/seal-status')).body;
  const unseal = (key: string) => call(base, 'PUT', 'sys/unseal', { body: { key } });

  /** Runs a whole rekey with the given current shares and returns the completion body. */
  async function rekey(current: string[], n: number, t: number, extra: Record<string, unknown> = {}): Promise<any> {
    const init = await call(base, 'PUT', 'sys/rekey/init', { body: { secret_shares: n, secret_threshold: t, ...extra } });
    expect(init.status).toBe(200);
    let reply: Reply | undefined;
    for (const key of current) reply = await call(base, 'PUT', 'sys/rekey/update', { body: { key, nonce: init.body.nonce } });
    expect(reply!.status).toBe(200);
    expect(reply!.body.complete).toBe(true);
    expect(reply!.body.nonce).toBe(init.body.nonce);
    return reply!.body;
  }

  async function sealAndUnsealWith(keys: string[]): Promise<void> {
    expect((await call(base, 'PUT', 'sys/seal', { token: root })).status).toBe(204);
    for (const k of keys) await unseal(k);
    expect((await status()).sealed).toBe(false);
  }

  async function dataIntact(): Promise<void> {
    expect((await call(base, 'GET', 'secret/kept', { token: root })).body.data).toEqual({ v: 'survives rekeys' });
  }

  beforeAll(async () => {
    kw = await startInProcess('file');
    base = kw.service.url;
    ({ keys: shares, root } = await initAndUnseal(base, 5, 3));
    await call(base, 'PUT', 'secret/kept', { token: root, body: { v: 'survives rekeys' } });
  });
  afterAll(() => kw.service.close());

  it('5/3 → 3/2: old shares refused, two new ones unseal, data intact', async () => {
    const done = await rekey(shares.slice(1, 4), 3, 2);
    expect(done.keys).toHaveLength(3);
    expect(done.keys_base64).toHaveLength(3);
    expect(done.verification_required).toBe(false);
    expect(await status()).toMatchObject({ t: 2, n: 3, sealed: false });
    expect((await call(base, 'PUT', 'sys/seal', { token: root })).status).toBe(204);
    for (let i = 0; i < 5; i += 2) {
      await unseal(shares[i]!);
      expectError(await unseal(shares[(i + 1) % 5]!), 400, /do not rebuild this cluster's root key/);
    }
    await unseal(done.keys[2]);
    await unseal(done.keys_base64[0]);
    expect((await status()).sealed).toBe(false);
    await dataIntact();
    shares = done.keys;
  });

  it('3/2 → 1/1 → 5/3', async () => {
    const one = await rekey(shares.slice(0, 2), 1, 1);
    expect(one.keys).toHaveLength(1);
    expect(Buffer.from(one.keys[0], 'hex')).toHaveLength(32);
    await sealAndUnsealWith(one.keys);
    await dataIntact();
    const five = await rekey(one.keys, 5, 3);
    expect((await call(base, 'PUT', 'sys/seal', { token: root })).status).toBe(204);
    expectError(await unseal(one.keys[0]), 400, /decodes to 32 bytes.*33 bytes/);
    for (const k of five.keys.slice(2)) await unseal(k);
    expect((await status()).sealed).toBe(false);
    await dataIntact();
    shares = five.keys;
  });

  it('answers every misuse with its own error and changes nothing', async () => {
    const before = await status();
    expectError(await call(base, 'PUT', 'sys/rekey/update', { body: { key: shares[0], nonce: 'x' } }), 400, /no rekey in progress/);
    expectError(await call(base, 'PUT', 'sys/rekey/init', { body: { secret_shares: 3, secret_threshold: 4 } }), 400, /threshold cannot be larger/);
    expectError(await call(base, 'PUT', 'sys/rekey/init', { body: { secret_shares: 256, secret_threshold: 2 } }), 400, /at most 255/);
    expectError(await call(base, 'PUT', 'sys/rekey/init', { body: { secret_shares: 3, secret_threshold: 1 } }), 400, /greater than one/);
    expectError(await call(base, 'PUT', 'sys/rekey/init', { body: { secret_shares: 2, secret_threshold: 2, backup: true } }), 400, /backup .* without providing PGP keys/);
    expectError(await call(base, 'PUT', 'sys/rekey/init', { body: { secret_shares: 2, secret_threshold: 2, pgp_keys: ['a'] } }), 400, /count mismatch/);
    expectError(await call(base, 'PUT', 'sys/rekey/init', { body: { secret_shares: 'three', secret_threshold: 2 } }), 400, /secret_shares.*integer/);

    const init = await call(base, 'PUT', 'sys/rekey/init', { body: { secret_shares: 3, secret_threshold: 2 } });
    const nonce = init.body.nonce;
    expect(init.body).toMatchObject({ started: true, t: 2, n: 3, progress: 0, required: 3 });
    expectError(await call(base, 'PUT', 'sys/rekey/init', { body: { secret_shares: 3, secret_threshold: 2 } }), 400, /rekey already in progress/);
    expectError(await call(base, 'PUT', 'sys/rekey/update', { body: { key: shares[0], nonce: 'wrong' } }), 400, /incorrect nonce/);
    expectError(await call(base, 'PUT', 'sys/rekey/update', { body: { key: 'not a share!', nonce } }), 400, /valid hex or base64/);
    expectError(await call(base, 'PUT', 'sys/rekey/update', { body: { key: 'abcd', nonce } }), 400, /decodes to 2 bytes/);
    expect((await call(base, 'PUT', 'sys/rekey/update', { body: { key: shares[0], nonce } })).body.progress).toBe(1);
    expectError(await call(base, 'PUT', 'sys/rekey/update', { body: { key: shares[0], nonce } }), 400, /already been provided/);
    expect((await call(base, 'GET', 'sys/rekey/init')).body).toMatchObject({ nonce, progress: 1 });

    // A wrong quorum: the attempt fails, progress resets, the rekey stays open with the same nonce.
    const xs = new Set(shares.map((s) => Buffer.from(s, 'hex')[32]));
    const foreign = split(randomBytes(32), 5, 3).filter((s) => !xs.has(s[32])).slice(0, 1)[0]!;
    await call(base, 'PUT', 'sys/rekey/update', { body: { key: shares[1], nonce } });
    expectError(await call(base, 'PUT', 'sys/rekey/update', { body: { key: foreign.toString('hex'), nonce } }), 400, /do not rebuild the current root key.*still open/);
    expect((await call(base, 'GET', 'sys/rekey/init')).body).toMatchObject({ nonce, started: true, progress: 0 });

    expect((await call(base, 'DELETE', 'sys/rekey/init')).status).toBe(204);
    expect((await call(base, 'DELETE', 'sys/rekey/init')).status).toBe(204);
    expect((await call(base, 'GET', 'sys/rekey/init')).body).toMatchObject({ started: false, nonce: '', progress: 0, required: 3 });
    expect(await status()).toEqual(before);
    await sealAndUnsealWith(shares.slice(0, 3));
  });

  it('encrypts new shares to PGP keys, returns fingerprints, keeps a backup that can be read and deleted', async () => {
    const pairs = await Promise.all(
      [1, 2, 3].map((i) => openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ name: `holder ${i}` }], format: 'object' })),
    );
    const pgpKeys = pairs.map((p) => Buffer.from(p.publicKey.write()).toString('base64'));
    const done = await rekey(shares.slice(0, 3), 3, 2, { pgp_keys: pgpKeys, backup: true });
    expect(done.pgp_fingerprints).toEqual(pairs.map((p) => p.publicKey.getFingerprint()));
    expect(done.backup).toBe(true);
    const plain: string[] = [];
    for (const [i, encrypted] of (done.keys_base64 as string[]).entries()) {
      const message = await openpgp.readMessage({ binaryMessage: Buffer.from(encrypted, 'base64') });
      const { data } = await openpgp.decrypt({ message, decryptionKeys: pairs[i]!.privateKey });
      plain.push(data as string);
    }
    await sealAndUnsealWith([plain[0]!, plain[2]!]);
    await dataIntact();

    const backup = await call(base, 'GET', 'sys/rekey/backup', { token: root });
    expect(backup.status).toBe(200);
    expect(backup.body.data.nonce).toBe(done.nonce);
    expect(Object.keys(backup.body.data.keys_base64)).toEqual(done.pgp_fingerprints);
    expect(backup.body.data.keys_base64[done.pgp_fingerprints[1]]).toEqual([done.keys_base64[1]]);
    expect((await call(base, 'GET', 'sys/rekey/backup')).status).toBe(403);
    expect((await call(base, 'DELETE', 'sys/rekey/backup', { token: root })).status).toBe(204);
    expect((await call(base, 'GET', 'sys/rekey/backup', { token: root })).status).toBe(404);
    shares = plain;
  });

  it('with verification: old shares work until a threshold of the new ones is verified; a wrong set gets a fresh nonce', async () => {
    // A pending verification is lost when sealing, and the old shares still unseal.
    const abandoned = await rekey(shares.slice(0, 2), 2, 2, { require_verification: true });
    expect(abandoned.verification_required).toBe(true);
    expect(abandoned.verification_nonce).toMatch(/^[0-9a-f-]{36}$/);
    await sealAndUnsealWith(shares.slice(1, 3));
    expect((await call(base, 'GET', 'sys/rekey/init')).body.started).toBe(false);

    const done = await rekey(shares.slice(0, 2), 3, 2, { require_verification: true });
    let vnonce: string = done.verification_nonce;
    expect((await status())).toMatchObject({ t: 2, n: 3 });
    expect((await call(base, 'GET', 'sys/rekey/verify')).body).toMatchObject({ nonce: vnonce, started: true, t: 2, n: 3, progress: 0 });
    expectError(await call(base, 'PUT', 'sys/rekey/update', { body: { key: shares[0], nonce: done.nonce } }), 400, /already completed/);
    expectError(await call(base, 'PUT', 'sys/rekey/verify', { body: { key: done.keys[0], nonce: 'wrong' } }), 400, /incorrect verification nonce/);

    // Two new shares, one of them from a different split: fails, with a fresh verification nonce.
    const xs = new Set((done.keys as string[]).map((s) => Buffer.from(s, 'hex')[32]));
    const wrong = split(randomBytes(32), 3, 2).find((s) => !xs.has(s[32]))!;
    await call(base, 'PUT', 'sys/rekey/verify', { body: { key: done.keys[0], nonce: vnonce } });
    const failed = await call(base, 'PUT', 'sys/rekey/verify', { body: { key: wrong.toString('hex'), nonce: vnonce } });
    expectError(failed, 400, /verification failed.*new verification nonce/);
    const fresh = (await call(base, 'GET', 'sys/rekey/verify')).body;
    expect(fresh.nonce).not.toBe(vnonce);
    expect(fresh.progress).toBe(0);
    vnonce = fresh.nonce;

    await call(base, 'PUT', 'sys/rekey/verify', { body: { key: done.keys[1], nonce: vnonce } });
    const verified = await call(base, 'PUT', 'sys/rekey/verify', { body: { key: done.keys[2], nonce: vnonce } });
    expect(verified.body).toEqual({ nonce: vnonce, complete: true });
    expect((await call(base, 'PUT', 'sys/seal', { token: root })).status).toBe(204);
    await unseal(shares[0]!);
    expectError(await unseal(shares[1]!), 400, /do not rebuild/);
    await unseal(done.keys[2]);
    await unseal(done.keys[0]);
    expect((await status()).sealed).toBe(false);
    await dataIntact();
    shares = done.keys;
  });

  it('keeps serving KV reads and writes throughout a rekey', async () => {
    let stop = false;
    let failures = 0;
    let ok = 0;
    const written: string[] = [];
    const client = (async () => {
      for (let i = 0; !stop; i++) {
        const path = `secret/online/${i}`;
        const put = await call(base, 'PUT', path, { token: root, body: { i: String(i) } });
        if (put.status !== 204) failures++;
        else written.push(path);
        const get = await call(base, 'GET', path, { token: root });
        if (get.status !== 200 || get.body.data.i !== String(i)) failures++;
        else ok++;
      }
    })();
    /** Waits for the client to complete `n` more write+read rounds (counted, not timed). */
    const rounds = async (n: number) => {
      const want = ok + n;
      while (ok < want && failures === 0) await new Promise((r) => setTimeout(r, 5));
    };
    await rounds(5);
    const init = await call(base, 'PUT', 'sys/rekey/init', { body: { secret_shares: 4, secret_threshold: 2 } });
    await rounds(5);
    await call(base, 'PUT', 'sys/rekey/update', { body: { key: shares[0], nonce: init.body.nonce } });
    // With the rekey half-authorized, requests are served.
    await rounds(5);
    const done = await call(base, 'PUT', 'sys/rekey/update', { body: { key: shares[1], nonce: init.body.nonce } });
    expect(done.body.complete).toBe(true);
    await rounds(5);
    stop = true;
    await client;
    expect(failures).toBe(0);
    await sealAndUnsealWith(done.body.keys.slice(1, 3));
    for (const path of written) expect((await call(base, 'GET', path, { token: root })).status).toBe(200);
  });
});
