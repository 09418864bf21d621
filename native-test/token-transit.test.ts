import { spawnSync } from 'node:child_process';
import { constants, createHash, createHmac, generateKeyPairSync, type KeyObject, randomBytes, verify as nodeVerify } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IntegrityError, TokenError } from '../src/pkcs11/errors.js';
import { type AsymmetricKeyType, CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EDDSA, encodeTypedBlob, KEY_TYPES, KeyRequestError } from '../src/pkcs11/key-types.js';
import { provisionSoftHsmToken, type SoftHsmToken } from '../src/pkcs11/softhsm.js';
import { ecdsaDerToRaw, ecdsaRawToDer, type HashName, type SignOptions } from '../src/pkcs11/signatures.js';
import { ManagedKey, Token, type TokenKey } from '../src/pkcs11/token.js';
import { HsmEmulator } from './support/hsm-emulator.js';
import { freshProcessToken, sideChannel, type TestToken } from './support/softhsm.js';

const HASHES: Record<HashName, { node: string; bytes: number }> = {
  sha1: { node: 'sha1', bytes: 20 },
  'sha2-224': { node: 'sha224', bytes: 28 },
  'sha2-256': { node: 'sha256', bytes: 32 },
  'sha2-384': { node: 'sha384', bytes: 48 },
  'sha2-512': { node: 'sha512', bytes: 64 },
};
const HASH_NAMES = Object.keys(HASHES) as HashName[];
const ASYMMETRIC: AsymmetricKeyType[] = ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'];
const FIELD_BYTES = { 'ecdsa-p256': 32, 'ecdsa-p384': 48 } as const;
const MESSAGE = Buffer.from('a message transit signs');
const TAMPERED = Buffer.from('a message transit signs!');
const SHA256: SignOptions = { hash: 'sha2-256', prehashed: false };
const CKM_AES_KEY_WRAP_PAD = 0x210a;

const digest = (hash: HashName, data: Buffer) => createHash(HASHES[hash].node).update(data).digest();
const isEc = (type: AsymmetricKeyType): type is 'ecdsa-p256' | 'ecdsa-p384' => type.startsWith('ecdsa-');

let t: TestToken;
/** A second token beside the first, with its own seal key. */
let second: SoftHsmToken;
let emu: HsmEmulator;

beforeAll(async () => {
  t = await freshProcessToken('keyward-transit');
  // In the same token store, before the module is first initialized (it lists tokens then). Its label is no
  // extension of the first's: pkcs11-tool's --token-label once picked 'keyward-transit-second' for 'keyward-transit'.
  second = await provisionSoftHsmToken(t.dir, 'other-transit-token', randomBytes(6).toString('hex'), randomBytes(6).toString('hex'));
  emu = (await HsmEmulator.create({ latencyUs: 0 })).useInProcess();
});
afterAll(() => emu?.close());

/** A logged-in session on SoftHSM2 directly, beside keyward's (login is per application: it may already be). */
function withSession<T>(fn: (p11: pkcs11js.PKCS11, s: Buffer, slot: Buffer) => T): T {
  const { p11, slot } = sideChannel(t);
  const s = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  try {
    try {
      p11.C_Login(s, pkcs11js.CKU_USER, t.config.pin);
    } catch (err) {
      if ((err as pkcs11js.Pkcs11Error).code !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) throw err;
    }
    return fn(p11, s, slot);
  } finally {
    p11.C_CloseSession(s);
  }
}

function find(p11: pkcs11js.PKCS11, s: Buffer, template: pkcs11js.Template): Buffer[] {
  p11.C_FindObjectsInit(s, template);
  const found = p11.C_FindObjects(s, 100);
  p11.C_FindObjectsFinal(s);
  return found;
}

function attr(p11: pkcs11js.PKCS11, s: Buffer, handle: Buffer, type: number): Buffer {
  return p11.C_GetAttributeValue(s, handle, [{ type }])[0]!.value as Buffer;
}

/** Session objects of a class the application holds (every session sees them all). */
function sessionObjects(cls: number): number {
  return withSession((p11, s) => find(p11, s, [{ type: pkcs11js.CKA_CLASS, value: cls }, { type: pkcs11js.CKA_TOKEN, value: false }]).length);
}

/** Token objects with this label. */
function tokenObjects(label: string): number {
  return withSession((p11, s) => find(p11, s, [{ type: pkcs11js.CKA_LABEL, value: label }, { type: pkcs11js.CKA_TOKEN, value: true }]).length);
}

/** OpenSC's pkcs11-tool on the test token, as an operator would make keys (the PIN is the test token's throwaway one). */
function pkcs11Tool(...args: string[]): void {
  const r = spawnSync('pkcs11-tool', ['--module', t.config.lib, '--token-label', t.config.tokenLabel!, '--login', '--pin', t.config.pin, ...args], { encoding: 'utf8', env: process.env });
  if (r.status !== 0) throw new Error(`pkcs11-tool ${args.join(' ')} failed: ${r.stderr}`);
}

