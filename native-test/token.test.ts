import pkcs11js from 'pkcs11js';
import { beforeAll, describe, expect, it } from 'vitest';
import { IntegrityError, TokenUnavailableError } from '../src/pkcs11/errors.js';
import { Token } from '../src/pkcs11/token.js';
import { freshProcessToken, processTokenWithSealKey, sideChannel, type TestToken } from './support/softhsm.js';
import { expectGcmVectors, gcm256 } from './support/wycheproof.js';

function attribute(p11: pkcs11js.PKCS11, slot: Buffer, handle: Buffer, type: number): Buffer {
  const s = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
  try {
    return p11.C_GetAttributeValue(s, handle, [{ type }])[0]!.value as Buffer;
  } finally {
    p11.C_CloseSession(s);
  }
}

describe('Token against SoftHSM2', () => {
  let t: TestToken;
  let token: Token;

  beforeAll(async () => {
    ({ t, token } = await processTokenWithSealKey());
  });

  it(`passes the ${gcm256.length} Wycheproof AES-256-GCM vectors with 96-bit IVs`, async () => {
    expect(gcm256.length).toBeGreaterThan(60);
    const { valid, refused } = await expectGcmVectors(token, { pool: false });
    expect(valid).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  });

  it('keeps the seal key sensitive and never extractable', () => {
    expect(token.sealKeyAttributes()).toEqual({ sensitive: true, extractable: false, neverExtractable: true });
    const { p11, slot } = sideChannel(t);
    const s = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
    p11.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_LABEL, value: 'keyward-seal' }]);
    const [k] = p11.C_FindObjects(s, 1);
    p11.C_FindObjectsFinal(s);
    expect(() => p11.C_GetAttributeValue(s, k!, [{ type: pkcs11js.CKA_VALUE }])).toThrow(/CKR_ATTRIBUTE_SENSITIVE/);
    p11.C_CloseSession(s);
  });

  it('holds working keys as non-extractable session objects and zeroes imported bytes', () => {
    const raw = Buffer.alloc(32, 0x5a);
    const key = token.importKey(raw);
    expect(raw.equals(Buffer.alloc(32))).toBe(true);
    // A version byte and the key-wrap algorithm (1: RFC 5649, SoftHSM2's 0x210A), then the 40 wrapped bytes.
    expect(key.blob.length).toBe(42);
    expect([...key.blob.subarray(0, 2)]).toEqual([1, 1]);
    const { p11, slot } = sideChannel(t);
    expect(attribute(p11, slot, key.handle!, pkcs11js.CKA_EXTRACTABLE)[0]).toBe(0);
    expect(attribute(p11, slot, key.handle!, pkcs11js.CKA_SENSITIVE)[0]).toBe(1);
    expect(attribute(p11, slot, key.handle!, pkcs11js.CKA_TOKEN)[0]).toBe(0);
    token.releaseKey(key);
  });

  it('refuses a blob not wrapped by this seal key', () => {
    expect(() => token.loadKey(Buffer.alloc(40, 7))).toThrow(IntegrityError);
  });

  it('recovers from sessions closed behind its back and from a finalized module', () => {
    const key = token.generateKey();
    const iv = Buffer.alloc(12, 1);
    const aad = Buffer.from('p');
    const ct = token.encrypt(key, iv, aad, Buffer.from('secret'), Buffer.alloc(22));
    const { p11, slot } = sideChannel(t);

    p11.C_CloseAllSessions(slot);
    expect(token.decrypt(key, iv, aad, ct, 'x').toString()).toBe('secret');

    p11.C_Finalize();
    expect(token.decrypt(key, iv, aad, ct, 'x').toString()).toBe('secret');
    expect(token.encrypt(key, iv, aad, Buffer.from('secret'), Buffer.alloc(22)).equals(ct)).toBe(true);
  });

  it('makes the seal key a private, sensitive token object that only wraps, unwraps, encrypts and decrypts', () => {
    const { p11, slot } = sideChannel(t);
    const s = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
    p11.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_LABEL, value: 'keyward-seal' }]);
    const found = p11.C_FindObjects(s, 2);
    p11.C_FindObjectsFinal(s);
    p11.C_CloseSession(s);
    expect(found).toHaveLength(1);
    const k = found[0]!;
    const bool = (type: number) => attribute(p11, slot, k, type)[0];
    expect(attribute(p11, slot, k, pkcs11js.CKA_CLASS).readUInt32LE(0)).toBe(pkcs11js.CKO_SECRET_KEY);
    expect(attribute(p11, slot, k, pkcs11js.CKA_KEY_TYPE).readUInt32LE(0)).toBe(pkcs11js.CKK_AES);
    expect(attribute(p11, slot, k, pkcs11js.CKA_VALUE_LEN).readUInt32LE(0)).toBe(32);
    for (const type of [pkcs11js.CKA_TOKEN, pkcs11js.CKA_PRIVATE, pkcs11js.CKA_SENSITIVE, pkcs11js.CKA_WRAP, pkcs11js.CKA_UNWRAP, pkcs11js.CKA_ENCRYPT, pkcs11js.CKA_DECRYPT]) {
      expect(bool(type), `attribute 0x${type.toString(16)}`).toBe(1);
    }
    expect(bool(pkcs11js.CKA_EXTRACTABLE)).toBe(0);
  });

  it('unwraps working keys as private AES session objects that encrypt and decrypt', () => {
    const key = token.generateKey();
    const { p11, slot } = sideChannel(t);
    expect(attribute(p11, slot, key.handle!, pkcs11js.CKA_KEY_TYPE).readUInt32LE(0)).toBe(pkcs11js.CKK_AES);
    for (const type of [pkcs11js.CKA_PRIVATE, pkcs11js.CKA_ENCRYPT, pkcs11js.CKA_DECRYPT]) expect(attribute(p11, slot, key.handle!, type)[0]).toBe(1);
    token.releaseKey(key);
  });

  it('leaves one session object per working key: the extractable key made for wrapping is destroyed, and release destroys the copy', () => {
    const { p11, slot } = sideChannel(t);
    const sessionKeys = (): number => {
      const s = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
      p11.C_FindObjectsInit(s, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_TOKEN, value: false },
      ]);
      const n = p11.C_FindObjects(s, 1000).length;
      p11.C_FindObjectsFinal(s);
      p11.C_CloseSession(s);
      return n;
    };
    const before = sessionKeys();
    const generated = token.generateKey();
    expect(sessionKeys()).toBe(before + 1);
    const imported = token.importKey(Buffer.alloc(32, 3));
    expect(sessionKeys()).toBe(before + 2);
    token.releaseKey(generated);
    token.releaseKey(imported);
    expect(sessionKeys()).toBe(before);
    expect([generated.handle, generated.generation]).toEqual([undefined, -1]);
    // The blob outlives the release: the key comes back from it.
    const again = token.loadKey(imported.blob);
    expect(token.sameKey(again, token.importKey(Buffer.alloc(32, 3)))).toBe(true);
  });

  it('writes ciphertext and a 16-byte tag into the given buffer, also for an empty plaintext', () => {
    const key = token.generateKey();
    const iv = Buffer.alloc(12, 2);
    const aad = Buffer.from('path');
    const out = Buffer.alloc(5 + 16);
    const sealed = token.encrypt(key, iv, aad, Buffer.from('hello'), out);
    expect(sealed.length).toBe(21);
    expect(sealed.buffer).toBe(out.buffer);
    expect(out.equals(sealed)).toBe(true);
    expect(token.decrypt(key, iv, aad, sealed, 'x').toString()).toBe('hello');

    const tagOnly = token.encrypt(key, iv, aad, Buffer.alloc(0), Buffer.alloc(16));
    expect(tagOnly.length).toBe(16);
    expect(token.decrypt(key, iv, aad, tagOnly, 'x').length).toBe(0);
    // The AAD is authenticated: another path does not decrypt.
    expect(() => token.decrypt(key, iv, Buffer.from('other'), tagOnly, 'x')).toThrow(IntegrityError);
    token.releaseKey(key);
  });

  it('refuses a ciphertext shorter than the tag before asking the token', () => {
    const key = token.generateKey();
    const calls = token.injectFaultsForTesting({ countOnly: true })!;
    expect(() => token.decrypt(key, Buffer.alloc(12), Buffer.alloc(1), Buffer.alloc(15), 'value at "a"')).toThrow(
      new IntegrityError('value at "a": ciphertext shorter than the GCM tag'),
    );
    expect(calls.functions).toEqual([]);
    token.injectFaultsForTesting(undefined);
    token.releaseKey(key);
  });

  it('tells the same key material from different material inside the token', () => {
    const a = token.generateKey();
    const b = token.generateKey();
    expect(token.sameKey(a, token.loadKey(a.blob))).toBe(true);
    expect(token.sameKey(a, b)).toBe(false);
  });

  it('returns as many random bytes as asked', () => {
    const r = token.random(48);
    expect(r.length).toBe(48);
    expect(r.equals(Buffer.alloc(48))).toBe(false);
  });

  it('zeroes the raw key bytes even when the token refuses them', () => {
    const raw = Buffer.alloc(32, 0x5a);
    // The session's transport pair exists after one import, so the next import's first call is its unwrap.
    token.releaseKey(token.importKey(Buffer.alloc(32, 1)));
    token.injectFaultsForTesting({ at: 1, ckr: 'CKR_TEMPLATE_INCONSISTENT' });
    try {
      expect(() => token.importKey(raw)).toThrow(/C_UnwrapKey failed: CKR_TEMPLATE_INCONSISTENT/);
    } finally {
      token.injectFaultsForTesting(undefined);
    }
    expect(raw.equals(Buffer.alloc(32))).toBe(true);
  });

  it('never retries a wrong PIN', () => {
    // Login is per application: log the other Token out so the wrong PIN is really tried.
    token.disconnect();
    const wrong = new Token({ ...t.config, pin: 'wrong-pin' });
    expect(() => wrong.random(4)).toThrow(/CKR_PIN_INCORRECT/);
    let second: unknown;
    try {
      wrong.random(4);
    } catch (err) {
      second = err;
    }
    expect(second).toBeInstanceOf(TokenUnavailableError);
    expect((second as Error).message).toMatch(/CKR_PIN_INCORRECT.*restart/);
  });

  it('refuses a second token in this process, which SoftHSM2 would silently replace by the first', async () => {
    await expect(freshProcessToken('another')).rejects.toThrow(/one token per test file/);
  });

  it('reports a missing token clearly', () => {
    const missing = new Token({ ...t.config, tokenLabel: 'no-such-token' });
    expect(() => missing.random(4)).toThrow(/no token labelled "no-such-token"/);
  });
});
