import { describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../src/core/errors.js';
import { decodeShare, ShareCollector } from '../src/core/shares.js';

const share = Buffer.from('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff42', 'hex');

describe('decodeShare', () => {
  it('reads hex in either case and base64, ignoring surrounding whitespace', () => {
    const hex = share.toString('hex');
    expect(decodeShare(hex, 33)).toEqual(share);
    expect(decodeShare(hex.toUpperCase(), 33)).toEqual(share);
    expect(decodeShare(`  ${hex}\n`, 33)).toEqual(share);
    expect(decodeShare(share.toString('base64'), 33)).toEqual(share);
    expect(decodeShare(`\t${share.subarray(0, 32).toString('base64')} `, 32)).toEqual(share.subarray(0, 32));
  });

  it('reads base64 with one or two padding characters and with + and /', () => {
    expect(decodeShare(Buffer.from([0xfb, 0xff]).toString('base64'), 2)).toEqual(Buffer.from([0xfb, 0xff]));
    expect(Buffer.from([0xfb, 0xff]).toString('base64')).toBe('+/8=');
    expect(decodeShare('AAE=', 2)).toEqual(Buffer.from([0, 1]));
    expect(decodeShare('AA==', 1)).toEqual(Buffer.from([0]));
  });

  it('takes even-length hex as hex, even where it would also be base64', () => {
    // "abcd" is valid base64 (3 bytes) too; Vault's `keys` are hex first.
    expect(decodeShare('abcd', 2)).toEqual(Buffer.from([0xab, 0xcd]));
    // Odd-length hex is not hex; "abcde" is not base64 either.
    expect(() => decodeShare('abcde', 2)).toThrow("'key' must be a valid hex or base64 string");
    // Twelve hex digits would be 9 bytes as base64: they are 6 bytes of hex.
    expect(decodeShare('0a0b0c0d0e0f', 6)).toEqual(Buffer.from([10, 11, 12, 13, 14, 15]));
  });

  it('refuses what is neither hex nor base64', () => {
    for (const text of ['not a share!', 'zz', 'AAE', 'AA=A', 'AAAAA===', '0x0011', 'ab cd', '-_-_']) {
      expect(() => decodeShare(text, 2), text).toThrow(new InvalidRequestError("'key' must be a valid hex or base64 string"));
    }
  });

  it('refuses a missing, empty or non-string key', () => {
    for (const key of [undefined, null, '', 42, ['00'], Buffer.from('00')]) {
      expect(() => decodeShare(key, 1), String(key)).toThrow(new InvalidRequestError("'key' must be a non-empty string"));
    }
  });

  it('refuses a share of the wrong size, naming both sizes', () => {
    expect(() => decodeShare(share.toString('hex'), 32)).toThrow(
      new InvalidRequestError("'key' decodes to 33 bytes, but a share of this cluster is 32 bytes"),
    );
    expect(() => decodeShare('00', 33)).toThrow(/decodes to 1 bytes, but a share of this cluster is 33 bytes/);
  });
});

describe('ShareCollector', () => {
  const s = (byte: number, length = 33) => Buffer.alloc(length, byte);

  it('counts distinct shares and hands them over in order', () => {
    const c = new ShareCollector();
    expect(c.progress).toBe(0);
    expect(c.add(s(1))).toBe(true);
    expect(c.add(s(2))).toBe(true);
    expect(c.progress).toBe(2);
    const taken = c.take();
    expect(taken).toEqual([s(1), s(2)]);
    // Taken shares are the caller's now: nothing is left, and they are not zeroed.
    expect(c.progress).toBe(0);
    expect(c.take()).toEqual([]);
  });

  it('does not count a share twice, and zeroes the repeated copy', () => {
    const c = new ShareCollector();
    const first = s(7);
    c.add(first);
    c.add(s(8));
    const again = s(7);
    expect(c.add(again)).toBe(false);
    expect(again).toEqual(s(0));
    expect(first).toEqual(s(7));
    expect(c.progress).toBe(2);
  });

  it('tells apart shares that differ in length only', () => {
    const c = new ShareCollector();
    expect(c.add(s(3, 32))).toBe(true);
    expect(c.add(s(3, 33))).toBe(true);
    expect(c.progress).toBe(2);
  });

  it('reset zeroes and forgets the shares given so far', () => {
    const c = new ShareCollector();
    const a = s(4);
    const b = s(5);
    c.add(a);
    c.add(b);
    c.reset();
    expect(a).toEqual(s(0));
    expect(b).toEqual(s(0));
    expect(c.progress).toBe(0);
    expect(c.take()).toEqual([]);
    expect(c.add(s(4))).toBe(true);
  });
});
