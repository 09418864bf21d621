import { type KeyObject, randomBytes, timingSafeEqual } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import type { Logger } from 'pino';
import {
  asTokenError,
  failureRung,
  IntegrityError,
  isTagFailure,
  TokenError,
  TokenUnavailableError,
} from './errors.js';
import { nextNonce } from '../crypto/nonce.js';
import { FaultInjector, type FaultPlan } from './fault-injection.js';
import { findSlot, initializeModule, initializeOptions, loadModule, type SlotSelector } from './module.js';
import { encodeSignParameters, SessionPool, type PoolHost } from './session-pool.js';
import { encryptForTransport, OAEP_CHOICES, OAEP_REFUSALS, oaepMechanism, rsaPublicKey, type OaepChoice } from './key-transport.js';
import { decodeBlob, encodeBlob, KAT_KEK, KAT_KEY, KEY_WRAP_CANDIDATES, type KeyWrapAlgorithm, knownAnswer } from './key-wrap.js';
import {
  type AsymmetricKeyType,
  CKM_EC_EDWARDS_KEY_PAIR_GEN,
  CKM_EDDSA,
  decodeTypedBlob,
  encodeTypedBlob,
  isAsymmetric,
  isKeyType,
  isTypedBlob,
  keyPairMechanism,
  type KeyKind,
  KeyRequestError,
  type KeyType,
} from './key-types.js';
import { describeRef, findManagedKeyObject, inspectManagedKey, type ManagedKeyRef, refindManagedKey } from './managed-keys.js';
import { readPublicKey, tokenPublicKey, typeOfPublicKey } from './public-keys.js';
import { type HashName, hashOf, type SignOptions, type SigningRequest, signingRequest, verificationRequest, verifyInSoftware } from './signatures.js';
import { ManagedKey, TokenKey } from './token-key.js';
import {
  keyPairPublicTemplate,
  sealKeyTemplate,
  transportedKeyTemplate,
  transportedWrappingKeyTemplate,
  transportPrivateTemplate,
  transportPublicTemplate,
  verificationKeyTemplate,
  workingTemplateOf,
  wrappableHmacKeyTemplate,
  wrappableKeyTemplate,
  wrappablePrivateKeyTemplate,
} from './templates.js';

export { ManagedKey, TokenKey };
export { KeyRequestError };
export type { AsymmetricKeyType, HashName, KeyKind, KeyType, ManagedKeyRef, SignOptions };

export interface TokenConfig extends SlotSelector {
  lib: string;
  pin: string;
  keyLabel: string;
  /** Calls in flight on a session pool; 0 keeps them on the event loop; unset decides by a measured round trip. */
  maxParallel?: number;
  /** Passed to C_Initialize (NSS softokn needs its database directory this way). */
  libraryParameters?: string;
  /** Who picks AES-GCM encryption IVs: keyward (`caller`) or the token; unset decides by a probe. */
  ivPolicy?: 'caller' | 'token';
}

/**
 * Who picks AES-GCM encryption IVs. `caller`: keyward (nextNonce). FIPS-mode HSMs refuse that and
 * pick their own: `written` into the caller's IV buffer at C_EncryptInit (AWS CloudHSM, Thales
 * ProtectServer), or `appended` after the tag, 16 bytes (Thales Luna).
 */
export type IvStyle = 'caller' | 'written' | 'appended';

/** Luna's IV, after the tag. */
const APPENDED_IV_BYTES = 16;

/** Where AES-GCM calls run: inline on the event loop (in-process modules) or on a pool of threads and sessions. */
export interface TokenDispatch {
  mode: 'event-loop' | 'session-pool';
  /** Median of a few C_GetSessionInfo round trips at connect, in microseconds. */
  roundTripUs: number;
  /** Pool threads (and sessions); 0 on the event loop. */
  maxParallel: number;
  /** The token's ulMaxRwSessionCount, undefined when it sets no limit. */
  tokenSessionLimit: number | undefined;
}

/** Token.describe(): the module and token configured, and what keyward found out about them. */
export interface TokenDescription {
  library: string;
  tokenLabel: string | undefined;
  slot: number | undefined;
  sealKeyLabel: string;
  /** As configured: keyward's IVs (`caller`), the token's (`token`), or decided by a probe. */
  ivPolicy: 'caller' | 'token' | 'probe';
  /** Who picks IVs, once the first encryption probed it. */
  ivStyle: IvStyle | undefined;
  /** The key-wrap mechanism chosen for each algorithm, once the known-answer tests ran. */
  keyWrap: Record<string, string> | undefined;
  dispatch: TokenDispatch | undefined;
  connected: boolean;
}

export const GCM_TAG_BYTES = 16;
export const GCM_IV_BYTES = 12;
// pkcs11js passes a zero-length Buffer.alloc(0) as NULL, which SoftHSM rejects; a zero-length view of a real buffer is not NULL.
const EMPTY = Buffer.alloc(1).subarray(0, 0);
const MAX_BACKOFF_MS = 30_000;
/** A median round trip above this means the module is not in-process: calls go to the session pool. */
const IN_PROCESS_ROUND_TRIP_US = 50;
const DEFAULT_POOL_SIZE = 16;
/** Room for any key K wraps: an RSA-4096 private key's PKCS#8 is about 2.4 KB. */
const WRAPPED_KEY_BUFFER_BYTES = 8192;
/** Room for any signature keyward makes (an RSA-8192 one). */
const SIGNATURE_BUFFER_BYTES = 1024;
/** C_Verify's answers that mean "not a valid signature". */
const SIGNATURE_REFUSALS = new Set(['CKR_SIGNATURE_INVALID', 'CKR_SIGNATURE_LEN_RANGE']);
/** The HMAC key lengths keyward generates: a multiple of 8, since SoftHSM2's RFC 5649 wrap pads other lengths with zeros (a key would come back longer). */
const HMAC_KEY_BYTES = { min: 16, max: 512 };

/**
 * The token's own logged-in session, with the recovery ladder of PKCS11-NOTES: a failed call is
 * retried once after opening a new session (or, for library errors, re-initializing the module),
 * logging in again and re-finding K; working keys are re-unwrapped lazily from their blobs.
 *
 * Its calls are synchronous, on the event-loop thread one at a time, which also keeps SoftHSM's
 * racy object-creating calls (generate, unwrap, create, destroy) serialized. The data path
 * (encryptAsync, decryptAsync) runs there too for an in-process module, and on a SessionPool of
 * threads for a remote one (docs/HSM.md).
 */
