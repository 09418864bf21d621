import { describe, expect, it } from 'vitest';
import { KEYRING_PATH, TokenBarrier } from '../src/barrier/barrier.js';
import { upgradePath } from '../src/barrier/upgrade.js';
import { Token } from '../src/pkcs11/token.js';
import { InmemBackend } from '../src/storage/inmem.js';
import { freshProcessToken, type TestToken } from './support/softhsm.js';

// One token for the file (SoftHSM2 cannot switch tokens within a process); each pair gets its own seal key.
const processToken: Promise<TestToken> = freshProcessToken();
let pairs = 0;

/** An active barrier writing upgrade entries and a standby barrier following it over one storage. */
async function pair(now: () => number) {
  const t = await processToken;
  const token = new Token({ ...t.config, keyLabel: `keyward-seal-${++pairs}` });
  token.ensureSealKey(true);
  const storage = new InmemBackend();
  const active = new TokenBarrier(storage, token, { upgradeEntries: true, now });
  const standby = new TokenBarrier(storage, token, { upgradeEntries: true, now });
  const root = token.importKey(Buffer.alloc(32, 7));
  await active.initialize(root, []);
  await active.unseal(token.loadKey(root.blob));
  await standby.unseal(token.loadKey(root.blob));
  token.releaseKey(root);
  return { token, storage, active, standby };
}

describe('upgrade path: a standby barrier follows rotations and rekeys without shares', () => {
  it('learns each new term from the chain of core/upgrade/N entries and reads its values', async () => {
    let clock = 1_000_000;
    const { storage, active, standby } = await pair(() => clock);
    await active.rotate();
    await active.rotate();
    await active.put('logical/x/v3', Buffer.from('under term 3'));
    await expect(standby.get('logical/x/v3')).rejects.toThrow(/no decryption key available for term 3/);
    expect(await standby.followUpgrades()).toEqual([2, 3]);
    expect(standby.activeKey().term).toBe(3);
    expect((await standby.get('logical/x/v3'))?.toString()).toBe('under term 3');
    expect(await standby.followUpgrades()).toEqual([]);
    // Upgrade entries are not values: rewrap and prune leave them to their own grace period.
    expect(await active.valuePaths()).toEqual(['core/root-key', 'logical/x/v3']);
    expect(await active.pruneUpgrades(120_000)).toBe(0);
    clock += 120_000;
    expect(await active.pruneUpgrades(120_000)).toBe(2);
    expect(await storage.list('core/upgrade/')).toEqual([]);
  });

  it('reloads the whole keyring with the root key when it missed part of the chain', async () => {
    const { storage, active, standby } = await pair(() => 0);
    await active.rotate();
    await active.rotate();
    await storage.delete(upgradePath(1));
    await active.put('logical/x/v', Buffer.from('three'));
    expect(await standby.followUpgrades()).toEqual([2, 3]);
    expect((await standby.get('logical/x/v'))?.toString()).toBe('three');
  });

  it('takes up a new root key from core/root-key, and an unrelated keyring write changes nothing', async () => {
    const { token, storage, active, standby } = await pair(() => 0);
    expect(await standby.followRootKey()).toBe(false);
    const fresh = token.importKey(Buffer.alloc(32, 8));
    await active.rekey(fresh, []);
    const keyringUnderNewRoot = await storage.get(KEYRING_PATH);
    expect(await standby.followRootKey()).toBe(true);
    expect(await standby.reloadKeyring()).toEqual([]);
    expect(standby.isRootKey(token.importKey(Buffer.alloc(32, 8)))).toBe(true);
    expect(await storage.get(KEYRING_PATH)).toEqual(keyringUnderNewRoot);
    expect(await standby.followRootKey()).toBe(false);
  });
});
