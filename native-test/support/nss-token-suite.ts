import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Token } from '../../src/pkcs11/token.js';
import type { NssToken } from './nss.js';
import { expectGcmVectors, gcm256 } from './wycheproof.js';

/** keyward's Token on an NSS softokn database (plain or FIPS mode): Wycheproof GCM, key wrap, tag failures, inline and on a pool. */
export function describeNssToken(module: string, fresh: () => Promise<NssToken>): void {
  describe(`Token against ${module}, on the event loop and on a session pool`, () => {
    let t: NssToken;
    let token: Token;

    beforeAll(async () => {
      t = await fresh();
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
      const { valid, refused } = await expectGcmVectors(token, { pool: true });
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
}
