// The raw pkcs11js token loop on its own session, outside keyward's code: a fixed amount of
// PKCS#11 work to measure keyward's paths against, which a regression in those paths cannot move.
import { type KeyObject, randomBytes } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { encryptForTransport, OAEP_CHOICES, oaepMechanism, rsaPublicKey, type OaepChoice } from '../src/pkcs11/key-transport.js';
import { decodeBlob } from '../src/pkcs11/key-wrap.js';
import { findSlot } from '../src/pkcs11/module.js';
import {
  transportedKeyTemplate,
  transportPrivateTemplate,
  transportPublicTemplate,
  workingKeyTemplate,
  wrappableKeyTemplate,
} from '../src/pkcs11/templates.js';
import type { TokenConfig } from '../src/pkcs11/token.js';

/** One PKCS#11 call of a recipe; C_EncryptInit and C_Encrypt are two calls, as PKCS#11 has them. */
export type RecipeCall = 'C_GenerateKey' | 'C_WrapKey' | 'C_UnwrapKey' | 'C_DestroyObject' | 'C_EncryptInit' | 'C_Encrypt' | 'C_GenerateRandom';

const KWP = { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD };
/** What each replayed C_Encrypt encrypts: about the size of a serialized keyring. */
const RECIPE_PAYLOAD_BYTES = 512;
/** Every GCM call authenticates a storage path, as the barrier's do. */
const AAD = Buffer.from('logical/bench/entry-0');

/**
 * A second session on the token a keyward Token already opened: that Token initialized the module
 * and logged in, and a new session of the same process shares both (PKCS11-NOTES).
 */
export class RawToken {
  private readonly p11 = new pkcs11js.PKCS11();
  private readonly session: Buffer;
  private readonly sealKey: Buffer;
  private readonly iv = Buffer.alloc(12);
  private ivCounter = 0;
  /** A key-transport pair as keyward's Token makes one per session, made here outside any timing. */
  private readonly transport: { publicKey: KeyObject; privateKey: Buffer; oaep: OaepChoice };

