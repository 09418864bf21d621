import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshNssToken, nssSealHcl, nssServerConfig, type NssToken } from './support/nss.js';
import { spawnServer, type ServerProcess } from './support/process.js';
import { call, initAndUnseal } from './support/service.js';

describe('keyward on NSS softokn, a second PKCS#11 module, from configuration alone', () => {
  let token: NssToken;
  let config: string;
  let port: number;
  let server: ServerProcess | undefined;

  beforeAll(async () => {
    token = await freshNssToken();
    ({ config, port } = await nssServerConfig(token));
    server = await spawnServer(config, token, port);
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('init → unseal → KV v1 and v2 → rotate → rekey → restart → unseal with the new shares → everything reads back → seal', async () => {
    const base = server!.url;
    const { keys, root } = await initAndUnseal(base, 3, 2);
    expect((await call(base, 'GET', 'sys/seal-status')).body).toMatchObject({ sealed: false, t: 2, n: 3 });
    expect((await call(base, 'PUT', 'secret/v1', { token: root, body: { v: 'one' } })).status).toBe(204);
    expect((await call(base, 'PUT', 'sys/mounts/kv', { token: root, body: { type: 'kv-v2' } })).status).toBe(204);
    expect((await call(base, 'PUT', 'kv/data/app', { token: root, body: { data: { password: 'before rotate' } } })).status).toBe(200);

    const rotated = await call(base, 'POST', 'sys/rotate', { token: root });
    expect(rotated.status).toBe(204);
    expect((await call(base, 'GET', 'sys/key-status', { token: root })).body.term).toBe(2);
    expect((await call(base, 'PUT', 'kv/data/app', { token: root, body: { data: { password: 'after rotate' } } })).status).toBe(200);

    const init = await call(base, 'PUT', 'sys/rekey/init', { body: { secret_shares: 4, secret_threshold: 3 } });
    expect(init.status).toBe(200);
    let reply = init;
    for (const key of keys.slice(0, 2)) reply = await call(base, 'PUT', 'sys/rekey/update', { body: { key, nonce: init.body.nonce } });
    expect(reply.body.complete).toBe(true);
    const newKeys: string[] = reply.body.keys;
    expect(newKeys).toHaveLength(4);

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
  });

  it('without library_parameters, says that C_Initialize failed with CKR_ARGUMENTS_BAD, in the reply and in the log', async () => {
    const seal = nssSealHcl(token).replace(/^ *library_parameters.*\n/m, '');
    expect(seal).not.toContain('library_parameters');
    const { config: bareConfig, port: barePort } = await nssServerConfig(token, seal);
    const bare = await spawnServer(bareConfig, token, barePort);
    try {
      const init = await call(bare.url, 'PUT', 'sys/init', { body: { secret_shares: 1, secret_threshold: 1 } });
      expect(init.status).toBe(503);
      expect(init.body.errors[0]).toBe('HSM token unavailable: PKCS#11 C_Initialize failed: CKR_ARGUMENTS_BAD; fix the configuration and restart');
      expect(bare.output()).toContain('PKCS#11 C_Initialize failed with CKR_ARGUMENTS_BAD; not retrying until restarted');
      expect(bare.output()).not.toMatch(/login failed/);
    } finally {
      await bare.stop();
    }
  });
});
