import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { KEYRING_PATH, ROOT_KEY_PATH, TokenBarrier } from '../src/barrier/barrier.js';
import { SealedError, UnknownTermError } from '../src/barrier/errors.js';
import { serializeUpgrade, upgradePath } from '../src/barrier/upgrade.js';
import { BarrierView } from '../src/barrier/view.js';
import type { Token } from '../src/pkcs11/token.js';
import { FileBackend } from '../src/storage/file.js';
import { InmemBackend } from '../src/storage/inmem.js';
import { processTokenWithSealKey, sessionKeyCount, type TestToken } from './support/softhsm.js';

let t: TestToken;
let token: Token;

beforeAll(async () => {
  ({ t, token } = await processTokenWithSealKey());
});

/** A barrier over fresh file storage, initialized (with `extra` ops) and unsealed. */
async function unsealed(opts: { upgradeEntries?: boolean; now?: () => number } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'kw-barrier-ops-'));
  const storage = await FileBackend.open(dir);
  const barrier = new TokenBarrier(storage, token, opts);
  const root = token.importKey(Buffer.alloc(32, 5));
  await barrier.initialize(root, []);
  await barrier.unseal(root);
  return { dir, storage, barrier, rootBlob: root.blob };
}

/** Makes the file backend's next journal write fail (its slot is gone); returns the repair. */
async function breakNextJournalWrite(dir: string): Promise<() => Promise<void>> {
  const seqOf = async (slot: string) => {
    const raw = await readFile(join(dir, slot));
    return raw.length ? (JSON.parse(raw.subarray(4, 4 + raw.readUInt32BE(0)).toString('utf8')) as { seq: number }).seq : 0;
  };
  const next = Math.max(await seqOf('journal-0'), await seqOf('journal-1')) + 1;
  const path = join(dir, `journal-${next % 2}`);
  await rm(path);
  return () => writeFile(path, '');
}