export class Token {
  private p11: pkcs11js.PKCS11 | undefined;
  private session: Buffer | undefined;
  private sealKey: Buffer | undefined;
  private generation = 0;
  private fatal: TokenError | undefined;
  private retryAt = 0;
  private backoffMs = 250;
  private readonly live = new Set<TokenKey>();
  private faults: FaultInjector | undefined;
  private slotHandle: Buffer | undefined;
  private epoch = 0;
  private dispatchInfo: TokenDispatch | undefined;
  private pool: SessionPool | undefined;
  /** Who picks GCM IVs, probed (or configured) at the first encryption. */
  private ivStyleFound: IvStyle | undefined;
  /** The key-wrap mechanism number of each algorithm the module does, found by known-answer tests at first use. */
  private keyWrap: Map<KeyWrapAlgorithm, number> | undefined;
  /** The key-transport pair of this session (its private half a session object, so per generation). */
  private transport: { generation: number; publicKey: KeyObject; privateKey: Buffer; oaep: OaepChoice } | undefined;

  constructor(
    private readonly cfg: TokenConfig,
    private readonly log?: Logger,
  ) {}

  get connected(): boolean {
    return this.session !== undefined;
  }

  /** Resolves when the session pool's threads are up (at once without a pool); connects first. */
  async started(): Promise<void> {
    await this.connectedPool()?.started();
  }

  /** How calls are dispatched, once the first connection decided it. */
  get dispatch(): TokenDispatch | undefined {
    return this.dispatchInfo;
  }

  /** Whether calls run inline on the event loop (an in-process module), where a caller may use the synchronous methods with nothing to wait for. */
  runsInline(): boolean {
    return this.connectedPool() === undefined;
  }

  /** What an operator sees of the token: where it is, and what keyward found out about it (nothing secret). */
  describe(): TokenDescription {
    return {
      library: this.cfg.lib,
      tokenLabel: this.cfg.tokenLabel,
      slot: this.cfg.slot,
      sealKeyLabel: this.cfg.keyLabel,
      ivPolicy: this.cfg.ivPolicy ?? 'probe',
      ivStyle: this.ivStyleFound,
      keyWrap: this.keyWrap && keyWrapNames(this.keyWrap),
      dispatch: this.dispatchInfo,
      connected: this.connected,
    };
  }

  /** Whether the seal key exists in the token (connects if needed). */
  hasSealKey(): boolean {
    return this.run('C_FindObjects', () => this.findSealKey() !== undefined);
  }

  /** Creates the seal key inside the token unless one with the label exists. */
  ensureSealKey(generate: boolean): void {
    this.run('C_GenerateKey', (s) => {
      if (this.findSealKey()) return;
      if (!generate) {
        throw new TokenError('CKR_KEY_HANDLE_INVALID', 0x60, `find seal key "${this.cfg.keyLabel}" (not in token and generate_key is false)`);
      }
      this.sealKey = this.module().C_GenerateKey(s, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, sealKeyTemplate(this.cfg.keyLabel));
      this.log?.info({ keyLabel: this.cfg.keyLabel }, 'generated seal key in token');
    });
  }

  /** A new AES-256 key generated inside the token, returned as a K-wrapped blob with a working copy. */
  generateKey(): TokenKey {
    return this.run('C_GenerateKey', (s) => {
      const p11 = this.module();
      const temp = p11.C_GenerateKey(s, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, wrappableKeyTemplate());
      return this.wrapAndReplace(s, temp);
    });
  }

  /**
   * Imports raw key bytes (the root key rebuilt from shares) by key transport and zeroes them;
   * only the K-wrapped blob remains. Never a C_CreateObject with a secret value: FIPS-mode modules
   * refuse it (src/pkcs11/key-transport.ts).
   */
  importKey(raw: Buffer): TokenKey {
    try {
      return this.run('C_UnwrapKey', (s) => this.wrapAndReplace(s, this.transportIn(s, raw, transportedKeyTemplate())));
    } finally {
      raw.fill(0);
    }
  }

  /**
   * A working copy of a key from its K-wrapped blob, of the type the blob names (AES for root and
   * keyring keys); fails with IntegrityError if the blob was not wrapped by this K, and refuses a
   * blob of another kind than `kind` when given.
   */
  loadKey(blob: Buffer, kind?: KeyKind): TokenKey {
    const key = new TokenKey(Buffer.from(blob), isTypedBlob(blob) ? decodeTypedBlob(blob).type : 'aes256-gcm96');
    if (kind !== undefined && key.kind !== kind) throw new KeyRequestError(`the blob holds a key of type ${key.type}, not of kind ${kind}`);
    this.run('C_UnwrapKey', () => this.handleOf(key));
    return key;
  }

  /** Destroys the key's session object; its blob stays usable with loadKey. A managed key's object is the operator's: it is only let go. */
  releaseKey(key: TokenKey): void {
    this.live.delete(key);
    if (!(key instanceof ManagedKey) && key.handle && key.generation === this.generation && this.session && this.p11) {
      try {
        this.p11.C_DestroyObject(this.session, key.handle);
      } catch {
        // The session may already be gone, which destroyed the object with it.
      }
    }
    key.handle = undefined;
    key.generation = -1;
  }

  /**
   * A new HMAC key of `bytes` bytes generated inside the token, returned as a K-wrapped blob with a
   * working copy that signs and verifies only.
   */
  generateHmacKey(bytes = 32): TokenKey {
    if (!Number.isInteger(bytes) || bytes < HMAC_KEY_BYTES.min || bytes > HMAC_KEY_BYTES.max || bytes % 8) {
      throw new KeyRequestError(`an HMAC key is ${HMAC_KEY_BYTES.min} to ${HMAC_KEY_BYTES.max} bytes, a multiple of 8, not ${bytes}`);
    }
    return this.run('C_GenerateKey', (s) =>
      this.wrapAndReplace(s, this.module().C_GenerateKey(s, { mechanism: pkcs11js.CKM_GENERIC_SECRET_KEY_GEN }, wrappableHmacKeyTemplate(bytes)), 'hmac'),
    );
  }

