import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initializeOptions } from '../src/pkcs11/module.js';
import { freshNssFipsToken, NSS_FIPS_TOKEN_LABEL, NSS_SOFTOKN, NSS_TOKEN_LABEL, nssServerConfig, type NssToken } from './support/nss.js';
import { spawnServer, type ServerProcess } from './support/process.js';
import { call } from './support/service.js';

/** The labels of the tokens `lib` offers on this database, and what `probe` did in a logged-in session. */
function onModule<T>(lib: string, token: NssToken, probe: (p11: pkcs11js.PKCS11, session: Buffer) => T): { labels: string[]; result: T } {
  const p11 = new pkcs11js.PKCS11();
  p11.load(lib);
  p11.C_Initialize(initializeOptions(token.libraryParameters));
  try {
    const slots = p11.C_GetSlotList(true);
    const labels = slots.map((s) => p11.C_GetTokenInfo(s).label.trim());
    const slot = slots[labels.indexOf(token.config.tokenLabel!)];
    if (!slot) throw new Error(`${lib} offers no token labelled "${token.config.tokenLabel}", only ${JSON.stringify(labels)}`);
    const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    p11.C_Login(session, pkcs11js.CKU_USER, token.config.pin);
    return { labels, result: probe(p11, session) };
  } finally {
    p11.C_Finalize();
  }
}

/** The CKR a call failed with, or 'CKR_OK'. */
function ckrOf(call: () => unknown): string {
  try {
    call();
    return 'CKR_OK';
  } catch (err) {
    return (err as Error).message.replace(/:.*/, '');
  }
}

/** The warnings and errors a server logged (pino levels 40 and up): a PKCS#11 failure it recovered from shows here. */
function complaints(server: ServerProcess): string[] {
  return server.output().split('\n').filter((line) => /"level":[4-6]0,/.test(line));
}

describe('keyward on NSS softokn in FIPS mode, through native-test/nss-fips-loader', () => {
  let token: NssToken;
  let config: string;
  let port: number;
  let server: ServerProcess | undefined;

  beforeAll(async () => {
    token = await freshNssFipsToken();
    ({ config, port } = await nssServerConfig(token));
    server = await spawnServer(config, token, port);
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('the loader is softokn in FIPS mode: its one token refuses a plaintext secret key and a PIN short of the FIPS rules', () => {
    const aesWithValue = [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_VALUE, value: Buffer.alloc(32, 1) },
    ];
    const fips = onModule(token.config.lib, token, (p11, s) => ({
      createObject: ckrOf(() => p11.C_CreateObject(s, aesWithValue)),
      // Two character classes only; refused before the PIN is touched.
      setPin: ckrOf(() => p11.C_SetPIN(s, token.config.pin, 'abcdef123456')),
    }));
    expect(fips).toEqual({ labels: [NSS_FIPS_TOKEN_LABEL], result: { createObject: 'CKR_ATTRIBUTE_VALUE_INVALID', setPin: 'CKR_PIN_LEN_RANGE' } });

    // The same database through softokn's ordinary C_GetFunctionList: two tokens, and the key goes in.
    const plain = onModule(NSS_SOFTOKN, { ...token, config: { ...token.config, tokenLabel: NSS_TOKEN_LABEL } }, (p11, s) => ckrOf(() => p11.C_CreateObject(s, aesWithValue)));
    expect(plain).toEqual({ labels: ['NSS Generic Crypto Services', NSS_TOKEN_LABEL], result: 'CKR_OK' });
  });

  it('init → unseal → KV v1 and v2 → rotate → rekey → restart → unseal with the new shares → everything reads back → seal', async () => {
    const base = server!.url;
    // Spelled out rather than initAndUnseal, so a refusal shows keyward's error (the PKCS#11 function and CKR).
    const init = await call(base, 'PUT', 'sys/init', { body: { secret_shares: 3, secret_threshold: 2 } });
    expect(init.body.errors ?? []).toEqual([]);
    const { keys, root_token: root } = init.body as { keys: string[]; root_token: string };
    for (const key of keys.slice(0, 2)) await call(base, 'PUT', 'sys/unseal', { body: { key } });
    expect((await call(base, 'GET', 'sys/seal-status')).body).toMatchObject({ sealed: false, t: 2, n: 3 });
    expect((await call(base, 'PUT', 'secret/v1', { token: root, body: { v: 'one' } })).status).toBe(204);
    expect((await call(base, 'GET', 'secret/v1', { token: root })).body.data).toEqual({ v: 'one' });
    expect((await call(base, 'PUT', 'sys/mounts/kv', { token: root, body: { type: 'kv-v2' } })).status).toBe(204);
    expect((await call(base, 'PUT', 'kv/data/app', { token: root, body: { data: { password: 'before rotate' } } })).status).toBe(200);
    expect((await call(base, 'GET', 'kv/data/app', { token: root })).body.data.data).toEqual({ password: 'before rotate' });

    expect((await call(base, 'POST', 'sys/rotate', { token: root })).status).toBe(204);
    expect((await call(base, 'GET', 'sys/key-status', { token: root })).body.term).toBe(2);
    expect((await call(base, 'PUT', 'kv/data/app', { token: root, body: { data: { password: 'after rotate' } } })).status).toBe(200);

    const rekey = await call(base, 'PUT', 'sys/rekey/init', { body: { secret_shares: 4, secret_threshold: 3 } });
    expect(rekey.status).toBe(200);
    let reply = rekey;
    for (const key of keys.slice(0, 2)) reply = await call(base, 'PUT', 'sys/rekey/update', { body: { key, nonce: rekey.body.nonce } });
    expect(reply.body.complete).toBe(true);
    const newKeys: string[] = reply.body.keys;
    expect(newKeys).toHaveLength(4);

    expect(complaints(server!)).toEqual([]);
    await server!.stop();
    server = await spawnServer(config, token, port);
    for (const key of keys.slice(0, 2)) await call(server.url, 'PUT', 'sys/unseal', { body: { key } });
    expect((await call(server.url, 'GET', 'sys/seal-status')).body.sealed).toBe(true);
    await call(server.url, 'PUT', 'sys/unseal', { body: { reset: true } });
    for (const key of newKeys.slice(0, 3)) await call(server.url, 'PUT', 'sys/unseal', { body: { key } });
    expect((await call(server.url, 'GET', 'sys/seal-status')).body).toMatchObject({ sealed: false, t: 3, n: 4 });

    expect((await call(server.url, 'GET', 'secret/v1', { token: root })).body.data).toEqual({ v: 'one' });
    const v2 = await call(server.url, 'GET', 'kv/data/app', { token: root });
    expect(v2.body.data).toMatchObject({ data: { password: 'after rotate' }, metadata: { version: 2 } });
    expect((await call(server.url, 'GET', 'kv/data/app?version=1', { token: root })).body.data.data).toEqual({ password: 'before rotate' });
    expect((await call(server.url, 'PUT', 'sys/seal', { token: root })).status).toBe(204);
    expect((await call(server.url, 'GET', 'kv/data/app', { token: root })).status).toBe(503);
    expect(complaints(server)).toEqual([]);
  });
});
