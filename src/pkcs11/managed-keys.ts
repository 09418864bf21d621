import type { KeyObject } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { type AsymmetricKeyType, CKK_EC_EDWARDS, CKK_OF_KIND, type KeyKind, KeyRequestError, type KeyType, typeOfCurve, typeOfModulus } from './key-types.js';
import { findObjects, flag, optionalAttribute, ulong } from './objects.js';
import { readPublicKey } from './public-keys.js';

/**
 * A key an operator made in the HSM for keyward to use in place ("bring your own key"), named by
 * CKA_LABEL, CKA_ID or both. keyward never wraps, exports or destroys it.
 */
export interface ManagedKeyRef {
  label?: string;
  id?: Buffer;
}

const AES_256_BYTES = 32;

/** `label "x"`, `id 01` or both, for messages (neither is secret). */
function refName(ref: ManagedKeyRef): string {
  return [ref.label !== undefined && `label "${ref.label}"`, ref.id !== undefined && `id ${ref.id.toString('hex')}`].filter(Boolean).join(' and ');
}

export function describeRef(ref: ManagedKeyRef): string {
  return `the key with ${refName(ref)}`;
}

/** The one private or secret token object `ref` names; anything else (none, several) is a KeyRequestError saying how many. */
export function findManagedKeyObject(p11: pkcs11js.PKCS11, s: Buffer, ref: ManagedKeyRef): { handle: Buffer; cls: number } {
  if (ref.label === undefined && ref.id === undefined) throw new KeyRequestError('a managed key is named by its label, its id, or both');
  const privateKeys = findObjects(p11, s, refTemplate(ref, pkcs11js.CKO_PRIVATE_KEY));
  const secretKeys = findObjects(p11, s, refTemplate(ref, pkcs11js.CKO_SECRET_KEY));
  const found = privateKeys.length + secretKeys.length;
  if (found === 1) return privateKeys[0] ? { handle: privateKeys[0], cls: pkcs11js.CKO_PRIVATE_KEY } : { handle: secretKeys[0]!, cls: pkcs11js.CKO_SECRET_KEY };
  if (!found) throw new KeyRequestError(`the HSM holds no private or secret key with ${refName(ref)}`);
  throw new KeyRequestError(
    `${found} keys in the HSM have ${refName(ref)} (${privateKeys.length} private, ${secretKeys.length} secret): a managed key must be the only one; name it by label and id`,
  );
}

/** The managed key again after a session loss (its handle died with the login): by its label or id, class and key type. */
export function refindManagedKey(p11: pkcs11js.PKCS11, s: Buffer, ref: ManagedKeyRef, kind: KeyKind): Buffer {
  const cls = kind === 'aes' || kind === 'hmac' ? pkcs11js.CKO_SECRET_KEY : pkcs11js.CKO_PRIVATE_KEY;
  const found = findObjects(p11, s, [...refTemplate(ref, cls), { type: pkcs11js.CKA_KEY_TYPE, value: CKK_OF_KIND[kind] }]);
  if (found.length !== 1) throw new KeyRequestError(`${describeRef(ref)} is ${found.length ? 'no longer the only one of its kind' : 'no longer'} in the HSM (${found.length} found)`);
  return found[0]!;
}

/**
 * What a managed key is, refusing one keyward must not or cannot use: extractable, not allowed the
 * operations its type needs, or of a type transit has no name for. A private key's public key comes
 * from the public-key object with the same CKA_ID, else from the private object where the module
 * exposes it there (CKA_MODULUS always, CKA_EC_POINT on some modules).
 */
