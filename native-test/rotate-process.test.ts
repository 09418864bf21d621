import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, type ServerProcess, spawnServer, startServerProcess } from './support/process.js';
import { call, initAndUnseal } from './support/service.js';

describe('rotation across process restarts, and encryption counts across kill -9', () => {
  let server: ServerProcess | undefined;
  afterAll(async () => {
    await server?.kill();
  });

  it('keeps terms, values and counts; the CLI rotates and reports', async () => {
    const fresh = await startServerProcess({ configExtra: 'encryption_count_persist_interval = "300ms"\n' });
    server = fresh.server;
    const { token, dir, port, config } = fresh;
    const base = server.url;
    const { keys: [key], root } = await initAndUnseal(base, 1, 1);
    const env = { KEYWARD_ADDR: base, KEYWARD_TOKEN: root, VAULT_ADDR: '', VAULT_TOKEN: '' };
    const unseal = async () => expect((await call(base, 'PUT', 'sys/unseal', { body: { key } })).body.sealed).toBe(false);
    const keyStatus = async () => (await call(base, 'GET', 'sys/key-status', { token: root })).body;

    for (let t = 1; t <= 3; t++) {
      await call(base, 'PUT', `secret/t${t}`, { token: root, body: { t } });
      const rotated = await runCli(['operator', 'rotate'], env);
      expect(rotated.code).toBe(0);
      expect(rotated.stdout).toMatch(new RegExp(`Key Term\\s+${t + 1}`));
      expect(rotated.stdout).toMatch(/Installation Time\s+\d{4}-/);
    }
    await call(base, 'PUT', 'secret/t4', { token: root, body: { t: 4 } });
    const status = await runCli(['operator', 'key-status'], env);
    expect(status.stdout).toMatch(/Key Term\s+4/);
    expect(status.stdout).toMatch(/Install Time\s+\d{4}-/);
    expect(status.stdout).toMatch(/Encryption Count\s+\d+/);
    expect(JSON.parse((await runCli(['operator', 'key-status', '-format=json'], env)).stdout).term).toBe(4);

    // On disk, each value starts with the term it was written under.
    const mountDir = join(dir, 'storage', 'data', 'logical');
    const [uuid] = await readdir(mountDir);
    for (let t = 1; t <= 4; t++) expect((await readFile(join(mountDir, uuid!, `_t${t}`))).readUInt32BE(0)).toBe(t);

    // A clean restart keeps every term and the exact encryption count.
    const before = await keyStatus();
    expect(await server.stop()).toBe(0);
    server = await spawnServer(config, token, port);
    await unseal();
    expect(await keyStatus()).toMatchObject({ term: 4, encryptions: before.encryptions, install_time: before.install_time });
    for (let t = 1; t <= 4; t++) expect((await call(base, 'GET', `secret/t${t}`, { token: root })).body.data).toEqual({ t });

    // kill -9 after the persist interval has passed: nothing counted is lost.
    for (let i = 0; i < 20; i++) await call(base, 'PUT', `secret/c${i}`, { token: root, body: { i } });
    const counted = (await keyStatus()).encryptions;
    await new Promise((r) => setTimeout(r, 1000));
    await server.kill();
    server = await spawnServer(config, token, port);
    await unseal();
    expect((await keyStatus()).encryptions).toBe(counted);

    // kill -9 within the interval: at most that interval's counting is lost, never more.
    for (let i = 0; i < 10; i++) await call(base, 'PUT', `secret/d${i}`, { token: root, body: { i } });
    await server.kill();
    server = await spawnServer(config, token, port);
    await unseal();
    const after = (await keyStatus()).encryptions;
    expect(after).toBeGreaterThanOrEqual(counted);
    expect(after).toBeLessThanOrEqual(counted + 10);
    for (let i = 0; i < 10; i++) expect((await call(base, 'GET', `secret/d${i}`, { token: root })).body.data).toEqual({ i });
  });
});
