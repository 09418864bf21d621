import { createPublicKey, type KeyObject, timingSafeEqual } from 'node:crypto';
import { InvalidRequestError } from '../../core/errors.js';
import { optionalBool } from '../../core/fields.js';
import { nextNonce } from '../../crypto/nonce.js';
import { IntegrityError } from '../../pkcs11/errors.js';
import { GCM_IV_BYTES, GCM_TAG_BYTES, type Token } from '../../pkcs11/token.js';
import { base64Field, decodeVersioned, encodeVersioned } from './ciphertext.js';
import { ecdsaDerToRaw, ecdsaRawToDer, type HashName, type SignOptions } from '../../pkcs11/signatures.js';
import { parseHash } from './key-types.js';
import type { TransitKeys } from './key-store.js';
import type { KeyPolicy } from './policy.js';

type Item = Record<string, unknown>;

/** Luna-style tokens append a 16-byte IV they chose; every other keeps GCM's 12 bytes. */
const APPENDED_IV_BYTES = 16;
const DATAKEY_BITS = new Set([128, 256, 512]);
const PSS_HASH_BYTES: Record<HashName, number> = { 'sha1': 20, 'sha2-224': 28, 'sha2-256': 32, 'sha2-384': 48, 'sha2-512': 64 };

/** Transit's per-item operations on a key: every use of key material is a call into the token. */
export class TransitOperations {
  constructor(
    private readonly keys: TransitKeys,
    private readonly token: Token,
  ) {}

  /** Synchronous when the key's count is reserved and the token is in-process: a batch's items then cost no promise each. */
  encrypt(policy: KeyPolicy, item: Item): Item | Promise<Item> {
    if (item.plaintext === undefined || item.plaintext === null) throw new InvalidRequestError('missing plaintext to encrypt');
    refuseDerivation(item);
    const plaintext = base64Field(item.plaintext, 'plaintext', false);
    const aad = base64Field(item.associated_data, 'associated_data', false);
    let sealed: Item | Promise<Item>;
    try {
      sealed = this.seal(policy, plaintext, aad, item.key_version);
    } catch (err) {
      plaintext.fill(0);
      throw err;
    }
    if (!(sealed instanceof Promise)) {
      plaintext.fill(0);
      return sealed;
    }
    return sealed.finally(() => plaintext.fill(0));
  }

  async decrypt(policy: KeyPolicy, item: Item): Promise<Item> {
    refuseDerivation(item);
    const plaintext = await this.open(policy, item.ciphertext, base64Field(item.associated_data, 'associated_data', false));
    try {
      return { plaintext: plaintext.toString('base64') };
    } finally {
      plaintext.fill(0);
    }
  }

  async rewrap(policy: KeyPolicy, item: Item): Promise<Item> {
    refuseDerivation(item);
    const aad = base64Field(item.associated_data, 'associated_data', false);
    const plaintext = await this.open(policy, item.ciphertext, aad);
    try {
      return await this.seal(policy, plaintext, aad, item.key_version);
    } finally {
      plaintext.fill(0);
    }
  }

  /** A data key from the token's RNG, returned sealed (and, for `plaintext`, in clear too). */
  async datakey(policy: KeyPolicy, kind: string, item: Item): Promise<Item> {
    if (kind !== 'plaintext' && kind !== 'wrapped') throw new InvalidRequestError(`invalid data key type "${kind}": use datakey/plaintext/:name or datakey/wrapped/:name`);
    const bits = item.bits === undefined ? 256 : Number(item.bits);
    if (!DATAKEY_BITS.has(bits)) throw new InvalidRequestError('bits must be 128, 256 or 512');
    const dataKey = this.token.random(bits / 8);
    try {
      const sealed = await this.seal(policy, dataKey, base64Field(item.associated_data, 'associated_data', false), item.key_version);
      return kind === 'plaintext' ? { ...sealed, plaintext: dataKey.toString('base64') } : sealed;
    } finally {
      dataKey.fill(0);
    }
  }

  async sign(policy: KeyPolicy, urlHash: string | undefined, item: Item): Promise<Item> {
    requireSigning(policy);
    const version = this.usableVersion(policy, item.key_version, 'signing');
    const input = base64Field(item.input, 'input', true);
    const opts = signatureOptions(policy, urlHash, item);
    const key = this.keys.key(policy, version);
    let signature = await this.token.signAsync(key, input, { ...opts.token, pssSaltLength: pssSaltLength(policy, opts.token.hash, item.salt_length) });
    if (opts.jws) signature = ecdsaDerToRaw(signature, policy.type === 'ecdsa-p384' ? 48 : 32);
    return { signature: encodeVersioned(version, signature, opts.jws ? 'base64url' : 'base64'), key_version: version };
  }