export function inspectManagedKey(p11: pkcs11js.PKCS11, s: Buffer, handle: Buffer, cls: number, ref: ManagedKeyRef): { type: KeyType; publicKey: KeyObject | undefined } {
  const what = describeRef(ref);
  if (flag(p11, s, handle, pkcs11js.CKA_EXTRACTABLE)) {
    throw new KeyRequestError(`${what} is extractable (CKA_EXTRACTABLE true): keyward uses only keys that cannot leave the HSM`);
  }
  const ckk = ulong(p11, s, handle, pkcs11js.CKA_KEY_TYPE);
  const needs = (attribute: 'CKA_SIGN' | 'CKA_ENCRYPT' | 'CKA_DECRYPT', verb: string) => {
    if (!flag(p11, s, handle, pkcs11js[attribute])) throw new KeyRequestError(`${what} may not ${verb} (${attribute} is false)`);
  };
  if (cls === pkcs11js.CKO_SECRET_KEY) {
    if (ckk === pkcs11js.CKK_AES) {
      const bytes = ulong(p11, s, handle, pkcs11js.CKA_VALUE_LEN);
      if (bytes !== AES_256_BYTES) throw new KeyRequestError(`${what} is a ${bytes ?? '?'}-byte AES key; aes256-gcm96 needs 32 bytes`);
      needs('CKA_ENCRYPT', 'encrypt');
      needs('CKA_DECRYPT', 'decrypt');
      return { type: 'aes256-gcm96', publicKey: undefined };
    }
    if (ckk !== pkcs11js.CKK_GENERIC_SECRET) throw new KeyRequestError(`${what} is a secret key of type 0x${(ckk ?? 0).toString(16)}; keyward uses AES-256 and generic secret (HMAC) keys`);
    needs('CKA_SIGN', 'sign (compute an HMAC)');
    return { type: 'hmac', publicKey: undefined };
  }
  needs('CKA_SIGN', 'sign');
  if (ckk !== pkcs11js.CKK_RSA && ckk !== pkcs11js.CKK_EC && ckk !== CKK_EC_EDWARDS) {
    throw new KeyRequestError(`${what} is a private key of type 0x${(ckk ?? 0).toString(16)}; keyward uses RSA, EC (P-256, P-384) and Ed25519 keys`);
  }
  const source = publicKeySource(p11, s, handle, ckk, what);
  let type: AsymmetricKeyType | undefined;
  if (ckk === pkcs11js.CKK_RSA) {
    const modulus = optionalAttribute(p11, s, source, pkcs11js.CKA_MODULUS);
    const bits = modulus ? bitLength(modulus) : 0;
    type = typeOfModulus(bits);
    if (!type) throw new KeyRequestError(`${what} is an RSA key of ${bits || 'unknown'} bits; transit has RSA keys of 2048, 3072 and 4096 bits`);
  } else {
    const params = optionalAttribute(p11, s, handle, pkcs11js.CKA_EC_PARAMS) ?? Buffer.alloc(0);
    type = typeOfCurve(ckk, params);
    if (!type) throw new KeyRequestError(`${what} is on a curve keyward does not use (CKA_EC_PARAMS ${params.toString('hex')}); it uses P-256, P-384 and Ed25519`);
  }
  const publicKey = readPublicKey(p11, s, source, type);
  if (!publicKey) {
    throw new KeyRequestError(`no public key for ${what}: no public-key object shares its CKA_ID, and the private key does not expose its public key; import the public key with the same CKA_ID`);
  }
  return { type, publicKey };
}

/** The object to read the public key from: the one public-key object sharing the private key's CKA_ID, else the private key itself. */
function publicKeySource(p11: pkcs11js.PKCS11, s: Buffer, handle: Buffer, ckk: number, what: string): Buffer {
  const id = optionalAttribute(p11, s, handle, pkcs11js.CKA_ID);
  if (!id?.length) return handle;
  const publicKeys = findObjects(p11, s, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: ckk },
    { type: pkcs11js.CKA_ID, value: id },
  ]);
  if (publicKeys.length > 1) throw new KeyRequestError(`${publicKeys.length} public keys share the CKA_ID of ${what}; keyward cannot tell which is its own`);
  return publicKeys[0] ?? handle;
}

function refTemplate(ref: ManagedKeyRef, cls: number): pkcs11js.Template {
  return [
    { type: pkcs11js.CKA_CLASS, value: cls },
    { type: pkcs11js.CKA_TOKEN, value: true },
    ...(ref.label !== undefined ? [{ type: pkcs11js.CKA_LABEL, value: ref.label }] : []),
    ...(ref.id !== undefined ? [{ type: pkcs11js.CKA_ID, value: ref.id }] : []),
  ];
}

function bitLength(unsigned: Buffer): number {
  const start = unsigned.findIndex((b) => b !== 0);
  return start < 0 ? 0 : (unsigned.length - start) * 8 - Math.clz32(unsigned[start]!) + 24;
}
