import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { childrenOf, StorageKeyError } from '../src/storage/backend.js';
import { FileBackend } from '../src/storage/file.js';

const fresh = () => mkdtemp(join(tmpdir(), 'kw-names-'));

/** Characters of 1, 2, 3 and 4 bytes of UTF-8 (the last one two UTF-16 units), and ones the encoding escapes or keeps. */
const CHARS = ['a', 'Z', '7', 'é', '€', '😀', '%', '_', '*', '.', ' ', '#', '~'];

/** The longest file name (NAME_MAX) and path (PATH_MAX, less its NUL) Linux takes, in bytes. */
const NAME_MAX = 255;
const PATH_MAX = 4095;

const segment = fc.integer({ min: 1, max: 400 }).chain((n) => fc.array(fc.constantFrom(...CHARS), { minLength: n, maxLength: n }).map((chars) => chars.join('')));
const shortSegment = fc.array(fc.constantFrom(...CHARS), { minLength: 1, maxLength: 3 }).map((chars) => chars.join(''));
/** Keys of a few segments up to 400 characters each (past NAME_MAX once encoded, past the 1024-character limit together), or deep ones past PATH_MAX. */
const key = fc.oneof(
  fc.array(segment, { minLength: 1, maxLength: 4 }).map((segments) => segments.join('/')),
  fc.array(shortSegment, { minLength: 100, maxLength: 400 }).map((segments) => segments.join('/')),
);

function wellFormed(k: string): boolean {
  return k.length <= 1024 && k.split('/').every((s) => s !== '.' && s !== '..');
}

/** Every folder a key lives under, as a list prefix, and the top level (''). */
function prefixesOf(keys: Iterable<string>): Set<string> {
  const out = new Set(['']);
  for (const k of keys) {
    const segments = k.split('/');
    for (let i = 1; i < segments.length; i++) out.add(`${segments.slice(0, i).join('/')}/`);
  }
  return out;
}

/** Every file and folder name under `dir`. */
async function namesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(dir, { withFileTypes: true })) {
    out.push(d.name);
    if (d.isDirectory()) out.push(...(await namesUnder(join(dir, d.name))));
  }
  return out;
}

/** The data directory path of a key stored under plain names (segments shorter than NAME_MAX, no leading "_" or "*"). */
function plainPath(dir: string, k: string): string {
  const segments = k.split('/').map(encodeURIComponent);
  segments.push(`_${segments.pop()!}`);
  return join(dir, 'data', ...segments);
}

/** A journal slot as the file backend writes it: a 4-byte length, then the checksummed JSON record. */
function journalSlot(seq: number, ops: Array<{ kind: 'put'; key: string; value: string }>): Buffer {
  const body = ops.map((op) => ({ ...op, value: Buffer.from(op.value).toString('base64') }));
  const sha256 = createHash('sha256').update(JSON.stringify({ seq, ops: body })).digest('hex');
  const json = Buffer.from(JSON.stringify({ seq, ops: body, sha256 }));
  const length = Buffer.alloc(4);
  length.writeUInt32BE(json.length);
  return Buffer.concat([length, json]);
}

