import { createHash, randomBytes } from 'node:crypto';
import { closeSync, type Dirent, fsync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmdirSync, truncateSync, unlinkSync, writeSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { type StorageBackend, StorageKeyError, type StorageOp, validateKey, validatePrefix } from './backend.js';
import { fsyncPath } from './dir-sync.js';
import { EntryCache } from './entry-cache.js';

// Two journal slots, used in turn: a batch's entries are fsynced while the next batch's journal
// is written to the other slot, so a slot is only overwritten once its batch is durable.
const JOURNALS = ['journal-0', 'journal-1'] as const;

/** The longest file name, in bytes, of the file systems keyward runs on (ext4, xfs, btrfs, tmpfs: NAME_MAX). */
const NAME_MAX = 255;
/** The longest path a system call takes, in bytes with its terminating NUL (Linux's PATH_MAX). */
const PATH_MAX = 4096;
/** How much of a long segment's encoding its hashed name keeps, for a person looking at the data directory. */
const HASHED_NAME_HEAD = 128;
/** A key header's largest size: keys are at most 1024 UTF-16 code units, so at most 3072 bytes of UTF-8, then a newline. */
const KEY_HEADER_MAX = 3 * 1024 + 1;
/** Not valid Unicode: encodeURIComponent throws on it, so such a key has no file name. */
const UNPAIRED_SURROGATE = /\p{Cs}/u;

export interface FileBackendOptions {
  /**
   * Test-only fault hook: the process kills itself (SIGKILL) just before its Nth physical write
   * (journal write, entry rename or entry delete), for crash-consistency tests. While armed it
   * names each write on stderr, that one included, before making it.
   */
  crashAtWrite?: number;
  /** Where a warning at open goes (the service's log); a process warning when not given. */
  warn?: (message: string) => void;
}

/** A journal slot: a 4-byte big-endian length, then this record as JSON (older bytes may follow). */
interface JournalRecord {
  seq: number;
  ops: Array<{ kind: 'put' | 'delete'; key: string; value?: string }>;
  sha256: string;
}

type QueuedOp = StorageOp | { kind: 'cas'; key: string; expected: Buffer; value: Buffer };

/** Where an entry is stored. */
interface EntryPath {
  file: string;
  /** The file starts with the entry's key and a newline: a name on its path is hashed, and list reads the name back from there. */
  keyHeader: boolean;
}

interface Pending {
  ops: readonly QueuedOp[];
  resolve(swapped: boolean): void;
  reject(err: unknown): void;
  swapped?: boolean;
}

const fsyncAsync = promisify(fsync);

/**
 * The embedded default: one file per entry under `<path>/data`, with group commit. Every write
 * (put, delete, compare-and-swap, transaction) joins the next batch; a batch is written as one
 * journal (one fsync), then applied synchronously (so readers see all of it or none of it) and
 * acknowledged. The batch's entry files and directories are fsynced while the next batch's
 * journal is written to the other slot, and before its own slot is reused; until then its
 * journal covers them, and both slots are replayed at open. So a crash leaves every
 * acknowledged write, and all or none of each transaction; N concurrent writers share one fsync.
 *
 * Entries are small and local, so opens, reads, writes and renames are synchronous (each takes
 * microseconds, where a trip through libuv's thread pool costs a few hundred); only the fsyncs,
 * which take milliseconds, run off the event loop.
 */
export class FileBackend implements StorageBackend {
  readonly type = 'file';
  private readonly dataDir: string;
  private readonly tmpDir: string;
  private readonly journalPaths: string[];
  private queue: Pending[] = [];
  private committing: Promise<void> | undefined;
  /** Entry files (open descriptors) and directories the last batch changed, not yet fsynced. */
  private unsyncedFiles: number[] = [];
  private unsyncedDirs = new Set<string>();
  /** The fsync of the previous batch's entries, which must finish before its journal slot is reused. */
  private previousSync: Promise<void> = Promise.resolve();
  private seq = 0;
  private failure: Error | undefined;
  /** Set when a failure leaves entries behind their journal (apply or fsync failed): writes must stop. */
  private entriesAtRisk = false;
  private writes = 0;
  /** Reads skip the open/read/close of hot entries; this process is the only writer, so it stays current. */
  private readonly cache = new EntryCache(32 * 1024 * 1024);

  private constructor(
    private readonly root: string,
    private readonly options: FileBackendOptions,
  ) {
    this.dataDir = join(root, 'data');
    this.tmpDir = join(root, 'tmp');
    this.journalPaths = JOURNALS.map((name) => join(root, name));
  }

  static async open(root: string, options: FileBackendOptions = {}): Promise<FileBackend> {
    const backend = new FileBackend(root, options);
    mkdirSync(backend.dataDir, { recursive: true, mode: 0o700 });
    mkdirSync(backend.tmpDir, { recursive: true, mode: 0o700 });
    for (const name of readdirSync(backend.tmpDir)) unlinkSync(join(backend.tmpDir, name));
    await backend.replayJournal();
    return backend;
  }

  async get(key: string): Promise<Buffer | undefined> {
    return this.readEntry(key);
  }

  async put(key: string, value: Buffer): Promise<void> {
    await this.submit([{ kind: 'put', key, value }]);
  }

  async delete(key: string): Promise<void> {
    await this.submit([{ kind: 'delete', key }]);
  }

  compareAndSwap(key: string, expected: Buffer, next: Buffer): Promise<boolean> {
    return this.submit([{ kind: 'cas', key, expected, value: next }]);
  }

  async transaction(ops: readonly StorageOp[]): Promise<void> {
    await this.submit(ops);
  }

  async list(prefix: string): Promise<string[]> {
    validatePrefix(prefix);
    requireUnicode(prefix);
    const folders = prefix === '' ? [] : prefix.slice(0, -1).split('/');
    const dir = join(this.dataDir, ...folders.map((segment) => nameOf(segment, false)));
    let names: Dirent[];
    try {
      names = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      // A path too long for the system holds no entry: writes refuse such keys.
      if (isCode(err, 'ENOENT') || isCode(err, 'ENOTDIR') || isCode(err, 'ENAMETOOLONG')) return [];
      throw err;
    }
    const out: string[] = [];
    for (const d of names) {
      if (d.isDirectory()) {
        const name = isHashed(d.name) ? keyBelow(join(dir, d.name))?.split('/')[folders.length] : decodeSegment(d.name);
        // A hashed folder with no entry below (a crash between an entry's delete and its folder's) is empty: not listed.
        if (name !== undefined) out.push(`${name}/`);
      } else if (d.name.startsWith('_')) {
        const name = isHashed(d.name) ? keyInHeader(join(dir, d.name))?.split('/')[folders.length] : decodeSegment(d.name.slice(1));
        if (name !== undefined) out.push(name);
      }
    }
    return out.sort();
  }

  /** Waits for queued writes and makes the last batch's entries durable; the journal is then empty. */
  async close(): Promise<void> {
    while (this.committing) await this.committing;
    if (this.failure) return;
    await this.previousSync;
    await this.syncApplied();
    for (const path of this.journalPaths) truncateSync(path);
  }

  private submit(ops: readonly QueuedOp[]): Promise<boolean> {
    // Refused here, before any journal holds them: a journalled batch must always be applicable.
    const refusal = this.refusalOf(ops);
    if (refusal) return Promise.reject(refusal);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.queue.push({ ops, resolve, reject });
      this.startCommitting();
    });
  }

  private startCommitting(): void {
    if (this.committing || !this.queue.length) return;
    // Writes queued after the loop's last check, but before it settled, start the next round.
    this.committing = this.commitQueued().finally(() => {
      this.committing = undefined;
      this.startCommitting();
    });
  }

  private async commitQueued(): Promise<void> {
    while (this.queue.length) {
      const batch = this.queue;
      this.queue = [];
      try {
        await this.commit(batch);
      } catch (err) {
        for (const p of batch) p.reject(err);
        if (!this.entriesAtRisk) continue;
        // A journal that was written but not fully applied must be replayed before anything else
        // is written: stop taking writes until a restart replays it.
        this.failure = new Error(`file storage failed and stopped taking writes until restarted: ${(err as Error).message}`);
        for (const p of this.queue) p.reject(this.failure);
        this.queue = [];
        return;
      }
    }
  }

  private async commit(batch: Pending[]): Promise<void> {
    // The last batch's entries are fsynced alongside this journal write; the slot about to be
    // overwritten holds the batch before it, which must be durable first.
    const older = this.previousSync;
    this.previousSync = this.syncApplied();
    this.previousSync.catch(() => undefined);
    try {
      await older;
    } catch (err) {
      // An fsync error cannot be retried safely (the kernel may have dropped the dirty pages).
      this.entriesAtRisk = true;
      throw err;
    }
    const ops: StorageOp[] = [];
    const pending = new Map<string, Buffer | undefined>();
    for (const p of batch) {
      for (const op of p.ops) {
        if (op.kind === 'cas') {
          const current = pending.has(op.key) ? pending.get(op.key) : this.readEntry(op.key);
          p.swapped = current !== undefined && current.equals(op.expected);
          if (!p.swapped) continue;
          ops.push({ kind: 'put', key: op.key, value: op.value });
          pending.set(op.key, op.value);
        } else {
          ops.push(op);
          pending.set(op.key, op.kind === 'put' ? op.value : undefined);
        }
      }
    }
    if (ops.length) {
      await this.writeJournal(ops);
      this.entriesAtRisk = true;
      this.apply(ops);
      this.entriesAtRisk = false;
    }
    for (const p of batch) p.resolve(p.swapped ?? true);
  }

  private async writeJournal(ops: readonly StorageOp[]): Promise<void> {
    const body = ops.map((op) => (op.kind === 'put' ? { kind: op.kind, key: op.key, value: op.value.toString('base64') } : { kind: op.kind, key: op.key }));
    const seq = ++this.seq;
    const record: JournalRecord = { seq, ops: body, sha256: digest(seq, body) };
    const json = Buffer.from(JSON.stringify(record));
    // A length prefix instead of truncating: on ext4, opening a just-fsynced file with O_TRUNC
    // blocks on its writeback, and here that would stall the event loop.
    const bytes = Buffer.allocUnsafe(4 + json.length);
    bytes.writeUInt32BE(json.length, 0);
    json.copy(bytes, 4);
    this.beforeWrite('journal');
    // Written in place: a torn journal is a batch that was never acknowledged (see replayJournal).
    const fd = openSync(this.journalPaths[seq % 2]!, 'r+');
    try {
      for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
      await fsyncAsync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** Applies a journalled batch without awaiting, so no reader sees part of it. */
  private apply(ops: readonly StorageOp[]): void {
    for (const op of ops) {
      if (op.kind === 'put') this.writeEntry(op.key, op.value);
      else this.removeEntry(op.key);
    }
  }

  private async syncApplied(): Promise<void> {
    const files = this.unsyncedFiles;
    const dirs = [...this.unsyncedDirs];
    this.unsyncedFiles = [];
    this.unsyncedDirs = new Set();
    await Promise.all([
      ...files.map((fd) => fsyncAsync(fd).finally(() => closeSync(fd))),
      ...dirs.map((dir) => fsyncPath(dir).catch((err: unknown) => (isCode(err, 'ENOENT') ? undefined : Promise.reject(err)))),
    ]);
  }

  /**
   * Replays the journal slots in sequence order (idempotent: they hold the last two batches,
   * whose entries may not be durable; a clean close leaves them empty). A slot that fails its
   * checksum was torn while being written, so its batch was never applied nor acknowledged, and
   * the batch it replaced was already durable: there is nothing to replay from it.
   *
   * A batch with a key this backend cannot store (see `entryPath`) is skipped, with a warning
   * naming the key. Every write passes that same check before its journal is written, so such a
   * batch was journalled by an earlier version, whose apply then failed on that key: it was never
   * acknowledged, and skipping it loses nothing (re-applying the rest would leave half of it).
   * (Or the data directory was moved to a longer path, from where that entry is out of reach anyway.)
   * Any other failure still stops the open: an entry in the way, or a disk error, can hit a batch
   * that was acknowledged, whose only copy may then be its journal.
   */
  private async replayJournal(): Promise<void> {
    const records: JournalRecord[] = [];
    let created = false;
    for (const path of this.journalPaths) {
      let raw: Buffer;
      try {
        raw = readFileSync(path);
      } catch (err) {
        if (!isCode(err, 'ENOENT')) throw err;
        closeSync(openSync(path, 'w', 0o600));
        created = true;
        continue;
      }
      try {
        const record = JSON.parse(raw.subarray(4, 4 + raw.readUInt32BE(0)).toString('utf8')) as JournalRecord;
        if (digest(record.seq, record.ops) === record.sha256) records.push(record);
      } catch {
        // Empty or torn: nothing to replay.
      }
    }
    if (created) await fsyncPath(this.root);
    for (const record of records.sort((a, b) => a.seq - b.seq)) {
      this.seq = record.seq;
      const refusal = this.refusalOf(record.ops);
      if (refusal) {
        const message = `file storage skipped journalled batch ${record.seq} at open: ${refusal.message}. It could never be applied, so it was never acknowledged.`;
        if (this.options.warn) this.options.warn(message);
        else process.emitWarning(message, { code: 'KEYWARD_JOURNAL_BATCH_SKIPPED' });
        continue;
      }
      this.apply(record.ops.map((op) => (op.kind === 'put' ? { kind: 'put', key: op.key, value: Buffer.from(op.value ?? '', 'base64') } : { kind: 'delete', key: op.key })));
    }
    await this.syncApplied();
  }

  /** The entry's value; a key not in the cache is checked first (a cached one passed that check). */
  private readEntry(key: string): Buffer | undefined {
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached ?? undefined;
    const { file, keyHeader } = this.entryPath(key);
    let value: Buffer | null;
    try {
      const stored = readFileSync(file);
      value = keyHeader ? stored.subarray(stored.indexOf(0x0a) + 1) : stored;
    } catch (err) {
      if (!isCode(err, 'ENOENT') && !isCode(err, 'ENOTDIR')) throw err;
      value = null;
    }
    this.cache.set(key, value);
    return value ?? undefined;
  }

  private writeEntry(key: string, value: Buffer): void {
    const { file, keyHeader } = this.entryPath(key);
    const dir = dirname(file);
    const created = mkdirSync(dir, { recursive: true, mode: 0o700 });
    // New folders need their parents' entries fsynced too.
    if (created) for (let d = dir; d.length >= created.length; d = dirname(d)) this.unsyncedDirs.add(dirname(d));
    const tmp = join(this.tmpDir, randomBytes(12).toString('hex'));
    const fd = openSync(tmp, 'w', 0o600);
    const stored = keyHeader ? Buffer.concat([Buffer.from(`${key}\n`), value]) : value;
    try {
      for (let off = 0; off < stored.length; ) off += writeSync(fd, stored, off);
      this.beforeWrite(`rename ${key}`);
      renameSync(tmp, file);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    this.unsyncedFiles.push(fd);
    this.unsyncedDirs.add(dir);
    this.cache.set(key, value);
  }

  private removeEntry(key: string): void {
    const { file } = this.entryPath(key);
    this.beforeWrite(`delete ${key}`);
    try {
      unlinkSync(file);
    } catch (err) {
      if (!isCode(err, 'ENOENT') && !isCode(err, 'ENOTDIR')) throw err;
      this.cache.set(key, null);
      return;
    }
    this.cache.set(key, null);
    let dir = dirname(file);
    this.unsyncedDirs.add(dir);
    // Remove folders the delete left empty, so lists stop showing them (as Vault's file backend does).
    while (dir !== this.dataDir && dir.startsWith(this.dataDir)) {
      try {
        rmdirSync(dir);
      } catch {
        break;
      }
      dir = dirname(dir);
      this.unsyncedDirs.add(dir);
    }
  }

  /** The crash hook; `write` names the write about to happen: `journal`, `rename <key>` or `delete <key>`. */
  private beforeWrite(write: string): void {
    if (this.options.crashAtWrite === undefined) return;
    // One line per write, so a crash test knows what the run wrote and which write it stopped before.
    writeSync(2, `keyward test write ${++this.writes}: ${write}\n`);
    if (this.writes === this.options.crashAtWrite) process.kill(process.pid, 'SIGKILL');
  }

  /**
   * Where `key`'s entry is stored; a StorageKeyError (400) for a key the file system cannot hold.
   * Names are bounded (see `nameOf`), so only a whole path past PATH_MAX is refused: a deep key
   * of many multi-byte segments.
   */
  private entryPath(key: string): EntryPath {
    validateKey(key);
    requireUnicode(key);
    const segments = key.split('/');
    const names = segments.map((segment, i) => nameOf(segment, i === segments.length - 1));
    const file = join(this.dataDir, ...names);
    const bytes = Buffer.byteLength(file);
    if (bytes >= PATH_MAX) {
      throw new StorageKeyError(key, `is too long for file storage: its file's path would be ${bytes} bytes, and the system takes at most ${PATH_MAX - 1}`);
    }
    return { file, keyHeader: names.some(isHashed) };
  }

  /** The refusal of the first key among `ops` this backend cannot store, if any. */
  private refusalOf(ops: readonly { key: string }[]): StorageKeyError | undefined {
    try {
      for (const op of ops) this.entryPath(op.key);
      return undefined;
    } catch (err) {
      if (err instanceof StorageKeyError) return err;
      throw err;
    }
  }
}

// Folder names are encoded so that no key can name a path outside the data directory or collide with "_" leaves.
function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/^_/, '%5F').replace(/\*/g, '%2A');
}

