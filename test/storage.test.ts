import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type StorageBackend, StorageKeyError } from '../src/storage/backend.js';
import { FileBackend } from '../src/storage/file.js';
import { InmemBackend } from '../src/storage/inmem.js';

const backends: Array<[string, () => Promise<StorageBackend>]> = [
  ['inmem', async () => new InmemBackend()],
  ['file', async () => FileBackend.open(await mkdtemp(join(tmpdir(), 'kw-store-')))],
];

describe.each(backends)('%s backend', (_name, open) => {
  it('puts, gets, deletes and lists like Vault (folders end in /)', async () => {
    const s = await open();
    await s.put('a/b/c', Buffer.from('1'));
    await s.put('a/d', Buffer.from('2'));
    await s.put('a/_under', Buffer.from('3'));
    await s.put('a/b', Buffer.from('leaf and folder'));
    expect((await s.get('a/b/c'))?.toString()).toBe('1');
    expect((await s.get('a/b'))?.toString()).toBe('leaf and folder');
    expect(await s.get('a/missing')).toBeUndefined();
    expect(await s.list('a/')).toEqual(['_under', 'b', 'b/', 'd']);
    expect(await s.list('')).toEqual(['a/']);
    await s.delete('a/b/c');
    await s.delete('a/b/c');
    expect(await s.list('a/')).toEqual(['_under', 'b', 'd']);
    expect(await s.list('nothing/')).toEqual([]);
  });

  it('applies a transaction completely', async () => {
    const s = await open();
    await s.put('x', Buffer.from('old'));
    await s.transaction([
      { kind: 'put', key: 'k/1', value: Buffer.from('one') },
      { kind: 'put', key: 'k/2', value: Buffer.from('two') },
      { kind: 'delete', key: 'x' },
    ]);
    expect((await s.get('k/1'))?.toString()).toBe('one');
    expect((await s.get('k/2'))?.toString()).toBe('two');
    expect(await s.get('x')).toBeUndefined();
  });

  it('refuses keys that could escape or be ambiguous', async () => {
    const s = await open();
    for (const bad of ['', '../etc/passwd', 'a//b', 'a/./b', 'a/..', '/abs', 'nul\u0000']) {
      await expect(s.put(bad, Buffer.from('x'))).rejects.toThrow(StorageKeyError);
    }
    await expect(s.list('no-slash')).rejects.toThrow(StorageKeyError);
  });

  it('keeps odd but legal characters', async () => {
    const s = await open();
    await s.put('p/ä ö %2F *?', Buffer.from('v'));
    expect(await s.list('p/')).toEqual(['ä ö %2F *?']);
    expect((await s.get('p/ä ö %2F *?'))?.toString()).toBe('v');
  });
});

/** A journal slot as the file backend writes it: a 4-byte length, then the JSON record. */
function slot(record: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(record));
  const length = Buffer.alloc(4);
  length.writeUInt32BE(json.length);
  return Buffer.concat([length, json]);
}

function readSlot(raw: Buffer): { seq: number; ops: unknown[] } {
  return JSON.parse(raw.subarray(4, 4 + raw.readUInt32BE(0)).toString('utf8'));
}