  /**
   * A new key pair generated inside the token: the private half comes back K-wrapped (RFC 5649) with
   * a working copy that only signs, the public half as a node:crypto key; neither half stays in the token.
   */
  generateKeyPair(type: AsymmetricKeyType): { key: TokenKey; publicKey: KeyObject } {
    if (!isKeyType(type) || !isAsymmetric(type)) throw new KeyRequestError(`unknown key-pair type "${String(type)}"`);
    return this.run('C_GenerateKeyPair', (s) => {
      if (!this.keyWrapMechanisms(s).has('rfc5649')) {
        throw new TokenError(
          'CKR_MECHANISM_INVALID',
          0x70,
          `C_WrapKey: the token has no RFC 5649 key wrap (AES key wrap with padding), which a ${type} private key needs (RFC 3394 cannot wrap its PKCS#8 encoding)`,
        );
      }
      const p11 = this.module();
      const pair = p11.C_GenerateKeyPair(s, { mechanism: keyPairMechanism(type) }, keyPairPublicTemplate(type), wrappablePrivateKeyTemplate());
      let publicKey: KeyObject | undefined;
      try {
        publicKey = readPublicKey(p11, s, pair.publicKey, type);
      } finally {
        p11.C_DestroyObject(s, pair.publicKey);
        if (!publicKey) p11.C_DestroyObject(s, pair.privateKey);
      }
      if (!publicKey) throw new Error(`the token gave no public key for a generated ${type} key pair`);
      return { key: this.wrapAndReplace(s, pair.privateKey, type), publicKey };
    });
  }

  /** Whether the module lists EdDSA (CKM_EC_EDWARDS_KEY_PAIR_GEN and CKM_EDDSA); generating a wrapped Ed25519 key also needs it to wrap one. */
  offersEdDsa(): boolean {
    return this.run('C_GetMechanismList', () => {
      const offered = new Set(this.module().C_GetMechanismList(this.slotHandle!).map(Number));
      return offered.has(CKM_EC_EDWARDS_KEY_PAIR_GEN) && offered.has(CKM_EDDSA);
    });
  }

  /**
   * Signs `input` (the message, or its digest when prehashed) with a private key in the token:
   * ECDSA signatures DER-encoded, RSA PSS or PKCS#1 v1.5, Ed25519 (src/pkcs11/signatures.ts).
   */
  sign(key: TokenKey, input: Buffer, opts: SignOptions): Buffer {
    const request = signingRequest(key.type, input, opts);
    return this.run('C_Sign', (s) => this.signWith(s, this.handleOf(key), request));
  }

  /** sign, on the session pool for a remote module (two round trips the event loop does not wait for), else inline. */
  signAsync(key: TokenKey, input: Buffer, opts: SignOptions): Promise<Buffer> {
    return this.pooledCall(
      () => this.sign(key, input, opts),
      (pool) => {
        const request = signingRequest(key.type, input, opts);
        const { mechanism, parameter } = request.mechanism as { mechanism: number; parameter?: { hashAlg: number; mgf: number; saltLen: number } };
        return pool
          .run({ encrypt: false, sign: { mechanism, outBytes: SIGNATURE_BUFFER_BYTES }, keyHandle: this.pooledHandle(key), iv: encodeSignParameters(parameter), aad: EMPTY, input: request.data, what: 'signature' })
          .then((signature) => request.encode(signature));
      },
    );
  }

  /**
   * Whether `signature` is `publicKey`'s over `input`, as `sign` makes them. A message is verified
   * in software (node:crypto: public keys are public, and it costs the HSM nothing); a digest
   * (prehashed), which node:crypto cannot verify over, in the token, with the public key brought in
   * as a session object for the call.
   */
  verify(publicKey: KeyObject, input: Buffer, signature: Buffer, opts: SignOptions): boolean {
    const type = typeOfPublicKey(publicKey);
    if (!opts.prehashed) return verifyInSoftware(type, publicKey, input, signature, opts);
    const request = verificationRequest(type, input, signature, opts);
    if (!request) return false;
    const { ckk, material } = tokenPublicKey(type, publicKey);
    return this.run('C_Verify', (s) => {
      const p11 = this.module();
      const object = p11.C_CreateObject(s, verificationKeyTemplate(ckk, material));
      try {
        return request.mechanisms.some((mechanism) => {
          p11.C_VerifyInit(s, mechanism, object);
          try {
            return p11.C_Verify(s, request.data, request.signature);
          } catch (err) {
            if (SIGNATURE_REFUSALS.has(asTokenError(err, 'C_Verify').ckr)) return false;
            throw err;
          }
        });
      } finally {
        p11.C_DestroyObject(s, object);
      }
    });
  }

  /** HMAC of `data` under an HMAC key, computed in the token (C_Sign with CKM_SHA*_HMAC). */
  hmac(key: TokenKey, hash: HashName, data: Buffer): Buffer {
    const { mechanism, bytes } = hmacMechanism(key, hash);
    return this.run('C_Sign', (s) => {
      const p11 = this.module();
      const handle = this.handleOf(key);
      try {
        p11.C_SignInit(s, { mechanism }, handle);
      } catch (err) {
        throw hmacRefusal(asTokenError(err, 'C_SignInit'), hash);
      }
      return Buffer.from(p11.C_Sign(s, data.length ? data : EMPTY, Buffer.alloc(bytes)));
    });
  }

  /** hmac, on the session pool for a remote module, else inline. */
  hmacAsync(key: TokenKey, hash: HashName, data: Buffer): Promise<Buffer> {
    return this.pooledCall(
      () => this.hmac(key, hash, data),
      (pool) => {
        const { mechanism, bytes } = hmacMechanism(key, hash);
        return pool
          .run({ encrypt: false, sign: { mechanism, outBytes: bytes }, keyHandle: this.pooledHandle(key), iv: EMPTY, aad: EMPTY, input: data, what: 'HMAC' })
          .catch((err: unknown) => {
            throw err instanceof TokenError ? hmacRefusal(err, hash) : err;
          });
      },
    );
  }