describe('barrier operations on SoftHSM2 and file storage', () => {
  it('stores the seal config and HA lock rows as given, and encrypts every other path, core/ included', async () => {
    const { storage, barrier } = await unsealed();
    for (const path of ['core/seal-config', 'core/lock/leader']) {
      await barrier.put(path, Buffer.from('plain'));
      expect((await storage.get(path))?.toString(), path).toBe('plain');
    }
    for (const path of ['core/seal-configx', 'core/lockx', 'core/other', 'x/core/seal-config', 'lock/core/lock/a']) {
      await barrier.put(path, Buffer.from('plain'));
      expect((await storage.get(path))?.readUInt32BE(0), path).toBe(1);
      expect((await barrier.get(path))?.toString(), path).toBe('plain');
    }
  });

  it('serves only the plaintext paths while sealed', async () => {
    const { barrier } = await unsealed();
    await barrier.put('secret/a', Buffer.from('1'));
    await barrier.seal();
    expect(barrier.sealed).toBe(true);
    await barrier.put('core/seal-config', Buffer.from('cfg'));
    expect((await barrier.get('core/seal-config'))?.toString()).toBe('cfg');
    expect(await barrier.exists('core/seal-config')).toBe(true);
    expect(await barrier.exists('core/lock/none')).toBe(false);
    await barrier.delete('core/seal-config');
    expect(await barrier.get('core/seal-config')).toBeUndefined();
    await expect(barrier.get('secret/a')).rejects.toThrow(SealedError);
    await expect(barrier.get('secret/never-written')).rejects.toThrow(SealedError);
    await expect(barrier.put('secret/a', Buffer.from('2'))).rejects.toThrow(SealedError);
    await expect(barrier.exists('secret/a')).rejects.toThrow(SealedError);
    await expect(barrier.delete('secret/a')).rejects.toThrow(SealedError);
    await expect(barrier.list('secret/')).rejects.toThrow(SealedError);
    await expect(barrier.transaction([{ kind: 'delete', path: 'secret/a' }])).rejects.toThrow(SealedError);
    expect(() => barrier.activeKey()).toThrow(SealedError);
  });

  it('answers missing entries with undefined and false, and lists what is stored', async () => {
    const { barrier } = await unsealed();
    expect(await barrier.get('secret/none')).toBeUndefined();
    expect(await barrier.exists('secret/none')).toBe(false);
    await barrier.put('secret/b', Buffer.from('x'));
    await barrier.put('secret/a/c', Buffer.from('y'));
    expect(await barrier.exists('secret/b')).toBe(true);
    expect(await barrier.list('secret/')).toEqual(['a/', 'b']);
    await barrier.delete('secret/b');
    expect(await barrier.exists('secret/b')).toBe(false);
  });

  it('uses a fresh nonce for every encryption', async () => {
    const { storage, barrier } = await unsealed();
    await barrier.put('n/a', Buffer.from('same'));
    const first = await storage.get('n/a');
    await barrier.put('n/a', Buffer.from('same'));
    const second = (await storage.get('n/a'))!;
    expect(second.subarray(5, 17).equals(first!.subarray(5, 17))).toBe(false);
  });

  it('writes a transaction whole: puts encrypted under their own path, plaintext paths as given, deletes', async () => {
    const { storage, barrier } = await unsealed();
    await barrier.put('t/gone', Buffer.from('old'));
    await barrier.transaction([
      { kind: 'put', path: 't/a', value: Buffer.from('plaintext-marker-A') },
      { kind: 'put', path: 'core/seal-config', value: Buffer.from('cfg') },
      { kind: 'delete', path: 't/gone' },
    ]);
    expect((await barrier.get('t/a'))?.toString()).toBe('plaintext-marker-A');
    expect((await storage.get('t/a'))?.includes(Buffer.from('plaintext-marker-A'))).toBe(false);
    expect((await storage.get('core/seal-config'))?.toString()).toBe('cfg');
    expect(await storage.get('t/gone')).toBeUndefined();
  });

  it('writes the extra entries of initialize with the first keyring, encrypted under term 1', async () => {
    const storage = new InmemBackend();
    const barrier = new TokenBarrier(storage, token);
    expect(await barrier.initialized()).toBe(false);
    const root = token.importKey(Buffer.alloc(32, 6));
    await barrier.initialize(root, [
      { kind: 'put', path: 'core/seal-config', value: Buffer.from('cfg') },
      { kind: 'put', path: 'sys/x', value: Buffer.from('X') },
      { kind: 'delete', path: 'sys/none' },
    ]);
    expect(await barrier.initialized()).toBe(true);
    expect(barrier.sealed).toBe(true);
    expect((await storage.get('core/seal-config'))?.toString()).toBe('cfg');
    expect((await storage.get('sys/x'))?.readUInt32BE(0)).toBe(1);
    expect((await storage.get(KEYRING_PATH))?.readUInt32BE(0)).toBe(0);
    await barrier.unseal(root);
    expect((await barrier.get('sys/x'))?.toString()).toBe('X');
    // core/root-key holds the root key's blob under term 1.
    expect((await barrier.get(ROOT_KEY_PATH))?.equals(root.blob)).toBe(true);
    expect(barrier.activeKey()).toMatchObject({ term: 1, encryptions: 0 });
  });

  it('refuses to unseal storage that holds no keyring', async () => {
    const barrier = new TokenBarrier(new InmemBackend(), token);
    await expect(barrier.unseal(token.importKey(Buffer.alloc(32, 6)))).rejects.toThrow('keyring not found: the service is not initialized');
  });

  it('rotates to a new active term: new writes use it, older values still read, counts start at zero', async () => {
    const { storage, barrier } = await unsealed();
    await barrier.put('r/one', Buffer.from('under 1'));
    const entry = await barrier.rotate('2026-01-01T00:00:00.000000000Z');
    expect(entry).toMatchObject({ term: 2, installTime: '2026-01-01T00:00:00.000000000Z', encryptions: 0 });
    expect(barrier.activeKey()).toEqual({ term: 2, installTime: '2026-01-01T00:00:00.000000000Z', encryptions: 0 });
    await barrier.put('r/two', Buffer.from('under 2'));
    expect((await storage.get('r/two'))?.readUInt32BE(0)).toBe(2);
    expect((await barrier.get('r/one'))?.toString()).toBe('under 1');
    // Term 1 counts the put before the rotation (the root key's entry at init is not a counted value).
    expect(barrier.terms().map((e) => [e.term, e.encryptions])).toEqual([
      [1, 1],
      [2, 1],
    ]);
    // Without upgrade entries (no cluster) a rotation writes only the keyring.
    expect(await storage.list('core/')).toEqual(['keyring', 'root-key']);
  });

  it('leaves the keyring as it was when the rotation cannot be written, and rotates on the next try', async () => {
    const { dir, storage, barrier, rootBlob } = await unsealed();
    const repair = await breakNextJournalWrite(dir);
    await expect(barrier.rotate()).rejects.toThrow(/ENOENT/);
    await repair();
    expect(barrier.activeKey().term).toBe(1);
    expect(barrier.terms().map((e) => e.term)).toEqual([1]);
    await barrier.put('r/after', Buffer.from('v'));
    expect((await storage.get('r/after'))?.readUInt32BE(0)).toBe(1);
    // No key is left behind for the term the failed rotation tried.
    const claimsTerm2 = Buffer.from((await storage.get('r/after'))!);
    claimsTerm2.writeUInt32BE(2, 0);
    await storage.put('r/claims-2', claimsTerm2);
    await expect(barrier.get('r/claims-2')).rejects.toThrow(new UnknownTermError(2).message);
    expect((await barrier.rotate()).term).toBe(2);
    await barrier.seal();
    await barrier.unseal(token.loadKey(rootBlob));
    expect(barrier.activeKey().term).toBe(2);
  });

  it('keeps the old root key when a rekey cannot be written', async () => {
    const { dir, barrier, rootBlob } = await unsealed();
    const repair = await breakNextJournalWrite(dir);
    await expect(barrier.rekey(token.importKey(Buffer.alloc(32, 8)), [])).rejects.toThrow(/ENOENT/);
    await repair();
    expect(barrier.isRootKey(token.loadKey(rootBlob))).toBe(true);
    // A later keyring write still goes through under the old root key.
    await barrier.persistCounts();
    await barrier.seal();
    await barrier.unseal(token.loadKey(rootBlob));
    expect(barrier.sealed).toBe(false);
  });

  it('rekeys: the keyring and extra entries are written under the new root key, and only it unseals', async () => {
    const { storage, barrier, rootBlob } = await unsealed();
    await barrier.put('k/v', Buffer.from('kept'));
    const fresh = token.importKey(Buffer.alloc(32, 9));
    await barrier.rekey(fresh, [{ kind: 'put', path: 'core/seal-config', value: Buffer.from('new cfg') }]);
    expect(barrier.isRootKey(token.importKey(Buffer.alloc(32, 9)))).toBe(true);
    expect(barrier.isRootKey(token.loadKey(rootBlob))).toBe(false);
    expect((await storage.get('core/seal-config'))?.toString()).toBe('new cfg');
    await barrier.seal();
    await expect(barrier.unseal(token.loadKey(rootBlob))).rejects.toThrow(/integrity check failed/);
    await barrier.unseal(token.importKey(Buffer.alloc(32, 9)));
    expect((await barrier.get('k/v'))?.toString()).toBe('kept');
  });

  it('keeps the rotation policy with the keyring', async () => {
    const { barrier, rootBlob } = await unsealed();
    const rotation = { maxOperations: 2_000_000, interval: 86_400, enabled: false };
    await barrier.setRotationConfig(rotation);
    expect(barrier.rotationConfig()).toEqual(rotation);
    await barrier.seal();
    await barrier.unseal(token.loadKey(rootBlob));
    expect(barrier.rotationConfig()).toEqual(rotation);
  });

  it('prunes old terms: their values can no longer be read and the keyring forgets them', async () => {
    const { barrier, rootBlob } = await unsealed();
    await barrier.put('p/old', Buffer.from('under 1'));
    await barrier.rotate();
    await barrier.rotate();
    await expect(barrier.pruneTerms([3])).rejects.toThrow('cannot remove the active term 3');
    await barrier.pruneTerms([1]);
    expect(barrier.terms().map((e) => e.term)).toEqual([2, 3]);
    await expect(barrier.get('p/old')).rejects.toThrow(UnknownTermError);
    await barrier.seal();
    await barrier.unseal(token.loadKey(rootBlob));
    expect(barrier.terms().map((e) => e.term)).toEqual([2, 3]);
  });

  it('finds the values each term protects, leaving out the keyring, plaintext paths and upgrade entries', async () => {
    const { storage, barrier } = await unsealed({ upgradeEntries: true, now: () => 0 });
    await barrier.put('v/b', Buffer.from('1'));
    await barrier.put('core/seal-config', Buffer.from('cfg'));
    await barrier.rotate();
    await barrier.put('v/a', Buffer.from('2'));
    await barrier.put('v/c/d', Buffer.from('3'));
    // Three bytes cannot name a term; four are enough to count the value under the one they name.
    await storage.put('v/short', Buffer.from('abc'));
    await storage.put('v/term-only', Buffer.from([0, 0, 0, 2]));
    expect(await storage.list('core/upgrade/')).toEqual(['1']);
    expect(await barrier.valuePaths()).toEqual(['core/root-key', 'v/a', 'v/b', 'v/c/d', 'v/short', 'v/term-only']);
    expect([...(await barrier.termUsage())].sort()).toEqual([
      [1, 2],
      [2, 3],
    ]);
  });

  it('rewraps a value under an older term, leaves current and missing ones', async () => {
    const { storage, barrier } = await unsealed();
    await barrier.put('w/old', Buffer.from('value'));
    await barrier.rotate();
    await barrier.put('w/new', Buffer.from('fresh'));
    expect(await barrier.rewrapValue('w/old')).toBe('rewrapped');
    expect((await storage.get('w/old'))?.readUInt32BE(0)).toBe(2);
    expect((await barrier.get('w/old'))?.toString()).toBe('value');
    expect(await barrier.rewrapValue('w/old')).toBe('current');
    expect(await barrier.rewrapValue('w/new')).toBe('current');
    expect(await barrier.rewrapValue('w/none')).toBe('gone');
  });

  it('persists encryption counts on seal and on request', async () => {
    const { storage, barrier, rootBlob } = await unsealed();
    for (let i = 0; i < 3; i++) await barrier.put(`c/${i}`, Buffer.from('v'));
    await barrier.persistCounts();
    const other = new TokenBarrier(storage, token);
    await other.unseal(token.loadKey(rootBlob));
    expect(other.activeKey().encryptions).toBe(3);
  });

  it('deletes upgrade entries whose term was pruned, whatever their age', async () => {
    const { storage, barrier } = await unsealed({ upgradeEntries: true, now: () => 10_000_000 });
    await barrier.rotate();
    await barrier.rotate();
    expect(await storage.list('core/upgrade/')).toEqual(['1', '2']);
    await barrier.pruneTerms([1]);
    expect(await barrier.pruneUpgrades(60_000)).toBe(1);
    expect(await storage.list('core/upgrade/')).toEqual(['2']);
  });

  it('ignores upgrade entries from before its active term and names outside the chain', async () => {
    const { storage, barrier } = await unsealed({ upgradeEntries: true, now: () => 10_000_000 });
    await barrier.rotate();
    await barrier.rotate();
    await storage.put('core/upgrade/not-a-term', Buffer.from('x'));
    expect(await barrier.followUpgrades()).toEqual([]);
    // Both entries are young; the stray name is neither read nor deleted.
    expect(await barrier.pruneUpgrades(60_000)).toBe(0);
    expect(await storage.list('core/upgrade/')).toEqual(['1', '2', 'not-a-term']);
  });

  it('skips upgrade entries of terms it already pruned', async () => {
    const { barrier } = await unsealed({ upgradeEntries: true, now: () => 0 });
    await barrier.rotate();
    await barrier.rotate();
    await barrier.pruneTerms([1]);
    // core/upgrade/1 stays for its grace period, but term 1's key is gone: the entry is not read.
    expect(await barrier.followUpgrades()).toEqual([]);
  });

  it('follows the upgrade chain without the root key, in numeric order past term 9, after a rekey it has not followed', async () => {
    const storage = new InmemBackend();
    const active = new TokenBarrier(storage, token, { upgradeEntries: true, now: () => 0 });
    const root = token.importKey(Buffer.alloc(32, 12));
    await active.initialize(root, []);
    await active.unseal(root);
    const standby = new TokenBarrier(storage, token);
    await standby.unseal(token.loadKey(root.blob));
    // The keyring is now under a root key the standby does not have: only the chain can teach it.
    await active.rekey(token.importKey(Buffer.alloc(32, 13)), []);
    await active.rotate();
    expect(await standby.followUpgrades()).toEqual([2]);
    for (let i = 0; i < 10; i++) await active.rotate();
    expect(await standby.followUpgrades()).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(standby.activeKey().term).toBe(12);
  });

  it('names the path of a value that fails its integrity check', async () => {
    const { storage, barrier } = await unsealed();
    await barrier.put('i/x', Buffer.from('value'));
    const raw = Buffer.from((await storage.get('i/x'))!);
    raw[raw.length - 1]! ^= 1;
    await storage.put('i/x', raw);
    await expect(barrier.get('i/x')).rejects.toThrow('integrity check failed: value at "i/x"');
  });

  it('drops the terms another node pruned when it reloads the keyring', async () => {
    const { storage, barrier, rootBlob } = await unsealed();
    await barrier.put('d/old', Buffer.from('under 1'));
    await barrier.rotate();
    const standby = new TokenBarrier(storage, token);
    await standby.unseal(token.loadKey(rootBlob));
    expect((await standby.get('d/old'))?.toString()).toBe('under 1');
    await barrier.pruneTerms([1]);
    expect(await standby.reloadKeyring()).toEqual([]);
    expect(standby.terms().map((e) => e.term)).toEqual([2]);
    await expect(standby.get('d/old')).rejects.toThrow(UnknownTermError);
  });

  it('has no root key to follow before core/root-key exists', async () => {
    const storage = new InmemBackend();
    const barrier = new TokenBarrier(storage, token);
    const root = token.importKey(Buffer.alloc(32, 4));
    await barrier.initialize(root, []);
    await barrier.unseal(root);
    await storage.delete(ROOT_KEY_PATH);
    expect(await barrier.followRootKey()).toBe(false);
    expect(barrier.isRootKey(token.importKey(Buffer.alloc(32, 4)))).toBe(true);
  });

  it('learns a term from the upgrade chain only once', async () => {
    const storage = new InmemBackend();
    const active = new TokenBarrier(storage, token, { upgradeEntries: true, now: () => 0 });
    const root = token.importKey(Buffer.alloc(32, 3));
    await active.initialize(root, []);
    await active.unseal(root);
    const standby = new TokenBarrier(storage, token);
    await standby.unseal(token.loadKey(root.blob));
    await active.rotate();
    // An entry naming a term the standby has by then (as a retried rotation could leave) teaches nothing.
    const term2 = active.terms().find((e) => e.term === 2)!;
    await storage.put(upgradePath(2), await active.encrypt(upgradePath(2), serializeUpgrade({ next: term2, createdMs: 0 })));
    expect(await standby.followUpgrades()).toEqual([2]);
    expect(standby.activeKey().term).toBe(2);
  });
});

