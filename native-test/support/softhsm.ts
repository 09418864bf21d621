import pkcs11js from 'pkcs11js';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_PKCS11_LIB, findSlot } from '../../src/pkcs11/module.js';
import { provisionSoftHsmToken } from '../../src/pkcs11/softhsm.js';
import type { TokenConfig } from '../../src/pkcs11/token.js';

export interface TestToken {
  dir: string;
  confPath: string;
  config: TokenConfig;
}

/**
 * A fresh SoftHSM2 token in a temp dir, with SOFTHSM2_CONF pointing at it for this process
 * (each test file runs in its own process, and SoftHSM reads the variable at C_Initialize).
 */
export async function freshToken(label = 'keyward-test'): Promise<TestToken> {
  const dir = await mkdtemp(join(tmpdir(), 'keyward-hsm-'));
  const pin = randomBytes(6).toString('hex');
  const hsm = await provisionSoftHsmToken(dir, label, pin, randomBytes(6).toString('hex'));
  process.env.SOFTHSM2_CONF = hsm.confPath;
  return { dir, confPath: hsm.confPath, config: { lib: DEFAULT_PKCS11_LIB, tokenLabel: label, pin, keyLabel: 'keyward-seal' } };
}

/** A second handle on the same process-wide module, to close sessions or finalize behind keyward's back. */
export function sideChannel(t: TestToken): { p11: pkcs11js.PKCS11; slot: Buffer } {
  const p11 = new pkcs11js.PKCS11();
  p11.load(t.config.lib);
  try {
    p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch {
    // Already initialized by keyward's Token: the module is shared within the process.
  }
  return { p11, slot: findSlot(p11, t.config) };
}