  /** verify/:name with `signature` (an asymmetric key) or `hmac` (any key's HMAC key). */
  async verify(policy: KeyPolicy, urlHash: string | undefined, item: Item): Promise<Item> {
    if (item.hmac !== undefined && item.signature !== undefined) throw new InvalidRequestError('give either signature or hmac, not both');
    if (item.hmac !== undefined) return { valid: await this.verifyHmac(policy, urlHash, item) };
    requireSigning(policy);
    const opts = signatureOptions(policy, urlHash, item);
    const { version, bytes } = decodeVersioned(item.signature, 'signature', opts.jws ? 'base64url' : 'base64');
    this.checkDecryptionVersion(policy, version);
    const input = base64Field(item.input, 'input', true);
    const signature = opts.jws ? ecdsaRawToDer(bytes) : bytes;
    // Vault's "auto" accepts any salt length on verification.
    const salt = item.salt_length === undefined || item.salt_length === 'auto' ? 'auto' : pssSaltLength(policy, opts.token.hash, item.salt_length);
    return { valid: this.token.verify(publicKeyOf(policy, version), input, signature, { ...opts.token, pssSaltLength: salt }) };
  }

  async hmac(policy: KeyPolicy, urlAlgorithm: string | undefined, item: Item): Promise<Item> {
    const version = this.usableVersion(policy, item.key_version, 'HMAC');
    return { hmac: encodeVersioned(version, await this.macOf(policy, version, urlAlgorithm, item)), key_version: version };
  }

  private async verifyHmac(policy: KeyPolicy, urlAlgorithm: string | undefined, item: Item): Promise<boolean> {
    const { version, bytes } = decodeVersioned(item.hmac, 'hmac');
    this.checkDecryptionVersion(policy, version);
    const mac = await this.macOf(policy, version, urlAlgorithm, item);
    return mac.length === bytes.length && timingSafeEqual(mac, bytes);
  }

  /** The HMAC of the item's `input` under a version's HMAC key, with the algorithm the URL or the item names. */
  private macOf(policy: KeyPolicy, version: number, urlAlgorithm: string | undefined, item: Item): Promise<Buffer> {
    const input = base64Field(item.input, 'input', true);
    return this.token.hmacAsync(this.keys.hmacKey(policy, version), parseHash(urlAlgorithm ?? item.algorithm ?? item.hash_algorithm, 'algorithm'), input);
  }

  private seal(policy: KeyPolicy, plaintext: Buffer, aad: Buffer, keyVersion: unknown): Item | Promise<Item> {
    requireEncryption(policy);
    const wanted = this.usableVersion(policy, keyVersion, 'encryption');
    // Most encryptions take one of this node's reserved counts without waiting for anything.
    if (policy.managed || this.keys.takeReserved(policy.name, wanted)) return this.sealAs(policy, wanted, plaintext, aad);
    return this.keys.countEncryption(policy, wanted, wanted !== policy.latest_version).then(({ policy: current, version }) => this.sealAs(current, version, plaintext, aad));
  }

  /**
   * iv ‖ ciphertext ‖ tag under a version's key, as its answer: inline on an in-process token (no
   * promise), on the session pool for a remote one, and under the IV the token chose where it picks them.
   */
  private sealAs(policy: KeyPolicy, version: number, plaintext: Buffer, aad: Buffer): Item | Promise<Item> {
    const key = this.keys.key(policy, version);
    const answer = (sealed: Buffer): Item => ({ ciphertext: encodeVersioned(version, sealed), key_version: version });
    if (this.token.ivStyle() !== 'caller') return this.token.sealAsync(key, aad, plaintext).then(({ iv, sealed }) => answer(Buffer.concat([iv, sealed])));
    // One buffer for the nonce and what the token writes after it.
    const out = Buffer.allocUnsafe(GCM_IV_BYTES + plaintext.length + GCM_TAG_BYTES);
    const iv = out.subarray(0, GCM_IV_BYTES);
    const sealed = out.subarray(GCM_IV_BYTES);
    nextNonce().copy(iv);
    if (!this.token.runsInline()) return this.token.encryptAsync(key, iv, aad, plaintext, sealed).then(() => answer(out));
    this.token.encrypt(key, iv, aad, plaintext, sealed);
    return answer(out);
  }

  private async open(policy: KeyPolicy, ciphertext: unknown, aad: Buffer): Promise<Buffer> {
    requireEncryption(policy);
    const { version, bytes } = decodeVersioned(ciphertext, 'ciphertext');
    this.checkDecryptionVersion(policy, version);
    const ivBytes = this.token.ivStyle() === 'appended' ? APPENDED_IV_BYTES : GCM_IV_BYTES;
    if (bytes.length < ivBytes + GCM_TAG_BYTES) throw new InvalidRequestError('invalid ciphertext: too short to hold a nonce and a tag');
    const key = this.keys.key(policy, version);
    try {
      return await this.token.decryptAsync(key, bytes.subarray(0, ivBytes), aad, bytes.subarray(ivBytes), `transit key ${policy.name} v${version}`);
    } catch (err) {
      // The caller's ciphertext (or associated data) is wrong: a client error, as Vault answers it.
      if (err instanceof IntegrityError) throw new InvalidRequestError('cipher: message authentication failed');
      throw err;
    }
  }