describe('file backend durability', () => {
  it('replays a journal left by a crash between journal write and apply', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kw-journal-'));
    const s = await FileBackend.open(dir);
    await s.put('keep', Buffer.from('before'));
    await s.close();
    const ops = [
      { kind: 'put', key: 'core/keyring', value: Buffer.from('new keyring').toString('base64') },
      { kind: 'delete', key: 'keep' },
    ];
    const sha256 = createHash('sha256').update(JSON.stringify({ seq: 7, ops })).digest('hex');
    await writeFile(join(dir, 'journal-1'), slot({ seq: 7, ops, sha256 }));
    const reopened = await FileBackend.open(dir);
    expect((await reopened.get('core/keyring'))?.toString()).toBe('new keyring');
    expect(await reopened.get('keep')).toBeUndefined();
    // The next batch continues the sequence and replaces the journal.
    await reopened.put('after', Buffer.from('x'));
    expect(readSlot(await readFile(join(dir, 'journal-0'))).seq).toBe(8);
  });

  it('ignores a torn journal: its batch was never applied nor acknowledged, and earlier batches are durable', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kw-journal-'));
    const s = await FileBackend.open(dir);
    await s.put('keep', Buffer.from('before'));
    await s.put('keep', Buffer.from('after'));
    // A crash while the third batch overwrites slot 1 (the first batch, already durable).
    const second = await readFile(join(dir, 'journal-0'));
    await writeFile(join(dir, 'journal-1'), second.subarray(0, second.length / 2));
    const reopened = await FileBackend.open(dir);
    expect((await reopened.get('keep'))?.toString()).toBe('after');
  });

  it('shares one journal among concurrent writers, keeps transactions whole and resolves compare-and-swap in order', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kw-group-'));
    const s = await FileBackend.open(dir);
    await s.put('c', Buffer.from('0'));
    const results = await Promise.all([
      s.transaction([
        { kind: 'put', key: 't/a', value: Buffer.from('1') },
        { kind: 'put', key: 't/b', value: Buffer.from('1') },
      ]),
      s.compareAndSwap('c', Buffer.from('0'), Buffer.from('1')),
      s.compareAndSwap('c', Buffer.from('0'), Buffer.from('2')),
      s.compareAndSwap('c', Buffer.from('1'), Buffer.from('3')),
      ...Array.from({ length: 20 }, (_, i) => s.put(`p/${i}`, Buffer.from(String(i)))),
    ]);
    expect(results.slice(1, 4)).toEqual([true, false, true]);
    expect((await s.get('c'))?.toString()).toBe('3');
    expect(await s.list('p/')).toHaveLength(20);
    const journal = readSlot(await readFile(join(dir, 'journal-0')));
    // The put before went alone (batch 1); the 24 concurrent calls were committed as batch 2.
    expect(journal.seq).toBe(2);
    expect(journal.ops).toHaveLength(2 + 2 + 20);
  });

  it('leaves no temporary files behind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kw-tmp-'));
    const s = await FileBackend.open(dir);
    await Promise.all(Array.from({ length: 50 }, (_, i) => s.put(`k/${i % 5}`, Buffer.from(String(i)))));
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    expect(await s.list('k/')).toEqual(['0', '1', '2', '3', '4']);
  });
});

