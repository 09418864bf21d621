import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface SoftHsmToken {
  /** The softhsm2.conf to point SOFTHSM2_CONF at (read once, at C_Initialize). */
  confPath: string;
  label: string;
  pin: string;
}

/**
 * Creates a SoftHSM2 token store under `dir` and initializes one token in it, for dev mode
 * and tests. A real HSM is provisioned by its own tools; keyward only needs its label and PIN.
 */
export async function provisionSoftHsmToken(dir: string, label: string, pin: string, soPin: string): Promise<SoftHsmToken> {
  const tokenDir = join(dir, 'tokens');
  await mkdir(tokenDir, { recursive: true, mode: 0o700 });
  const confPath = join(dir, 'softhsm2.conf');
  await writeFile(confPath, `directories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`, {
    mode: 0o600,
  });
  const util = ['/usr/bin/softhsm2-util', '/usr/local/bin/softhsm2-util'].find((p) => existsSync(p)) ?? 'softhsm2-util';
  const result = spawnSync(util, ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', soPin], {
    env: { ...process.env, SOFTHSM2_CONF: confPath },
    encoding: 'utf8',
  });
  if (result.error) {
    throw new Error(`cannot run softhsm2-util (${result.error.message}); install SoftHSM2 with scripts/setup.sh or "apt-get install softhsm2"`);
  }
  if (result.status !== 0) throw new Error(`softhsm2-util --init-token failed: ${result.stderr.trim() || result.stdout.trim()}`);
  return { confPath, label, pin };
}