function expectRefusal(call: () => unknown, message: RegExp): void {
  let thrown: unknown;
  try {
    call();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(KeyRequestError);
  expect((thrown as Error).message).toMatch(message);
}

/** Node's verdict on a signature `sign` made over MESSAGE. */
function nodeVerifies(type: AsymmetricKeyType, publicKey: KeyObject, signature: Buffer, opts: SignOptions, message = MESSAGE): boolean {
  const hash = HASHES[opts.hash].node;
  if (isEc(type)) return nodeVerify(hash, message, { key: publicKey, dsaEncoding: 'der' }, signature);
  if (opts.rsaScheme === 'pkcs1v15') return nodeVerify(hash, message, { key: publicKey, padding: constants.RSA_PKCS1_PADDING }, signature);
  const saltLength = typeof opts.pssSaltLength === 'number' ? opts.pssSaltLength : constants.RSA_PSS_SALTLEN_DIGEST;
  return nodeVerify(hash, message, { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }, signature);
}

for (const target of ['SoftHSM2', 'HSM emulator'] as const) {
  describe(`transit key primitives on ${target}`, () => {
    const onEmulator = target === 'HSM emulator';
    const prefix = onEmulator ? 'emulator' : 'softhsm';
    /** CKA_ID prefix of this target's managed keys, in hex. */
    const ids = onEmulator ? 'b1' : 'a1';
    const label = (name: string) => `${prefix}-${name}`;
    const generated = new Map<AsymmetricKeyType, { key: TokenKey; publicKey: KeyObject }>();
    let config: TestToken['config'];
    let token: Token;
    let other: Token | undefined;

    beforeAll(() => {
      config = { ...t.config, lib: onEmulator ? emu.lib : t.config.lib };
      token = new Token(config);
      token.ensureSealKey(true);
      for (const type of ASYMMETRIC) generated.set(type, token.generateKeyPair(type));
      // Keys an operator made in the HSM for keyward to use in place.
      pkcs11Tool('--keypairgen', '--key-type', 'EC:prime256v1', '--label', label('ec'), '--id', `${ids}01`);
      pkcs11Tool('--keypairgen', '--key-type', 'EC:edwards25519', '--label', label('ed'), '--id', `${ids}02`);
      pkcs11Tool('--keypairgen', '--key-type', 'rsa:2048', '--label', label('rsa'), '--id', `${ids}03`);
      pkcs11Tool('--keypairgen', '--key-type', 'EC:prime256v1', '--label', label('swapped'), '--id', `${ids}04`);
      pkcs11Tool('--keygen', '--key-type', 'AES:32', '--sensitive', '--label', label('aes'), '--id', `${ids}05`);
      pkcs11Tool('--keygen', '--key-type', 'GENERIC:64', '--sensitive', '--label', label('mac'));
      pkcs11Tool('--keygen', '--key-type', 'AES:32', '--extractable', '--label', label('extractable'));
      pkcs11Tool('--keygen', '--key-type', 'AES:32', '--label', label('twice'));
      pkcs11Tool('--keygen', '--key-type', 'AES:32', '--label', label('twice'));
    });

    afterAll(() => {
      token?.disconnect();
      other?.disconnect();
    });

    it('generates every key-pair type in the token: the private half K-wrapped, with a sensitive sign-only working copy; the public half as a node:crypto key', () => {
      for (const [type, { key, publicKey }] of generated) {
        expect(key.type).toBe(type);
        // A typed blob: version 2, the type, RFC 5649 (the algorithm key-wrap.ts numbers 1).
        expect([...key.blob.subarray(0, 3)], type).toEqual([2, KEY_TYPES[type].blobId, 1]);
        expect(publicKey.type).toBe('public');
        if (isEc(type)) expect(publicKey.asymmetricKeyDetails?.namedCurve).toBe(type === 'ecdsa-p256' ? 'prime256v1' : 'secp384r1');
        else expect(publicKey.asymmetricKeyDetails?.modulusLength).toBe(Number(type.slice(4)));
        withSession((p11, s) => {
          const bool = (a: number) => attr(p11, s, key.handle!, a)[0];
          expect(attr(p11, s, key.handle!, pkcs11js.CKA_CLASS).readUInt32LE(0)).toBe(pkcs11js.CKO_PRIVATE_KEY);
          expect(attr(p11, s, key.handle!, pkcs11js.CKA_KEY_TYPE).readUInt32LE(0)).toBe(isEc(type) ? pkcs11js.CKK_EC : pkcs11js.CKK_RSA);
          expect([pkcs11js.CKA_TOKEN, pkcs11js.CKA_SENSITIVE, pkcs11js.CKA_EXTRACTABLE, pkcs11js.CKA_SIGN, pkcs11js.CKA_DECRYPT, pkcs11js.CKA_UNWRAP].map(bool), type).toEqual([0, 1, 0, 1, 0, 0]);
          expect(() => attr(p11, s, key.handle!, isEc(type) ? pkcs11js.CKA_VALUE : pkcs11js.CKA_PRIVATE_EXPONENT)).toThrow(/CKR_ATTRIBUTE_SENSITIVE/);
        });
      }
    });

    it('leaves only the working copy in the token: both generated halves are destroyed', () => {
      const before = [sessionObjects(pkcs11js.CKO_PRIVATE_KEY), sessionObjects(pkcs11js.CKO_PUBLIC_KEY)];
      const { key } = token.generateKeyPair('ecdsa-p256');
      expect([sessionObjects(pkcs11js.CKO_PRIVATE_KEY), sessionObjects(pkcs11js.CKO_PUBLIC_KEY)]).toEqual([before[0]! + 1, before[1]]);
      token.releaseKey(key);
      expect([sessionObjects(pkcs11js.CKO_PRIVATE_KEY), sessionObjects(pkcs11js.CKO_PUBLIC_KEY)]).toEqual(before);
    });

    it('signs with every key-pair type; node:crypto verifies ECDSA as DER and as r ‖ s, RSA as PSS and as PKCS#1 v1.5', () => {
      for (const [type, { key, publicKey }] of generated) {
        if (isEc(type)) {
          const der = token.sign(key, MESSAGE, SHA256);
          expect(nodeVerify('sha256', MESSAGE, { key: publicKey, dsaEncoding: 'der' }, der), type).toBe(true);
          const raw = ecdsaDerToRaw(der, FIELD_BYTES[type]);
          expect(raw.length).toBe(2 * FIELD_BYTES[type]);
          expect(nodeVerify('sha256', MESSAGE, { key: publicKey, dsaEncoding: 'ieee-p1363' }, raw), type).toBe(true);
          expect(ecdsaRawToDer(raw).equals(der)).toBe(true);
          continue;
        }
        const pss = token.sign(key, MESSAGE, SHA256);
        expect(pss.length).toBe(Number(type.slice(4)) / 8);
        expect(nodeVerify('sha256', MESSAGE, { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, pss), type).toBe(true);
        const pkcs1 = token.sign(key, MESSAGE, { ...SHA256, rsaScheme: 'pkcs1v15' });
        expect(nodeVerify('sha256', MESSAGE, { key: publicKey, padding: constants.RSA_PKCS1_PADDING }, pkcs1), type).toBe(true);
        // PKCS#1 v1.5 is deterministic, PSS is not.
        expect(token.sign(key, MESSAGE, { ...SHA256, rsaScheme: 'pkcs1v15' }).equals(pkcs1)).toBe(true);
        expect(token.sign(key, MESSAGE, SHA256).equals(pss)).toBe(false);
      }
    });

    it('signs with each hash, from the message and from its digest (prehashed), and verifies both ways', () => {
      const cases: Array<[AsymmetricKeyType, Partial<SignOptions>]> = [
        ['ecdsa-p256', {}],
        ['ecdsa-p384', {}],
        ['rsa-2048', { rsaScheme: 'pss' }],
        ['rsa-2048', { rsaScheme: 'pkcs1v15' }],
      ];
      for (const hash of HASH_NAMES) {
        for (const [type, scheme] of cases) {
          const { key, publicKey } = generated.get(type)!;
          for (const prehashed of [false, true]) {
            const opts: SignOptions = { hash, prehashed, ...scheme };
            const input = prehashed ? digest(hash, MESSAGE) : MESSAGE;
            const signature = token.sign(key, input, opts);
            const what = `${type} ${scheme.rsaScheme ?? ''} ${hash} prehashed=${prehashed}`;
            expect(nodeVerifies(type, publicKey, signature, opts), what).toBe(true);
            expect(token.verify(publicKey, input, signature, opts), what).toBe(true);
            // The same signature checked the other way: over the message when made from the digest, and back.
            const flipped = { ...opts, prehashed: !prehashed };
            expect(token.verify(publicKey, prehashed ? MESSAGE : digest(hash, MESSAGE), signature, flipped), what).toBe(true);
          }
        }
      }
    });

    it('signs RSA-PSS with the salt length asked for; verifying, `auto` takes any in software and the hash length or the longest in the token', () => {
      const { key, publicKey } = generated.get('rsa-2048')!;
      const longest = 256 - 32 - 2;
      for (const salt of [0, 20, longest]) {
        const signature = token.sign(key, MESSAGE, { ...SHA256, pssSaltLength: salt });
        expect(nodeVerifies('rsa-2048', publicKey, signature, { ...SHA256, pssSaltLength: salt }), `salt ${salt}`).toBe(true);
        expect(nodeVerifies('rsa-2048', publicKey, signature, { ...SHA256, pssSaltLength: salt === 0 ? 1 : 0 }), `salt ${salt}`).toBe(false);
        expect(token.verify(publicKey, MESSAGE, signature, { ...SHA256, pssSaltLength: 'auto' }), `salt ${salt}`).toBe(true);
        expect(token.verify(publicKey, digest('sha2-256', MESSAGE), signature, { ...SHA256, prehashed: true, pssSaltLength: salt }), `salt ${salt}`).toBe(true);
      }
      for (const salt of ['auto', 'hash', undefined] as const) {
        const signature = token.sign(key, MESSAGE, { ...SHA256, pssSaltLength: salt });
        expect(nodeVerifies('rsa-2048', publicKey, signature, { ...SHA256, pssSaltLength: 32 }), `salt ${salt}`).toBe(true);
      }
      const prehashed = { ...SHA256, prehashed: true };
      const longestSalt = token.sign(key, MESSAGE, { ...SHA256, pssSaltLength: longest });
      const noSalt = token.sign(key, MESSAGE, { ...SHA256, pssSaltLength: 0 });
      const d = digest('sha2-256', MESSAGE);
      expect(token.verify(publicKey, d, longestSalt, { ...prehashed, pssSaltLength: 'auto' })).toBe(true);
      expect(token.verify(publicKey, d, longestSalt, { ...prehashed, pssSaltLength: 'hash' })).toBe(false);
      // In the token `auto` means the hash length or the longest; other lengths need to be named.
      expect(token.verify(publicKey, d, noSalt, { ...prehashed, pssSaltLength: 'auto' })).toBe(false);
      expect(token.verify(publicKey, MESSAGE, noSalt, { ...SHA256, pssSaltLength: 'auto' })).toBe(true);
      expectRefusal(() => token.sign(key, MESSAGE, { ...SHA256, pssSaltLength: longest + 1 }), /salt length must be 0 to 222/);
      expectRefusal(() => token.verify(publicKey, d, noSalt, { ...prehashed, pssSaltLength: -1 }), /salt length must be 0 to 222/);
    });

    it('refuses, before any call to the token, what the token would fail on', () => {
      const p256 = generated.get('ecdsa-p256')!;
      const rsa = generated.get('rsa-2048')!;
      const aes = token.generateKey();
      const hmacKey = token.generateHmacKey(64);
      const before = emu.counts();
      expectRefusal(() => token.sign(p256.key, Buffer.alloc(31), { ...SHA256, prehashed: true }), /32-byte sha256 digest, not 31 bytes/);
      expectRefusal(() => token.sign(rsa.key, digest('sha2-512', MESSAGE), { ...SHA256, prehashed: true }), /32-byte sha256 digest, not 64 bytes/);
      expectRefusal(() => token.verify(p256.publicKey, MESSAGE, Buffer.alloc(64), { ...SHA256, prehashed: true }), /32-byte sha256 digest/);
      expectRefusal(() => token.sign(rsa.key, MESSAGE, { ...SHA256, pssSaltLength: 300 }), /salt length/);
      expectRefusal(() => token.sign(rsa.key, MESSAGE, { ...SHA256, rsaScheme: 'raw' as 'pss' }), /unknown RSA signature scheme "raw"/);
      expectRefusal(() => token.sign(p256.key, MESSAGE, { ...SHA256, hash: 'md5' as HashName }), /unknown hash algorithm "md5"/);
      expectRefusal(() => token.sign(aes, MESSAGE, SHA256), /aes256-gcm96 key does not sign/);
      expectRefusal(() => token.sign(hmacKey, MESSAGE, SHA256), /hmac key does not sign/);
      expectRefusal(() => token.hmac(p256.key, 'sha2-256', MESSAGE), /ecdsa-p256 key does not compute HMACs/);
      expectRefusal(() => token.verify(generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey, MESSAGE, Buffer.alloc(8), SHA256), /not ec secp521r1/);
      expectRefusal(() => token.verify(generateKeyPairSync('ed25519').privateKey, MESSAGE, Buffer.alloc(64), SHA256), /public key, not a private one/);
      expectRefusal(() => token.loadKey(p256.key.blob, 'hmac'), /holds a key of type ecdsa-p256, not of kind hmac/);
      if (onEmulator) expect(emu.callsSince(before)).toEqual({});
      token.releaseKey(aes);
      token.releaseKey(hmacKey);
    });

    it('does not verify a tampered message or signature, in software or in the token', () => {
      for (const [type, { key, publicKey }] of generated) {
        const signature = token.sign(key, MESSAGE, SHA256);
        const flippedLast = Buffer.from(signature);
        flippedLast[flippedLast.length - 1]! ^= 1;
        const flippedFirst = Buffer.from(signature);
        flippedFirst[0]! ^= 1;
        for (const prehashed of [false, true]) {
          const opts = { ...SHA256, prehashed };
          const input = (m: Buffer) => (prehashed ? digest('sha2-256', m) : m);
          const what = `${type} prehashed=${prehashed}`;
          expect(token.verify(publicKey, input(MESSAGE), signature, opts), what).toBe(true);
          expect(token.verify(publicKey, input(TAMPERED), signature, opts), what).toBe(false);
          for (const bad of [flippedLast, flippedFirst, signature.subarray(0, -1), Buffer.concat([signature, Buffer.from([0])]), Buffer.alloc(0), Buffer.from('not a signature')]) {
            expect(token.verify(publicKey, input(MESSAGE), bad, opts), `${what}: ${bad.toString('hex').slice(0, 16)}`).toBe(false);
          }
        }
        // Another key's public key does not verify it.
        const stranger = isEc(type) ? generateKeyPairSync('ec', { namedCurve: type === 'ecdsa-p256' ? 'P-256' : 'P-384' }) : generateKeyPairSync('rsa', { modulusLength: Number(type.slice(4)) });
        expect(token.verify(stranger.publicKey, MESSAGE, signature, SHA256), type).toBe(false);
        expect(token.verify(stranger.publicKey, digest('sha2-256', MESSAGE), signature, { ...SHA256, prehashed: true }), type).toBe(false);
        expect(nodeVerifies(type, publicKey, signature, SHA256, TAMPERED), type).toBe(false);
      }
    });

    it.runIf(onEmulator)('costs two calls per signature or HMAC, none to verify a message, and four to verify a digest', () => {
      const { key, publicKey } = generated.get('ecdsa-p256')!;
      const hmacKey = token.generateHmacKey(64);
      const signature = token.sign(key, MESSAGE, SHA256);
      let before = emu.counts();
      token.sign(key, MESSAGE, SHA256);
      token.hmac(hmacKey, 'sha2-256', MESSAGE);
      const signing = emu.callsSince(before);
      before = emu.counts();
      expect(token.verify(publicKey, MESSAGE, signature, SHA256)).toBe(true);
      const inSoftware = emu.callsSince(before);
      before = emu.counts();
      expect(token.verify(publicKey, digest('sha2-256', MESSAGE), signature, { ...SHA256, prehashed: true })).toBe(true);
      const inToken = emu.callsSince(before);
      token.releaseKey(hmacKey);
      expect(signing).toEqual({ C_SignInit: 2, C_Sign: 2 });
      expect(inSoftware).toEqual({});
      expect(inToken).toEqual({ C_CreateObject: 1, C_VerifyInit: 1, C_Verify: 1, C_DestroyObject: 1 });
    });

    it('loads keys back from their blobs after a disconnect (a new session): the same public keys verify their signatures, the same HMAC keys give the same MACs', () => {
      const hmacKey = token.generateHmacKey(64);
      const mac = token.hmac(hmacKey, 'sha2-256', MESSAGE);
      const stale = generated.get('ecdsa-p384')!;
      token.disconnect();
      expect(token.connected).toBe(false);
      for (const [type, { key, publicKey }] of generated) {
        const loaded = token.loadKey(key.blob);
        expect(loaded.type).toBe(type);
        expect(nodeVerifies(type, publicKey, token.sign(loaded, MESSAGE, SHA256), SHA256), type).toBe(true);
        token.releaseKey(loaded);
      }
      expect(token.hmac(token.loadKey(hmacKey.blob, 'hmac'), 'sha2-256', MESSAGE).equals(mac)).toBe(true);
      // Keys held across the disconnect are unwrapped again from their blobs on their next use.
      expect(hmacKey.handle).toBeUndefined();
      expect(token.hmac(hmacKey, 'sha2-256', MESSAGE).equals(mac)).toBe(true);
      expect(nodeVerifies('ecdsa-p384', stale.publicKey, token.sign(stale.key, MESSAGE, SHA256), SHA256)).toBe(true);
    });

    it("wraps keys so that only this seal key unwraps them: under another token's seal key loadKey fails with IntegrityError", () => {
      other = new Token({ ...config, tokenLabel: second.label, pin: second.pin });
      other.ensureSealKey(true);
      const hmacKey = token.generateHmacKey(64);
      for (const blob of [...[...generated.values()].map((g) => g.key.blob), hmacKey.blob]) {
        expect(() => other!.loadKey(blob)).toThrow(IntegrityError);
      }
      // The other token's seal key unwraps its own, and this one does not.
      const theirs = other.generateKeyPair('ecdsa-p256');
      expect(nodeVerifies('ecdsa-p256', theirs.publicKey, other.sign(other.loadKey(theirs.key.blob), MESSAGE, SHA256), SHA256)).toBe(true);
      expect(() => token.loadKey(theirs.key.blob)).toThrow(IntegrityError);
      token.releaseKey(hmacKey);
    });

    it('Ed25519: offered as the module lists it; where the module cannot wrap an Ed25519 key, generating one says so plainly', () => {
      const listed = withSession((p11, _s, slot) => new Set(p11.C_GetMechanismList(slot).map(Number)));
      expect(token.offersEdDsa()).toBe(listed.has(CKM_EC_EDWARDS_KEY_PAIR_GEN) && listed.has(CKM_EDDSA));
      expect(token.offersEdDsa()).toBe(true); // SoftHSM2 2.6 lists both
      // Whether the module wraps an Ed25519 private key under the seal key, asked of it directly.
      const wraps = withSession((p11, s) => {
        const pair = p11.C_GenerateKeyPair(
          s,
          { mechanism: CKM_EC_EDWARDS_KEY_PAIR_GEN },
          [{ type: pkcs11js.CKA_TOKEN, value: false }, { type: pkcs11js.CKA_EC_PARAMS, value: Buffer.from('06032b6570', 'hex') }],
          [{ type: pkcs11js.CKA_TOKEN, value: false }, { type: pkcs11js.CKA_SENSITIVE, value: true }, { type: pkcs11js.CKA_EXTRACTABLE, value: true }],
        );
        const [k] = find(p11, s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_LABEL, value: 'keyward-seal' }]);
        try {
          p11.C_WrapKey(s, { mechanism: CKM_AES_KEY_WRAP_PAD }, k!, pair.privateKey, Buffer.alloc(1024));
          return true;
        } catch (err) {
          if ((err as pkcs11js.Pkcs11Error).code === pkcs11js.CKR_KEY_NOT_WRAPPABLE) return false;
          throw err;
        } finally {
          p11.C_DestroyObject(s, pair.privateKey);
          p11.C_DestroyObject(s, pair.publicKey);
        }
      });
      // SoftHSM2 2.6.1, under both targets, signs with EdDSA but wraps no EdDSA private key (Ed25519 signing is tested with a managed key).
      expect(wraps).toBe(false);
      const privateObjects = sessionObjects(pkcs11js.CKO_PRIVATE_KEY);
      expectRefusal(() => token.generateKeyPair('ed25519'), /cannot wrap ed25519 private keys \(C_WrapKey: CKR_KEY_NOT_WRAPPABLE\).*managed key/);
      // Nothing of the attempt stays in the token.
      expect(sessionObjects(pkcs11js.CKO_PRIVATE_KEY)).toBe(privateObjects);
      expect(sessionObjects(pkcs11js.CKO_PUBLIC_KEY)).toBe(0);
    });

    it("HMAC: keys generated in the token give the same MAC every time, and a key of known value gives node:crypto's MAC for every hash", () => {
      const a = token.generateHmacKey(64);
      const b = token.generateHmacKey(64);
      for (const hash of HASH_NAMES) {
        const mac = token.hmac(a, hash, MESSAGE);
        expect(mac.length).toBe(HASHES[hash].bytes);
        expect(token.hmac(a, hash, MESSAGE).equals(mac), hash).toBe(true);
        expect(token.hmac(a, hash, TAMPERED).equals(mac), hash).toBe(false);
        expect(token.hmac(b, hash, MESSAGE).equals(mac), hash).toBe(false);
      }
      withSession((p11, s) => {
        const bool = (type: number) => attr(p11, s, a.handle!, type)[0];
        expect(attr(p11, s, a.handle!, pkcs11js.CKA_KEY_TYPE).readUInt32LE(0)).toBe(pkcs11js.CKK_GENERIC_SECRET);
        const flags = [pkcs11js.CKA_TOKEN, pkcs11js.CKA_SENSITIVE, pkcs11js.CKA_EXTRACTABLE, pkcs11js.CKA_SIGN, pkcs11js.CKA_VERIFY, pkcs11js.CKA_ENCRYPT, pkcs11js.CKA_DECRYPT, pkcs11js.CKA_WRAP];
        expect(flags.map(bool)).toEqual([0, 1, 0, 1, 1, 0, 0, 0]);
      });

      // Test only: a key of known value, wrapped under the seal key outside keyward, as a blob keyward loads.
      const value = randomBytes(64);
      const blob = withSession((p11, s) => {
        const [k] = find(p11, s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_LABEL, value: 'keyward-seal' }]);
        const known = p11.C_CreateObject(s, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
          { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
          { type: pkcs11js.CKA_TOKEN, value: false },
          { type: pkcs11js.CKA_EXTRACTABLE, value: true },
          { type: pkcs11js.CKA_VALUE, value },
        ]);
        try {
          return encodeTypedBlob('hmac', 'rfc5649', Buffer.from(p11.C_WrapKey(s, { mechanism: CKM_AES_KEY_WRAP_PAD }, k!, known, Buffer.alloc(128))));
        } finally {
          p11.C_DestroyObject(s, known);
        }
      });
      const known = token.loadKey(blob);
      expect(known.kind).toBe('hmac');
      for (const hash of HASH_NAMES) {
        for (const data of [MESSAGE, Buffer.alloc(0), randomBytes(3000)]) {
          expect(token.hmac(known, hash, data).equals(createHmac(HASHES[hash].node, value).update(data).digest()), `${hash}, ${data.length} bytes`).toBe(true);
        }
      }
      for (const k of [a, b, known]) token.releaseKey(k);
    });

    it('HMAC: refuses key lengths it cannot wrap faithfully, and says so, without a recovery, when the HSM wants a longer key for a hash', () => {
      for (const bytes of [8, 33, 520, 31.5]) expectRefusal(() => token.generateHmacKey(bytes), /16 to 512 bytes, a multiple of 8/);
      const short = token.generateHmacKey(32);
      expect(token.hmac(short, 'sha2-256', MESSAGE).length).toBe(32);
      const generation = short.generation;
      // SoftHSM2 2.6 takes an HMAC key at least as long as the hash.
      expect(withSession((p11, _s, slot) => p11.C_GetMechanismInfo(slot, pkcs11js.CKM_SHA512_HMAC).minKeySize)).toBe(64);
      expectRefusal(() => token.hmac(short, 'sha2-512', MESSAGE), /refuses HMAC with sha2-512 under this key.*CKR_KEY_SIZE_RANGE/);
      // The session was not replaced: the key's working copy is the same one.
      expect(token.hmac(short, 'sha2-256', MESSAGE).length).toBe(32);
      expect(short.generation).toBe(generation);
      token.releaseKey(short);
    });

    it('uses HSM keys made with pkcs11-tool in place: found by label or id, typed, with the public key of the public-key object, signing', () => {
      const ec = token.findManagedKey({ label: label('ec') });
      expect(ec).toBeInstanceOf(ManagedKey);
      expect(ec.type).toBe('ecdsa-p256');
      const byId = token.findManagedKey({ id: Buffer.from(`${ids}01`, 'hex') });
      const byBoth = token.findManagedKey({ label: label('ec'), id: Buffer.from(`${ids}01`, 'hex') });
      const spki = (k: KeyObject | undefined) => k!.export({ type: 'spki', format: 'der' });
      expect(spki(byId.publicKey).equals(spki(ec.publicKey))).toBe(true);
      expect(spki(byBoth.publicKey).equals(spki(ec.publicKey))).toBe(true);
      // The public key is the public-key object's point.
      const point = withSession((p11, s) => {
        const [pub] = find(p11, s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY }, { type: pkcs11js.CKA_ID, value: Buffer.from(`${ids}01`, 'hex') }]);
        return attr(p11, s, pub!, pkcs11js.CKA_EC_POINT).subarray(2);
      });
      const jwk = ec.publicKey!.export({ format: 'jwk' });
      expect(point.equals(Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]))).toBe(true);
      const signature = token.sign(ec, MESSAGE, SHA256);
      expect(nodeVerify('sha256', MESSAGE, { key: ec.publicKey!, dsaEncoding: 'der' }, signature)).toBe(true);
      expect(token.verify(ec.publicKey!, digest('sha2-256', MESSAGE), signature, { ...SHA256, prehashed: true })).toBe(true);
      expect(token.verify(generated.get('ecdsa-p256')!.publicKey, MESSAGE, signature, SHA256)).toBe(false);
      expect(() => ec.blob).toThrow(/managed key has no blob/);

      const rsa = token.findManagedKey({ label: label('rsa') });
      expect(rsa.type).toBe('rsa-2048');
      for (const rsaScheme of ['pss', 'pkcs1v15'] as const) {
        expect(nodeVerifies('rsa-2048', rsa.publicKey!, token.sign(rsa, MESSAGE, { ...SHA256, rsaScheme }), { ...SHA256, rsaScheme }), rsaScheme).toBe(true);
      }

      const ed = token.findManagedKey({ id: Buffer.from(`${ids}02`, 'hex') });
      expect(ed.type).toBe('ed25519');
      const edSignature = token.sign(ed, MESSAGE, SHA256);
      expect(edSignature.length).toBe(64);
      expect(nodeVerify(null, MESSAGE, ed.publicKey!, edSignature)).toBe(true);
      expect(token.verify(ed.publicKey!, MESSAGE, edSignature, SHA256)).toBe(true);
      expect(token.verify(ed.publicKey!, TAMPERED, edSignature, SHA256)).toBe(false);
      expectRefusal(() => token.sign(ed, digest('sha2-256', MESSAGE), { ...SHA256, prehashed: true }), /Ed25519 signs the message itself/);
      expectRefusal(() => token.verify(ed.publicKey!, digest('sha2-256', MESSAGE), edSignature, { ...SHA256, prehashed: true }), /Ed25519 signs the message itself/);
      for (const k of [ec, byId, byBoth, rsa, ed]) token.releaseKey(k);
    });

    it('encrypts and decrypts with a managed AES key, inline and async, and computes HMACs with a managed generic secret', async () => {
      const aes = token.findManagedKey({ label: label('aes') });
      expect(aes.type).toBe('aes256-gcm96');
      expect(aes.publicKey).toBeUndefined();
      const aad = Buffer.from('transit/managed');
      const plaintext = Buffer.from('a value under an HSM key');
      const iv = randomBytes(12);
      const sealed = Buffer.from(await token.encryptAsync(aes, iv, aad, plaintext, Buffer.alloc(plaintext.length + 16)));
      expect((await token.decryptAsync(aes, iv, aad, sealed, 'managed')).equals(plaintext)).toBe(true);
      const viaSeal = await token.sealAsync(aes, aad, plaintext);
      expect(token.decrypt(aes, viaSeal.iv, aad, viaSeal.sealed, 'managed').equals(plaintext)).toBe(true);
      // It is the HSM's key, not one of keyward's.
      const mine = token.generateKey();
      expect(() => token.decrypt(mine, iv, aad, sealed, 'managed')).toThrow(IntegrityError);
      expectRefusal(() => token.sign(aes, MESSAGE, SHA256), /aes256-gcm96 key does not sign/);

      // Test only: a generic secret of known value, made non-extractable in the token, used as an HMAC key in place.
      const value = randomBytes(64);
      withSession((p11, s) =>
        p11.C_CreateObject(s, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
          { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_PRIVATE, value: true },
          { type: pkcs11js.CKA_LABEL, value: label('hmac') },
          { type: pkcs11js.CKA_SENSITIVE, value: true },
          { type: pkcs11js.CKA_EXTRACTABLE, value: false },
          { type: pkcs11js.CKA_SIGN, value: true },
          { type: pkcs11js.CKA_VALUE, value },
        ]),
      );
      const hmacKey = token.findManagedKey({ label: label('hmac') });
      expect(hmacKey.type).toBe('hmac');
      expect(token.hmac(hmacKey, 'sha2-384', MESSAGE).equals(createHmac('sha384', value).update(MESSAGE).digest())).toBe(true);
      // And one made with pkcs11-tool.
      const mac = token.findManagedKey({ label: label('mac') });
      expect(mac.type).toBe('hmac');
      expect(token.hmac(mac, 'sha2-512', MESSAGE).equals(token.hmac(mac, 'sha2-512', MESSAGE))).toBe(true);
      expect(token.hmac(mac, 'sha2-512', MESSAGE).equals(token.hmac(hmacKey, 'sha2-512', MESSAGE))).toBe(false);
      for (const k of [aes, mine, hmacKey, mac]) token.releaseKey(k);
    });

    it('keeps managed keys working across a disconnect and lost sessions, found again by label or id', async () => {
      const ec = token.findManagedKey({ id: Buffer.from(`${ids}01`, 'hex') });
      const aes = token.findManagedKey({ label: label('aes') });
      const wrapped = generated.get('ecdsa-p256')!;
      const aad = Buffer.from('a');
      const { iv, sealed } = token.seal(aes, aad, MESSAGE);
      const check = async () => {
        expect(nodeVerify('sha256', MESSAGE, { key: ec.publicKey!, dsaEncoding: 'der' }, token.sign(ec, MESSAGE, SHA256))).toBe(true);
        expect((await token.decryptAsync(aes, iv, aad, sealed, 'managed')).equals(MESSAGE)).toBe(true);
        expect(nodeVerifies('ecdsa-p256', wrapped.publicKey, token.sign(wrapped.key, MESSAGE, SHA256), SHA256)).toBe(true);
      };
      const generation = ec.generation;
      token.disconnect();
      await check();
      expect(ec.generation).not.toBe(generation);

      // Sessions closed behind keyward's back: the call climbs the recovery ladder and is retried.
      const { p11, slot } = sideChannel(t);
      p11.C_CloseAllSessions(slot);
      await check();
      if (onEmulator) {
        // A dropped connection: the module is re-initialized, and the keys are found and unwrapped again.
        emu.dropConnection();
        await check();
      }
      token.releaseKey(ec);
      token.releaseKey(aes);
    });

    it("never destroys a managed key's object: releaseKey and disconnect leave it in the token", () => {
      const ec = token.findManagedKey({ label: label('ec') });
      const aes = token.findManagedKey({ label: label('aes') });
      expect(tokenObjects(label('ec'))).toBe(2); // the private key and its public key
      expect(tokenObjects(label('aes'))).toBe(1);
      token.releaseKey(ec);
      token.releaseKey(aes);
      expect(ec.handle).toBeUndefined();
      expect([tokenObjects(label('ec')), tokenObjects(label('aes'))]).toEqual([2, 1]);
      // Released, it is found again on its next use.
      expect(nodeVerify('sha256', MESSAGE, { key: ec.publicKey!, dsaEncoding: 'der' }, token.sign(ec, MESSAGE, SHA256))).toBe(true);
      token.disconnect();
      expect([tokenObjects(label('ec')), tokenObjects(label('aes'))]).toEqual([2, 1]);
      expect(token.findManagedKey({ label: label('aes') }).type).toBe('aes256-gcm96');
    });

    it('refuses HSM keys it must not or cannot use, saying why', () => {
      expectRefusal(() => token.findManagedKey({ label: label('extractable') }), /extractable \(CKA_EXTRACTABLE true\): keyward uses only keys that cannot leave the HSM/);
      expectRefusal(() => token.findManagedKey({ label: label('nothing') }), new RegExp(`no private or secret key with label "${label('nothing')}"`));
      expectRefusal(() => token.findManagedKey({ id: Buffer.from('ffee', 'hex') }), /no private or secret key with id ffee/);
      expectRefusal(() => token.findManagedKey({ label: label('twice') }), new RegExp(`2 keys in the HSM have label "${label('twice')}" \\(0 private, 2 secret\\)`));
      expectRefusal(() => token.findManagedKey({ label: label('ec'), id: Buffer.from(`${ids}03`, 'hex') }), /no private or secret key with label .* and id/);
      expectRefusal(() => token.findManagedKey({}), /named by its label, its id, or both/);
      expectRefusal(() => token.findManagedKey({ label: 'keyward-seal' }), /keyward's seal key/);

      withSession((p11, s) =>
        p11.C_CreateObject(s, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
          { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_PRIVATE, value: true },
          { type: pkcs11js.CKA_LABEL, value: label('no-sign') },
          { type: pkcs11js.CKA_EXTRACTABLE, value: false },
          { type: pkcs11js.CKA_SIGN, value: false },
          { type: pkcs11js.CKA_VALUE, value: randomBytes(32) },
        ]),
      );
      expectRefusal(() => token.findManagedKey({ label: label('no-sign') }), /may not sign \(compute an HMAC\) \(CKA_SIGN is false\)/);

      // A public-key object of another key under the private key's CKA_ID, then none at all.
      const swappedId = Buffer.from(`${ids}04`, 'hex');
      expect(token.findManagedKey({ label: label('swapped') }).type).toBe('ecdsa-p256');
      withSession((p11, s) => {
        const [pub] = find(p11, s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY }, { type: pkcs11js.CKA_ID, value: swappedId }]);
        p11.C_DestroyObject(s, pub!);
        const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
        const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
        p11.C_CreateObject(s, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
          { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_EC },
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_ID, value: swappedId },
          { type: pkcs11js.CKA_EC_PARAMS, value: Buffer.from('06082a8648ce3d030107', 'hex') },
          { type: pkcs11js.CKA_EC_POINT, value: Buffer.concat([Buffer.from([4, point.length]), point]) },
        ]);
      });
      expectRefusal(() => token.findManagedKey({ label: label('swapped') }), /public key found for the key with label .* does not verify its signatures/);
      withSession((p11, s) => {
        for (const pub of find(p11, s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY }, { type: pkcs11js.CKA_ID, value: swappedId }])) p11.C_DestroyObject(s, pub);
      });
      expectRefusal(() => token.findManagedKey({ label: label('swapped') }), /no public key for the key with label .*: no public-key object shares its CKA_ID/);
    });

    it.runIf(onEmulator)('without RFC 5649 refuses to make key pairs with a TokenError but still makes HMAC keys; without CKM_EDDSA offers no EdDSA', () => {
      // The modes take effect at the module's next C_Initialize.
      const p11 = new pkcs11js.PKCS11();
      p11.load(emu.lib);
      token.disconnect();
      p11.C_Finalize();
      emu.setFipsModes({ hideMechanisms: [0x210a, 0x210b, CKM_EDDSA] });
      const bare = new Token(config);
      try {
        expect(bare.offersEdDsa()).toBe(false);
        let thrown: unknown;
        try {
          bare.generateKeyPair('ecdsa-p256');
        } catch (err) {
          thrown = err;
        }
        expect(thrown).toBeInstanceOf(TokenError);
        expect((thrown as TokenError).ckr).toBe('CKR_MECHANISM_INVALID');
        expect((thrown as Error).message).toMatch(/no RFC 5649 key wrap .* ecdsa-p256 private key needs/);
        const hmacKey = bare.generateHmacKey(32);
        expect(hmacKey.blob[2]).toBe(2); // RFC 3394
        const mac = bare.hmac(hmacKey, 'sha2-256', MESSAGE);
        expect(bare.hmac(bare.loadKey(hmacKey.blob), 'sha2-256', MESSAGE).equals(mac)).toBe(true);
        // A key wrapped with RFC 5649 names it, and the module that lost it says so.
        expect(() => bare.loadKey(generated.get('ecdsa-p256')!.key.blob)).toThrow(/no longer does rfc5649 key wrap/);
      } finally {
        bare.disconnect();
        p11.C_Finalize();
        emu.setFipsModes({});
      }
      // Back on the full module, the earlier keys work again.
      expect(nodeVerifies('ecdsa-p256', generated.get('ecdsa-p256')!.publicKey, token.sign(generated.get('ecdsa-p256')!.key, MESSAGE, SHA256), SHA256)).toBe(true);
    });
  });
}
