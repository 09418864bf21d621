import { spawn } from 'node:child_process';
import nodeVault from 'node-vault';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, initAndUnseal, type InProcess, startInProcess } from './support/service.js';

/** Debian's interpreter, which Debian's python3-hvac (installed by scripts/setup.sh) belongs to. */
const PYTHON = '/usr/bin/python3';

function runHvac(addr: string, token: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [join(import.meta.dirname, 'support', 'hvac_transit.py')], { env: { ...process.env, VAULT_ADDR: addr, VAULT_TOKEN: token } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

describe('Vault clients\' transit calls against keyward: hvac (python3-hvac 0.11) and node-vault', () => {
  let kw: InProcess;
  let root: string;

  beforeAll(async () => {
    kw = await startInProcess('inmem');
    root = (await initAndUnseal(kw.service.url, 1, 1)).root;
    expect((await call(kw.service.url, 'POST', 'sys/mounts/transit', { token: root, body: { type: 'transit' } })).status).toBe(204);
  });

  afterAll(async () => kw?.service.close());

  it('node-vault: create, read, list, encrypt, decrypt, rewrap and delete a key', async () => {
    // Lists go as GET ?list=1 here (node-vault's noCustomHTTPVerbs), the form proxies without LIST
    // need; the LIST method itself is list-method.test.ts's and vault-compat.test.ts's.
    const vault = nodeVault({ endpoint: kw.service.url, token: root, noCustomHTTPVerbs: true });
    await vault.transitCreateKey({ name: 'nv' });
    expect((await vault.transitReadKey({ name: 'nv' })).data).toMatchObject({ name: 'nv', type: 'aes256-gcm96', latest_version: 1 });
    expect((await vault.list('transit/keys')).data.keys).toContain('nv');
    const plaintext = Buffer.from('node-vault secret').toString('base64');
    const enc = await vault.encryptData({ name: 'nv', plaintext });
    expect(enc.data.ciphertext).toMatch(/^vault:v1:/);
    expect((await vault.decryptData({ name: 'nv', ciphertext: enc.data.ciphertext })).data.plaintext).toBe(plaintext);
    await vault.write('transit/keys/nv/rotate', {});
    const rewrapped = await vault.rewrapData({ name: 'nv', ciphertext: enc.data.ciphertext });
    expect(rewrapped.data.ciphertext).toMatch(/^vault:v2:/);
    await vault.write('transit/keys/nv/config', { deletion_allowed: true });
    await vault.transitDeleteKey({ name: 'nv' });
    await expect(vault.transitReadKey({ name: 'nv' })).rejects.toSatisfy((e: unknown) => (e as { response?: { statusCode?: number } }).response?.statusCode === 404);
  });

  it('hvac: passes every call of the script', async () => {
    const { code, out } = await runHvac(kw.service.url, root);
    expect(out, out).toContain('all hvac transit calls passed');
    expect(code).toBe(0);
    expect(out.match(/^ok /gm)?.length).toBeGreaterThanOrEqual(30);
  }, 120_000);
});