describe('file storage names at and past the file system limits', () => {
  it('stores every key it accepts under its own name, refuses the rest with StorageKeyError before journalling, and is never wedged', async () => {
    const op = fc.record({ key, remove: fc.boolean() });
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 6 }), async (ops) => {
        const dir = await fresh();
        // Each name under PATH_MAX, so a well-formed key of this many segments always fits.
        const segmentsThatAlwaysFit = Math.floor((PATH_MAX - Buffer.byteLength(join(dir, 'data'))) / (NAME_MAX + 1));
        let s = await FileBackend.open(dir);
        const model = new Map<string, string>();
        const everStored = new Set<string>();
        for (const [i, { key: k, remove }] of ops.entries()) {
          const value = `value ${i}`;
          try {
            if (remove) await s.delete(k);
            else await s.put(k, Buffer.from(value));
          } catch (err) {
            expect(err).toBeInstanceOf(StorageKeyError);
            expect(wellFormed(k) && k.split('/').length <= segmentsThatAlwaysFit, `refused ${JSON.stringify(k)}: ${(err as Error).message}`).toBe(false);
            // Not wedged: the next ordinary write goes through.
            await s.put('ordinary', Buffer.from(value));
            expect((await s.get('ordinary'))?.toString()).toBe(value);
            model.set('ordinary', value);
            continue;
          }
          expect(wellFormed(k)).toBe(true);
          everStored.add(k);
          if (remove) model.delete(k);
          else model.set(k, value);
        }
        const check = async () => {
          for (const [k, v] of model) expect((await s.get(k))?.toString()).toBe(v);
          for (const prefix of prefixesOf([...everStored, ...model.keys()])) expect(await s.list(prefix)).toEqual(childrenOf(model.keys(), prefix));
        };
        await check();
        await s.close();
        s = await FileBackend.open(dir);
        await check();
        for (const name of await namesUnder(join(dir, 'data'))) expect(Buffer.byteLength(name)).toBeLessThanOrEqual(NAME_MAX);
        await s.close();
      }),
      { numRuns: 40 },
    );
  });

  it.each(CHARS)('stores segments of %j at every length across NAME_MAX, as leaves and as folders, and lists their names', async (char) => {
    const dir = await fresh();
    const s = await FileBackend.open(dir);
    const lengths = Array.from({ length: Math.min(300, Math.floor(1000 / char.length)) }, (_, i) => i + 1).filter((n) => char !== '.' || n > 2);
    const segments = lengths.map((n) => char.repeat(n));
    await s.transaction(segments.flatMap((seg) => [
      { kind: 'put' as const, key: `leaf/${seg}`, value: Buffer.from(`leaf ${seg.length}`) },
      { kind: 'put' as const, key: `folder/${seg}/x`, value: Buffer.from(`folder ${seg.length}`) },
    ]));
    const check = async (backend: FileBackend) => {
      for (const seg of segments) {
        expect((await backend.get(`leaf/${seg}`))?.toString()).toBe(`leaf ${seg.length}`);
        expect((await backend.get(`folder/${seg}/x`))?.toString()).toBe(`folder ${seg.length}`);
      }
      expect(await backend.list('leaf/')).toEqual([...segments].sort());
      expect(await backend.list('folder/')).toEqual(segments.map((seg) => `${seg}/`).sort());
    };
    await check(s);
    await s.close();
    await check(await FileBackend.open(dir));
    for (const name of await namesUnder(join(dir, 'data'))) expect(Buffer.byteLength(name)).toBeLessThanOrEqual(NAME_MAX);
  });

  it('keeps names that fit as they always were, hashes only longer ones, and a hashed name never equals a short one', async () => {
    const dir = await fresh();
    const s = await FileBackend.open(dir);
    await s.put(`n/${'a'.repeat(254)}`, Buffer.from('longest plain leaf'));
    await s.put(`n/${'a'.repeat(255)}`, Buffer.from('hashed leaf'));
    await s.put(`n/${'b'.repeat(255)}/x`, Buffer.from('under the longest plain folder'));
    await s.put(`n/${'b'.repeat(256)}/x`, Buffer.from('under a hashed folder'));
    const names = await readdir(join(dir, 'data', 'n'));
    expect(names).toContain(`_${'a'.repeat(254)}`);
    expect(names).toContain('b'.repeat(255));
    const hashedLeaf = names.find((n) => n.startsWith('_a') && n.includes('#'))!;
    expect(hashedLeaf).toBe(`_${'a'.repeat(128)}#${createHash('sha256').update('a'.repeat(255)).digest('hex')}`);
    expect(names.find((n) => n.startsWith('b') && n.includes('#'))).toBe(`${'b'.repeat(128)}#${createHash('sha256').update('b'.repeat(256)).digest('hex')}`);

    // A key spelling out a hashed name is encoded ("#" as %23), so it gets a file of its own.
    const lookalike = hashedLeaf.slice(1);
    await s.put(`n/${lookalike}`, Buffer.from('lookalike'));
    expect((await s.get(`n/${'a'.repeat(255)}`))?.toString()).toBe('hashed leaf');
    expect((await s.get(`n/${lookalike}`))?.toString()).toBe('lookalike');
    expect(await s.list('n/')).toEqual([lookalike, 'a'.repeat(254), 'a'.repeat(255), `${'b'.repeat(255)}/`, `${'b'.repeat(256)}/`].sort());

    // A hashed escape is not cut in half: the kept head ends on a whole %XX.
    await s.put(`e/${'€'.repeat(40)}`, Buffer.from('euros'));
    const [euros] = await readdir(join(dir, 'data', 'e'));
    expect(euros).toMatch(/^_(%E2%82%AC)+#[0-9a-f]{64}$/);
  });

  it('removes hashed folders a delete leaves empty, so lists stop showing them', async () => {
    const dir = await fresh();
    const s = await FileBackend.open(dir);
    const deep = `d/${'x'.repeat(300)}/${'y'.repeat(300)}/leaf`;
    await s.put(deep, Buffer.from('1'));
    await s.put('d/kept', Buffer.from('2'));
    expect(await s.list('d/')).toEqual(['kept', `${'x'.repeat(300)}/`]);
    expect(await s.list(`d/${'x'.repeat(300)}/`)).toEqual([`${'y'.repeat(300)}/`]);
    await s.delete(deep);
    expect(await s.list('d/')).toEqual(['kept']);
    expect(await readdir(join(dir, 'data', 'd'))).toEqual(['_kept']);
  });

  it('refuses a whole transaction when one key is past PATH_MAX, as a KV v2 write whose version path is longer than its metadata path', async () => {
    const dir = await fresh();
    const s = await FileBackend.open(dir);
    await s.put('before', Buffer.from('0'));
    // Segments of 28 "€" (252 bytes encoded, so not hashed), then an ASCII one that makes the metadata path exactly PATH_MAX bytes.
    let path = '';
    for (let k = 1; !path; k++) {
      const head = Array.from({ length: k }, () => '€'.repeat(28)).join('/');
      const tail = PATH_MAX - Buffer.byteLength(plainPath(dir, `metadata/${head}/`));
      if (tail >= 1 && tail < NAME_MAX) path = `${head}/${'a'.repeat(tail)}`;
    }
    expect(Buffer.byteLength(plainPath(dir, `metadata/${path}`))).toBe(PATH_MAX);
    expect(Buffer.byteLength(plainPath(dir, `versions/${path}/1`))).toBeGreaterThan(PATH_MAX);

    const write = s.transaction([
      { kind: 'put', key: `versions/${path}/1`, value: Buffer.from('version 1') },
      { kind: 'put', key: `metadata/${path}`, value: Buffer.from('metadata') },
    ]);
    await expect(write).rejects.toThrow(StorageKeyError);
    await expect(write).rejects.toThrow(/^storage path "versions\/.*" is too long for file storage: its file's path would be \d+ bytes, and the system takes at most 4095$/);
    expect(await s.get(`metadata/${path}`)).toBeUndefined();
    // Nothing journalled: the next batch's slot is still empty.
    expect(await readFile(join(dir, 'journal-0'))).toHaveLength(0);
    // The metadata path alone fits, and the backend takes writes as before.
    await s.put(`metadata/${path}`, Buffer.from('metadata'));
    expect((await s.get(`metadata/${path}`))?.toString()).toBe('metadata');
    await expect(s.get(`versions/${path}/1`)).rejects.toThrow(StorageKeyError);
    await expect(s.delete(`versions/${path}/1`)).rejects.toThrow(StorageKeyError);
    expect(await s.list(`versions/${path}/1/`)).toEqual([]);
    await s.close();
    expect((await (await FileBackend.open(dir)).get(`metadata/${path}`))?.toString()).toBe('metadata');
  });

  it('refuses a key that is not valid Unicode, which has no file name, and keeps taking writes', async () => {
    const s = await FileBackend.open(await fresh());
    await expect(s.put('u/a\ud800', Buffer.from('x'))).rejects.toThrow(/not valid Unicode/);
    await expect(s.list('u\udc00/')).rejects.toThrow(StorageKeyError);
    await s.put('u/b', Buffer.from('y'));
    expect(await s.list('u/')).toEqual(['b']);
  });
});

