import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fsync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmdirSync, truncateSync, unlinkSync, writeSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { type StorageBackend, type StorageOp, validateKey, validatePrefix } from './backend.js';
import { fsyncPath } from './dir-sync.js';
import { EntryCache } from './entry-cache.js';

// Two journal slots, used in turn: a batch's entries are fsynced while the next batch's journal
// is written to the other slot, so a slot is only overwritten once its batch is durable.
const JOURNALS = ['journal-0', 'journal-1'] as const;

export interface FileBackendOptions {
  /**
   * Test-only fault hook: the process kills itself (SIGKILL) just before its Nth physical write
   * (journal write, entry rename or entry delete), for crash-consistency tests. While armed it
   * names each write on stderr, that one included, before making it.
   */
  crashAtWrite?: number;
}

/** A journal slot: a 4-byte big-endian length, then this record as JSON (older bytes may follow). */
interface JournalRecord {
  seq: number;
  ops: Array<{ kind: 'put' | 'delete'; key: string; value?: string }>;
  sha256: string;
}

type QueuedOp = StorageOp | { kind: 'cas'; key: string; expected: Buffer; value: Buffer };

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
    validateKey(key);
    return this.readEntry(key);
  }

  async put(key: string, value: Buffer): Promise<void> {
    validateKey(key);
    await this.submit([{ kind: 'put', key, value }]);
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    await this.submit([{ kind: 'delete', key }]);
  }

  compareAndSwap(key: string, expected: Buffer, next: Buffer): Promise<boolean> {
    validateKey(key);
    return this.submit([{ kind: 'cas', key, expected, value: next }]);
  }

  async transaction(ops: readonly StorageOp[]): Promise<void> {
    for (const op of ops) validateKey(op.key);
    await this.submit(ops);
  }

  async list(prefix: string): Promise<string[]> {
    validatePrefix(prefix);
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
      this.apply(record.ops.map((op) => (op.kind === 'put' ? { kind: 'put', key: op.key, value: Buffer.from(op.value ?? '', 'base64') } : { kind: 'delete', key: op.key })));
    }
    await this.syncApplied();
  }

  private readEntry(key: string): Buffer | undefined {
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached ?? undefined;
    let value: Buffer | null;
    try {
      value = readFileSync(this.fileOf(key));
    } catch (err) {
      if (!isCode(err, 'ENOENT') && !isCode(err, 'ENOTDIR')) throw err;
      value = null;
    }
    this.cache.set(key, value);
    return value ?? undefined;
  }

  private writeEntry(key: string, value: Buffer): void {
    const file = this.fileOf(key);
    const dir = dirname(file);
    const created = mkdirSync(dir, { recursive: true, mode: 0o700 });
    // New folders need their parents' entries fsynced too.
    if (created) for (let d = dir; d.length >= created.length; d = dirname(d)) this.unsyncedDirs.add(dirname(d));
    const tmp = join(this.tmpDir, randomBytes(12).toString('hex'));
    const fd = openSync(tmp, 'w', 0o600);
    try {
      for (let off = 0; off < value.length; ) off += writeSync(fd, value, off);
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
    const file = this.fileOf(key);
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

function digest(seq: number, ops: JournalRecord['ops']): string {
  return createHash('sha256').update(JSON.stringify({ seq, ops })).digest('hex');
}

function isCode(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException)?.code === code;
}
