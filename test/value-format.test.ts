import { describe, expect, it } from 'vitest';
import { allocateValue, HEADER_BYTES, parseValue, termOf } from '../src/crypto/value-format.js';
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
});
