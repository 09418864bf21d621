import { afterAll, describe, expect, it } from 'vitest';
import { runCli, type ServerProcess, spawnServer, startServerProcess } from './support/process.js';

describe('full lifecycle over the CLI', () => {
  let server: ServerProcess | undefined;
  afterAll(async () => {
    await server?.kill();
  });

  it('init → unseal (argument and hidden prompt) → kv → seal → unseal with other shares → restart → data intact', async () => {
    const fresh = await startServerProcess();
    server = fresh.server;
    const { token, port, config } = fresh;
    const env: Record<string, string> = { KEYWARD_ADDR: server.url, KEYWARD_TOKEN: '', VAULT_ADDR: '', VAULT_TOKEN: '' };

    expect((await runCli(['operator', 'init', '-key-shares=abc'], env)).code).toBe(2);
    const badThreshold = await runCli(['operator', 'init', '-key-shares=3', '-key-threshold=4'], env);
    expect(badThreshold.code).toBe(1);
    expect(badThreshold.stderr).toMatch(/Code: 400[\s\S]*secret threshold cannot be larger than secret shares/);

    const init = await runCli(['operator', 'init', '-key-shares=5', '-key-threshold=3', '-format=json'], env);
    expect(init.code).toBe(0);
    const { unseal_keys_b64: keys, unseal_keys_hex: hex, root_token: root } = JSON.parse(init.stdout) as {
      unseal_keys_b64: string[];
      unseal_keys_hex: string[];
      root_token: string;
    };
    expect(keys).toHaveLength(5);
    expect(hex).toHaveLength(5);

    const sealed = await runCli(['status'], env);
    expect(sealed.code).toBe(2);
    expect(sealed.stdout).toMatch(/Sealed\s+true/);
    expect(sealed.stdout).toMatch(/Unseal Progress\s+0\/3/);

    expect((await runCli(['operator', 'unseal', keys[0]!], env)).stdout).toMatch(/Unseal Progress\s+1\/3/);
    // No argument: the share is read at the prompt (here from a pipe, as a hidden prompt would).
    const prompted = await runCli(['operator', 'unseal'], env, `${hex[1]}\n`);
    expect(prompted.code).toBe(0);
    expect(prompted.stdout).toMatch(/Unseal Progress\s+2\/3/);
    expect(prompted.stdout + prompted.stderr).not.toContain(hex[1]!);
    const unsealed = await runCli(['operator', 'unseal', '-format=json', keys[2]!], env);
    expect(JSON.parse(unsealed.stdout)).toMatchObject({ sealed: false, t: 3, n: 5 });
    expect((await runCli(['status'], env)).code).toBe(0);

    const authed = { ...env, KEYWARD_TOKEN: root };
    expect((await runCli(['kv', 'get', 'secret/app'], env)).stderr).toMatch(/Code: 403/);
    expect((await runCli(['kv', 'put', 'secret/app', 'user=app', 'pass=hunter2'], authed)).stdout).toBe('Success! Data written to: secret/app\n');
    const table = await runCli(['kv', 'get', 'secret/app'], authed);
    expect(table.stdout).toMatch(/pass\s+hunter2/);
    // VAULT_TOKEN is the fallback when KEYWARD_TOKEN is not set.
    const viaVaultEnv = await runCli(['kv', 'get', '-format=json', 'secret/app'], { ...env, VAULT_TOKEN: root });
    expect(JSON.parse(viaVaultEnv.stdout).data).toEqual({ user: 'app', pass: 'hunter2' });
    expect((await runCli(['kv', 'list', 'secret/'], authed)).stdout).toBe('Keys\n----\napp\n');

    expect((await runCli(['operator', 'seal'], authed)).stdout).toMatch(/Success/);
    const whileSealed = await runCli(['kv', 'get', 'secret/app'], authed);
    expect(whileSealed.code).toBe(1);
    expect(whileSealed.stderr).toMatch(/Code: 503[\s\S]*sealed/);

    for (const k of [keys[2]!, keys[3]!, keys[4]!]) await runCli(['operator', 'unseal', k], env);
    expect((await runCli(['kv', 'get', '-format=json', 'secret/app'], authed)).stdout).toContain('hunter2');

    expect(await server.stop()).toBe(0);
    server = await spawnServer(config, token, port);
    expect((await runCli(['status'], env)).code).toBe(2);
    for (const k of [keys[0]!, keys[2]!, keys[4]!]) await runCli(['operator', 'unseal', k], env);
    expect((await runCli(['status'], env)).code).toBe(0);
    expect(JSON.parse((await runCli(['kv', 'get', '-format=json', 'secret/app'], authed)).stdout).data).toEqual({ user: 'app', pass: 'hunter2' });

    expect((await runCli(['kv', 'delete', 'secret/app'], authed)).code).toBe(0);
    const gone = await runCli(['kv', 'get', 'secret/app'], authed);
    expect(gone.code).toBe(2);
    expect(gone.stderr).toMatch(/No value found at secret\/app/);

    expect((await runCli(['operator', 'unseal', 'a', 'b'], env)).code).toBe(2);
    expect((await runCli(['operator', 'frobnicate'], env)).code).toBe(2);
    expect((await runCli(['kv', 'put', 'secret/x'], authed)).code).toBe(2);
  });
});
