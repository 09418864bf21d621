import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
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
    const sha256 = createHash('sha256').update(JSON.stringify(ops)).digest('hex');
    await writeFile(join(dir, 'journal'), JSON.stringify({ ops, sha256 }));
    const reopened = await FileBackend.open(dir);
    expect((await reopened.get('core/keyring'))?.toString()).toBe('new keyring');
    expect(await reopened.get('keep')).toBeUndefined();
    expect(await readdir(dir)).not.toContain('journal');
  });

  it('refuses to start on a corrupt journal rather than guess', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kw-journal-'));
    await (await FileBackend.open(dir)).close();
    await writeFile(join(dir, 'journal'), '{"ops":[],"sha256":"0000"}');
    await expect(FileBackend.open(dir)).rejects.toThrow(/journal .* is corrupt/);
  });

  it('leaves no temporary files behind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kw-tmp-'));
    const s = await FileBackend.open(dir);
    await Promise.all(Array.from({ length: 50 }, (_, i) => s.put(`k/${i % 5}`, Buffer.from(String(i)))));
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    expect(await s.list('k/')).toEqual(['0', '1', '2', '3', '4']);
  });
});
