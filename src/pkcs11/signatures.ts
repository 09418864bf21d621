import { constants, createHash, type KeyObject, verify as nodeVerify } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { type AsymmetricKeyType, CKM_EDDSA, curveOf, KEY_TYPES, type KeyType, KeyRequestError, modulusBitsOf } from './key-types.js';

/** Vault transit's hash names. */
export type HashName = 'sha1' | 'sha2-224' | 'sha2-256' | 'sha2-384' | 'sha2-512';

export interface SignOptions {
  /** The hash signed (ignored for Ed25519, which signs the message itself). */
  hash: HashName;
  /** `input` is the hash's digest of the message, not the message. */
  prehashed: boolean;
  /** RSA only: PSS (the default, as Vault's) or PKCS#1 v1.5. */
  rsaScheme?: 'pss' | 'pkcs1v15';
  /**
   * RSA-PSS salt length, `auto` unless given (Vault's default). Signing, `auto` and `hash` are the
   * hash's length; verifying, `auto` accepts any length (see verifyInSoftware, verificationRequest).
   */
  pssSaltLength?: 'auto' | 'hash' | number;
}

interface Hash {
  node: string;
  bytes: number;
  /** The digest mechanism, as CK_RSA_PKCS_PSS_PARAMS names the hash. */
  ckm: number;
  mgf: number;
  hmac: number;
  /** DER of DigestInfo up to the digest (RFC 8017 §9.2, note 1). */
  digestInfo: Buffer;
}

const hex = (s: string) => Buffer.from(s, 'hex');

const HASHES: Readonly<Record<HashName, Hash>> = {
  sha1: { node: 'sha1', bytes: 20, ckm: pkcs11js.CKM_SHA_1, mgf: pkcs11js.CKG_MGF1_SHA1, hmac: pkcs11js.CKM_SHA_1_HMAC, digestInfo: hex('3021300906052b0e03021a05000414') },
  'sha2-224': { node: 'sha224', bytes: 28, ckm: pkcs11js.CKM_SHA224, mgf: pkcs11js.CKG_MGF1_SHA224, hmac: pkcs11js.CKM_SHA224_HMAC, digestInfo: hex('302d300d06096086480165030402040500041c') },
  'sha2-256': { node: 'sha256', bytes: 32, ckm: pkcs11js.CKM_SHA256, mgf: pkcs11js.CKG_MGF1_SHA256, hmac: pkcs11js.CKM_SHA256_HMAC, digestInfo: hex('3031300d060960864801650304020105000420') },
  'sha2-384': { node: 'sha384', bytes: 48, ckm: pkcs11js.CKM_SHA384, mgf: pkcs11js.CKG_MGF1_SHA384, hmac: pkcs11js.CKM_SHA384_HMAC, digestInfo: hex('3041300d060960864801650304020205000430') },
  'sha2-512': { node: 'sha512', bytes: 64, ckm: pkcs11js.CKM_SHA512, mgf: pkcs11js.CKG_MGF1_SHA512, hmac: pkcs11js.CKM_SHA512_HMAC, digestInfo: hex('3051300d060960864801650304020305000440') },
};

export function hashOf(name: HashName): Hash {
  if (!Object.hasOwn(HASHES, name)) throw new KeyRequestError(`unknown hash algorithm "${name}"`);
  return HASHES[name];
}

/** What goes to C_SignInit and C_Sign for a signature, and how the token's signature becomes the one returned. */
export interface SigningRequest {
  mechanism: pkcs11js.Mechanism;
  data: Buffer;
  encode(signature: Buffer): Buffer;
}

/**
 * Hashing is done here, in software (it involves no key): ECDSA signs the digest (CKM_ECDSA) and
 * returns DER, RSA-PSS signs the digest (CKM_RSA_PKCS_PSS), RSA PKCS#1 v1.5 signs DigestInfo
 * (CKM_RSA_PKCS), Ed25519 signs the message (CKM_EDDSA). Inputs the token would refuse are refused
 * here: SoftHSM2 answers some with CKR_GENERAL_ERROR, which would re-initialize the module.
 */
