import { describe, expect, it } from 'vitest';
import { allocateValue, formatValue, HEADER_BYTES, parseValue, termOf } from '../src/crypto/value-format.js';
import { IntegrityError } from '../src/pkcs11/errors.js';

describe('barrier value format', () => {
  it('writes term (uint32 BE), version 0x02 and the nonce ahead of ciphertext and tag', () => {
    const nonce = Buffer.from('0102030405060708090a0b0c', 'hex');
    const v = allocateValue(0x01020304, nonce, 5);
    expect(v.length).toBe(4 + 1 + 12 + 5 + 16);
    expect(v.subarray(0, HEADER_BYTES).toString('hex')).toBe('0102030402' + '0102030405060708090a0b0c');
    expect(termOf(v)).toBe(0x01020304);
    const parsed = parseValue(v, 'p');
    expect(parsed.term).toBe(0x01020304);
    expect(parsed.nonce.equals(nonce)).toBe(true);
    expect(parsed.sealed.length).toBe(21);
  });

  it('refuses short values and unknown versions as integrity errors', () => {
    expect(() => parseValue(Buffer.alloc(10), 'p')).toThrow(IntegrityError);
    const v = allocateValue(1, Buffer.alloc(12), 0);
    v[4] = 0x01;
    expect(() => parseValue(v, 'p')).toThrow(/unknown format version 1/);
  });

  it('accepts an empty plaintext (header and tag only) and refuses a byte less, naming the path', () => {
    const empty = allocateValue(7, Buffer.alloc(12, 0xee), 0);
    expect(empty.length).toBe(33);
    expect(parseValue(empty, 'kv/x')).toEqual({ term: 7, nonce: Buffer.alloc(12, 0xee), sealed: empty.subarray(17) });
    for (const length of [0, 1, 17, 32]) {
      const short = Buffer.alloc(length, 0x02);
      expect(() => parseValue(short, 'kv/x'), String(length)).toThrow(new IntegrityError('value at "kv/x" is too short to be a barrier value'));
    }
    const unknown = Buffer.from(empty);
    unknown[4] = 0x04;
    expect(() => parseValue(unknown, 'kv/y')).toThrow(new IntegrityError('value at "kv/y" has unknown format version 4'));
  });

  it('reads terms as unsigned 32-bit big-endian, up to 2^32 - 1', () => {
    const v = allocateValue(0xffffffff, Buffer.alloc(12), 3);
    expect(v.subarray(0, 5).toString('hex')).toBe('ffffffff02');
    expect(termOf(v)).toBe(0xffffffff);
    expect(parseValue(v, 'p').term).toBe(0xffffffff);
  });

  it('stores an IV the token chose at another length (Luna: 16 bytes) as version 3, and reads both versions', () => {
    const sealed = Buffer.alloc(21 + 16, 9);
    const iv16 = Buffer.alloc(16, 3);
    const v3 = formatValue(7, iv16, sealed);
    expect([...v3.subarray(0, 6)]).toEqual([0, 0, 0, 7, 3, 16]);
    expect(parseValue(v3, 'p')).toEqual({ term: 7, nonce: iv16, sealed });
    const iv12 = Buffer.alloc(12, 4);
    const v2 = formatValue(7, iv12, sealed);
    expect(v2[4]).toBe(2);
    expect(parseValue(v2, 'p')).toEqual({ term: 7, nonce: iv12, sealed });
    expect(() => parseValue(Buffer.concat([Buffer.from([0, 0, 0, 7, 3, 200]), Buffer.alloc(30)]), 'p')).toThrow(/too short for its IV/);
    expect(() => parseValue(Buffer.concat([Buffer.from([0, 0, 0, 7, 3, 0]), Buffer.alloc(40)]), 'p')).toThrow(/too short for its IV/);
  });
});
