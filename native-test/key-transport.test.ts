import { afterAll, describe, expect, it } from 'vitest';
import { HsmEmulator } from './support/hsm-emulator.js';
import { type FreshServer, spawnServer, startServerProcess } from './support/process.js';
import { call } from './support/service.js';

describe('the root key enters the token only by key transport, never as a plaintext object', () => {
  let emu: HsmEmulator | undefined;
  let fresh: FreshServer | undefined;
  afterAll(async () => {
    await fresh?.server.kill();
    emu?.close();
  });

  it('makes no C_CreateObject in init, unseal, KV, rotate, rekey, restart and unseal with the new shares (the emulator counts every call)', async () => {
    emu = await HsmEmulator.create();
    fresh = await startServerProcess({ env: emu.env() });
    let base = fresh.server.url;
    const init = await call(base, 'PUT', 'sys/init', { body: { secret_shares: 3, secret_threshold: 2 } });
    expect(init.status).toBe(200);
    const root = init.body.root_token as string;
    for (const key of init.body.keys.slice(0, 2)) await call(base, 'PUT', 'sys/unseal', { body: { key } });
    expect((await call(base, 'PUT', 'secret/a', { token: root, body: { v: 'kept' } })).status).toBe(204);
    expect((await call(base, 'POST', 'sys/rotate', { token: root })).status).toBe(204);
    const rekey = await call(base, 'PUT', 'sys/rekey/init', { body: { secret_shares: 2, secret_threshold: 2 } });
    let reply = rekey;
    for (const key of init.body.keys.slice(0, 2)) reply = await call(base, 'PUT', 'sys/rekey/update', { body: { key, nonce: rekey.body.nonce } });
    expect(reply.body.complete).toBe(true);

    await fresh.server.kill();
    fresh.server = await spawnServer(fresh.config, fresh.token, fresh.port, emu.env());
    base = fresh.server.url;
    for (const key of reply.body.keys) await call(base, 'PUT', 'sys/unseal', { body: { key } });
    expect((await call(base, 'GET', 'secret/a', { token: root })).body.data).toEqual({ v: 'kept' });

    const counts = emu.counts();
    expect(counts.C_CreateObject).toBe(0);
    // Init, the rekey's check of the old root, its new root, and each unseal each unwrapped a root key sent to a transport pair.
    expect(counts.C_GenerateKeyPair).toBeGreaterThanOrEqual(2);
    expect(counts.C_UnwrapKey).toBeGreaterThan(counts.C_GenerateKeyPair);
  });
});
