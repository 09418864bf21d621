import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fsync, mkdirSync, openSync, readFileSync, renameSync, rmdirSync, unlinkSync, writeSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type StorageBackend, type StorageOp, validateKey, validatePrefix } from './backend.js';
import { DirSyncer, fsyncPath } from './dir-sync.js';
import { KeyedMutex } from '../locks/mutex.js';
import { RwLock } from '../locks/rw-lock.js';

const JOURNAL = 'journal';

export interface FileBackendOptions {
  /**
   * Test-only fault hook: the process kills itself (SIGKILL) just before its Nth physical write
   * (entry write, entry delete, journal write or journal removal), for crash-consistency tests.
   */
  crashAtWrite?: number;
}

interface JournalRecord {
  ops: Array<{ kind: 'put' | 'delete'; key: string; value?: string }>;
  sha256: string;
}

const fsyncAsync = promisify(fsync);

/**
 * The embedded default: one file per entry under `<path>/data`, each write durable
 * (temporary file, fsync, rename, directory fsync). A transaction is first written as one
 * journal file (same durability), then applied, then removed; a journal found at open is
 * replayed, so a crash leaves all of a transaction or none of it.
 *
 * Entries are small and local, so opens, reads, writes and renames are synchronous (each takes
 * microseconds, where a trip through libuv's thread pool costs a few hundred); only the fsyncs,
 * which take milliseconds, run off the event loop.
 */
export class FileBackend implements StorageBackend {
  readonly type = 'file';
  private readonly dataDir: string;
  private readonly tmpDir: string;
  private readonly lock = new RwLock();
  // Writes to one key are serialized, so a compare-and-swap cannot interleave with a put.
  private readonly keyLocks = new KeyedMutex();
  private readonly dirSyncer = new DirSyncer();
  private writes = 0;

  private constructor(
    private readonly root: string,
    private readonly options: FileBackendOptions,
  ) {
    this.dataDir = join(root, 'data');
    this.tmpDir = join(root, 'tmp');
  }

  static async open(root: string, options: FileBackendOptions = {}): Promise<FileBackend> {
    const backend = new FileBackend(root, options);
    mkdirSync(backend.dataDir, { recursive: true, mode: 0o700 });
    mkdirSync(backend.tmpDir, { recursive: true, mode: 0o700 });
    await backend.replayJournal();
    return backend;
  }

  async get(key: string): Promise<Buffer | undefined> {
    validateKey(key);
    return this.lock.shared(async () => this.readEntry(key));
  }

  async put(key: string, value: Buffer): Promise<void> {
    validateKey(key);
    return this.lock.shared(() => this.keyLocks.run(key, () => this.writeEntry(key, value)));
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    return this.lock.shared(() => this.keyLocks.run(key, () => this.removeEntry(key)));
  }

  async compareAndSwap(key: string, expected: Buffer, next: Buffer): Promise<boolean> {
    validateKey(key);
    return this.lock.shared(() =>
      this.keyLocks.run(key, async () => {
        const current = this.readEntry(key);
        if (!current || !current.equals(expected)) return false;
        await this.writeEntry(key, next);
        return true;
      }),
    );
  }

  async list(prefix: string): Promise<string[]> {
    validatePrefix(prefix);
    return this.lock.shared(async () => {
      const dir = prefix === '' ? this.dataDir : join(this.dataDir, ...prefix.slice(0, -1).split('/').map(encodeSegment));
      let names: import('node:fs').Dirent[];
      try {
        names = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (isCode(err, 'ENOENT') || isCode(err, 'ENOTDIR')) return [];
        throw err;
      }
      const out: string[] = [];
      for (const d of names) {
        if (d.isDirectory()) out.push(`${decodeSegment(d.name)}/`);
        else if (d.name.startsWith('_')) out.push(decodeSegment(d.name.slice(1)));
      }
      return out.sort();
    });
  }

  async transaction(ops: readonly StorageOp[]): Promise<void> {
    for (const op of ops) validateKey(op.key);
    return this.lock.exclusive(async () => {
      const body = ops.map((op) =>
        op.kind === 'put' ? { kind: op.kind, key: op.key, value: op.value.toString('base64') } : { kind: op.kind, key: op.key },
      );
      const record: JournalRecord = { ops: body, sha256: digest(body) };
      await this.durableWrite(join(this.root, JOURNAL), this.root, Buffer.from(JSON.stringify(record)));
      await this.applyJournal(record);
    });
  }

