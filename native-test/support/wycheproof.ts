import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { IntegrityError } from '../../src/pkcs11/errors.js';
import type { Token } from '../../src/pkcs11/token.js';

export interface GcmVector {
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

const vectors = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'test', 'data', 'wycheproof', 'aes_gcm_test.json'), 'utf8')) as {
  testGroups: GcmGroup[];
};

/** Wycheproof's AES-GCM vectors for what keyward uses: 256-bit keys, 96-bit IVs, 128-bit tags. */
export const gcm256: readonly GcmVector[] = vectors.testGroups.filter((g) => g.keySize === 256 && g.ivSize === 96 && g.tagSize === 128).flatMap((g) => g.tests);

/**
 * Runs every vector through the token, each key imported as keyward imports a root key: valid ones
 * must encrypt to their ciphertext and tag and decrypt back, the others must fail as an integrity
 * error. `inline` uses the synchronous calls on the token's session; `pool` also the asynchronous
 * ones (the session pool when the token has one). Returns how many of each kind ran.
 */
export async function expectGcmVectors(token: Token, paths: { pool: boolean }): Promise<{ valid: number; refused: number }> {
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
      expect(token.decrypt(key, iv, aad, sealed, 'vector').toString('hex'), `tcId ${v.tcId} inline`).toBe(v.msg);
      if (paths.pool) {
        expect((await token.encryptAsync(key, iv, aad, msg, Buffer.alloc(msg.length + 16))).toString('hex'), `tcId ${v.tcId} pool`).toBe(v.ct + v.tag);
        expect((await token.decryptAsync(key, iv, aad, sealed, 'vector')).toString('hex'), `tcId ${v.tcId} pool`).toBe(v.msg);
      }
      valid++;
    } else {
      expect(() => token.decrypt(key, iv, aad, sealed, 'vector'), `tcId ${v.tcId} inline`).toThrow(IntegrityError);
      if (paths.pool) await expect(token.decryptAsync(key, iv, aad, sealed, 'vector'), `tcId ${v.tcId} pool`).rejects.toThrow(IntegrityError);
      refused++;
    }
    token.releaseKey(key);
  }
  return { valid, refused };
}