  /**
   * A key the operator made in the HSM, by CKA_LABEL and/or CKA_ID, used in place: exactly one
   * private or secret token object must match, it must be non-extractable, and for a private key its
   * public key must verify its signature (src/pkcs11/managed-keys.ts). keyward never wraps, exports
   * or destroys it.
   */
  findManagedKey(ref: ManagedKeyRef): ManagedKey {
    return this.run('C_FindObjects', (s) => {
      const p11 = this.module();
      const { handle, cls } = findManagedKeyObject(p11, s, ref);
      if (handle.equals(this.requireSealKey())) throw new KeyRequestError(`${describeRef(ref)} is keyward's seal key, which only wraps keyward's own keys`);
      const { type, publicKey } = inspectManagedKey(p11, s, handle, cls, ref);
      if (publicKey && isAsymmetric(type)) {
        // A public-key object sharing the CKA_ID of another key would publish the wrong key: check the pair.
        const probe = Buffer.from('keyward: does this public key belong to the managed key?');
        const opts: SignOptions = { hash: 'sha2-256', prehashed: false, rsaScheme: 'pkcs1v15' };
        if (!verifyInSoftware(type, publicKey, probe, this.signWith(s, handle, signingRequest(type, probe, opts)), opts)) {
          throw new KeyRequestError(`the public key found for ${describeRef(ref)} does not verify its signatures: another key's public-key object shares its CKA_ID`);
        }
      }
      const key = new ManagedKey(ref, type, publicKey);
      this.handleOf(key);
      return key;
    });
  }

  /** AES-256-GCM inside the token; writes ciphertext ‖ tag into `out` and returns that slice. */
  encrypt(key: TokenKey, iv: Buffer, aad: Buffer, plaintext: Buffer, out: Buffer): Buffer {
    return this.run('C_Encrypt', (s) => {
      const p11 = this.module();
      p11.C_EncryptInit(s, gcm(iv, aad), this.handleOf(key));
      const result = p11.C_Encrypt(s, plaintext.length ? plaintext : EMPTY, out);
      if (result.length !== plaintext.length + GCM_TAG_BYTES) {
        throw new Error(`token returned ${result.length} bytes of GCM output for ${plaintext.length} bytes of input (no tag?)`);
      }
      return result;
    });
  }

  /** AES-256-GCM decryption inside the token; a tag that does not verify is an IntegrityError, never retried. */
  decrypt(key: TokenKey, iv: Buffer, aad: Buffer, sealed: Buffer, what: string): Buffer {
    if (sealed.length < GCM_TAG_BYTES) throw new IntegrityError(`${what}: ciphertext shorter than the GCM tag`);
    return this.run('C_Decrypt', (s) => {
      const p11 = this.module();
      p11.C_DecryptInit(s, gcm(iv, aad), this.handleOf(key));
      // The output buffer is never empty: a NULL output would turn C_Decrypt into a length query.
      const out = Buffer.allocUnsafe(sealed.length);
      try {
        return p11.C_Decrypt(s, sealed, out);
      } catch (err) {
        const te = asTokenError(err, 'C_Decrypt');
        if (isTagFailure(te) && this.sessionAlive(s)) throw new IntegrityError(what);
        throw te;
      }
    });
  }

  /**
   * AES-256-GCM where it does not block the event loop on a remote module: on the session pool
   * when there is one, else inline. Writes ciphertext ‖ tag into `out` and returns that slice.
   */
  encryptAsync(key: TokenKey, iv: Buffer, aad: Buffer, plaintext: Buffer, out: Buffer): Promise<Buffer> {
    return this.pooledCall(
      () => this.encrypt(key, iv, aad, plaintext, out),
      (pool) =>
        pool.run({ encrypt: true, keyHandle: this.pooledHandle(key), iv, aad, input: plaintext, what: 'encryption' }).then((sealed) => {
          if (sealed.length !== plaintext.length + GCM_TAG_BYTES) {
            throw new Error(`token returned ${sealed.length} bytes of GCM output for ${plaintext.length} bytes of input (no tag?)`);
          }
          sealed.copy(out);
          return out.subarray(0, sealed.length);
        }),
    );
  }

  /** AES-256-GCM decryption, off the event loop like encryptAsync; a tag that does not verify is an IntegrityError. */
  decryptAsync(key: TokenKey, iv: Buffer, aad: Buffer, sealed: Buffer, what: string): Promise<Buffer> {
    return this.pooledCall(
      () => this.decrypt(key, iv, aad, sealed, what),
      // Too short to hold a tag: refused inline, without a trip to a thread.
      sealed.length < GCM_TAG_BYTES ? undefined : (pool) => pool.run({ encrypt: false, keyHandle: this.pooledHandle(key), iv, aad, input: sealed, what }),
    );
  }

  /**
   * Whether two working keys hold the same key material, decided inside the token. Where keyward
   * picks IVs both encrypt the same block under a fixed IV and the outputs are compared in constant
   * time (no secret is encrypted, so the fixed IV does no harm). Where the token picks them, a block
   * sealed under `a` must open under `b`; a refusal is asked twice, as a module's transient failure
   * can look like a tag that does not verify.
   */
  sameKey(a: TokenKey, b: TokenKey): boolean {
    const aad = Buffer.from('keyward key comparison');
    if (this.ivStyle() === 'caller') {
      const probe = Buffer.alloc(32);
      const iv = Buffer.alloc(GCM_IV_BYTES);
      return timingSafeEqual(this.encrypt(a, iv, aad, probe, Buffer.alloc(48)), this.encrypt(b, iv, aad, probe, Buffer.alloc(48)));
    }
    const opens = () => {
      const { iv, sealed } = this.seal(a, aad, Buffer.alloc(32));
      try {
        this.decrypt(b, iv, aad, sealed, 'key comparison');
        return true;
      } catch (err) {
        if (err instanceof IntegrityError) return false;
        throw err;
      }
    };
    return opens() || opens();
  }

  /** Who picks GCM encryption IVs on this token: probed at the first call (or as configured), then fixed. */
  ivStyle(): IvStyle {
    return this.ivStyleFound ?? this.run('C_EncryptInit', (s) => this.probeIvStyle(s));
  }

