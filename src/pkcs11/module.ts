import { endianness } from 'node:os';
import pkcs11js from 'pkcs11js';
import { asTokenError, TokenError } from './errors.js';

export const DEFAULT_PKCS11_LIB = '/usr/lib/softhsm/libsofthsm2.so';

export interface SlotSelector {
  tokenLabel?: string;
  slot?: number;
}

/** Loads the PKCS#11 library and initializes it with OS locking (without it SoftHSM disables its locks). */
export function loadModule(libPath: string, libraryParameters?: string): pkcs11js.PKCS11 {
  const p11 = new pkcs11js.PKCS11();
  try {
    p11.load(libPath);
  } catch (err) {
    throw new Error(`cannot load PKCS#11 library ${libPath}: ${(err as Error).message}`);
  }
  initializeModule(p11, libraryParameters);
  return p11;
}

/**
 * C_Initialize, tolerating a module another instance in this process already initialized.
 * `libraryParameters` (NSS softokn's configdir and friends) go in CK_C_INITIALIZE_ARGS' reserved
 * field, as NSS expects.
 */
export function initializeModule(p11: pkcs11js.PKCS11, libraryParameters?: string): void {
  try {
    p11.C_Initialize(initializeOptions(libraryParameters));
  } catch (err) {
    const te = asTokenError(err, 'C_Initialize');
    if (te.ckr !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw te;
  }
}

/**
 * The options for C_Initialize. pkcs11js 2.1.7 drops the last character of `libraryParameters`
 * (it copies length - 1 bytes): a trailing space is what it drops.
 */
export function initializeOptions(libraryParameters?: string): pkcs11js.InitializationOptions {
  const flags = pkcs11js.CKF_OS_LOCKING_OK;
  return libraryParameters ? { flags, libraryParameters: `${libraryParameters} ` } : { flags };
}

/** Slot handles are native CK_ULONGs in 8-byte buffers. */
export function slotId(handle: Buffer): bigint {
  return endianness() === 'LE' ? handle.readBigUInt64LE(0) : handle.readBigUInt64BE(0);
}

/** Finds the slot holding the token; by label unless a slot id is configured (slot ids change when SoftHSM re-initializes tokens). */
export function findSlot(p11: pkcs11js.PKCS11, sel: SlotSelector): Buffer {
  let slots: Buffer[];
  try {
    slots = p11.C_GetSlotList(true);
  } catch (err) {
    throw asTokenError(err, 'C_GetSlotList');
  }
  if (sel.slot !== undefined) {
    const want = BigInt(sel.slot);
    const found = slots.find((s) => slotId(s) === want);
    if (!found) throw new TokenError('CKR_SLOT_ID_INVALID', 3, `C_GetSlotList (no token in slot ${sel.slot})`);
    return found;
  }
  const label = sel.tokenLabel ?? '';
  for (const s of slots) {
    let tokenLabel: string;
    try {
      tokenLabel = p11.C_GetTokenInfo(s).label.trim();
    } catch {
      continue;
    }
    if (tokenLabel === label) return s;
  }
  throw new TokenError('CKR_TOKEN_NOT_RECOGNIZED', 225, `C_GetSlotList (no token labelled "${label}")`);
}