describe('file storage journal replay', () => {
  it('opens past a journalled batch that could never be applied, skipping that batch whole with a warning naming its key, and serves every other entry', async () => {
    const dir = await fresh();
    const first = await FileBackend.open(dir);
    await first.put('kept', Buffer.from('acknowledged'));
    await first.close();

    // As an earlier version left them: a segment past NAME_MAX (whose apply failed then), and a path past PATH_MAX.
    const longSegment = `secret/${'s'.repeat(300)}`;
    const pastPathMax = `deep/${Array.from({ length: 500 }, () => '€').join('/')}`;
    await writeFile(join(dir, 'journal-0'), journalSlot(8, [{ kind: 'put', key: longSegment, value: 'now stored under a hashed name' }]));
    await writeFile(join(dir, 'journal-1'), journalSlot(9, [
      { kind: 'put', key: 'same-batch', value: 'not applied either' },
      { kind: 'put', key: pastPathMax, value: 'cannot be stored' },
    ]));

    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    let s: FileBackend;
    try {
      s = await FileBackend.open(dir);
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings).toHaveLength(1);
    expect((warnings[0] as NodeJS.ErrnoException).code).toBe('KEYWARD_JOURNAL_BATCH_SKIPPED');
    expect(warnings[0]!.message).toContain('skipped journalled batch 9 at open');
    expect(warnings[0]!.message).toContain(`storage path "${pastPathMax}" is too long for file storage`);

    expect((await s.get('kept'))?.toString()).toBe('acknowledged');
    expect((await s.get(longSegment))?.toString()).toBe('now stored under a hashed name');
    expect(await s.list('secret/')).toEqual(['s'.repeat(300)]);
    expect(await s.get('same-batch')).toBeUndefined();
    expect(await s.list('')).toEqual(['kept', 'secret/']);
    // Writes go on, numbered after the skipped batch.
    await s.put('after', Buffer.from('x'));
    expect((await s.get('after'))?.toString()).toBe('x');
    const slot = await readFile(join(dir, 'journal-0'));
    expect(JSON.parse(slot.subarray(4, 4 + slot.readUInt32BE(0)).toString('utf8')).seq).toBe(10);
    await s.close();
    expect(await (await FileBackend.open(dir)).list('')).toEqual(['after', 'kept', 'secret/']);
  });
});