  /**
   * AES-256-GCM under an IV keyward picks (nextNonce) or, on a token that picks its own, under
   * the IV it chose: returns that IV with ciphertext ‖ tag.
   */
  seal(key: TokenKey, aad: Buffer, plaintext: Buffer): { iv: Buffer; sealed: Buffer } {
    const style = this.ivStyle();
    return this.run('C_Encrypt', (s) => {
      const p11 = this.module();
      // A fresh buffer each attempt: a token that writes its IV into it refuses one that is not zero.
      const iv = style === 'caller' ? Buffer.from(nextNonce()) : Buffer.alloc(GCM_IV_BYTES);
      p11.C_EncryptInit(s, gcm(iv, aad), this.handleOf(key));
      const expected = plaintext.length + GCM_TAG_BYTES + (style === 'appended' ? APPENDED_IV_BYTES : 0);
      const out = p11.C_Encrypt(s, plaintext.length ? plaintext : EMPTY, Buffer.alloc(expected));
      if (out.length !== expected) throw new Error(`token returned ${out.length} bytes of GCM output for ${plaintext.length} bytes of input, not ${expected}`);
      if (style === 'appended') return { iv: Buffer.from(out.subarray(expected - APPENDED_IV_BYTES)), sealed: out.subarray(0, expected - APPENDED_IV_BYTES) };
      if (style === 'written' && iv.every((b) => b === 0)) {
        throw new TokenError('CKR_MECHANISM_PARAM_INVALID', 0x71, 'C_EncryptInit: the token did not write the IV it chose into the GCM parameters');
      }
      return { iv, sealed: out };
    });
  }