  constructor(cfg: TokenConfig) {
    this.p11.load(cfg.lib);
    this.session = this.p11.C_OpenSession(findSlot(this.p11, cfg), pkcs11js.CKF_SERIAL_SESSION);
    this.p11.C_FindObjectsInit(this.session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_LABEL, value: cfg.keyLabel },
    ]);
    const [sealKey] = this.p11.C_FindObjects(this.session, 1);
    this.p11.C_FindObjectsFinal(this.session);
    if (!sealKey) throw new Error(`seal key "${cfg.keyLabel}" not found`);
    this.sealKey = sealKey;
    this.transport = this.makeTransportPair();
  }

  /**
   * Makes the recipe's calls and returns the milliseconds they took. Keys made by generate or
   * unwrap stack up; wrap, encrypt and destroy act on the newest, as keyward's do. An unwrap with
   * no wrapped blob waiting is a key transport (a random key encrypted to the transport pair, as
   * keyward imports a root key); one after a wrap unwraps that blob under the seal key.
   */
  replayMs(recipe: readonly RecipeCall[]): number {
    const p11 = this.p11;
    const s = this.session;
    const keys: Buffer[] = [];
    const newest = () => keys.at(-1) ?? fail('the recipe uses a key before making one');
    const payload = randomBytes(RECIPE_PAYLOAD_BYTES);
    const out = Buffer.alloc(RECIPE_PAYLOAD_BYTES + 16);
    let blob: Buffer | undefined;
    const start = performance.now();
    for (const call of recipe) {
      switch (call) {
        case 'C_GenerateKey':
          keys.push(p11.C_GenerateKey(s, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, wrappableKeyTemplate()));
          break;
        case 'C_WrapKey':
          blob = Buffer.from(p11.C_WrapKey(s, KWP, this.sealKey, newest(), Buffer.alloc(64)));
          break;
        case 'C_UnwrapKey':
          if (blob) {
            keys.push(p11.C_UnwrapKey(s, KWP, this.sealKey, blob, workingKeyTemplate()));
            blob = undefined;
          } else {
            const { publicKey, privateKey, oaep } = this.transport;
            keys.push(p11.C_UnwrapKey(s, oaepMechanism(oaep), privateKey, encryptForTransport(publicKey, oaep, randomBytes(32)), transportedKeyTemplate()));
          }
          break;
        case 'C_DestroyObject':
          p11.C_DestroyObject(s, newest());
          keys.pop();
          break;
        case 'C_EncryptInit':
          p11.C_EncryptInit(s, this.gcm(), newest());
          break;
        case 'C_Encrypt':
          p11.C_Encrypt(s, payload, out);
          break;
        case 'C_GenerateRandom':
          p11.C_GenerateRandom(s, Buffer.alloc(32));
          break;
      }
    }
    const ms = performance.now() - start;
    // Keys the operation keeps (a rotation's new term key) are dropped here, outside the timing.
    for (const key of keys) p11.C_DestroyObject(s, key);
    return ms;
  }

  /**
   * The least PKCS#11 work a rewrap does for `entries` entries: one GCM decryption and one
   * encryption of `bytes` each, under the key wrapped in `blob`.
   */
  decryptEncrypt(entries: number, bytes: number, blob: Buffer): void {
    const p11 = this.p11;
    const s = this.session;
    // keyward's blobs name their key-wrap algorithm ahead of the wrapped bytes; SoftHSM2's is RFC 5649 under 0x210A.
    const key = p11.C_UnwrapKey(s, KWP, this.sealKey, decodeBlob(blob).wrapped, workingKeyTemplate());
    const value = randomBytes(bytes);
    const sealed = Buffer.alloc(bytes + 16);
    const opened = Buffer.alloc(bytes + 16);
    for (let i = 0; i < entries; i++) {
      const mechanism = this.gcm();
      p11.C_EncryptInit(s, mechanism, key);
      const ciphertext = p11.C_Encrypt(s, value, sealed);
      p11.C_DecryptInit(s, mechanism, key);
      p11.C_Decrypt(s, ciphertext, opened);
    }
    p11.C_DestroyObject(s, key);
  }

  close(): void {
    this.p11.C_CloseSession(this.session);
  }

  private makeTransportPair(): { publicKey: KeyObject; privateKey: Buffer; oaep: OaepChoice } {
    const p11 = this.p11;
    const s = this.session;
    const pair = p11.C_GenerateKeyPair(s, { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN }, transportPublicTemplate(), transportPrivateTemplate());
    const [modulus, exponent] = p11.C_GetAttributeValue(s, pair.publicKey, [{ type: pkcs11js.CKA_MODULUS }, { type: pkcs11js.CKA_PUBLIC_EXPONENT }]);
    const publicKey = rsaPublicKey(modulus!.value as Buffer, exponent!.value as Buffer);
    for (const oaep of OAEP_CHOICES) {
      try {
        p11.C_DestroyObject(s, p11.C_UnwrapKey(s, oaepMechanism(oaep), pair.privateKey, encryptForTransport(publicKey, oaep, randomBytes(32)), transportedKeyTemplate()));
        return { publicKey, privateKey: pair.privateKey, oaep };
      } catch {
        // This module does not take that hash: the next one.
      }
    }
    throw new Error('the token unwraps with none of the OAEP hashes keyward offers');
  }

  /** GCM with a counter IV, the cheapest IV there is, so the raw loop stays the floor. */
  private gcm(): pkcs11js.Mechanism {
    this.iv.writeUInt32BE(this.ivCounter++ >>> 0, 8);
    return {
      mechanism: pkcs11js.CKM_AES_GCM,
      parameter: { type: pkcs11js.CK_PARAMS_GCM, iv: this.iv, ivBits: 96, aad: AAD, tagBits: 128 } as pkcs11js.GcmParams,
    };
  }
}

/** For a row's note: whether an operation made exactly the recipe's calls in this run. */
export function describeCalls(made: readonly string[], recipe: readonly RecipeCall[]): string {
  if (made.join() === recipe.join()) return `the recipe's ${recipe.length} PKCS#11 calls`;
  return `${made.length} PKCS#11 calls where the recipe has ${recipe.length}`;
}

function fail(message: string): never {
  throw new Error(message);
}
