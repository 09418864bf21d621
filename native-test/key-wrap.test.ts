import { afterEach, describe, expect, it } from 'vitest';
import { HsmEmulator } from './support/hsm-emulator.js';
import { type FreshServer, spawnServer, startServerProcess } from './support/process.js';
import { call } from './support/service.js';

/**
 * Key wrap is chosen by known-answer tests, not by mechanism numbers: keyward server processes on
 * the HSM emulator, whose modules renumber RFC 5649 (0x210A as 0x210B, NSS's number for it) or
 * offer no RFC 5649 at all.
 */
describe('key wrap chosen by what the module does, not by its mechanism numbers', () => {
  const emulators: HsmEmulator[] = [];
  let fresh: FreshServer | undefined;
  afterEach(async () => {
    await fresh?.server.kill();
    fresh = undefined;
    for (const e of emulators.splice(0)) e.close();
  });

  const emulator = async (modes: Parameters<typeof HsmEmulator.create>[0]) => {
    const emu = await HsmEmulator.create(modes);
    emulators.push(emu);
    return emu;
  };

  /** Restarts the server on the same storage and token, behind `emu`, and unseals it. */
  async function restartBehind(emu: HsmEmulator, shares: string[]): Promise<string> {
    await fresh!.server.kill();
    fresh!.server = await spawnServer(fresh!.config, fresh!.token, fresh!.port, emu.env());
    const base = fresh!.server.url;
    let r;
    for (const key of shares) r = await call(base, 'PUT', 'sys/unseal', { body: { key } });
    expect(r!.body.sealed, `${JSON.stringify(r!.body)}\n${fresh!.server.output().slice(-3000)}`).toBe(false);
    return base;
  }

  const chosen = (output: string) => [...output.matchAll(/"keyWrap":(\{[^}]*\})/g)].map((m) => JSON.parse(m[1]!) as Record<string, string>);

  it('reads keys wrapped under 0x210A when the module offers RFC 5649 only as 0x210B, and the other way round', async () => {
    fresh = await startServerProcess({ env: (await emulator({})).env() });
    let base = fresh.server.url;
    const init = await call(base, 'PUT', 'sys/init', { body: { secret_shares: 3, secret_threshold: 2 } });
    const { keys, root_token: root } = init.body;
    for (const key of keys.slice(0, 2)) await call(base, 'PUT', 'sys/unseal', { body: { key } });
    await call(base, 'PUT', 'secret/a', { token: root, body: { v: 'a' } });
    expect((await call(base, 'PUT', 'sys/rotate', { token: root })).status).toBe(204);
    await call(base, 'PUT', 'secret/b', { token: root, body: { v: 'b' } });
    expect(chosen(fresh.server.output())).toEqual([{ rfc5649: '0x210a', rfc3394: '0x2109' }]);

    base = await restartBehind(await emulator({ renumber: [[0x210a, 0x210b]] }), keys.slice(1, 3));
    expect(chosen(fresh.server.output())).toEqual([{ rfc5649: '0x210b', rfc3394: '0x2109' }]);
    for (const v of ['a', 'b']) expect((await call(base, 'GET', `secret/${v}`, { token: root })).body.data).toEqual({ v });
    expect((await call(base, 'PUT', 'sys/rotate', { token: root })).status).toBe(204);
    await call(base, 'PUT', 'secret/c', { token: root, body: { v: 'c' } });

    // Keys wrapped while the module called RFC 5649 0x210B read back where it is 0x210A again.
    base = await restartBehind(await emulator({}), keys.slice(0, 2));
    for (const v of ['a', 'b', 'c']) expect((await call(base, 'GET', `secret/${v}`, { token: root })).body.data).toEqual({ v });
  });

  it('wraps with RFC 3394 where the module does no RFC 5649, through a whole lifecycle', async () => {
    const only3394 = await emulator({ hideMechanisms: [0x210a, 0x210b] });
    fresh = await startServerProcess({ env: only3394.env() });
    let base = fresh.server.url;
    const init = await call(base, 'PUT', 'sys/init', { body: { secret_shares: 3, secret_threshold: 2 } });
    expect(init.status, JSON.stringify(init.body)).toBe(200);
    const { keys, root_token: root } = init.body;
    for (const key of keys.slice(0, 2)) await call(base, 'PUT', 'sys/unseal', { body: { key } });
    expect(chosen(fresh.server.output())).toEqual([{ rfc3394: '0x2109' }]);
    await call(base, 'PUT', 'secret/a', { token: root, body: { v: 'a' } });
    expect((await call(base, 'PUT', 'sys/rotate', { token: root })).status).toBe(204);
    const rekey = await call(base, 'PUT', 'sys/rekey/init', { body: { secret_shares: 3, secret_threshold: 2 } });
    let done;
    for (const key of keys.slice(0, 2)) done = await call(base, 'PUT', 'sys/rekey/update', { body: { key, nonce: rekey.body.nonce } });
    expect(done!.body.complete).toBe(true);
    expect((await call(base, 'GET', 'sys/seal-status')).body.rekey_pending).toBeUndefined();

    base = await restartBehind(only3394, done!.body.keys.slice(0, 2));
    expect((await call(base, 'GET', 'secret/a', { token: root })).body.data).toEqual({ v: 'a' });
    // A module that lost the algorithm a key was wrapped with says so, by name.
    await fresh.server.kill();
    fresh.server = await spawnServer(fresh.config, fresh.token, fresh.port, (await emulator({ hideMechanisms: [0x2109] })).env());
    let r;
    for (const key of done!.body.keys.slice(0, 2)) r = await call(fresh.server.url, 'PUT', 'sys/unseal', { body: { key } });
    expect(r!.status).toBeGreaterThanOrEqual(500);
    expect(JSON.stringify(r!.body)).toMatch(/no longer does rfc3394 key wrap/);
  });
});
