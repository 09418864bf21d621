import pkcs11js from 'pkcs11js';
import type { KeyWrapAlgorithm } from './key-wrap.js';

/** What a key is for, in Vault transit's names; keyward's root and keyring keys are `aes256-gcm96` too. */
export type KeyType = 'aes256-gcm96' | 'hmac' | 'ecdsa-p256' | 'ecdsa-p384' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096' | 'ed25519';
export type AsymmetricKeyType = Exclude<KeyType, 'aes256-gcm96' | 'hmac'>;

/** What the token holds: which template a working copy is unwrapped (or found) with, and which mechanisms it takes. */
export type KeyKind = 'aes' | 'hmac' | 'ec' | 'rsa' | 'ed25519';

/** PKCS#11 3.0 numbers that pkcs11js 2.1.7 has no constants for. */
export const CKK_EC_EDWARDS = 0x40;
export const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
export const CKM_EDDSA = 0x1057;

export interface Curve {
  /** CKA_EC_PARAMS: the curve's OID, DER-encoded. */
  params: Buffer;
  /** The JWK `crv`, for node:crypto. */
  jwk: 'P-256' | 'P-384';
  /** node:crypto's (OpenSSL's) name, as KeyObject.asymmetricKeyDetails gives it. */
  openssl: 'prime256v1' | 'secp384r1';
  /** Bytes of a coordinate, and of each of r and s in a raw signature. */
  fieldBytes: number;
}

interface KeyTypeSpec {
  kind: KeyKind;
  /** The type's number in a typed blob; 0 for AES keys, whose blobs stay as key-wrap.ts makes them. */
  blobId: number;
  curve?: Curve;
  modulusBits?: number;
}

const P256: Curve = { params: Buffer.from('06082a8648ce3d030107', 'hex'), jwk: 'P-256', openssl: 'prime256v1', fieldBytes: 32 };
const P384: Curve = { params: Buffer.from('06052b81040022', 'hex'), jwk: 'P-384', openssl: 'secp384r1', fieldBytes: 48 };

export const KEY_TYPES: Readonly<Record<KeyType, KeyTypeSpec>> = {
  'aes256-gcm96': { kind: 'aes', blobId: 0 },
  hmac: { kind: 'hmac', blobId: 1 },
  'ecdsa-p256': { kind: 'ec', blobId: 2, curve: P256 },
  'ecdsa-p384': { kind: 'ec', blobId: 3, curve: P384 },
  'rsa-2048': { kind: 'rsa', blobId: 4, modulusBits: 2048 },
  'rsa-3072': { kind: 'rsa', blobId: 5, modulusBits: 3072 },
  'rsa-4096': { kind: 'rsa', blobId: 6, modulusBits: 4096 },
  ed25519: { kind: 'ed25519', blobId: 7 },
};

/** Ed25519's CKA_EC_PARAMS: the OID 1.3.101.112 (RFC 8410), or the PrintableString "edwards25519" that OpenSC writes. */
export const ED25519_PARAMS = Buffer.from('06032b6570', 'hex');
const ED25519_PARAMS_NAMED = Buffer.from('130c656477617264733235353139', 'hex');

export const CKK_OF_KIND: Readonly<Record<KeyKind, number>> = {
  aes: pkcs11js.CKK_AES,
  hmac: pkcs11js.CKK_GENERIC_SECRET,
  ec: pkcs11js.CKK_EC,
  rsa: pkcs11js.CKK_RSA,
  ed25519: CKK_EC_EDWARDS,
};

export function isKeyType(type: string): type is KeyType {
  return Object.hasOwn(KEY_TYPES, type);
}

export function isAsymmetric(type: KeyType): type is AsymmetricKeyType {
  return type !== 'aes256-gcm96' && type !== 'hmac';
}

export function curveOf(type: KeyType): Curve {
  const curve = KEY_TYPES[type].curve;
  if (!curve) throw new Error(`${type} is not an elliptic-curve key type`);
  return curve;
}

/** The mechanism that generates a key pair of `type` (its curve or size comes from the public template). */
export function keyPairMechanism(type: AsymmetricKeyType): number {
  return { ec: pkcs11js.CKM_EC_KEY_PAIR_GEN, rsa: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN, ed25519: CKM_EC_EDWARDS_KEY_PAIR_GEN }[KEY_TYPES[type].kind as 'ec' | 'rsa' | 'ed25519'];
}