export function signingRequest(type: KeyType, input: Buffer, opts: SignOptions): SigningRequest {
  const kind = KEY_TYPES[type].kind;
  if (kind === 'ed25519') {
    if (opts.prehashed) throw new KeyRequestError('Ed25519 signs the message itself: it takes no prehashed input');
    return { mechanism: { mechanism: CKM_EDDSA }, data: input, encode: (s) => s };
  }
  if (kind !== 'ec' && kind !== 'rsa') throw new KeyRequestError(`a ${type} key does not sign`);
  const hash = hashOf(opts.hash);
  const digest = digestOf(hash, opts, input);
  if (kind === 'ec') {
    const { fieldBytes } = curveOf(type);
    return {
      mechanism: { mechanism: pkcs11js.CKM_ECDSA },
      data: digest,
      encode: (raw) => {
        if (raw.length !== 2 * fieldBytes) throw new Error(`the token gave a ${raw.length}-byte ECDSA signature for a ${type} key`);
        return ecdsaRawToDer(raw);
      },
    };
  }
  if (rsaScheme(opts) === 'pkcs1v15') return { mechanism: { mechanism: pkcs11js.CKM_RSA_PKCS }, data: Buffer.concat([hash.digestInfo, digest]), encode: (s) => s };
  const maxSalt = maxSaltLength(hash, modulusBitsOf(type));
  const salt = typeof opts.pssSaltLength === 'number' ? checkedSaltLength(opts.pssSaltLength, maxSalt) : hash.bytes;
  return { mechanism: pss(hash, salt), data: digest, encode: (s) => s };
}

/** Verifies a signature over a message with node:crypto: ECDSA signatures DER-encoded, a PSS salt of `auto` of any length. */
export function verifyInSoftware(type: AsymmetricKeyType, publicKey: KeyObject, message: Buffer, signature: Buffer, opts: SignOptions): boolean {
  const kind = KEY_TYPES[type].kind;
  if (kind === 'ed25519') return nodeVerify(null, message, publicKey, signature);
  const hash = hashOf(opts.hash).node;
  if (kind === 'ec') return nodeVerify(hash, message, { key: publicKey, dsaEncoding: 'der' }, signature);
  if (rsaScheme(opts) === 'pkcs1v15') return nodeVerify(hash, message, { key: publicKey, padding: constants.RSA_PKCS1_PADDING }, signature);
  const salt = opts.pssSaltLength ?? 'auto';
  const saltLength =
    salt === 'auto' ? constants.RSA_PSS_SALTLEN_AUTO : salt === 'hash' ? constants.RSA_PSS_SALTLEN_DIGEST : checkedSaltLength(salt, maxSaltLength(hashOf(opts.hash), modulusBitsOf(type)));
  return nodeVerify(hash, message, { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }, signature);
}

/** What C_VerifyInit and C_Verify get to verify a signature over a digest: each mechanism is tried until one verifies. */
export interface VerificationRequest {
  mechanisms: pkcs11js.Mechanism[];
  data: Buffer;
  signature: Buffer;
}

/**
 * The verification of a signature over a digest, which node:crypto cannot do (it verifies over
 * messages only), for the token. A PSS salt of `auto` is tried as the hash's length, then as the
 * largest the key allows (what Go and Vault sign with): a PKCS#11 PSS verification needs the length.
 * Undefined when the signature cannot be one (empty, or not DER for ECDSA).
 */
export function verificationRequest(type: AsymmetricKeyType, digest: Buffer, signature: Buffer, opts: SignOptions): VerificationRequest | undefined {
  const kind = KEY_TYPES[type].kind;
  if (kind === 'ed25519') throw new KeyRequestError('Ed25519 signs the message itself: it takes no prehashed input');
  const hash = hashOf(opts.hash);
  digestOf(hash, opts, digest);
  if (!signature.length) return undefined;
  if (kind === 'ec') {
    let raw: Buffer;
    try {
      raw = ecdsaDerToRaw(signature, curveOf(type).fieldBytes);
    } catch {
      return undefined;
    }
    return { mechanisms: [{ mechanism: pkcs11js.CKM_ECDSA }], data: digest, signature: raw };
  }
  if (rsaScheme(opts) === 'pkcs1v15') return { mechanisms: [{ mechanism: pkcs11js.CKM_RSA_PKCS }], data: Buffer.concat([hash.digestInfo, digest]), signature };
  const maxSalt = maxSaltLength(hash, modulusBitsOf(type));
  const salt = opts.pssSaltLength ?? 'auto';
  const salts = salt === 'auto' ? [...new Set([hash.bytes, maxSalt])] : salt === 'hash' ? [hash.bytes] : [checkedSaltLength(salt, maxSalt)];
  return { mechanisms: salts.map((s) => pss(hash, s)), data: digest, signature };
}

