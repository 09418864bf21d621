import { createHmac } from 'node:crypto';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TokenBarrier } from '../src/barrier/barrier.js';
import { InvalidRequestError, PermissionDeniedError } from '../src/core/errors.js';
import { DEFAULT_TOKEN_TTL, newTokenId, type TokenEntry, TokenStore } from '../src/core/token-store.js';
import { Token } from '../src/pkcs11/token.js';
import type { StorageOp } from '../src/storage/backend.js';
import { InmemBackend } from '../src/storage/inmem.js';
import { freshProcessToken } from './support/softhsm.js';

/**
 * In-memory storage where one call touching one key can be held back, to interleave a lookup
 * with a change: a held read has read its value, a held write has not been applied yet.
 */
class GatedBackend extends InmemBackend {
  private held: { method: 'get' | 'put' | 'transaction'; key: string; reached: () => void; released: Promise<void> } | undefined;

  /** Holds `method` calls on `key` until `release`; `reached` resolves when one got there. */
  hold(method: 'get' | 'put' | 'transaction', key: string): { reached: Promise<void>; release: () => void } {
    let reached!: () => void;
    let release!: () => void;
    const reachedP = new Promise<void>((r) => (reached = r));
    this.held = { method, key, reached, released: new Promise((r) => (release = r)) };
    return {
      reached: reachedP,
      release: () => {
        this.held = undefined;
        release();
      },
    };
  }

  private async gate(method: 'get' | 'put' | 'transaction', keys: string[]): Promise<void> {
    const held = this.held;
    if (held?.method === method && keys.includes(held.key)) {
      held.reached();
      await held.released;
    }
  }

  override async get(key: string): Promise<Buffer | undefined> {
    const value = await super.get(key);
    await this.gate('get', [key]);
    return value;
  }

  override async put(key: string, value: Buffer): Promise<void> {
    await this.gate('put', [key]);
    return super.put(key, value);
  }

  override async transaction(ops: readonly StorageOp[]): Promise<void> {
    await this.gate('transaction', ops.map((op) => op.key));
    return super.transaction(ops);
  }
}

