import { afterEach, describe, expect, it } from 'vitest';
import { type FipsModes, HsmEmulator } from './support/hsm-emulator.js';
import { type FreshServer, spawnServer, startServerProcess } from './support/process.js';
import { call } from './support/service.js';

/**
 * FIPS-mode HSMs pick GCM IVs themselves and refuse a caller's: keyward on the emulator acting as
 * AWS CloudHSM, Thales Luna and Thales ProtectServer, one store carried from module to module.
 */
describe('GCM IVs chosen by the token', () => {
  const emulators: HsmEmulator[] = [];
  let fresh: FreshServer | undefined;
  afterEach(async () => {
    await fresh?.server.kill();
    fresh = undefined;
    for (const e of emulators.splice(0)) e.close();
  });

  async function behind(gcmIv: FipsModes['gcmIv']): Promise<HsmEmulator> {
    const emu = await HsmEmulator.create({ gcmIv });
    emulators.push(emu);
    return emu;
  }

  it('runs the lifecycle on CloudHSM, Luna and ProtectServer modes without a caller IV, and every value reads back across changes of IV policy', async () => {
    const written = new Map<string, string>();
    const first = await behind('caller');
    fresh = await startServerProcess({ env: first.env() });
    let base = fresh.server.url;
    const init = await call(base, 'PUT', 'sys/init', { body: { secret_shares: 3, secret_threshold: 2 } });
    let shares: string[] = init.body.keys;
    const root: string = init.body.root_token;
    const unseal = async () => {
      let r;
      for (const key of shares.slice(0, 2)) r = await call(base, 'PUT', 'sys/unseal', { body: { key } });
      expect(r!.body.sealed, `${JSON.stringify(r!.body)}\n${fresh!.server.output().slice(-3000)}`).toBe(false);
    };
    const readAll = async (where: string) => {
      for (const [path, v] of written) expect((await call(base, 'GET', `kv/data/${path}`, { token: root })).body.data.data, `${where}: ${path}`).toEqual({ v });
    };
    const write = async (path: string) => {
      const r = await call(base, 'POST', `kv/data/${path}`, { token: root, body: { data: { v: path } } });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      written.set(path, path);
    };
    await unseal();
    await call(base, 'POST', 'sys/mounts/kv', { token: root, body: { type: 'kv-v2' } });
    await write('under-caller-ivs');

    for (const mode of ['cloudhsm', 'luna', 'protectserver', 'caller'] as const) {
      const emu = await behind(mode);
      await fresh.server.kill();
      // On Luna, decryptions of its 16-byte IVs go to a session pool.
      fresh.server = await spawnServer(fresh.config, fresh.token, fresh.port, { ...emu.env(), KEYWARD_HSM_MAX_PARALLEL: mode === 'luna' ? '2' : '0' });
      base = fresh.server.url;
      await unseal();
      await readAll(`on ${mode}, what earlier modules wrote`);
      await write(`under-${mode}`);
      expect((await call(base, 'PUT', 'sys/rotate', { token: root })).status).toBe(204);
      await write(`under-${mode}-after-rotate`);
      const rekey = await call(base, 'PUT', 'sys/rekey/init', { body: { secret_shares: 3, secret_threshold: 2 } });
      let done;
      for (const key of shares.slice(0, 2)) done = await call(base, 'PUT', 'sys/rekey/update', { body: { key, nonce: rekey.body.nonce } });
      expect(done!.body.complete, JSON.stringify(done!.body)).toBe(true);
      shares = done!.body.keys;
      expect((await call(base, 'GET', 'sys/seal-status')).body).toMatchObject({ sealed: false, t: 2, n: 3 });
      await readAll(`on ${mode}`);
      const style = /"ivStyle":"(\w+)"/.exec(fresh.server.output())?.[1];
      expect(style, mode).toBe({ cloudhsm: 'written', protectserver: 'written', luna: 'appended', caller: 'caller' }[mode]);
      // Not one value, keyring or comparison was encrypted under an IV keyward chose.
      if (mode !== 'caller') expect(emu.counts().caller_iv_encryptions, mode).toBe(0);
    }
    // A restart on the last module: the new shares open everything written under every policy.
    await fresh.server.kill();
    fresh.server = await spawnServer(fresh.config, fresh.token, fresh.port, (await behind('luna')).env());
    base = fresh.server.url;
    await unseal();
    await readAll('after every change of IV policy');
  });

  for (const mode of ['cloudhsm', 'luna', 'protectserver'] as const) {
    it(`initializes on ${mode} mode from scratch: init, unseal, KV, seal, restart, unseal`, async () => {
      const emu = await behind(mode);
      fresh = await startServerProcess({ env: emu.env() });
      const base = fresh.server.url;
      const init = await call(base, 'PUT', 'sys/init', { body: { secret_shares: 1, secret_threshold: 1 } });
      expect(init.status, `${JSON.stringify(init.body)}\n${fresh.server.output().slice(-2000)}`).toBe(200);
      const { keys: [key], root_token: root } = init.body;
      expect((await call(base, 'PUT', 'sys/unseal', { body: { key } })).body.sealed).toBe(false);
      expect((await call(base, 'PUT', 'secret/a', { token: root, body: { v: mode } })).status).toBe(204);
      expect((await call(base, 'PUT', 'sys/seal', { token: root })).status).toBe(204);
      await fresh.server.kill();
      fresh.server = await spawnServer(fresh.config, fresh.token, fresh.port, emu.env());
      expect((await call(fresh.server.url, 'PUT', 'sys/unseal', { body: { key } })).body.sealed).toBe(false);
      expect((await call(fresh.server.url, 'GET', 'secret/a', { token: root })).body.data).toEqual({ v: mode });
      expect(emu.counts().caller_iv_encryptions).toBe(0);
    });
  }
});
