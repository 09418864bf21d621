import { randomBytes } from 'node:crypto';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeWithOtp } from '../src/core/generate-root.js';
import { split } from '../src/crypto/shamir.js';
import { runCli } from './support/process.js';
import { call, expectError, initAndUnseal, type InProcess, type Reply, startInProcess } from './support/service.js';

describe('generate-root', () => {
  let kw: InProcess;
  let base: string;
  let keys: string[];
  let root: string;
  const isRoot = async (token: string) => (await call(base, 'GET', 'auth/token/lookup-self', { token })).body?.data?.policies;

  beforeAll(async () => {
    kw = await startInProcess('file');
    base = kw.service.url;
    ({ keys, root } = await initAndUnseal(base, 5, 3));
  });
  afterAll(() => kw.service.close());

  it('mints a root token encoded with a server-made OTP', async () => {
    const init = await call(base, 'PUT', 'sys/generate-root/attempt', {});
    expect(init.body).toMatchObject({ started: true, progress: 0, required: 3, otp_length: 28 });
    expect(init.body.otp).toHaveLength(28);
    expect((await call(base, 'GET', 'sys/generate-root/attempt')).body.otp).toBe('');
    let last: Reply | undefined;
    for (const key of keys.slice(1, 4)) last = await call(base, 'PUT', 'sys/generate-root/update', { body: { key, nonce: init.body.nonce } });
    expect(last!.body.complete).toBe(true);
    const token = decodeWithOtp(last!.body.encoded_token, init.body.otp);
    expect(token).toMatch(/^hvs\./);
    expect(token).not.toBe(root);
    expect(await isRoot(token)).toEqual(['root']);
    expect((await call(base, 'GET', 'sys/generate-root/attempt')).body.started).toBe(false);
  });

  it('mints a root token encrypted to a PGP key', async () => {
    const { publicKey, privateKey } = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ name: 'op' }], format: 'object' });
    const init = await call(base, 'PUT', 'sys/generate-root/attempt', { body: { pgp_key: Buffer.from(publicKey.write()).toString('base64') } });
    expect(init.body.pgp_fingerprint).toBe(publicKey.getFingerprint());
    expect(init.body.otp).toBe('');
    let last: Reply | undefined;
    for (const key of keys.slice(0, 3)) last = await call(base, 'PUT', 'sys/generate-root/update', { body: { key, nonce: init.body.nonce } });
    const message = await openpgp.readMessage({ binaryMessage: Buffer.from(last!.body.encoded_token, 'base64') });
    const { data } = await openpgp.decrypt({ message, decryptionKeys: privateKey });
    expect(await isRoot(data as string)).toEqual(['root']);
  });

  it('refuses wrong nonces, duplicate shares and wrong quorums; cancel is idempotent', async () => {
    expectError(await call(base, 'PUT', 'sys/generate-root/update', { body: { key: keys[0], nonce: 'x' } }), 400, /no root generation in progress/);
    const init = await call(base, 'PUT', 'sys/generate-root/attempt', {});
    const nonce = init.body.nonce;
    expectError(await call(base, 'PUT', 'sys/generate-root/attempt', {}), 400, /already in progress/);
    expectError(await call(base, 'PUT', 'sys/generate-root/update', { body: { key: keys[0], nonce: 'wrong' } }), 400, /incorrect nonce/);
    await call(base, 'PUT', 'sys/generate-root/update', { body: { key: keys[0], nonce } });
    expectError(await call(base, 'PUT', 'sys/generate-root/update', { body: { key: keys[0], nonce } }), 400, /already been provided/);
    const xs = new Set(keys.map((k) => Buffer.from(k, 'hex')[32]));
    const foreign = split(randomBytes(32), 5, 3).find((s) => !xs.has(s[32]))!;
    await call(base, 'PUT', 'sys/generate-root/update', { body: { key: keys[1], nonce } });
    expectError(await call(base, 'PUT', 'sys/generate-root/update', { body: { key: foreign.toString('hex'), nonce } }), 400, /do not rebuild the current root key/);
    expect((await call(base, 'GET', 'sys/generate-root/attempt')).body).toMatchObject({ started: true, nonce, progress: 0 });
    expect((await call(base, 'DELETE', 'sys/generate-root/attempt')).status).toBe(204);
    expect((await call(base, 'DELETE', 'sys/generate-root/attempt')).status).toBe(204);
    expect((await call(base, 'GET', 'sys/generate-root/attempt')).body.started).toBe(false);
  });

  it('works through the CLI: -init, shares with -nonce, -decode', async () => {
    const env = { KEYWARD_ADDR: base, KEYWARD_TOKEN: '', VAULT_ADDR: '', VAULT_TOKEN: '' };
    const otp = (await runCli(['operator', 'generate-root', '-generate-otp'], env)).stdout.trim();
    expect(otp).toHaveLength(28);
    const init = JSON.parse((await runCli(['operator', 'generate-root', '-init', `-otp=${otp}`, '-format=json'], env)).stdout);
    let out = '';
    for (const key of keys.slice(2, 5)) out = (await runCli(['operator', 'generate-root', `-nonce=${init.nonce}`, key], env)).stdout;
    const encoded = /Encoded Token\s+(\S+)/.exec(out)![1]!;
    const token = (await runCli(['operator', 'generate-root', `-decode=${encoded}`, `-otp=${otp}`], env)).stdout.trim();
    expect(await isRoot(token)).toEqual(['root']);
  });
});