describe('TokenStore on a SoftHSM2 barrier', () => {
  let storage: GatedBackend;
  let barrier: TokenBarrier;
  let store: TokenStore;
  let rootToken: string;
  let root: TokenEntry;
  let clock: number;

  const denied = (message: string) => new PermissionDeniedError(message);
  const idPath = (hash: string) => `sys/token/id/${hash}`;
  const stored = async (hash: string) => barrier.get(idPath(hash));

  beforeAll(async () => {
    const t = await freshProcessToken();
    const token = new Token(t.config);
    token.ensureSealKey(true);
    storage = new GatedBackend();
    barrier = new TokenBarrier(storage, token);
    const rootKey = token.importKey(Buffer.alloc(32, 3));
    const blob = rootKey.blob;
    const init = TokenStore.initialRoot();
    rootToken = init.token;
    await barrier.initialize(rootKey, init.ops);
    token.releaseKey(rootKey);
    await barrier.unseal(token.loadKey(blob));
  });

  beforeEach(async () => {
    // Whole seconds, so creation_time (seconds) and expire_time (ms) line up exactly.
    clock = 1_800_000_000_000;
    store = new TokenStore(barrier, () => clock);
    root = await store.lookup(rootToken);
  });

  it('keeps the init root token only as an HMAC under the stored salt', async () => {
    expect(rootToken).toMatch(/^hvs\.[0-9A-Za-z]{24}$/);
    const salt = (await barrier.get('sys/token/salt'))!;
    expect(salt).toHaveLength(32);
    const hash = createHmac('sha256', salt).update(rootToken).digest('hex');
    expect(await store.hashOf(rootToken)).toBe(hash);
    expect(root).toMatchObject({
      hash,
      policies: ['root'],
      display_name: 'root',
      meta: null,
      ttl: 0,
      explicit_max_ttl: 0,
      expire_time: 0,
      num_uses: 0,
      renewable: false,
      parent: '',
      path: 'auth/token/root',
    });
    expect(root.accessor).toMatch(/^[0-9A-Za-z]{24}$/);
    expect(Math.abs(root.creation_time - Date.now() / 1000)).toBeLessThan(600);
    expect(await barrier.list('sys/token/id/')).toContain(hash);
    expect((await barrier.get(`sys/token/accessor/${root.accessor}`))?.toString()).toBe(hash);
    expect(await store.listAccessors()).toContain(root.accessor);
    expect(store.remainingTtl(root)).toBe(0);
  });

  it('mints distinct service-token ids', () => {
    const ids = new Set(Array.from({ length: 50 }, newTokenId));
    expect(ids.size).toBe(50);
    for (const id of ids) expect(id).toMatch(/^hvs\.[0-9A-Za-z]{24}$/);
  });

  it('refuses a missing, unknown or forged token', async () => {
    await expect(store.lookup(undefined)).rejects.toThrow(denied('no client token given (set X-Vault-Token)'));
    await expect(store.lookup('')).rejects.toThrow(denied('no client token given (set X-Vault-Token)'));
    await expect(store.lookup('hvs.unknown')).rejects.toThrow(denied('invalid token'));
    // An entry written under another token's hash does not answer for that token.
    const { entry } = await store.create(root, { policies: ['a'] }, 'auth/token/create');
    const forged = newTokenId();
    await barrier.put(idPath(await store.hashOf(forged)), Buffer.from(JSON.stringify(entry)));
    await expect(store.lookup(forged)).rejects.toThrow(denied('invalid token'));
  });

  it('creates a child with the asked settings and indexes it under its parent', async () => {
    const { token, entry } = await store.create(
      root,
      { policies: ['a', 'b', 'a'], ttl: 90, explicit_max_ttl: 300, num_uses: 4, renewable: false, display_name: 'ci', meta: { team: 'x' } },
      'auth/token/create',
    );
    expect(token).toMatch(/^hvs\.[0-9A-Za-z]{24}$/);
    expect(entry).toEqual({
      hash: await store.hashOf(token),
      accessor: entry.accessor,
      policies: ['a', 'b', 'default'],
      display_name: 'token-ci',
      meta: { team: 'x' },
      creation_time: clock / 1000,
      ttl: 90,
      explicit_max_ttl: 300,
      expire_time: clock + 90_000,
      num_uses: 4,
      renewable: false,
      parent: root.accessor,
      path: 'auth/token/create',
    });
    expect(await store.lookup(token)).toEqual(entry);
    expect(await barrier.list(`sys/token/parent/${root.accessor}/`)).toContain(entry.accessor);
    expect(await store.lookupAccessor(entry.accessor)).toEqual(entry);
  });

  it("gives a new token Vault's defaults", async () => {
    const { entry } = await store.create(root, {}, 'auth/token/create');
    expect(entry).toMatchObject({
      policies: ['root'],
      display_name: 'token',
      meta: null,
      ttl: 0,
      explicit_max_ttl: 0,
      expire_time: 0,
      num_uses: 0,
      renewable: true,
    });
    const { entry: child } = await store.create(root, { policies: ['a'] }, 'auth/token/create');
    expect(child).toMatchObject({ policies: ['a', 'default'], ttl: DEFAULT_TOKEN_TTL, expire_time: clock + DEFAULT_TOKEN_TTL * 1000 });
    expect(DEFAULT_TOKEN_TTL).toBe(768 * 3600);
    // A non-root parent's children inherit its policies, never root.
    const { entry: grandchild } = await store.create(child, {}, 'auth/token/create');
    expect(grandchild.policies).toEqual(['a', 'default']);
    expect(grandchild.parent).toBe(child.accessor);
  });

  it('makes an orphan without a parent index entry', async () => {
    const { entry } = await store.create(root, { policies: ['a'], no_parent: true }, 'auth/token/create-orphan');
    expect(entry.parent).toBe('');
    expect(entry.path).toBe('auth/token/create-orphan');
    expect(await barrier.list(`sys/token/parent/${root.accessor}/`)).not.toContain(entry.accessor);
  });

  it("enforces Vault's policy rules for children", async () => {
    const { entry: parent } = await store.create(root, { policies: ['a', 'b'] }, 'p');
    expect((await store.create(parent, { policies: ['b'] }, 'p')).entry.policies).toEqual(['b', 'default']);
    expect((await store.create(parent, { policies: ['default'] }, 'p')).entry.policies).toEqual(['default']);
    // default may always be given, even by a parent without it.
    const { entry: bare } = await store.create(root, { policies: ['a'], no_default_policy: true }, 'p');
    expect(bare.policies).toEqual(['a']);
    expect((await store.create(bare, { policies: ['default', 'a'] }, 'p')).entry.policies).toEqual(['default', 'a']);
    await expect(store.create(parent, { policies: ['a', 'c', 'd'] }, 'p')).rejects.toThrow(
      denied('child policies must be subset of parent (not held: c, d)'),
    );
    await expect(store.create(parent, { policies: ['root'] }, 'p')).rejects.toThrow(denied('child policies must be subset of parent (not held: root)'));
    // A root parent may hand out any policies, root among them.
    expect((await store.create(root, { policies: ['root'] }, 'p')).entry.policies).toEqual(['root']);
    expect((await store.create(root, { policies: ['x', 'root'] }, 'p')).entry.policies).toEqual(['x', 'root']);
    expect((await store.create(parent, { policies: ['a'], no_default_policy: true }, 'p')).entry.policies).toEqual(['a']);
    expect((await store.create(parent, { policies: ['a', 'default'], no_default_policy: true }, 'p')).entry.policies).toEqual(['a']);
    await expect(store.create(parent, { policies: ['default'], no_default_policy: true }, 'p')).rejects.toThrow(
      new InvalidRequestError('a token needs at least one policy'),
    );
  });

  it('caps the TTL at explicit_max_ttl, also for tokens that would never expire', async () => {
    expect((await store.create(root, { policies: ['a'], ttl: 500, explicit_max_ttl: 200 }, 'p')).entry).toMatchObject({ ttl: 200, expire_time: clock + 200_000 });
    expect((await store.create(root, { policies: ['a'], ttl: 200, explicit_max_ttl: 200 }, 'p')).entry.ttl).toBe(200);
    expect((await store.create(root, { policies: ['a'], ttl: 100, explicit_max_ttl: 200 }, 'p')).entry.ttl).toBe(100);
    expect((await store.create(root, { ttl: 0, explicit_max_ttl: 200 }, 'p')).entry).toMatchObject({ ttl: 200, expire_time: clock + 200_000 });
    // A TTL of 0 asks for the default: only root-policy tokens may live for ever.
    expect((await store.create(root, { policies: ['a'], ttl: 0 }, 'p')).entry).toMatchObject({ ttl: DEFAULT_TOKEN_TTL, expire_time: clock + DEFAULT_TOKEN_TTL * 1000 });
    expect((await store.create(root, { policies: ['root'], ttl: 0 }, 'p')).entry).toMatchObject({ ttl: 0, expire_time: 0 });
  });

  it('gives no token more than the system maximum, and no child more than its parent has left', async () => {
    const capped = new TokenStore(barrier, () => clock, { defaultTtl: 600, maxTtl: 3600 });
    expect((await capped.create(root, { policies: ['a'] }, 'p')).entry).toMatchObject({ ttl: 600, expire_time: clock + 600_000 });
    const { entry: parent } = await capped.create(root, { policies: ['a'], ttl: 999_999 }, 'p');
    expect(parent).toMatchObject({ ttl: 3600, expire_time: clock + 3_600_000 });
    clock += 1_000_000;
    expect((await capped.create(parent, { ttl: 0 }, 'p')).entry).toMatchObject({ ttl: 600, expire_time: clock + 600_000 });
    for (const ttl of [3600, 999_999]) {
      expect((await capped.create(parent, { ttl }, 'p')).entry).toMatchObject({ ttl: 2600, expire_time: parent.expire_time });
    }
    // An orphan is not bound by the token that made it.
    expect((await capped.create(parent, { ttl: 3600, no_parent: true }, 'p')).entry.expire_time).toBe(clock + 3_600_000);
    expect(() => new TokenStore(barrier, () => clock, { defaultTtl: 7200, maxTtl: 3600 })).toThrow(/exceeds the maximum/);
  });

  it('refuses to let a use-limited token create tokens', async () => {
    const { entry: limited } = await store.create(root, { policies: ['a'], num_uses: 5 }, 'p');
    await expect(store.create(limited, {}, 'p')).rejects.toThrow(new InvalidRequestError('a token with a use limit cannot create tokens'));
    expect(await barrier.list(`sys/token/parent/${limited.accessor}/`)).toEqual([]);
  });

  it('refuses a negative or fractional use count', async () => {
    for (const num_uses of [-1, 1.5]) {
      await expect(store.create(root, { policies: ['a'], num_uses }, 'p')).rejects.toThrow(new InvalidRequestError('num_uses must be a non-negative integer'));
    }
    expect((await store.create(root, { policies: ['a'], num_uses: 0 }, 'p')).entry.num_uses).toBe(0);
  });

  it('expires a token at its expire time exactly, and revokes it then', async () => {
    const { token, entry } = await store.create(root, { policies: ['a'], ttl: 60 }, 'p');
    clock += 59_999;
    expect((await store.lookup(token)).hash).toBe(entry.hash);
    expect(store.remainingTtl(entry)).toBe(0);
    clock += 1;
    await expect(store.lookup(token)).rejects.toThrow(denied('invalid token (expired)'));
    expect(await stored(entry.hash)).toBeUndefined();
    expect(await barrier.get(`sys/token/accessor/${entry.accessor}`)).toBeUndefined();
  });

  it('reports the remaining TTL in whole seconds, rounded, never negative', async () => {
    const { entry } = await store.create(root, { policies: ['a'], ttl: 10 }, 'p');
    expect(store.remainingTtl(entry)).toBe(10);
    clock += 1_500;
    expect(store.remainingTtl(entry)).toBe(9);
    clock += 1;
    expect(store.remainingTtl(entry)).toBe(8);
    clock += 8_499;
    expect(store.remainingTtl(entry)).toBe(0);
    clock += 5_000;
    expect(store.remainingTtl(entry)).toBe(0);
  });

  it('revokes the children of a token that expires, which never outlive it', async () => {
    const { token: shortToken, entry: short } = await store.create(root, { policies: ['a'], ttl: 60 }, 'p');
    const { token: longChild } = await store.create(short, { ttl: 3600 }, 'p');
    clock += 60_000;
    await expect(store.lookup(shortToken)).rejects.toThrow(denied('invalid token (expired)'));
    await expect(store.lookup(longChild)).rejects.toThrow(denied('invalid token'));
  });

  it('counts uses: each one is stored, the last is allowed and revokes the token', async () => {
    const { token } = await store.create(root, { policies: ['a'], num_uses: 3 }, 'p');
    for (const left of [3, 2, 1]) {
      const entry = await store.lookup(token);
      expect(entry.num_uses).toBe(left);
      await store.use(entry);
    }
    await expect(store.lookup(token)).rejects.toThrow(denied('invalid token'));
    const unlimited = await store.lookup(rootToken);
    await store.use(unlimited);
    expect((await store.lookup(rootToken)).num_uses).toBe(0);
    expect(await stored(unlimited.hash)).toBeDefined();
  });

  it('renews from now by the increment or the TTL, never past explicit_max_ttl', async () => {
    const { token, entry } = await store.create(root, { policies: ['a'], ttl: 100, explicit_max_ttl: 1000 }, 'p');
    clock += 50_000;
    expect(await store.renew(entry)).toMatchObject({ ttl: 100, expire_time: clock + 100_000 });
    expect(await store.renew(entry, 0)).toMatchObject({ ttl: 100, expire_time: clock + 100_000 });
    expect(await store.renew(entry, -5)).toMatchObject({ ttl: 100, expire_time: clock + 100_000 });
    const longer = await store.renew(entry, 300);
    expect(longer).toMatchObject({ ttl: 300, expire_time: clock + 300_000 });
    expect(await store.lookup(token)).toEqual(longer);
    // Creation + 1000 s is the hard limit.
    expect((await store.renew(entry, 5000)).expire_time).toBe(entry.creation_time * 1000 + 1_000_000);
    const { entry: uncapped } = await store.create(root, { policies: ['a'], ttl: 100 }, 'p');
    expect((await store.renew(uncapped, 5000)).expire_time).toBe(clock + 5_000_000);
    // The system maximum bounds every renewal, however large the increment.
    expect((await store.renew(uncapped, 999_999_999 * 3600)).expire_time).toBe(clock + DEFAULT_TOKEN_TTL * 1000);
  });

  it("renews a child no further than its parent's expiry, and revokes a child whose parent has expired", async () => {
    const { token: parentToken, entry: parent } = await store.create(root, { policies: ['a'], ttl: 1000 }, 'p');
    const { token: childToken, entry: child } = await store.create(parent, { ttl: 100 }, 'p');
    expect((await store.renew(child, 5000)).expire_time).toBe(parent.expire_time);
    // A renewal may shorten a token, as in Vault; its descendants are cut to match.
    const { token: grandchildToken } = await store.create(await store.lookup(childToken), { ttl: 900 }, 'p');
    expect((await store.renew(parent, 10)).expire_time).toBe(clock + 10_000);
    for (const t of [childToken, grandchildToken]) expect((await store.lookup(t)).expire_time).toBe(clock + 10_000);
    await store.renew(parent, 2000);
    expect((await store.renew(child, 5000)).expire_time).toBe(clock + 2_000_000);
    clock += 2_000_000;
    await expect(store.renew(child, 10)).rejects.toThrow(denied('invalid token (its parent has expired or was revoked)'));
    await expect(store.lookup(childToken)).rejects.toThrow(denied('invalid token'));
    await expect(store.lookup(parentToken)).rejects.toThrow(denied('invalid token (expired)'));
  });

  it('does not renew a non-renewable token, and leaves a never-expiring one as it is', async () => {
    const { entry } = await store.create(root, { policies: ['a'], renewable: false }, 'p');
    await expect(store.renew(entry, 10)).rejects.toThrow(new InvalidRequestError('token is not renewable'));
    const { entry: forever } = await store.create(root, { policies: ['root'], ttl: 0 }, 'p');
    expect(await store.renew(forever, 10)).toBe(forever);
    expect(await store.lookup(rootToken)).toEqual(root);
  });

  it('revokes a token with all its descendants, or orphans its children', async () => {
    const { entry: parent } = await store.create(root, { policies: ['a'] }, 'p');
    const { token: childToken, entry: child } = await store.create(parent, {}, 'p');
    const { token: grandchildToken, entry: grandchild } = await store.create(child, {}, 'p');
    await store.revoke(parent, false);
    for (const t of [childToken, grandchildToken]) await expect(store.lookup(t)).rejects.toThrow(denied('invalid token'));
    for (const e of [parent, child, grandchild]) {
      expect(await stored(e.hash)).toBeUndefined();
      expect(await barrier.get(`sys/token/accessor/${e.accessor}`)).toBeUndefined();
      expect(await barrier.list(`sys/token/parent/${e.accessor}/`)).toEqual([]);
    }
    expect(await barrier.list(`sys/token/parent/${root.accessor}/`)).not.toContain(parent.accessor);

    const { entry: p2 } = await store.create(root, { policies: ['a'] }, 'p');
    const { token: c2Token, entry: c2 } = await store.create(p2, {}, 'p');
    const { token: g2Token } = await store.create(c2, {}, 'p');
    await store.revoke(p2, true);
    expect((await store.lookup(c2Token)).parent).toBe('');
    expect((await store.lookup(g2Token)).parent).toBe(c2.accessor);
    expect(await barrier.list(`sys/token/parent/${p2.accessor}/`)).toEqual([]);
  });

  it('finds tokens by accessor and refuses malformed or unknown accessors alike', async () => {
    const { entry } = await store.create(root, { policies: ['a'] }, 'p');
    expect(await store.lookupAccessor(entry.accessor)).toEqual(entry);
    const refusal = new InvalidRequestError('invalid accessor');
    await expect(store.lookupAccessor('a'.repeat(64))).rejects.toThrow(refusal);
    await expect(store.lookupAccessor('Z')).rejects.toThrow(refusal);
    // Malformed accessors are refused before storage is asked, even where an index entry exists.
    for (const bad of ['a/b', 'a'.repeat(65), 'abc-def', 'x y', '-abc', 'abc-']) {
      await barrier.put(`sys/token/accessor/${bad}`, Buffer.from(entry.hash));
      await expect(store.lookupAccessor(bad), bad).rejects.toThrow(refusal);
    }
    await expect(store.lookupAccessor('')).rejects.toThrow(refusal);
    // An index entry naming something other than a token hash finds nothing, even an entry stored there.
    const json = Buffer.from(JSON.stringify(entry));
    for (const [accessor, hash] of [['Short', entry.hash.slice(1)], ['Upper', entry.hash.toUpperCase()], ['Longer', `${entry.hash}0`], ['Prefixed', `x${entry.hash}`]]) {
      await barrier.put(idPath(hash!), json);
      await barrier.put(`sys/token/accessor/${accessor}`, Buffer.from(hash!));
      await expect(store.lookupAccessor(accessor!), accessor).rejects.toThrow(refusal);
    }
  });

  it('mints generate-root tokens as never-expiring orphans with the root policy', async () => {
    const token = await store.createRoot();
    expect(token).toMatch(/^hvs\.[0-9A-Za-z]{24}$/);
    expect(await store.lookup(token)).toMatchObject({ policies: ['root'], parent: '', expire_time: 0, renewable: false, path: 'auth/token/generate-root' });
  });

  it('never caches an entry read while the token was revoked', async () => {
    const { token, entry } = await store.create(root, { policies: ['a'] }, 'p');
    const gate = storage.hold('get', idPath(entry.hash));
    const racing = store.lookup(token);
    await gate.reached;
    await store.revoke(entry, false);
    gate.release();
    // The lookup that started first may still see the token; nothing after the revocation may.
    await racing;
    await expect(store.lookup(token)).rejects.toThrow(denied('invalid token'));
  });

  it('never caches an entry read while the token was renewed', async () => {
    const { token, entry } = await store.create(root, { policies: ['a'], ttl: 100 }, 'p');
    const gate = storage.hold('get', idPath(entry.hash));
    const racing = store.lookup(token);
    await gate.reached;
    clock += 10_000;
    const renewed = await store.renew(entry);
    gate.release();
    expect((await racing).expire_time).toBe(entry.expire_time);
    expect(await store.lookup(token)).toEqual(renewed);
  });

  it('drops from the cache an entry looked up while its revocation was being written', async () => {
    const { token, entry } = await store.create(root, { policies: ['a'] }, 'p');
    const gate = storage.hold('transaction', idPath(entry.hash));
    const revoking = store.revoke(entry, false);
    await gate.reached;
    // Storage still has the token: this lookup succeeds, and may cache it...
    expect((await store.lookup(token)).hash).toBe(entry.hash);
    gate.release();
    await revoking;
    // ...but not past the revocation.
    await expect(store.lookup(token)).rejects.toThrow(denied('invalid token'));
  });

  it('drops from the cache an entry looked up while its renewal was being written', async () => {
    const { token, entry } = await store.create(root, { policies: ['a'], ttl: 100 }, 'p');
    const gate = storage.hold('put', idPath(entry.hash));
    clock += 10_000;
    const renewing = store.renew(entry);
    await gate.reached;
    expect((await store.lookup(token)).expire_time).toBe(entry.expire_time);
    gate.release();
    const renewed = await renewing;
    expect(await store.lookup(token)).toEqual(renewed);
  });

  it('serves unlimited tokens from its cache until told to forget them', async () => {
    const { token, entry } = await store.create(root, { policies: ['a'] }, 'p');
    await store.lookup(token);
    // Another node revoking the token changes storage behind this store's back.
    await storage.delete(idPath(entry.hash));
    expect((await store.lookup(token)).hash).toBe(entry.hash);
    store.forgetEntries();
    await expect(store.lookup(token)).rejects.toThrow(denied('invalid token'));
  });

  it('does not cache limited-use tokens', async () => {
    const { token, entry } = await store.create(root, { policies: ['a'], num_uses: 5 }, 'p');
    await store.lookup(token);
    await storage.delete(idPath(entry.hash));
    await expect(store.lookup(token)).rejects.toThrow(denied('invalid token'));
  });

  it('forgets the salt and entries on clear, and reads the salt again when needed', async () => {
    const { token } = await store.create(root, { policies: ['a'] }, 'p');
    await store.lookup(token);
    store.clear();
    expect((await store.lookup(token)).policies).toEqual(['a', 'default']);
    const salt = (await barrier.get('sys/token/salt'))!;
    await barrier.delete('sys/token/salt');
    try {
      store.clear();
      await expect(store.lookup(token)).rejects.toThrow('token store salt missing from storage');
    } finally {
      await barrier.put('sys/token/salt', salt);
    }
  });
});