export function modulusBitsOf(type: KeyType): number {
  const bits = KEY_TYPES[type].modulusBits;
  if (!bits) throw new Error(`${type} is not an RSA key type`);
  return bits;
}

function typeWhere(match: (spec: KeyTypeSpec) => boolean): KeyType | undefined {
  return (Object.keys(KEY_TYPES) as KeyType[]).find((type) => match(KEY_TYPES[type]));
}

/** The key type whose curve CKA_EC_PARAMS names, for a key of PKCS#11 type `ckk`. */
export function typeOfCurve(ckk: number, params: Buffer): AsymmetricKeyType | undefined {
  if (ckk === CKK_EC_EDWARDS) return params.equals(ED25519_PARAMS) || params.equals(ED25519_PARAMS_NAMED) ? 'ed25519' : undefined;
  if (ckk !== pkcs11js.CKK_EC) return undefined;
  return typeWhere((spec) => spec.curve?.params.equals(params) === true) as AsymmetricKeyType | undefined;
}

/** The ECDSA key type of a curve by node:crypto's name for it. */
export function typeOfNamedCurve(name: string | undefined): AsymmetricKeyType | undefined {
  return typeWhere((spec) => spec.curve?.openssl === name) as AsymmetricKeyType | undefined;
}

/** The RSA key type of a modulus size. */
export function typeOfModulus(bits: number | undefined): AsymmetricKeyType | undefined {
  return typeWhere((spec) => spec.modulusBits === bits) as AsymmetricKeyType | undefined;
}

/**
 * A request the key, or this module, cannot serve as asked: a managed key that is missing, ambiguous
 * or may not be used, an input the key cannot take, a key type the module cannot keep wrapped. Not a
 * token failure: the recovery ladder passes it through untried, and callers answer 400.
 */
export class KeyRequestError extends Error {
  override readonly name = 'KeyRequestError';
}

/**
 * Blobs of keys other than AES keys name their type, so loadKey unwraps them with the right
 * template: a version byte (2), the type's number, the key-wrap algorithm (numbered as key-wrap.ts
 * numbers it), then the wrapped key. AES blobs keep key-wrap.ts's encoding: 40 bytes (untagged) or
 * 42 starting with 1. A typed blob is 3 + 8n bytes long, never 40 or 42.
 */
const TYPED_BLOB_VERSION = 2;
const TYPED_HEADER_BYTES = 3;
const UNTAGGED_AES_BLOB_BYTES = 40;
const ALGORITHM_IDS: Record<KeyWrapAlgorithm, number> = { rfc5649: 1, rfc3394: 2 };

export function encodeTypedBlob(type: KeyType, algorithm: KeyWrapAlgorithm, wrapped: Buffer): Buffer {
  if (type === 'aes256-gcm96') throw new Error('AES key blobs are encoded by key-wrap.ts');
  return Buffer.concat([Buffer.from([TYPED_BLOB_VERSION, KEY_TYPES[type].blobId, ALGORITHM_IDS[algorithm]]), wrapped]);
}

export function isTypedBlob(blob: Buffer): boolean {
  return blob[0] === TYPED_BLOB_VERSION && blob.length !== UNTAGGED_AES_BLOB_BYTES;
}

/** The type, wrap algorithm and wrapped bytes of a typed blob. */
export function decodeTypedBlob(blob: Buffer): { type: KeyType; algorithm: KeyWrapAlgorithm; wrapped: Buffer } {
  if (blob.length <= TYPED_HEADER_BYTES) throw new Error(`a wrapped key of ${blob.length} bytes is too short to hold a key`);
  const type = typeWhere((spec) => spec.kind !== 'aes' && spec.blobId === blob[1]);
  if (!type) throw new Error(`a wrapped key names an unknown key type (${blob[1]})`);
  const algorithm = (Object.keys(ALGORITHM_IDS) as KeyWrapAlgorithm[]).find((a) => ALGORITHM_IDS[a] === blob[2]);
  if (!algorithm) throw new Error(`a wrapped key names an unknown key-wrap algorithm (${blob[2]})`);
  return { type, algorithm, wrapped: blob.subarray(TYPED_HEADER_BYTES) };
}