describe('working keys in the token', () => {

  it('holds one per term plus the root key while unsealed, and none once sealed', async () => {
    const before = sessionKeyCount(t);
    const { dir, barrier } = await unsealed();
    expect(sessionKeyCount(t)).toBe(before + 2);
    await barrier.rotate();
    expect(sessionKeyCount(t)).toBe(before + 3);
    // A rotation that cannot be written leaves no key behind.
    const repair = await breakNextJournalWrite(dir);
    await expect(barrier.rotate()).rejects.toThrow(/ENOENT/);
    await repair();
    expect(sessionKeyCount(t)).toBe(before + 3);
    // A rekey replaces the root key; following an unchanged root key keeps none of the candidate.
    await barrier.rekey(token.importKey(Buffer.alloc(32, 2)), []);
    expect(sessionKeyCount(t)).toBe(before + 3);
    expect(await barrier.followRootKey()).toBe(false);
    expect(sessionKeyCount(t)).toBe(before + 3);
    await barrier.pruneTerms([1]);
    expect(sessionKeyCount(t)).toBe(before + 2);
    await barrier.seal();
    expect(sessionKeyCount(t)).toBe(before);
  });

  it('swaps the root key it follows and releases the old one', async () => {
    const { storage, barrier, rootBlob } = await unsealed();
    const standby = new TokenBarrier(storage, token);
    await standby.unseal(token.loadKey(rootBlob));
    await barrier.rekey(token.importKey(Buffer.alloc(32, 1)), []);
    const before = sessionKeyCount(t);
    expect(await standby.followRootKey()).toBe(true);
    expect(sessionKeyCount(t)).toBe(before);
    expect(standby.isRootKey(token.importKey(Buffer.alloc(32, 1)))).toBe(true);
  });

  it('seals even when the encryption counts cannot be written', async () => {
    const { dir, barrier } = await unsealed();
    await barrier.put('s/x', Buffer.from('v'));
    const repair = await breakNextJournalWrite(dir);
    await barrier.seal();
    await repair();
    expect(barrier.sealed).toBe(true);
  });
});

