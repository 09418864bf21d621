import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodeVault from 'node-vault';
import tv4 from 'tv4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeWithOtp } from '../src/core/generate-root.js';
import { type InProcess, startInProcess } from './support/service.js';

type Client = ReturnType<typeof nodeVault>;

describe('Vault-client compatibility: every implemented endpoint through node-vault, responses checked against its schemas', () => {
  let kw: InProcess;
  let vault: Client;
  const checked: string[] = [];

  /** Calls a node-vault command and validates the reply against that command's own response schema. */
  async function run(name: string, args?: Record<string, unknown>): Promise<any> {
    const fn = (vault as unknown as Record<string, (a?: unknown) => Promise<unknown>>)[name]!;
    const res = await fn.call(vault, args);
    const schema = (vault as unknown as { commands: Record<string, { schema?: { res?: object } }> }).commands[name]?.schema?.res;
    if (schema) {
      const ok = tv4.validate(res as object, schema);
      expect(ok, `${name}: ${tv4.error?.message} at ${tv4.error?.dataPath} in ${JSON.stringify(res)}`).toBe(true);
    }
    checked.push(name);
    return res;
  }

  beforeAll(async () => {
    kw = await startInProcess('file');
    vault = nodeVault({ endpoint: kw.service.url, noCustomHTTPVerbs: true });
  });
  afterAll(() => kw.service.close());

  it('answers in shapes the client accepts', async () => {
    expect(await run('initialized')).toEqual({ initialized: false });
    const init = await run('init', { secret_shares: 3, secret_threshold: 2 });
    await run('status');
    for (const key of init.keys.slice(0, 2)) await run('unseal', { key });
    vault.token = init.root_token;
    await run('health');
    expect(await run('leader')).toMatchObject({ ha_enabled: false, is_self: false, leader_address: '' });

    await vault.write('secret/compat', { v: 1 });
    expect((await vault.read('secret/compat')).data).toEqual({ v: 1 });
    expect((await vault.list('secret/')).data.keys).toEqual(['compat']);
    await vault.delete('secret/compat');
    checked.push('write', 'read', 'list', 'delete');

    await run('mount', { mount_point: 'kv2', type: 'kv-v2' });
    expect(Object.keys((await run('mounts')).data)).toEqual(expect.arrayContaining(['secret/', 'kv2/']));
    await vault.write('kv2/data/app', { data: { a: 1 } });
    await vault.write('kv2/data/app', { data: { a: 2 } });
    await run('destroySecretVersions', { mount_point: 'kv2', path: 'app', versions: [1] });
    expect((await vault.read('kv2/metadata/app')).data.versions['1'].destroyed).toBe(true);
    expect((await vault.list('kv2/metadata/')).data.keys).toEqual(['app']);
    await run('unmount', { mount_point: 'kv2' });

    await run('addPolicy', { name: 'compat', rules: 'path "secret/*" {\n  capabilities = ["read"]\n}\n' });
    expect((await run('policies')).policies).toContain('compat');
    expect((await run('getPolicy', { name: 'compat' })).rules).toContain('secret/*');

    const created = await run('tokenCreate', { policies: ['compat'], ttl: '1h', meta: { team: 'a' } });
    vault.token = init.root_token;
    const orphan = await run('tokenCreateOrphan', { policies: ['compat'] });
    vault.token = init.root_token;
    expect((await run('tokenLookup', { token: created.auth.client_token })).data.meta).toEqual({ team: 'a' });
    expect((await run('tokenLookupAccessor', { accessor: created.auth.accessor })).data.orphan).toBe(false);
    await run('tokenLookupSelf');
    await run('tokenRenew', { token: created.auth.client_token, increment: '2h' });
    vault.token = init.root_token;
    await run('tokenRevokeAccessor', { accessor: orphan.auth.accessor });
    await run('tokenRevokeOrphan', { token: created.auth.client_token });
    await run('removePolicy', { name: 'compat' });

    const dir = await mkdtemp(join(tmpdir(), 'kw-compat-'));
    await run('enableAudit', { name: 'file', type: 'file', options: { file_path: join(dir, 'audit.log') } });
    expect(Object.keys(await run('audits'))).toContain('file/');
    await run('disableAudit', { name: 'file' });

    await run('rotate');
    const attempt = await run('generateRootInit');
    let done;
    for (const key of init.keys.slice(0, 2)) done = await run('generateRootUpdate', { key, nonce: attempt.nonce });
    expect(decodeWithOtp(done.encoded_token, attempt.otp)).toMatch(/^hvs\./);
    await run('generateRootInit');
    await run('generateRootCancel');
    await run('seal');
    expect((await run('status')).sealed).toBe(true);

    console.log(`node-vault compatibility: ${checked.length} calls checked (${new Set(checked).size} distinct)`);
    expect(new Set(checked).size).toBeGreaterThanOrEqual(30);
  });
});