  /** seal, where it does not block the event loop on a remote module: token-chosen IVs are sealed inline for now. */
  sealAsync(key: TokenKey, aad: Buffer, plaintext: Buffer): Promise<{ iv: Buffer; sealed: Buffer }> {
    try {
      return Promise.resolve(this.seal(key, aad, plaintext));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Encrypts a block under a throwaway key: a module that takes a caller's IV gets `caller`; one
   * that refuses it (CKR_MECHANISM_PARAM_INVALID) is asked again with a zero IV, and where the IV it
   * chose turns up names its style.
   */
  private probeIvStyle(s: Buffer): IvStyle {
    if (this.cfg.ivPolicy === 'caller') return (this.ivStyleFound = 'caller');
    const p11 = this.module();
    const key = p11.C_GenerateKey(s, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, wrappableKeyTemplate());
    const block = Buffer.alloc(16);
    try {
      if (this.cfg.ivPolicy !== 'token') {
        try {
          p11.C_EncryptInit(s, gcm(randomBytes(GCM_IV_BYTES), EMPTY), key);
          p11.C_Encrypt(s, block, Buffer.alloc(64));
          return this.foundIvStyle('caller');
        } catch (err) {
          const te = asTokenError(err, 'C_EncryptInit');
          if (te.ckr !== 'CKR_MECHANISM_PARAM_INVALID') throw te;
        }
      }
      const iv = Buffer.alloc(GCM_IV_BYTES);
      p11.C_EncryptInit(s, gcm(iv, EMPTY), key);
      const out = p11.C_Encrypt(s, block, Buffer.alloc(64));
      if (out.length === block.length + GCM_TAG_BYTES + APPENDED_IV_BYTES) return this.foundIvStyle('appended');
      if (out.length === block.length + GCM_TAG_BYTES && !iv.every((b) => b === 0)) return this.foundIvStyle('written');
      throw new TokenError('CKR_MECHANISM_PARAM_INVALID', 0x71, 'C_EncryptInit: the token picks GCM IVs itself but neither writes the one it chose into the parameters nor appends it to the output');
    } finally {
      p11.C_DestroyObject(s, key);
    }
  }

  private foundIvStyle(style: IvStyle): IvStyle {
    this.log?.info({ ivStyle: style }, style === 'caller' ? 'GCM IVs chosen by keyward' : 'GCM IVs chosen by the token');
    this.ivStyleFound = style;
    return style;
  }

  random(bytes: number): Buffer {
    return this.run('C_GenerateRandom', (s) => this.module().C_GenerateRandom(s, Buffer.alloc(bytes)));
  }

  /** Destroys every working key, logs out and closes the sessions. The module stays loaded for the next connect. */
  disconnect(): void {
    void this.pool?.close();
    this.pool = undefined;
    for (const key of [...this.live]) this.releaseKey(key);
    if (this.session && this.p11) {
      try {
        this.p11.C_Logout(this.session);
      } catch {
        // Already logged out or the session is gone; closing it is what matters.
      }
    }
    this.dropSession();
  }

  /** Reads boolean attributes of the seal key (for status reports and tests). */
  sealKeyAttributes(): { sensitive: boolean; extractable: boolean; neverExtractable: boolean } {
    return this.run('C_GetAttributeValue', (s) => {
      const k = this.requireSealKey();
      const attrs = this.module().C_GetAttributeValue(s, k, [
        { type: pkcs11js.CKA_SENSITIVE },
        { type: pkcs11js.CKA_EXTRACTABLE },
        { type: pkcs11js.CKA_NEVER_EXTRACTABLE },
      ]);
      const bool = (i: number) => (attrs[i]?.value as Buffer | undefined)?.[0] === 1;
      return { sensitive: bool(0), extractable: bool(1), neverExtractable: bool(2) };
    });
  }

  /** This session's transport pair, made on first use: an RSA-2048 pair in the token and the OAEP hash the module takes. */
  private transportKey(s: Buffer): { publicKey: KeyObject; privateKey: Buffer; oaep: OaepChoice } {
    if (this.transport?.generation === this.generation) return this.transport;
    const p11 = this.module();
    const pair = p11.C_GenerateKeyPair(s, { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN }, transportPublicTemplate(), transportPrivateTemplate());
    let publicKey: KeyObject;
    try {
      const [modulus, exponent] = p11.C_GetAttributeValue(s, pair.publicKey, [{ type: pkcs11js.CKA_MODULUS }, { type: pkcs11js.CKA_PUBLIC_EXPONENT }]);
      publicKey = rsaPublicKey(modulus!.value as Buffer, exponent!.value as Buffer);
    } finally {
      // Software holds the public half from here on.
      p11.C_DestroyObject(s, pair.publicKey);
    }
    const oaep = this.oaepTakenBy(s, publicKey, pair.privateKey);
    this.transport = { generation: this.generation, publicKey, privateKey: pair.privateKey, oaep };
    return this.transport;
  }

  /** The first OAEP hash of OAEP_CHOICES the module unwraps with, tried on random bytes. */
  private oaepTakenBy(s: Buffer, publicKey: KeyObject, privateKey: Buffer): OaepChoice {
    const p11 = this.module();
    let refusal: TokenError | undefined;
    for (const choice of OAEP_CHOICES) {
      try {
        p11.C_DestroyObject(s, p11.C_UnwrapKey(s, oaepMechanism(choice), privateKey, encryptForTransport(publicKey, choice, randomBytes(32)), transportedKeyTemplate()));
        return choice;
      } catch (err) {
        refusal = asTokenError(err, 'C_UnwrapKey');
        if (!OAEP_REFUSALS.has(refusal.ckr)) throw refusal;
      }
    }
    throw refusal!;
  }

  /** `raw` entered into the token by key transport, as a session object made with `template`. */
  private transportIn(s: Buffer, raw: Buffer, template: pkcs11js.Template): Buffer {
    const t = this.transportKey(s);
    return this.module().C_UnwrapKey(s, oaepMechanism(t.oaep), t.privateKey, encryptForTransport(t.publicKey, t.oaep, raw), template);
  }

  /**
   * Which key-wrap algorithms the module does, and under which numbers: each candidate it lists
   * wraps RFC 3394's test key under its test KEK (both brought in by key transport), and counts
   * only if the result is what that algorithm gives in software.
   */
  private keyWrapMechanisms(s: Buffer): Map<KeyWrapAlgorithm, number> {
    if (this.keyWrap) return this.keyWrap;
    const p11 = this.module();
    const offered = new Set(p11.C_GetMechanismList(this.slotHandle!).map(Number));
    const found = new Map<KeyWrapAlgorithm, number>();
    const kek = this.transportIn(s, Buffer.from(KAT_KEK), transportedWrappingKeyTemplate());
    const data = this.transportIn(s, Buffer.from(KAT_KEY), transportedKeyTemplate());
    try {
      for (const { algorithm, mechanism } of KEY_WRAP_CANDIDATES) {
        if (!offered.has(mechanism) || found.has(algorithm)) continue;
        let out: Buffer;
        try {
          out = Buffer.from(p11.C_WrapKey(s, { mechanism }, kek, data, Buffer.alloc(64)));
        } catch (err) {
          this.log?.info({ mechanism: `0x${mechanism.toString(16)}`, ckr: asTokenError(err, 'C_WrapKey').ckr }, 'key-wrap mechanism listed but refused');
          continue;
        }
        if (out.equals(knownAnswer(algorithm))) found.set(algorithm, mechanism);
        else this.log?.info({ mechanism: `0x${mechanism.toString(16)}`, expected: algorithm }, 'key-wrap mechanism is not the algorithm its number names elsewhere; not used');
      }
    } finally {
      p11.C_DestroyObject(s, kek);
      p11.C_DestroyObject(s, data);
    }
    if (!found.size) {
      throw new TokenError('CKR_MECHANISM_INVALID', 0x70, 'C_WrapKey: the token does no AES key wrap keyward can use (RFC 5649 as 0x210A or 0x210B, RFC 3394 as 0x2109)');
    }
    this.log?.info({ keyWrap: keyWrapNames(found) }, 'key-wrap mechanisms chosen by known-answer tests');
    this.keyWrap = found;
    return found;
  }

  /** The mechanism for `algorithm`, which wrapped (or is to wrap) a blob. */
  private wrapMechanism(s: Buffer, algorithm: KeyWrapAlgorithm): pkcs11js.Mechanism {
    const mechanism = this.keyWrapMechanisms(s).get(algorithm);
    if (mechanism === undefined) {
      throw new TokenError('CKR_MECHANISM_INVALID', 0x70, `C_UnwrapKey: the token no longer does ${algorithm} key wrap, which wrapped this key`);
    }
    return { mechanism };
  }

  /** Wraps `temp` under K and destroys it; returns the key, its working copy unwrapped from the blob. */
  private wrapAndReplace(s: Buffer, temp: Buffer, type: KeyType = 'aes256-gcm96'): TokenKey {
    const p11 = this.module();
    let blob: Buffer;
    try {
      // RFC 5649 where the module does it, else RFC 3394, which fits a 32-byte key and keyward's HMAC keys
      // (key pairs are made only where there is RFC 5649).
      const algorithm: KeyWrapAlgorithm = this.keyWrapMechanisms(s).has('rfc5649') ? 'rfc5649' : 'rfc3394';
      const wrapped = this.wrapUnderSealKey(s, algorithm, temp, type);
      blob = type === 'aes256-gcm96' ? encodeBlob(algorithm, wrapped) : encodeTypedBlob(type, algorithm, wrapped);
    } finally {
      p11.C_DestroyObject(s, temp);
    }
    const key = new TokenKey(blob, type);
    this.handleOf(key);
    return key;
  }

  private wrapUnderSealKey(s: Buffer, algorithm: KeyWrapAlgorithm, temp: Buffer, type: KeyType): Buffer {
    try {
      return Buffer.from(this.module().C_WrapKey(s, this.wrapMechanism(s, algorithm), this.requireSealKey(), temp, Buffer.alloc(WRAPPED_KEY_BUFFER_BYTES)));
    } catch (err) {
      // SoftHSM2 2.6 wraps RSA and EC private keys but not EdDSA ones.
      if (asTokenError(err, 'C_WrapKey').ckr !== 'CKR_KEY_NOT_WRAPPABLE') throw err;
      throw new KeyRequestError(`the HSM cannot wrap ${type} private keys (C_WrapKey: CKR_KEY_NOT_WRAPPABLE), so keyward cannot keep one; make the key in the HSM and use it as a managed key`);
    }
  }

  /** The handle of the key's object: found again for a managed key, else unwrapped from the blob once per session generation. */
  private handleOf(key: TokenKey): Buffer {
    if (key.handle && key.generation === this.generation) return key.handle;
    key.handle = key instanceof ManagedKey ? refindManagedKey(this.module(), this.session!, key.ref, key.kind) : this.unwrapWorkingCopy(key);
    key.generation = this.generation;
    this.live.add(key);
    return key.handle;
  }

  private unwrapWorkingCopy(key: TokenKey): Buffer {
    const session = this.session!;
    try {
      const { algorithm, wrapped } = isTypedBlob(key.blob) ? decodeTypedBlob(key.blob) : decodeBlob(key.blob);
      return this.module().C_UnwrapKey(session, this.wrapMechanism(session, algorithm), this.requireSealKey(), wrapped, workingTemplateOf(key.type));
    } catch (err) {
      const te = asTokenError(err, 'C_UnwrapKey');
      // KWP's integrity check failing means the blob was not made by this seal key.
      if (te.ckr === 'CKR_WRAPPED_KEY_INVALID' || (te.ckr === 'CKR_GENERAL_ERROR' && this.sessionAlive(session))) {
        throw new IntegrityError('wrapped key does not unwrap with this seal key');
      }
      throw te;
    }
  }

  private signWith(s: Buffer, handle: Buffer, request: SigningRequest): Buffer {
    const p11 = this.module();
    p11.C_SignInit(s, request.mechanism, handle);
    return request.encode(Buffer.from(p11.C_Sign(s, request.data.length ? request.data : EMPTY, Buffer.alloc(SIGNATURE_BUFFER_BYTES))));
  }

  private requireSealKey(): Buffer {
    const k = this.sealKey ?? this.findSealKey();
    if (!k) throw new TokenError('CKR_KEY_HANDLE_INVALID', 0x60, `find seal key "${this.cfg.keyLabel}" (not in token)`);
    return k;
  }

  private findSealKey(): Buffer | undefined {
    const p11 = this.module();
    const s = this.session!;
    p11.C_FindObjectsInit(s, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_LABEL, value: this.cfg.keyLabel },
    ]);
    let found: Buffer[];
    try {
      found = p11.C_FindObjects(s, 2);
    } finally {
      p11.C_FindObjectsFinal(s);
    }
    if (found.length > 1) throw new Error(`the token holds more than one key labelled "${this.cfg.keyLabel}"; refusing to guess`);
    this.sealKey = found[0];
    return this.sealKey;
  }