describe('barrier view', () => {
  it('puts every path of every operation under its prefix', async () => {
    const { storage, barrier } = await unsealed();
    const view = new BarrierView(barrier, 'logical/m1/');
    await view.put('a', Buffer.from('{"x":1}'));
    expect((await barrier.get('logical/m1/a'))?.toString()).toBe('{"x":1}');
    expect((await view.get('a'))?.toString()).toBe('{"x":1}');
    expect(await view.getJson('a')).toEqual({ x: 1 });
    expect(await view.getJson('none')).toBeUndefined();
    expect(await view.exists('a')).toBe(true);
    await view.transaction([
      { kind: 'put', path: 'd/e', value: Buffer.from('2') },
      { kind: 'put', path: 'd/f/g', value: Buffer.from('3') },
    ]);
    expect(await storage.list('logical/m1/d/')).toEqual(['e', 'f/']);
    expect(await view.list('d/')).toEqual(['e', 'f/']);
    expect(await view.walk('')).toEqual(['a', 'd/e', 'd/f/g']);
    expect(await view.walk('d/')).toEqual(['d/e', 'd/f/g']);
    await view.delete('a');
    expect(await barrier.get('logical/m1/a')).toBeUndefined();
    expect(view.prefix).toBe('logical/m1/');
  });
});
