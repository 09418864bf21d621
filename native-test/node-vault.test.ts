import nodeVault from 'node-vault';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcess, startInProcess } from './support/service.js';

function statusOf(err: unknown): number | undefined {
  return (err as { response?: { statusCode?: number } }).response?.statusCode;
}

describe('Vault-client compatibility: the node-vault npm client', () => {
  let kw: InProcess;
  beforeAll(async () => {
    kw = await startInProcess('file');
  });
  afterAll(() => kw.service.close());

  it('drives init, status, unseal, write/read/list/delete and seal', async () => {
    // Lists go as GET ?list=1 here (node-vault's noCustomHTTPVerbs); the LIST method is list-method.test.ts's.
    const vault = nodeVault({ endpoint: kw.service.url, noCustomHTTPVerbs: true });
    expect(await vault.initialized()).toEqual({ initialized: false });
    const init = await vault.init({ secret_shares: 5, secret_threshold: 3 });
    expect(init.keys).toHaveLength(5);
    vault.token = init.root_token;

    expect(await vault.status()).toMatchObject({ sealed: true, t: 3, n: 5, progress: 0 });
    for (const key of init.keys.slice(0, 2)) expect((await vault.unseal({ key })).sealed).toBe(true);
    expect((await vault.unseal({ key: init.keys[2] })).sealed).toBe(false);
    expect(await vault.health()).toMatchObject({ initialized: true, sealed: false, standby: false });

    await vault.write('secret/hello', { value: 'world', n: 42 });
    expect((await vault.read('secret/hello')).data).toEqual({ value: 'world', n: 42 });
    expect((await vault.list('secret/')).data.keys).toEqual(['hello']);
    await vault.delete('secret/hello');
    await expect(vault.read('secret/hello')).rejects.toSatisfy((e: unknown) => statusOf(e) === 404);

    await vault.write('secret/kept', { value: 'still here' });
    await vault.seal();
    expect((await vault.status()).sealed).toBe(true);
    await expect(vault.read('secret/kept')).rejects.toSatisfy((e: unknown) => statusOf(e) === 503);
    for (const key of init.keys.slice(2)) await vault.unseal({ key });
    expect((await vault.read('secret/kept')).data).toEqual({ value: 'still here' });
  });
});
