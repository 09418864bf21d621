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

  it('refuses, at attempt start, an OTP that is not 28 base62 bytes, and starts no attempt', async () => {
    const nonAscii = [
      'é'.repeat(28), // 28 UTF-16 units, 56 bytes
      `ü${'a'.repeat(27)}`,
      `😀${'a'.repeat(26)}`, // 28 UTF-16 units (a surrogate pair), 30 bytes
      `e\u0301${'a'.repeat(26)}`, // a combining mark
    ];
    for (const otp of nonAscii) {
      expect(otp).toHaveLength(28);
      expectError(await call(base, 'PUT', 'sys/generate-root/attempt', { body: { otp } }), 400, /must be 28 base62 characters.*non-ASCII/);
    }
    for (const otp of [`${'a'.repeat(27)}-`, `${'a'.repeat(27)} `, `${'a'.repeat(27)}=`, `${'a'.repeat(27)}\u0000`]) {
      expectError(await call(base, 'PUT', 'sys/generate-root/attempt', { body: { otp } }), 400, /must be 28 base62 characters.*other characters/);
    }
    for (const otp of ['a'.repeat(27), 'a'.repeat(29), 'a']) {
      expectError(await call(base, 'PUT', 'sys/generate-root/attempt', { body: { otp } }), 400, new RegExp(`must be 28 base62 characters.*not ${otp.length}`));
    }
    expect((await call(base, 'GET', 'sys/generate-root/attempt')).body.started).toBe(false);
  });

  it('refuses a PGP key that cannot encrypt at attempt start', async () => {
    const { publicKey } = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ name: 'op' }], format: 'object', subkeys: [] });
    const pgp_key = Buffer.from(publicKey.write()).toString('base64');
    expectError(await call(base, 'PUT', 'sys/generate-root/attempt', { body: { pgp_key } }), 400, /pgp_key cannot encrypt/);
    expect((await call(base, 'GET', 'sys/generate-root/attempt')).body.started).toBe(false);
  });

  it('stores no root token when the final step cannot encode it, and one when it can', async () => {
    const rootTokens = async () => (await call(base, 'GET', 'auth/token/accessors?list=true', { token: root })).body.data.keys.length as number;
    const before = await rootTokens();

    // A key that can encrypt when the attempt starts and has expired by the last share.
    const { publicKey } = await openpgp.generateKey({
      type: 'ecc',
      curve: 'curve25519Legacy',
      userIDs: [{ name: 'op' }],
      format: 'object',
      date: new Date(Date.now() - 60_000),
      keyExpirationTime: 66,
    });
    const init = await call(base, 'PUT', 'sys/generate-root/attempt', { body: { pgp_key: Buffer.from(publicKey.write()).toString('base64') } });
    expect(init.status).toBe(200);
    for (const key of keys.slice(0, 2)) await call(base, 'PUT', 'sys/generate-root/update', { body: { key, nonce: init.body.nonce } });
    const expiry = (await publicKey.getExpirationTime()) as Date;
    await new Promise((r) => setTimeout(r, expiry.getTime() - Date.now() + 1000));
    const failed = await call(base, 'PUT', 'sys/generate-root/update', { body: { key: keys[2], nonce: init.body.nonce } });
    expect(await rootTokens()).toBe(before);
    expectError(failed, 400, /cannot be encrypted to the attempt's PGP key.*expired.*no token was created/);
    expect((await call(base, 'GET', 'sys/generate-root/attempt')).body.started).toBe(false);

    // The same steps with an OTP the client chose do store one, and it is the token the reply carries.
    const otp = 'Kw0'.repeat(9) + 'z';
    const again = await call(base, 'PUT', 'sys/generate-root/attempt', { body: { otp } });
    expect(again.body.otp).toBe('');
    let last: Reply | undefined;
    for (const key of keys.slice(0, 3)) last = await call(base, 'PUT', 'sys/generate-root/update', { body: { key, nonce: again.body.nonce } });
    expect(await rootTokens()).toBe(before + 1);
    expect(await isRoot(decodeWithOtp(last!.body.encoded_token, otp))).toEqual(['root']);
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
