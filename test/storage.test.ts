import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
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
