import { readdir, readFile, stat } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { provisionSoftHsmToken } from '../src/pkcs11/softhsm.js';

describe('SoftHSM2 token provisioning (dev mode and tests)', () => {
  it('keeps the token store in a private tokens folder named by a private config', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kw-provision-'));
    const hsm = await provisionSoftHsmToken(dir, 'dev-token', '1234', '5678');
    expect(hsm).toEqual({ confPath: join(dir, 'softhsm2.conf'), label: 'dev-token', pin: '1234' });
    const conf = await readFile(hsm.confPath, 'utf8');
    expect(conf.split('\n')).toContain(`directories.tokendir = ${join(dir, 'tokens')}`);
    expect(conf.split('\n')).toContain('objectstore.backend = file');
    expect((await stat(hsm.confPath)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'tokens'))).mode & 0o777).toBe(0o700);
    // softhsm2-util made the token in that folder.
    expect(await readdir(join(dir, 'tokens'))).toHaveLength(1);
  });

  it('reports what softhsm2-util refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kw-provision-'));
    await expect(provisionSoftHsmToken(dir, 'dev-token', '1', '5678')).rejects.toThrow(/^softhsm2-util --init-token failed: .*PIN/);
  });
});
