import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodeVault from 'node-vault';
import tv4 from 'tv4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeWithOtp } from '../src/core/generate-root.js';
import { type InProcess, startInProcess } from './support/service.js';
import { COMMAND_RESPONSES, GENERIC_RESPONSES, type ResponseShape } from './support/vault-schemas.js';

type Client = ReturnType<typeof nodeVault>;

describe('Vault-client compatibility: every implemented endpoint through node-vault, every response validated against a schema', () => {
  let kw: InProcess;
  let vault: Client;
  let calls = 0;
  /** The name of every call whose status and body matched its schema. */
  const validated: string[] = [];
  // node-vault reports each reply's status only to its debug hook; the body it hands back has lost it.
  let lastStatus: number | undefined;
  const debug = (first: unknown) => {
    if (typeof first === 'number') lastStatus = first;
  };

  /** Makes one call and checks the reply against `shape`: Vault's status, and the body against the schema. */
  async function validatedCall(name: string, shape: ResponseShape | undefined, send: () => Promise<unknown>): Promise<any> {
    calls++;
    lastStatus = undefined;
    const res = await send();
    expect(shape, `${name}: no response schema`).toBeDefined();
    expect(lastStatus, name).toBe(shape!.status);
    const ok = tv4.validate(res as object, shape!.schema);
    expect(ok, `${name}: ${tv4.error?.message} at ${tv4.error?.dataPath} in ${JSON.stringify(res)}`).toBe(true);
    validated.push(name);
    return res;
  }

  /** Calls a node-vault command; the reply is checked against the command's own response schema, or else Vault's documented one. */
  function run(name: string, args?: Record<string, unknown>): Promise<any> {
    const fn = (vault as unknown as Record<string, (a?: unknown) => Promise<unknown>>)[name]!;
    const own = (vault as unknown as { commands: Record<string, { schema?: { res?: object } }> }).commands[name]?.schema?.res;
    return validatedCall(name, own ? { status: 200, schema: own } : COMMAND_RESPONSES[name], () => fn.call(vault, args));
  }

  /** node-vault's generic calls (read, write, list, delete), checked against the documented shape for what they reach. */
  function generic(name: string, shape: ResponseShape, send: () => Promise<unknown>): Promise<any> {
    return validatedCall(name, shape, send);
  }

  beforeAll(async () => {
    kw = await startInProcess('file');
    vault = nodeVault({ endpoint: kw.service.url, noCustomHTTPVerbs: true, debug });
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

    await generic('write (KV v1)', GENERIC_RESPONSES.kv1Write, () => vault.write('secret/compat', { v: 1 }));
    expect((await generic('read (KV v1)', GENERIC_RESPONSES.kv1Read, () => vault.read('secret/compat'))).data).toEqual({ v: 1 });
    expect((await generic('list (KV v1)', GENERIC_RESPONSES.list, () => vault.list('secret/'))).data.keys).toEqual(['compat']);
    await generic('delete (KV v1)', GENERIC_RESPONSES.kv1Delete, () => vault.delete('secret/compat'));

    await run('mount', { mount_point: 'kv2', type: 'kv-v2' });
    expect(Object.keys((await run('mounts')).data)).toEqual(expect.arrayContaining(['secret/', 'kv2/']));
    expect((await generic('write (KV v2)', GENERIC_RESPONSES.kv2Write, () => vault.write('kv2/data/app', { data: { a: 1 } }))).data.version).toBe(1);
    expect((await generic('write (KV v2)', GENERIC_RESPONSES.kv2Write, () => vault.write('kv2/data/app', { data: { a: 2 } }))).data.version).toBe(2);
    await run('destroySecretVersions', { mount_point: 'kv2', path: 'app', versions: [1] });
    expect((await generic('read metadata (KV v2)', GENERIC_RESPONSES.kv2Metadata, () => vault.read('kv2/metadata/app'))).data.versions['1'].destroyed).toBe(true);
    expect((await generic('list metadata (KV v2)', GENERIC_RESPONSES.list, () => vault.list('kv2/metadata/'))).data.keys).toEqual(['app']);
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

    const distinct = new Set(validated).size;
    console.log(`node-vault compatibility: ${validated.length} of ${calls} calls validated (${distinct} distinct calls)`);
    expect(validated.length).toBe(calls);
    expect(distinct).toBeGreaterThanOrEqual(30);
  });
});
