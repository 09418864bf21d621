import * as openpgp from 'openpgp';
import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../src/core/errors.js';
import { newRootKey, rebuildKey, sharesRebuild } from '../src/core/quorum.js';
import { split } from '../src/crypto/shamir.js';
import { Token, type TokenKey } from '../src/pkcs11/token.js';
import { freshProcessToken } from './support/softhsm.js';

describe('quorum: root keys from shares, in SoftHSM2', () => {
  let token: Token;
  const copies = (shares: Buffer[]) => shares.map((s) => Buffer.from(s));
  const zeroed = (b: Buffer) => b.every((x) => x === 0);

  beforeAll(async () => {
    const t = await freshProcessToken();
    token = new Token(t.config);
    token.ensureSealKey(true);
  });

  it('makes one share that is the root key itself', async () => {
    const { rootKey, keys } = await newRootKey(token, 1, 1, []);
    expect(keys).toHaveLength(1);
    expect(keys[0]).toHaveLength(32);
    expect(zeroed(keys[0]!)).toBe(false);
    expect(token.sameKey(rebuildKey(token, copies(keys), 'unseal'), rootKey)).toBe(true);
  });

  it('splits a fresh root key so that any threshold of the shares, and no fewer, rebuild it', async () => {
    const { rootKey, keys } = await newRootKey(token, 5, 3, []);
    expect(keys.map((k) => k.length)).toEqual([33, 33, 33, 33, 33]);
    for (const pick of [[0, 1, 2], [4, 2, 0], [1, 3, 4]]) {
      expect(token.sameKey(rebuildKey(token, copies(pick.map((i) => keys[i]!)), 'unseal'), rootKey), String(pick)).toBe(true);
    }
    expect(token.sameKey(rebuildKey(token, copies(keys.slice(0, 2)), 'unseal'), rootKey)).toBe(false);
    // Each call draws a new key from the token.
    const other = await newRootKey(token, 5, 3, []);
    expect(token.sameKey(other.rootKey, rootKey)).toBe(false);
  });

  it('zeroes the shares it was given, whether or not they combine', () => {
    const good = split(Buffer.alloc(32, 7), 3, 2);
    rebuildKey(token, good, 'unseal');
    expect(good.every(zeroed)).toBe(true);
    const duplicated = split(Buffer.alloc(32, 7), 3, 2);
    const twice = [duplicated[0]!, Buffer.from(duplicated[0]!)];
    expect(() => rebuildKey(token, twice, 'unseal')).toThrow();
    expect(twice.every(zeroed)).toBe(true);
  });

  it('turns shares that cannot be combined into a 400 naming the operation, after resetting progress', () => {
    const shares = split(Buffer.alloc(32, 1), 3, 2);
    let resets = 0;
    const attempt = () => rebuildKey(token, [shares[0]!, Buffer.from(shares[0]!)], 'generate-root', () => resets++);
    expect(attempt).toThrow(
      new InvalidRequestError('generate-root failed: the shares cannot be combined (duplicate part detected); progress has been reset'),
    );
    expect(resets).toBe(1);
    rebuildKey(token, split(Buffer.alloc(32, 1), 3, 2).slice(1), 'unseal', () => resets++);
    expect(resets).toBe(1);
    // Without a callback the refusal is the same.
    expect(() => rebuildKey(token, [Buffer.alloc(33, 1), Buffer.alloc(32, 2)], 'unseal')).toThrow(/^unseal failed: .*all parts must be the same length/);
  });

  it('tells whether shares rebuild a key, releasing the rebuilt key from the token either way', async () => {
    const { rootKey, keys } = await newRootKey(token, 3, 2, []);
    let candidate: TokenKey | undefined;
    const isRoot = (k: TokenKey) => {
      candidate = k;
      expect(k.handle).toBeDefined();
      return token.sameKey(k, rootKey);
    };
    expect(sharesRebuild(token, copies(keys.slice(1)), 'rekey', isRoot)).toBe(true);
    expect(candidate!.handle).toBeUndefined();
    candidate = undefined;
    expect(sharesRebuild(token, [Buffer.from(keys[0]!), split(Buffer.alloc(32, 9), 3, 2)[0]!], 'rekey', isRoot)).toBe(false);
    expect(candidate!.handle).toBeUndefined();
    let resets = 0;
    expect(() => sharesRebuild(token, [Buffer.from(keys[0]!), Buffer.from(keys[0]!)], 'rekey', isRoot, () => resets++)).toThrow(/^rekey failed: .*duplicate part/);
    expect(resets).toBe(1);
  });

  it('encrypts each share to the PGP key at its position, and fails when a share has no key', async () => {
    const pairs = await Promise.all(
      [1, 2].map((i) => openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ name: `holder ${i}` }], format: 'object' })),
    );
    const { rootKey, keys } = await newRootKey(token, 2, 2, pairs.map((p) => p.publicKey));
    const plain: Buffer[] = [];
    for (const [i, encrypted] of keys.entries()) {
      const message = await openpgp.readMessage({ binaryMessage: encrypted });
      const { data } = await openpgp.decrypt({ message, decryptionKeys: pairs[i]!.privateKey });
      plain.push(Buffer.from(data as string, 'hex'));
    }
    expect(plain.map((p) => p.length)).toEqual([33, 33]);
    expect(token.sameKey(rebuildKey(token, plain, 'unseal'), rootKey)).toBe(true);
    await expect(newRootKey(token, 3, 2, pairs.map((p) => p.publicKey))).rejects.toThrow(/No keys, passwords, or session key provided/);
  });
});
