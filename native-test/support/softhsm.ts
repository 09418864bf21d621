import pkcs11js from 'pkcs11js';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_PKCS11_LIB, findSlot } from '../../src/pkcs11/module.js';
import { provisionSoftHsmToken } from '../../src/pkcs11/softhsm.js';
import { Token, type TokenConfig } from '../../src/pkcs11/token.js';

export interface TestToken {
  dir: string;
  confPath: string;
  config: TokenConfig;
}

/** The token this process's PKCS#11 module was pointed at, once a test used one in process. */
let processTokenConf: string | undefined;

/**
 * A fresh SoftHSM2 token in a temp dir with its own random PIN, for a server process started
 * with SOFTHSM2_CONF pointing at it. This process's environment is left alone.
 */
export async function freshToken(label = 'keyward-test'): Promise<TestToken> {
  const dir = await mkdtemp(join(tmpdir(), 'keyward-hsm-'));
  const pin = randomBytes(6).toString('hex');
  const hsm = await provisionSoftHsmToken(dir, label, pin, randomBytes(6).toString('hex'));
  return { dir, confPath: hsm.confPath, config: { lib: DEFAULT_PKCS11_LIB, tokenLabel: label, pin, keyLabel: 'keyward-seal' } };
}

/**
 * A fresh token for keyward code running in this process. SoftHSM2 reads SOFTHSM2_CONF once, at
 * the first C_Initialize, and keeps the application logged in while any session is open, so a
 * second token in the same process would silently be the first one, wrong PIN and all: refuse it.
 * Each test file runs in its own process (vitest `pool: 'forks'`).
 */
export async function freshProcessToken(label = 'keyward-test'): Promise<TestToken> {
  if (processTokenConf) {
    throw new Error(`this test process already uses the SoftHSM2 token of ${processTokenConf}; SoftHSM2 cannot switch tokens within a process, so use one token per test file`);
  }
  const token = await freshToken(label);
  processTokenConf = token.confPath;
  process.env.SOFTHSM2_CONF = token.confPath;
  return token;
}

/** This process's fresh token, and keyward's Token on it with the seal key generated. */
export async function processTokenWithSealKey(): Promise<{ t: TestToken; token: Token }> {
  const t = await freshProcessToken();
  const token = new Token(t.config);
  token.ensureSealKey(true);
  return { t, token };
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

/** How many secret-key session objects the application holds (every session of the process sees them all). */
export function sessionKeyCount(t: TestToken): number {
  const { p11, slot } = sideChannel(t);
  const s = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
  try {
    p11.C_FindObjectsInit(s, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_TOKEN, value: false },
    ]);
    const n = p11.C_FindObjects(s, 1000).length;
    p11.C_FindObjectsFinal(s);
    return n;
  } finally {
    p11.C_CloseSession(s);
  }
}