/** The digest signed: the input itself when prehashed (then it must be a digest of the hash's length). */
function digestOf(hash: Hash, opts: SignOptions, input: Buffer): Buffer {
  if (!opts.prehashed) return createHash(hash.node).update(input).digest();
  if (input.length !== hash.bytes) throw new KeyRequestError(`a prehashed input must be a ${hash.bytes}-byte ${hash.node} digest, not ${input.length} bytes`);
  return input;
}

function rsaScheme(opts: SignOptions): 'pss' | 'pkcs1v15' {
  const scheme = opts.rsaScheme ?? 'pss';
  if (scheme !== 'pss' && scheme !== 'pkcs1v15') throw new KeyRequestError(`unknown RSA signature scheme "${String(scheme)}"`);
  return scheme;
}

function pss(hash: Hash, saltLen: number): pkcs11js.Mechanism {
  return {
    mechanism: pkcs11js.CKM_RSA_PKCS_PSS,
    parameter: { type: pkcs11js.CK_PARAMS_RSA_PSS, hashAlg: hash.ckm, mgf: hash.mgf, saltLen } as pkcs11js.RsaPSS,
  };
}

/** RFC 8017 §9.1.1: emLen - hLen - 2, with emLen = ceil((modBits - 1) / 8). */
function maxSaltLength(hash: Hash, modulusBits: number): number {
  return Math.ceil((modulusBits - 1) / 8) - hash.bytes - 2;
}

function checkedSaltLength(salt: number, max: number): number {
  if (!Number.isInteger(salt) || salt < 0 || salt > max) throw new KeyRequestError(`a PSS salt length must be 0 to ${max} for this key and hash, not ${salt}`);
  return salt;
}

/** An ECDSA signature r ‖ s (JWS, PKCS#11) as DER (X.509, Vault's default `asn1` marshaling). */
export function ecdsaRawToDer(raw: Buffer): Buffer {
  if (!raw.length || raw.length % 2) throw new KeyRequestError('a raw ECDSA signature is r ‖ s, two halves of equal length');
  const half = raw.length / 2;
  return derTlv(0x30, Buffer.concat([derInteger(raw.subarray(0, half)), derInteger(raw.subarray(half))]));
}

/**
 * A DER-encoded ECDSA signature as r ‖ s, each `fieldBytes` long. Strict: anything but the one DER
 * encoding of two non-negative integers that fit is refused, so one signature has one form.
 */
export function ecdsaDerToRaw(der: Buffer, fieldBytes: number): Buffer {
  const malformed = () => new KeyRequestError('not a DER-encoded ECDSA signature');
  let pos = 0;
  const length = (): number => {
    const first = der[pos++];
    if (first === undefined || first === 0x80 || first > 0x81) throw malformed();
    if (first < 0x80) return first;
    const n = der[pos++];
    if (n === undefined || n < 0x80) throw malformed();
    return n;
  };
  if (der[pos++] !== 0x30 || length() !== der.length - pos) throw malformed();
  const raw = Buffer.alloc(2 * fieldBytes);
  for (const end of [fieldBytes, 2 * fieldBytes]) {
    if (der[pos++] !== 0x02) throw malformed();
    const n = length();
    const value = der.subarray(pos, pos + n);
    pos += n;
    // Present, non-negative, and without a redundant leading zero byte.
    if (!n || value.length !== n || value[0]! & 0x80 || (n > 1 && value[0] === 0 && !(value[1]! & 0x80))) throw malformed();
    const magnitude = value[0] === 0 ? value.subarray(1) : value;
    if (magnitude.length > fieldBytes) throw malformed();
    magnitude.copy(raw, end - magnitude.length);
  }
  if (pos !== der.length) throw malformed();
  return raw;
}

function derInteger(unsigned: Buffer): Buffer {
  let start = 0;
  while (start < unsigned.length - 1 && unsigned[start] === 0) start++;
  const magnitude = unsigned.subarray(start);
  return derTlv(0x02, magnitude[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), magnitude]) : magnitude);
}

/** A DER element; ECDSA signatures up to P-521 need at most a one-byte long-form length. */
function derTlv(tag: number, content: Buffer): Buffer {
  if (content.length > 0xff) throw new Error('DER content too long for an ECDSA signature');
  const length = content.length < 0x80 ? [content.length] : [0x81, content.length];
  return Buffer.concat([Buffer.from([tag, ...length]), content]);
}