  async close(): Promise<void> {
    await this.lock.exclusive(async () => undefined);
  }

  private async replayJournal(): Promise<void> {
    let raw: Buffer;
    try {
      raw = readFileSync(join(this.root, JOURNAL));
    } catch (err) {
      if (isCode(err, 'ENOENT')) return;
      throw err;
    }
    let record: JournalRecord | undefined;
    try {
      record = JSON.parse(raw.toString('utf8')) as JournalRecord;
      if (digest(record.ops) !== record.sha256) record = undefined;
    } catch {
      record = undefined;
    }
    // The journal only appears by rename after its own fsync, so a torn journal cannot exist; refuse rather than guess.
    if (!record) throw new Error(`storage journal ${join(this.root, JOURNAL)} is corrupt; inspect it before starting`);
    await this.applyJournal(record);
  }

  private async applyJournal(record: JournalRecord): Promise<void> {
    for (const op of record.ops) {
      if (op.kind === 'put') await this.writeEntry(op.key, Buffer.from(op.value ?? '', 'base64'));
      else await this.removeEntry(op.key);
    }
    this.beforeWrite();
    unlinkSync(join(this.root, JOURNAL));
    await fsyncPath(this.root);
  }

  private readEntry(key: string): Buffer | undefined {
    try {
      return readFileSync(this.fileOf(key));
    } catch (err) {
      if (isCode(err, 'ENOENT') || isCode(err, 'ENOTDIR')) return undefined;
      throw err;
    }
  }

  private async writeEntry(key: string, value: Buffer): Promise<void> {
    const file = this.fileOf(key);
    const dir = join(file, '..');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    try {
      await this.durableWrite(file, dir, value);
    } catch (err) {
      // A concurrent delete may have removed the (then empty) directory between mkdir and rename.
      if (!isCode(err, 'ENOENT')) throw err;
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      await this.durableWrite(file, dir, value);
    }
  }

  private async removeEntry(key: string): Promise<void> {
    const file = this.fileOf(key);
    this.beforeWrite();
    try {
      unlinkSync(file);
    } catch (err) {
      if (isCode(err, 'ENOENT')) return;
      throw err;
    }
    let dir = join(file, '..');
    await this.dirSyncer.sync(dir);
    // Remove folders the delete left empty, so lists stop showing them (as Vault's file backend does).
    while (dir !== this.dataDir && dir.startsWith(this.dataDir)) {
      try {
        rmdirSync(dir);
      } catch {
        break;
      }
      dir = join(dir, '..');
    }
  }

  private beforeWrite(): void {
    if (++this.writes === this.options.crashAtWrite) process.kill(process.pid, 'SIGKILL');
  }

  private async durableWrite(target: string, targetDir: string, value: Buffer): Promise<void> {
    this.beforeWrite();
    const tmp = join(this.tmpDir, randomBytes(12).toString('hex'));
    const fd = openSync(tmp, 'w', 0o600);
    try {
      for (let off = 0; off < value.length; ) off += writeSync(fd, value, off);
      await fsyncAsync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      renameSync(tmp, target);
    } catch (err) {
      try {
        unlinkSync(tmp);
      } catch {
        // Nothing left to clean up.
      }
      throw err;
    }
    await this.dirSyncer.sync(targetDir);
  }

  private fileOf(key: string): string {
    const segments = key.split('/').map(encodeSegment);
    const leaf = segments.pop()!;
    return join(this.dataDir, ...segments, `_${leaf}`);
  }
}

// Folder names are encoded so that no key can name a path outside the data directory or collide with "_" leaves.
function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/^_/, '%5F').replace(/\*/g, '%2A');
}

function decodeSegment(name: string): string {
  return decodeURIComponent(name);
}

function digest(ops: JournalRecord['ops']): string {
  return createHash('sha256').update(JSON.stringify(ops)).digest('hex');
}

function isCode(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException)?.code === code;
}
