import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import { beforeAll, describe, expect, it } from 'vitest';
import { IntegrityError, TokenUnavailableError } from '../src/pkcs11/errors.js';
import { Token } from '../src/pkcs11/token.js';
import { freshProcessToken, sideChannel, type TestToken } from './support/softhsm.js';

interface GcmVector {
  tcId: number;
  key: string;
  iv: string;
  aad: string;
  msg: string;
  ct: string;
  tag: string;
  result: 'valid' | 'invalid' | 'acceptable';
}
interface GcmGroup {
  keySize: number;
  ivSize: number;
  tagSize: number;
  tests: GcmVector[];
}

const vectors = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'test', 'data', 'wycheproof', 'aes_gcm_test.json'), 'utf8')) as {
  testGroups: GcmGroup[];
};
const gcm256 = vectors.testGroups.filter((g) => g.keySize === 256 && g.ivSize === 96 && g.tagSize === 128).flatMap((g) => g.tests);

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
    t = await freshProcessToken();
    token = new Token(t.config);
    token.ensureSealKey(true);
  });

  it(`passes the ${gcm256.length} Wycheproof AES-256-GCM vectors with 96-bit IVs`, () => {
    expect(gcm256.length).toBeGreaterThan(60);
    let valid = 0;
    let refused = 0;
    for (const v of gcm256) {
      const key = token.importKey(Buffer.from(v.key, 'hex'));
      const iv = Buffer.from(v.iv, 'hex');
      const aad = Buffer.from(v.aad, 'hex');
      const sealed = Buffer.from(v.ct + v.tag, 'hex');
      if (v.result === 'valid') {
        const msg = Buffer.from(v.msg, 'hex');
        const out = token.encrypt(key, iv, aad, msg, Buffer.alloc(msg.length + 16));
        expect(out.toString('hex'), `tcId ${v.tcId}`).toBe(v.ct + v.tag);
        expect(token.decrypt(key, iv, aad, sealed, 'vector').toString('hex'), `tcId ${v.tcId}`).toBe(v.msg);
        valid++;
      } else {
        expect(() => token.decrypt(key, iv, aad, sealed, 'vector'), `tcId ${v.tcId}`).toThrow(IntegrityError);
        refused++;
      }
      token.releaseKey(key);
    }
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
    expect(key.blob.length).toBe(40);
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
