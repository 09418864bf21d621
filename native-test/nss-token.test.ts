import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IntegrityError } from '../src/pkcs11/errors.js';
import { Token } from '../src/pkcs11/token.js';
import { freshNssToken, type NssToken } from './support/nss.js';
import { gcm256 } from './support/wycheproof.js';

describe('Token against NSS softokn, on the event loop and on a session pool', () => {
  let t: NssToken;
  let token: Token;

  beforeAll(async () => {
    t = await freshNssToken();
    // Two pool threads: they must load softokn with the same library parameters as the event loop.
    token = new Token({ ...t.config, libraryParameters: t.libraryParameters, maxParallel: 2 });
    token.ensureSealKey(true);
    await token.started();
  });
  afterAll(() => token.disconnect());

  it('generated a seal key that never leaves the token, and runs GCM on a pool of 2', () => {
    expect(token.sealKeyAttributes()).toEqual({ sensitive: true, extractable: false, neverExtractable: true });
    expect(token.dispatch).toMatchObject({ mode: 'session-pool', maxParallel: 2 });
  });

  it(`passes the ${gcm256.length} Wycheproof AES-256-GCM vectors with 96-bit IVs, inline and on the pool`, async () => {
    let valid = 0;
    let refused = 0;
    for (const v of gcm256) {
      const key = token.importKey(Buffer.from(v.key, 'hex'));
      const iv = Buffer.from(v.iv, 'hex');
      const aad = Buffer.from(v.aad, 'hex');
      const sealed = Buffer.from(v.ct + v.tag, 'hex');
      if (v.result === 'valid') {
        const msg = Buffer.from(v.msg, 'hex');
        expect(token.encrypt(key, iv, aad, msg, Buffer.alloc(msg.length + 16)).toString('hex'), `tcId ${v.tcId} inline`).toBe(v.ct + v.tag);
        expect((await token.encryptAsync(key, iv, aad, msg, Buffer.alloc(msg.length + 16))).toString('hex'), `tcId ${v.tcId} pool`).toBe(v.ct + v.tag);
        expect(token.decrypt(key, iv, aad, sealed, 'vector').toString('hex'), `tcId ${v.tcId} inline`).toBe(v.msg);
        expect((await token.decryptAsync(key, iv, aad, sealed, 'vector')).toString('hex'), `tcId ${v.tcId} pool`).toBe(v.msg);
        valid++;
      } else {
        expect(() => token.decrypt(key, iv, aad, sealed, 'vector'), `tcId ${v.tcId} inline`).toThrow(IntegrityError);
        await expect(token.decryptAsync(key, iv, aad, sealed, 'vector'), `tcId ${v.tcId} pool`).rejects.toThrow(IntegrityError);
        refused++;
      }
      token.releaseKey(key);
    }
    expect(valid).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  });

  it('wraps a generated key under the seal key and unwraps the blob to the same key', async () => {
    const key = token.generateKey();
    const again = token.loadKey(key.blob);
    expect(token.sameKey(key, again)).toBe(true);
    const iv = Buffer.alloc(12, 7);
    const aad = Buffer.from('secret/nss');
    const sealed = Buffer.from(await token.encryptAsync(key, iv, aad, Buffer.from('on softokn'), Buffer.alloc(26)));
    expect((await token.decryptAsync(again, iv, aad, sealed, 'v')).toString()).toBe('on softokn');
    sealed[3]! ^= 1;
    await expect(token.decryptAsync(again, iv, aad, sealed, 'value at "secret/nss"')).rejects.toThrow('integrity check failed: value at "secret/nss"');
    const other = token.generateKey();
    expect(token.sameKey(key, other)).toBe(false);
  });
});