/**
 * A segment's file name: "_" before a leaf, then the segment encoded. When that is longer than a
 * file name can be, the encoding is cut and "#" and the SHA-256 of the whole segment follow: "#"
 * is always percent-encoded, so a hashed name never equals an encoded one, and names that fit
 * are unchanged (entries written before hashing existed stay where they are). A hash cannot be
 * decoded, so every entry with a hashed name on its path starts with its key (a key header),
 * which is where list reads a hashed name back: no other file to keep in step with the entry.
 */
function nameOf(segment: string, leaf: boolean): string {
  const encoded = encodeSegment(segment);
  const mark = leaf ? '_' : '';
  if (mark.length + encoded.length <= NAME_MAX) return mark + encoded;
  // Cut before a split percent escape, so the kept head still decodes.
  const head = encoded.slice(0, HASHED_NAME_HEAD).replace(/%[0-9A-F]?$/, '');
  return `${mark}${head}#${createHash('sha256').update(segment).digest('hex')}`;
}

function requireUnicode(path: string): void {
  if (UNPAIRED_SURROGATE.test(path)) throw new StorageKeyError(path, 'is not valid Unicode (it has an unpaired surrogate)');
}

function isHashed(name: string): boolean {
  return name.includes('#');
}

/** The key an entry file's header names, or undefined for a file without one. */
function keyInHeader(file: string): string | undefined {
  const head = Buffer.alloc(KEY_HEADER_MAX);
  const fd = openSync(file, 'r');
  try {
    const end = head.subarray(0, readSync(fd, head, 0, head.length, 0)).indexOf(0x0a);
    return end === -1 ? undefined : head.toString('utf8', 0, end);
  } finally {
    closeSync(fd);
  }
}

/** The key of some entry below `dir` (a hashed folder, so every entry below has a key header), or undefined if it holds none. */
function keyBelow(dir: string): string | undefined {
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, d.name);
    const key = d.isDirectory() ? keyBelow(path) : d.name.startsWith('_') ? keyInHeader(path) : undefined;
    if (key !== undefined) return key;
  }
  return undefined;
}

function decodeSegment(name: string): string {
  return decodeURIComponent(name);
}

function digest(seq: number, ops: JournalRecord['ops']): string {
  return createHash('sha256').update(JSON.stringify({ seq, ops })).digest('hex');
}

function isCode(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException)?.code === code;
}
