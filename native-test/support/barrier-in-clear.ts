// What an attacker holding the shares and the HSM PIN can read: stored entries decrypted with the
// root and term keys in the clear, and K-wrapped blobs unwrapped into extractable objects. The
// memory tests look for exactly these bytes in a running server.
import { createDecipheriv } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import { decodeTypedBlob, isTypedBlob } from '../../src/pkcs11/key-types.js';
import { decodeBlob } from '../../src/pkcs11/key-wrap.js';
import { findSlot } from '../../src/pkcs11/module.js';
import type { TestToken } from './softhsm.js';

/** The file backend's entry file for a storage path (one file per entry, leaf prefixed with "_"). */
export function storedEntry(dir: string, path: string): Buffer {
  const segments = path.split('/');
  const leaf = segments.pop()!;
  return readFileSync(join(dir, 'storage', 'data', ...segments.map(encodeURIComponent), `_${leaf}`));
}

/** Decrypts a barrier value (term ‖ 0x02 ‖ nonce ‖ ciphertext ‖ tag, AAD = path) with a key in the clear. */
export function openBarrierValue(key: Buffer, path: string, value: Buffer): Buffer {
  const nonce = value.subarray(5, 17);
  const sealed = value.subarray(17);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(Buffer.from(path));
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - 16)), decipher.final()]);
}

/** A stored entry under its term: the term number is the value's first four bytes. */
export function openStoredEntry(dir: string, terms: Buffer[], path: string): Buffer {
  const value = storedEntry(dir, path);
  return openBarrierValue(terms[value.readUInt32BE(0) - 1]!, path, value);
}

/** What to read of an unwrapped key: the attribute types that hold its secret. */
export interface Unwrapping {
  template: pkcs11js.Template;
  secretAttributes: number[];
}

export const AES_KEY: Unwrapping = {
  template: [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
  ],
  secretAttributes: [pkcs11js.CKA_VALUE],
};

/**
 * Blobs wrapped by K, unwrapped through this process's own logged-in session into extractable,
 * non-sensitive session objects (K carries no CKA_UNWRAP_TEMPLATE, so SoftHSM2 lets the caller
 * choose those attributes), and the secret attributes read out of each.
 */
export function unwrapInClear(token: TestToken, blobs: Buffer[], as: Unwrapping): Buffer[][] {
  // This file's only token: SoftHSM2 reads the variable at C_Initialize.
  process.env.SOFTHSM2_CONF = token.confPath;
  const p11 = new pkcs11js.PKCS11();
  p11.load(token.config.lib);
  p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  try {
    const session = p11.C_OpenSession(findSlot(p11, token.config), pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    p11.C_Login(session, pkcs11js.CKU_USER, token.config.pin);
    p11.C_FindObjectsInit(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_LABEL, value: token.config.keyLabel },
    ]);
    const [sealKey] = p11.C_FindObjects(session, 1);
    p11.C_FindObjectsFinal(session);
    return blobs.map((blob) => {
      // Stored blobs name their key-wrap algorithm (and, but for AES keys, their type); SoftHSM2's is RFC 5649 under 0x210A.
      const wrapped = isTypedBlob(blob) ? decodeTypedBlob(blob).wrapped : decodeBlob(blob).wrapped;
      const key = p11.C_UnwrapKey(session, { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD }, sealKey!, wrapped, [
        ...as.template,
        { type: pkcs11js.CKA_TOKEN, value: false },
        { type: pkcs11js.CKA_SENSITIVE, value: false },
        { type: pkcs11js.CKA_EXTRACTABLE, value: true },
      ]);
      const attrs = p11.C_GetAttributeValue(session, key, as.secretAttributes.map((type) => ({ type })));
      p11.C_DestroyObject(session, key);
      return attrs.map((a) => Buffer.from(a.value as Buffer));
    });
  } finally {
    p11.C_Finalize();
  }
}

/** The term keys in the clear, from the keyring decrypted with the root key (index = term - 1). */
export function termKeysInClear(token: TestToken, dir: string, rootKey: Buffer): Buffer[] {
  const keyring = JSON.parse(openBarrierValue(rootKey, 'core/keyring', storedEntry(dir, 'core/keyring')).toString('utf8')) as {
    terms: Array<{ wrapped: string }>;
  };
  return unwrapInClear(token, keyring.terms.map(({ wrapped }) => Buffer.from(wrapped, 'base64')), AES_KEY).map(([value]) => value!);
}