describe('file backend layout and failures', () => {
  const fresh = () => mkdtemp(join(tmpdir(), 'kw-file-'));

  it('refuses a bad key in every operation', async () => {
    const s = await FileBackend.open(await fresh());
    expect(s.type).toBe('file');
    await expect(s.get('a//b')).rejects.toThrow(StorageKeyError);
    await expect(s.delete('a//b')).rejects.toThrow(StorageKeyError);
    await expect((async () => s.compareAndSwap('a//b', Buffer.from('x'), Buffer.from('y')))()).rejects.toThrow(StorageKeyError);
    await expect(s.transaction([{ kind: 'put', key: 'ok', value: Buffer.from('x') }, { kind: 'delete', key: '../x' }])).rejects.toThrow(StorageKeyError);
    // The refused transaction wrote nothing.
    expect(await s.get('ok')).toBeUndefined();
  });

  it('keeps its on-disk names stable: "_" before each leaf, folders percent-encoded, "_" and "*" escaped', async () => {
    const dir = await fresh();
    const s = await FileBackend.open(dir);
    await s.put('x', Buffer.from('leaf x'));
    await s.put('_x/y', Buffer.from('under folder _x'));
    await s.put('f*/ä *', Buffer.from('odd'));
    await s.put('a_b/c', Buffer.from('underscore inside'));
    expect((await readdir(join(dir, 'data'))).sort()).toEqual(['%5Fx', '_x', 'a_b', 'f%2A']);
    expect(await readdir(join(dir, 'data', 'f%2A'))).toEqual(['_%C3%A4%20%2A']);
    expect(await s.list('')).toEqual(['_x/', 'a_b/', 'f*/', 'x']);
    expect((await s.get('x'))?.toString()).toBe('leaf x');
    expect((await s.get('_x/y'))?.toString()).toBe('under folder _x');
    expect(await s.list('f*/')).toEqual(['ä *']);
  });

  it('lists in sorted order and shows only entries and folders', async () => {
    const dir = await fresh();
    const s = await FileBackend.open(dir);
    for (const k of ['m', 'b', 'z/1', 'a', 'k/2', 'c']) await s.put(`l/${k}`, Buffer.from(k));
    await writeFile(join(dir, 'data', 'l', 'stray-file'), 'not an entry');
    expect(await s.list('l/')).toEqual(['a', 'b', 'c', 'k/', 'm', 'z/']);
    // A path through the stray file is simply empty.
    expect(await s.list('l/stray-file/')).toEqual([]);
    expect(await s.get('l/stray-file/x')).toBeUndefined();
    await s.delete('l/stray-file/x');
  });

  it('removes the folders a delete leaves empty, but never the data directory', async () => {
    const dir = await fresh();
    const s = await FileBackend.open(dir);
    await s.put('only', Buffer.from('1'));
    await s.put('deep/er/leaf', Buffer.from('2'));
    await s.delete('deep/er/leaf');
    await s.delete('only');
    expect(await readdir(join(dir, 'data'))).toEqual([]);
    expect(await s.list('')).toEqual([]);
    // The removed folders were still waiting for their fsync: that they are gone is no failure.
    await s.put('after', Buffer.from('3'));
    await s.close();
  });

  it('compares and swaps only an entry that exists with the expected value, also after a delete in the same batch', async () => {
    const dir = await fresh();
    const s = await FileBackend.open(dir);
    expect(await s.compareAndSwap('missing', Buffer.alloc(0), Buffer.from('v'))).toBe(false);
    expect(await s.get('missing')).toBeUndefined();
    await s.put('c', Buffer.from('0'));
    const [, swapped] = await Promise.all([s.delete('c'), s.compareAndSwap('c', Buffer.from('0'), Buffer.from('1'))]);
    expect(swapped).toBe(false);
    expect(await s.get('c')).toBeUndefined();
  });

  it('writes no journal for a batch whose only write was a failed compare-and-swap', async () => {
    const dir = await fresh();
    const s = await FileBackend.open(dir);
    await s.put('c', Buffer.from('0'));
    expect(await s.compareAndSwap('c', Buffer.from('other'), Buffer.from('1'))).toBe(false);
    await s.put('d', Buffer.from('x'));
    // put c was batch 1 (slot 1); the failed swap took no sequence number, so put d is batch 2 in slot 0.
    expect(readSlot(await readFile(join(dir, 'journal-0')))).toMatchObject({ seq: 2, ops: [{ kind: 'put', key: 'd' }] });
  });

  it('replays both journal slots in sequence order, whichever slot holds the newer batch', async () => {
    const dir = await fresh();
    await (await FileBackend.open(dir)).close();
    const record = (seq: number, value: string) => {
      const ops = [{ kind: 'put', key: 'k', value: Buffer.from(value).toString('base64') }];
      return slot({ seq, ops, sha256: createHash('sha256').update(JSON.stringify({ seq, ops })).digest('hex') });
    };
    await writeFile(join(dir, 'journal-0'), record(8, 'newer'));
    await writeFile(join(dir, 'journal-1'), record(7, 'older'));
    const s = await FileBackend.open(dir);
    expect((await s.get('k'))?.toString()).toBe('newer');
    await s.put('next', Buffer.from('x'));
    expect(readSlot(await readFile(join(dir, 'journal-1'))).seq).toBe(9);
  });

  it('ignores a journal record whose checksum does not match', async () => {
    const dir = await fresh();
    await (await FileBackend.open(dir)).close();
    const ops = [{ kind: 'put', key: 'k', value: Buffer.from('forged').toString('base64') }];
    const sha256 = createHash('sha256').update(JSON.stringify({ seq: 3, ops: [] })).digest('hex');
    await writeFile(join(dir, 'journal-1'), slot({ seq: 3, ops, sha256 }));
    const s = await FileBackend.open(dir);
    expect(await s.get('k')).toBeUndefined();
  });

  it('empties both journal slots on a clean close (after the writes in flight), and clears temporary files left by a crash at open', async () => {
    const dir = await fresh();
    const s = await FileBackend.open(dir);
    await s.put('a', Buffer.from('1'));
    // Close waits for a write still in flight.
    const inFlight = s.put('b', Buffer.from('2'));
    await s.close();
    await inFlight;
    expect((await readFile(join(dir, 'journal-0'))).length).toBe(0);
    expect((await readFile(join(dir, 'journal-1'))).length).toBe(0);
    await writeFile(join(dir, 'tmp', 'half-written'), 'x');
    const reopened = await FileBackend.open(dir);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    expect((await reopened.get('b'))?.toString()).toBe('2');
  });

  it('closes every entry file it wrote once the batch is durable', async () => {
    const openFds = async () => (await readdir('/proc/self/fd')).length;
    const s = await FileBackend.open(await fresh());
    const before = await openFds();
    for (let i = 0; i < 20; i++) await s.put(`k/${i}`, Buffer.from(String(i)));
    await s.close();
    expect(await openFds()).toBe(before);
  });

  it('fails only the batch whose journal could not be written, and takes the next one', async () => {
    const dir = await fresh();
    const s = await FileBackend.open(dir);
    // The first batch goes to slot 1; without it, that journal write fails before anything is applied.
    await rm(join(dir, 'journal-1'));
    await expect(s.put('a', Buffer.from('1'))).rejects.toThrow(/ENOENT/);
    await s.put('b', Buffer.from('2'));
    expect(await s.get('a')).toBeUndefined();
    expect((await s.get('b'))?.toString()).toBe('2');
  });

  it('stops taking writes when a journalled batch fails to apply, and replays it at the next open', async () => {
    const dir = await fresh();
    const s = await FileBackend.open(dir);
    await s.put('x/y', Buffer.from('v1'));
    // A regular file where the entry's folder must be: the journal is written, applying it fails.
    await rm(join(dir, 'data', 'x'), { recursive: true });
    await writeFile(join(dir, 'data', 'x'), 'in the way');
    await expect(s.put('x/y', Buffer.from('v2'))).rejects.toThrow();
    await expect(s.put('other', Buffer.from('z'))).rejects.toThrow(/file storage failed and stopped taking writes until restarted/);
    // Closing keeps the journal: it holds the batch that was not applied.
    await s.close();
    await rm(join(dir, 'data', 'x'));
    const reopened = await FileBackend.open(dir);
    expect((await reopened.get('x/y'))?.toString()).toBe('v2');
    expect(await reopened.get('other')).toBeUndefined();
  });

  it('passes on file system errors other than a missing entry', async () => {
    const dir = await fresh();
    const s = await FileBackend.open(dir);
    await symlink('loop', join(dir, 'data', 'loop'));
    await expect(s.list('loop/')).rejects.toThrow(/ELOOP/);
    await expect(s.get('loop/x')).rejects.toThrow(/ELOOP/);
    await expect(s.delete('loop/x')).rejects.toThrow(/ELOOP/);
  });

  it('stops taking writes when an entry cannot be renamed into place', async () => {
    const dir = await fresh();
    const s = await FileBackend.open(dir);
    await s.put('r/keep', Buffer.from('1'));
    // A non-empty directory where the entry's file goes: the rename fails after the journal was written.
    await mkdir(join(dir, 'data', 'r', '_blocked', 'inside'), { recursive: true });
    await expect(s.put('r/blocked', Buffer.from('2'))).rejects.toThrow();
    await expect(s.put('r/other', Buffer.from('3'))).rejects.toThrow(/stopped taking writes/);
    expect((await s.get('r/keep'))?.toString()).toBe('1');
  });
});