  private sessionAlive(s: Buffer): boolean {
    try {
      this.module().C_GetSessionInfo(s);
      return true;
    } catch {
      return false;
    }
  }

  /** Test-only: counts, and at the planned call breaks, every PKCS#11 call from now on (undefined clears it). */
  injectFaultsForTesting(plan: FaultPlan | undefined): FaultInjector | undefined {
    this.faults = plan && new FaultInjector(plan);
    return this.faults;
  }

  private module(): pkcs11js.PKCS11 {
    if (!this.p11) throw new TokenUnavailableError('module not loaded');
    return this.faults ? this.faults.wrap(this.p11) : this.p11;
  }

  /** Runs a token call, climbing the recovery ladder once if the session, login or module was lost. */
  private run<T>(fn: string, op: (session: Buffer) => T): T {
    this.connect();
    try {
      return op(this.session!);
    } catch (err) {
      if (err instanceof IntegrityError || err instanceof TokenUnavailableError || err instanceof KeyRequestError) throw err;
      const te = asTokenError(err, fn);
      const rung = failureRung(te);
      if (rung === 'fatal') throw te;
      this.log?.warn({ ckr: te.ckr, fn: te.fn, rung }, 'PKCS#11 call failed; recovering the token session');
      if (rung === 'library' && this.pool?.busy) {
        // Re-initializing the module under calls in flight on other threads would pull it from under them.
        this.pool.recoverModule(this.epoch);
        this.dropSession();
        throw new TokenUnavailableError(`${te.message}; re-initializing the PKCS#11 module`);
      }
      this.recover(rung);
      try {
        return op(this.session!);
      } catch (again) {
        if (again instanceof IntegrityError || again instanceof KeyRequestError) throw again;
        const te2 = again instanceof TokenUnavailableError ? again : asTokenError(again, fn);
        if (te2 instanceof TokenError && failureRung(te2) === 'fatal') throw te2;
        this.dropSession();
        throw new TokenUnavailableError(`${te2.message} (after recovery)`);
      }
    }
  }

  private connect(): void {
    if (this.session) return;
    if (this.fatal) throw new TokenUnavailableError(`${this.fatal.message}; fix the configuration and restart`);
    if (Date.now() < this.retryAt) throw new TokenUnavailableError('reconnecting (backing off after a failed attempt)');
    try {
      if (!this.p11) this.p11 = loadModule(this.cfg.lib, this.cfg.libraryParameters);
      this.openSession();
    } catch (err) {
      // The module may have been lost while no session was open (a failure after recovery drops the
      // session): only re-initializing it helps, and no later call would climb that rung otherwise.
      const te = connectError(err);
      if (this.p11 && te && failureRung(te) === 'library' && !this.pool?.busy) return this.recover('library');
      this.noteConnectFailure(err);
    }
    if (!this.dispatchInfo) this.chooseDispatch();
  }

