import { createCipheriv } from 'node:crypto';

/**
 * AES key wrap, chosen by what a module's mechanisms do rather than by their numbers: 0x210A is
 * RFC 5649 on SoftHSM2 but RFC 3394 with PKCS#7 padding on NSS, where RFC 5649 is 0x210B.
 */
export type KeyWrapAlgorithm = 'rfc5649' | 'rfc3394';

/** The numbers modules use, in the order tried. RFC 3394 fits the 32-byte keys keyward wraps. */
export const KEY_WRAP_CANDIDATES: ReadonlyArray<{ algorithm: KeyWrapAlgorithm; mechanism: number }> = [
  { algorithm: 'rfc5649', mechanism: 0x210a },
  { algorithm: 'rfc5649', mechanism: 0x210b },
  { algorithm: 'rfc3394', mechanism: 0x2109 },
];

/** RFC 3394 §4.6's 256-bit key-encryption key and key data: the known answer a candidate must give. */
export const KAT_KEK = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
export const KAT_KEY = Buffer.from('00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f', 'hex');

/** What `algorithm` makes of KAT_KEY under KAT_KEK, computed in software. */
export function knownAnswer(algorithm: KeyWrapAlgorithm): Buffer {
  const [cipher, iv] = algorithm === 'rfc5649' ? ['id-aes256-wrap-pad', 'a65959a6'] : ['id-aes256-wrap', 'a6a6a6a6a6a6a6a6'];
  const c = createCipheriv(cipher, KAT_KEK, Buffer.from(iv, 'hex'));
  return Buffer.concat([c.update(KAT_KEY), c.final()]);
}

const BLOB_VERSION = 1;
const ALGORITHM_IDS: Record<KeyWrapAlgorithm, number> = { rfc5649: 1, rfc3394: 2 };
/** A wrapped 32-byte key is 40 bytes under either algorithm: a blob of 42 bytes is tagged, any other length is older. */
const TAGGED_LENGTH = 2 + 40;

/** A K-wrapped key as keyward stores it: a version byte and the algorithm, then the wrapped bytes. */
export function encodeBlob(algorithm: KeyWrapAlgorithm, wrapped: Buffer): Buffer {
  return Buffer.concat([Buffer.from([BLOB_VERSION, ALGORITHM_IDS[algorithm]]), wrapped]);
}

/** The algorithm and wrapped bytes of a stored blob; blobs from before the tag are RFC 5649 (SoftHSM2's 0x210A). */
export function decodeBlob(blob: Buffer): { algorithm: KeyWrapAlgorithm; wrapped: Buffer } {
  if (blob.length !== TAGGED_LENGTH || blob[0] !== BLOB_VERSION) return { algorithm: 'rfc5649', wrapped: blob };
  const algorithm = (Object.keys(ALGORITHM_IDS) as KeyWrapAlgorithm[]).find((a) => ALGORITHM_IDS[a] === blob[1]);
  if (!algorithm) throw new Error(`a wrapped key names an unknown key-wrap algorithm (${blob[1]})`);
  return { algorithm, wrapped: blob.subarray(2) };
}
