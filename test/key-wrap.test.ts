import { describe, expect, it } from 'vitest';
import { decodeBlob, encodeBlob, knownAnswer } from '../src/pkcs11/key-wrap.js';

describe('key-wrap algorithms and blobs', () => {
  it("knows RFC 3394 §4.6's answer for its 256-bit KEK and key data, and a different one for RFC 5649", () => {
    expect(knownAnswer('rfc3394').toString('hex')).toBe('28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21');
    const rfc5649 = knownAnswer('rfc5649');
    expect(rfc5649).toHaveLength(40);
    expect(rfc5649.equals(knownAnswer('rfc3394'))).toBe(false);
  });

  it('tags a blob with its algorithm and reads it back; an untagged blob from before is RFC 5649', () => {
    const wrapped = Buffer.alloc(40, 7);
    for (const algorithm of ['rfc5649', 'rfc3394'] as const) {
      const blob = encodeBlob(algorithm, wrapped);
      expect(blob).toHaveLength(42);
      expect(decodeBlob(blob)).toEqual({ algorithm, wrapped });
    }
    for (const legacy of [Buffer.alloc(40, 1), Buffer.alloc(48, 1), Buffer.concat([Buffer.from([2, 1]), Buffer.alloc(40)])]) {
      expect(decodeBlob(legacy)).toEqual({ algorithm: 'rfc5649', wrapped: legacy });
    }
    expect(() => decodeBlob(Buffer.concat([Buffer.from([1, 9]), Buffer.alloc(40)]))).toThrow(/unknown key-wrap algorithm \(9\)/);
  });
});