  /** The version an operation uses: `key_version`, or the latest; never below min_encryption_version. */
  private usableVersion(policy: KeyPolicy, requested: unknown, what: string): number {
    const v = requested === undefined || requested === null || requested === '' ? 0 : Number(requested);
    if (!Number.isInteger(v) || v < 0) throw new InvalidRequestError('key_version must be a whole number');
    const version = v === 0 ? policy.latest_version : v;
    if (version > policy.latest_version) throw new InvalidRequestError(`requested version ${version} for ${what} is newer than the latest (${policy.latest_version})`);
    if (policy.min_encryption_version > 0 && version < policy.min_encryption_version) {
      throw new InvalidRequestError(`requested version ${version} for ${what} is less than the minimum encryption key version (${policy.min_encryption_version})`);
    }
    this.keys.version(policy, version);
    return version;
  }

  private checkDecryptionVersion(policy: KeyPolicy, version: number): void {
    if (version < policy.min_decryption_version) throw new InvalidRequestError('ciphertext or signature version is disallowed by policy (too old)');
    if (version > policy.latest_version) throw new InvalidRequestError(`invalid version ${version}: the key's latest is ${policy.latest_version}`);
    this.keys.version(policy, version);
  }
}

interface SignatureOptions {
  token: SignOptions;
  jws: boolean;
}

function signatureOptions(policy: KeyPolicy, urlHash: string | undefined, item: Item): SignatureOptions {
  const hash = parseHash(urlHash ?? item.hash_algorithm ?? item.algorithm, 'hash_algorithm');
  const prehashed = optionalBool(item.prehashed, 'prehashed') ?? false;
  if (prehashed && policy.type === 'ed25519') throw new InvalidRequestError('ed25519 keys sign the message itself: prehashed is not allowed');
  const scheme = item.signature_algorithm ?? 'pss';
  if (scheme !== 'pss' && scheme !== 'pkcs1v15') throw new InvalidRequestError(`unsupported signature_algorithm "${String(scheme)}": use pss or pkcs1v15`);
  const marshaling = item.marshaling_algorithm ?? 'asn1';
  if (marshaling !== 'asn1' && marshaling !== 'jws') throw new InvalidRequestError(`unsupported marshaling_algorithm "${String(marshaling)}": use asn1 or jws`);
  if (marshaling === 'jws' && !policy.type.startsWith('ecdsa-')) throw new InvalidRequestError('marshaling_algorithm jws applies to ECDSA keys only');
  if (prehashed && item.input !== undefined) {
    const digest = base64Field(item.input, 'input', true);
    if (digest.length !== PSS_HASH_BYTES[hash]) throw new InvalidRequestError(`a prehashed input must be a ${hash} digest of ${PSS_HASH_BYTES[hash]} bytes, not ${digest.length}`);
  }
  return { token: { hash, prehashed, rsaScheme: scheme }, jws: marshaling === 'jws' };
}

/** Vault's salt_length as bytes: "auto" (the longest the key allows, as Go signs), "hash", or a count. */
function pssSaltLength(policy: KeyPolicy, hash: HashName, v: unknown): number | undefined {
  if (!policy.type.startsWith('rsa-')) return undefined;
  const hashBytes = PSS_HASH_BYTES[hash];
  const longest = Math.ceil((Number(policy.type.slice(4)) - 1) / 8) - hashBytes - 2;
  if (v === undefined || v === null || v === '' || v === 'auto') return longest;
  if (v === 'hash') return hashBytes;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > longest) throw new InvalidRequestError(`salt_length must be "auto", "hash" or a whole number from 0 to ${longest}`);
  return n;
}

function publicKeyOf(policy: KeyPolicy, version: number): KeyObject {
  const pem = policy.versions[String(version)]?.public_key;
  if (!pem) throw new InvalidRequestError(`transit key "${policy.name}" has no public key for version ${version}`);
  return createPublicKey(pem);
}

function requireEncryption(policy: KeyPolicy): void {
  if (policy.type !== 'aes256-gcm96') throw new InvalidRequestError(`transit key "${policy.name}" is of type ${policy.type}, which does not support encryption`);
}

function requireSigning(policy: KeyPolicy): void {
  if (policy.type === 'aes256-gcm96' || policy.type === 'hmac') throw new InvalidRequestError(`transit key "${policy.name}" is of type ${policy.type}, which does not support signing`);
}

/** keyward's transit keys are not derived: a context (or convergent nonce) would be silently ignored, so it is refused. */
function refuseDerivation(item: Item): void {
  if (item.context !== undefined && item.context !== '') throw new InvalidRequestError('context was given, but keyward transit keys are not derived keys (derived=true is not offered)');
  if (item.nonce !== undefined && item.nonce !== '') throw new InvalidRequestError('nonce was given, but keyward picks every nonce (convergent encryption is not offered)');
}
