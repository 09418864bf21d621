import { InvalidRequestError } from '../../core/errors.js';
import { isAsymmetric, isKeyType, KEY_TYPES, type KeyType } from '../../pkcs11/key-types.js';
import type { HashName } from '../../pkcs11/signatures.js';

/** Vault's hash_algorithm / algorithm names for signing and HMAC. */
const HASH_NAMES: readonly HashName[] = ['sha1', 'sha2-224', 'sha2-256', 'sha2-384', 'sha2-512'];

export interface Capabilities {
  supports_encryption: boolean;
  supports_decryption: boolean;
  supports_derivation: boolean;
  supports_signing: boolean;
}

export function capabilitiesOf(type: KeyType): Capabilities {
  const aes = type === 'aes256-gcm96';
  // keyward encrypts only with AES-GCM: RSA-OAEP encryption of application data is not offered.
  return { supports_encryption: aes, supports_decryption: aes, supports_derivation: false, supports_signing: isAsymmetric(type) };
}

export function parseKeyType(v: unknown): KeyType {
  if (v === undefined || v === null || v === '') return 'aes256-gcm96';
  if (typeof v === 'string' && isKeyType(v)) return v;
  throw new InvalidRequestError(`unsupported key type "${String(v)}": keyward offers ${Object.keys(KEY_TYPES).join(', ')}`);
}

export function parseHash(v: unknown, field: string, fallback: HashName = 'sha2-256'): HashName {
  if (v === undefined || v === null || v === '') return fallback;
  if (typeof v === 'string' && (HASH_NAMES as readonly string[]).includes(v)) return v as HashName;
  throw new InvalidRequestError(`unsupported ${field} "${String(v)}": use one of ${HASH_NAMES.join(', ')}`);
}
