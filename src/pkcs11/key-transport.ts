import { constants, createPublicKey, type KeyObject, publicEncrypt } from 'node:crypto';
import pkcs11js from 'pkcs11js';

/**
 * Key transport: how a key known outside the token (the root key rebuilt from shares) enters it
 * without a plaintext C_CreateObject, which FIPS-mode modules refuse. The token makes an RSA key
 * pair; the key is encrypted to its public half with RSA-OAEP in software and C_UnwrapKey'd with
 * the private half, which never leaves the token.
 */
export interface OaepChoice {
  /** node:crypto's name for the hash. */
  hash: 'sha256' | 'sha1';
  hashAlg: number;
  mgf: number;
}

/** In order of preference: SHA-256 where the module takes it (SoftHSM2 2.6 takes only SHA-1 for OAEP). */
export const OAEP_CHOICES: readonly OaepChoice[] = [
  { hash: 'sha256', hashAlg: pkcs11js.CKM_SHA256, mgf: pkcs11js.CKG_MGF1_SHA256 },
  { hash: 'sha1', hashAlg: pkcs11js.CKM_SHA_1, mgf: pkcs11js.CKG_MGF1_SHA1 },
];

/** The CKRs a module answers when it does not take an OAEP hash: try the next one. */
export const OAEP_REFUSALS = new Set(['CKR_ARGUMENTS_BAD', 'CKR_MECHANISM_PARAM_INVALID', 'CKR_MECHANISM_INVALID']);

export function oaepMechanism(choice: OaepChoice): pkcs11js.Mechanism {
  return {
    mechanism: pkcs11js.CKM_RSA_PKCS_OAEP,
    parameter: { type: pkcs11js.CK_PARAMS_RSA_OAEP, hashAlg: choice.hashAlg, mgf: choice.mgf, source: 1 } as pkcs11js.RsaOAEP,
  };
}

/** The public key from the modulus and exponent the token reports. */
export function rsaPublicKey(modulus: Buffer, exponent: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'RSA', n: modulus.toString('base64url'), e: exponent.toString('base64url') }, format: 'jwk' });
}

/** `key` encrypted to the transport key (OpenSSL wipes its padded copy). */
export function encryptForTransport(publicKey: KeyObject, choice: OaepChoice, key: Buffer): Buffer {
  return publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: choice.hash }, key);
}
