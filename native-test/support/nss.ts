import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestToken } from './softhsm.js';

/** Debian's NSS softokn, a second PKCS#11 module (libnss3; its database tool comes with libnss3-tools). */
export const NSS_SOFTOKN = '/usr/lib/x86_64-linux-gnu/libsoftokn3.so';
export const NSS_TOKEN_LABEL = 'NSS Certificate DB';

/** An NSS token: a fresh database whose user PIN is random, and the library parameters that name it. */
export interface NssToken extends TestToken {
  libraryParameters: string;
}

/**
 * A new NSS database (`certutil -N`, PIN from a file) in a temp dir. softokn finds it through
 * C_Initialize's library parameters, which keyward takes from `library_parameters`.
 */
export async function freshNssToken(): Promise<NssToken> {
  if (!existsSync(NSS_SOFTOKN)) throw new Error(`${NSS_SOFTOKN} is missing (Debian's libnss3; scripts/setup.sh installs it)`);
  const dir = await mkdtemp(join(tmpdir(), 'keyward-nss-'));
  const pin = randomBytes(6).toString('hex');
  await writeFile(join(dir, 'pin'), `${pin}\n`, { mode: 0o600 });
  execFileSync('certutil', ['-N', '-d', `sql:${dir}`, '-f', join(dir, 'pin')], { stdio: 'pipe' });
  return {
    dir,
    // NSS reads no SoftHSM2 configuration; a server given this one would fail loudly if it tried.
    confPath: join(dir, 'no-softhsm2.conf'),
    config: { lib: NSS_SOFTOKN, tokenLabel: NSS_TOKEN_LABEL, pin, keyLabel: 'keyward-seal' },
    libraryParameters: `configdir='sql:${dir}' certPrefix='' keyPrefix='' secmod='secmod.db' flags=`,
  };
}

/** The seal block for a server on an NSS token, as an operator would write it. */
export function nssSealHcl(token: NssToken): string {
  return `seal "pkcs11" {
  lib                = "${token.config.lib}"
  token_label        = "${token.config.tokenLabel}"
  library_parameters = "${token.libraryParameters}"
  generate_key       = true
}
`;
}
