import { mkdtemp, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, type ServerProcess, startServerProcess } from './support/process.js';
import { call, initAndUnseal } from './support/service.js';

describe('token, policy and login through the CLI', () => {
  let server: ServerProcess | undefined;
  afterAll(async () => {
    await server?.kill();
  });

  it('writes a policy, creates a token with it, logs in with it, and revokes it', async () => {
    const fresh = await startServerProcess();
    server = fresh.server;
    const dir = fresh.dir;
    const { root } = await initAndUnseal(server.url);
    await call(server.url, 'PUT', 'secret/app', { token: root, body: { v: 'readable' } });
    const home = await mkdtemp(join(tmpdir(), 'kw-home-'));
    const env = { KEYWARD_ADDR: server.url, KEYWARD_TOKEN: root, VAULT_ADDR: '', VAULT_TOKEN: '', HOME: home };

    const file = join(dir, 'readonly.hcl');
    await writeFile(file, 'path "secret/*" {\n  capabilities = ["read", "list"]\n}\n');
    expect((await runCli(['policy', 'write', 'readonly', file], env)).stdout).toMatch(/Uploaded policy: readonly/);
    expect((await runCli(['policy', 'list'], env)).stdout.split('\n')).toContain('readonly');
    expect((await runCli(['policy', 'read', 'readonly'], env)).stdout).toContain('secret/*');
    const bad = join(dir, 'bad.hcl');
    await writeFile(bad, 'path "x" { capabilities = ["fly"] }\n');
    const refused = await runCli(['policy', 'write', 'bad', bad], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/invalid capability "fly"/);

    const created = await runCli(['token', 'create', '-policy=readonly', '-ttl=1h', '-metadata=team=a', '-format=json'], env);
    expect(created.code).toBe(0);
    const child = JSON.parse(created.stdout).auth;
    expect(child.policies).toEqual(['readonly', 'default']);

    const asUser = { ...env, KEYWARD_TOKEN: '' };
    const login = await runCli(['login', child.client_token], asUser);
    expect(login.code).toBe(0);
    expect(login.stdout).toMatch(/token_policies\s+\[readonly default\]/);
    expect((await stat(join(home, '.keyward-token'))).mode & 0o777).toBe(0o600);
    expect(JSON.parse((await runCli(['kv', 'get', '-format=json', 'secret/app'], asUser)).stdout).data).toEqual({ v: 'readable' });
    const denied = await runCli(['kv', 'put', 'secret/app', 'v=overwritten'], asUser);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/Code: 403[\s\S]*permission denied/);
    expect((await runCli(['token', 'lookup'], asUser)).stdout).toMatch(/meta\s+map\[team:a\]/);
    expect((await runCli(['token', 'lookup', '-accessor', child.accessor], env)).stdout).toMatch(/policies\s+\[readonly default\]/);
    expect((await runCli(['token', 'renew', '-increment=30m'], asUser)).stdout).toMatch(/token_duration\s+1800s/);
    expect((await runCli(['token', 'revoke', '-self'], asUser)).code).toBe(0);
    expect((await runCli(['kv', 'get', 'secret/app'], asUser)).stderr).toMatch(/Code: 403/);
    expect((await runCli(['login', 'hvs.not-a-token'], asUser)).code).toBe(1);
    expect((await runCli(['policy', 'delete', 'readonly'], env)).code).toBe(0);
    expect((await runCli(['token', 'revoke'], env)).code).toBe(2);
  });
});
