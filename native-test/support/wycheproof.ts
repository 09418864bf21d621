import { readFileSync } from 'node:fs';
import { join } from 'node:path';

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