  /** A call on the session pool when there is one and `pooled` is given, else `inline`; failures as rejections. */
  private pooledCall(inline: () => Buffer, pooled: ((pool: SessionPool) => Promise<Buffer>) | undefined): Promise<Buffer> {
    try {
      const pool = this.connectedPool();
      return pool && pooled ? pooled(pool) : Promise.resolve(inline());
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** A key's handle for a pool thread, looked up (or unwrapped again after a recovery) just before the call goes out. */
  private pooledHandle(key: TokenKey): () => Buffer {
    return () => this.run('C_UnwrapKey', () => this.handleOf(key));
  }

  /** The pool when calls go to one, connected (and created) first. */
  private connectedPool(): SessionPool | undefined {
    if (!this.session) this.connect();
    if (this.dispatchInfo?.mode !== 'session-pool') return undefined;
    return (this.pool ??= new SessionPool(this.poolHost(), {
      lib: this.cfg.lib,
      initializeOptions: initializeOptions(this.cfg.libraryParameters),
      size: this.dispatchInfo.maxParallel,
      log: this.log,
    }));
  }

  /**
   * Decides once, at the first connection, where GCM calls run: a configured max_parallel wins;
   * otherwise a module that answers a trivial call in microseconds is in-process and stays on the
   * event loop (a thread hop would cost more than the call), and anything slower gets the pool.
   * The pool never asks for more sessions than the token has left.
   */
  private chooseDispatch(): void {
    const p11 = this.module();
    const roundTripUs = medianRoundTripUs(() => p11.C_GetSessionInfo(this.session!));
    let tokenSessionLimit: number | undefined;
    let sessionsLeft = Infinity;
    try {
      const info = p11.C_GetTokenInfo(this.slotHandle!);
      if (info.maxRwSessionCount > 0 && info.maxRwSessionCount < 2 ** 32) {
        tokenSessionLimit = info.maxRwSessionCount;
        sessionsLeft = Math.max(1, info.maxRwSessionCount - info.rwSessionCount);
      }
    } catch {
      // No limit known: the pool meets CKR_SESSION_COUNT, if any, by waiting.
    }
    const wanted = this.cfg.maxParallel ?? (roundTripUs < IN_PROCESS_ROUND_TRIP_US ? 0 : DEFAULT_POOL_SIZE);
    const maxParallel = Math.min(wanted, sessionsLeft);
    this.dispatchInfo = { mode: maxParallel > 0 ? 'session-pool' : 'event-loop', roundTripUs, maxParallel, tokenSessionLimit };
    this.log?.info(this.dispatchInfo, maxParallel > 0 ? 'PKCS#11 calls run on a session pool' : 'PKCS#11 calls run on the event loop');
  }

  private poolHost(): PoolHost {
    const token = this;
    return {
      get moduleEpoch() {
        return token.epoch;
      },
      get generation() {
        return token.generation;
      },
      openSession: () => {
        this.connect();
        return this.newSession(this.slotHandle!);
      },
      closeSession: (s) => {
        try {
          this.p11?.C_CloseSession(s);
        } catch {
          // Already gone, which is often why it is closed.
        }
      },
      recover: (rung) => {
        this.log?.warn({ rung }, 'recovering the PKCS#11 token for the session pool');
        this.recover(rung);
      },
    };
  }

  private recover(rung: 'session' | 'library'): void {
    this.dropSession();
    try {
      if (rung === 'session') {
        try {
          this.openSession();
          return;
        } catch (err) {
          this.log?.warn({ err: (err as Error).message }, 'new session failed; re-initializing the PKCS#11 module');
        }
      }
      this.reinitializeModule();
      this.openSession();
    } catch (err) {
      this.noteConnectFailure(err);
    }
  }

  private reinitializeModule(): void {
    const p11 = this.module();
    try {
      p11.C_Finalize();
    } catch {
      // Already finalized (possibly by someone else): initializing again is what we need.
    }
    initializeModule(p11, this.cfg.libraryParameters);
    this.epoch++;
  }

  private openSession(): void {
    const p11 = this.module();
    const slot = findSlot(p11, this.cfg);
    this.slotHandle = slot;
    const session = this.newSession(slot);
    try {
      p11.C_Login(session, pkcs11js.CKU_USER, this.cfg.pin);
    } catch (err) {
      const te = asTokenError(err, 'C_Login');
      if (te.ckr !== 'CKR_USER_ALREADY_LOGGED_IN') {
        try {
          p11.C_CloseSession(session);
        } catch {
          // Nothing more to clean up.
        }
        throw te;
      }
    }
    this.session = session;
    this.sealKey = undefined;
    this.generation++;
    this.retryAt = 0;
    this.backoffMs = 250;
  }

  /** A read-write session on `slot`; the application's login covers it. */
  private newSession(slot: Buffer): Buffer {
    try {
      return this.module().C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    } catch (err) {
      throw asTokenError(err, 'C_OpenSession');
    }
  }

  private dropSession(): void {
    if (this.session && this.p11) {
      try {
        this.p11.C_CloseSession(this.session);
      } catch {
        // The session may already be invalid (that is often why it is dropped).
      }
    }
    this.session = undefined;
    this.sealKey = undefined;
    this.generation++;
  }

  private noteConnectFailure(err: unknown): never {
    const te = connectError(err);
    if (te && failureRung(te) === 'fatal') {
      // A wrong PIN is never retried automatically: real HSMs lock the PIN after a few attempts.
      this.fatal = te;
      this.log?.error({ ckr: te.ckr, fn: te.fn }, `PKCS#11 ${te.fn} failed with ${te.ckr}; not retrying until restarted`);
      throw new TokenUnavailableError(`${te.message}; fix the configuration and restart`);
    }
    this.retryAt = Date.now() + this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
    throw new TokenUnavailableError((err as Error).message);
  }
}

/** The token error behind a failed connection attempt, if it was one (a missing library is not). */
function connectError(err: unknown): TokenError | undefined {
  return err instanceof TokenError ? err : err instanceof Error && /CKR_/.test(err.message) ? asTokenError(err, 'connect') : undefined;
}

/** The HMAC mechanism and MAC length for `hash`, refusing a key that is not an HMAC key. */
function hmacMechanism(key: TokenKey, hash: HashName): { mechanism: number; bytes: number } {
  if (key.kind !== 'hmac') throw new KeyRequestError(`a ${key.type} key does not compute HMACs`);
  const { hmac: mechanism, bytes } = hashOf(hash);
  return { mechanism, bytes };
}

/** What a failed HMAC C_SignInit means: SoftHSM2 takes HMAC keys no shorter than the hash's output. */
function hmacRefusal(err: TokenError, hash: HashName): Error {
  if (err.ckr !== 'CKR_KEY_SIZE_RANGE') return err;
  return new KeyRequestError(`the HSM refuses HMAC with ${hash} under this key, shorter than it takes for that hash (C_SignInit: CKR_KEY_SIZE_RANGE)`);
}

/** Key-wrap mechanisms by algorithm, as operators read them (hex mechanism numbers). */
function keyWrapNames(found: Map<KeyWrapAlgorithm, number>): Record<string, string> {
  return Object.fromEntries([...found].map(([algorithm, mechanism]) => [algorithm, `0x${mechanism.toString(16)}`]));
}

/** The median of nine timed calls, in microseconds. */
function medianRoundTripUs(call: () => unknown): number {
  const times: number[] = [];
  for (let i = 0; i < 9; i++) {
    const start = process.hrtime.bigint();
    call();
    times.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  return Math.round(times.sort((a, b) => a - b)[4]!);
}

function gcm(iv: Buffer, aad: Buffer): pkcs11js.Mechanism {
  return {
    mechanism: pkcs11js.CKM_AES_GCM,
    parameter: { type: pkcs11js.CK_PARAMS_GCM, iv, ivBits: iv.length * 8, aad, tagBits: GCM_TAG_BYTES * 8 } as pkcs11js.GcmParams,
  };
}
