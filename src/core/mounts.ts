import type { BarrierOp, SecurityBarrier } from '../barrier/barrier.js';
import { BarrierView } from '../barrier/view.js';
import { InvalidRequestError, NotFoundError } from './errors.js';
import { mountPath } from './names.js';
import { checkTtls, type MountTtls, newTableEntry, PathTable, SYSTEM_TTLS, type TableEntry } from './path-table.js';

export const MOUNTS_PATH = 'core/mounts';
const RESERVED = ['sys/', 'auth/', 'cubbyhole/', 'identity/'];

export type { MountTtls } from './path-table.js';

/**
 * The secrets engines this server offers, and Vault's built-in `cubbyhole` (each token's private
 * store): listed among the mounts as Vault lists it, but served by its own route, never routed.
 */
export type EngineType = 'kv' | 'transit' | 'cubbyhole';

const CUBBYHOLE_PATH = 'cubbyhole/';

export interface MountEntry extends TableEntry {
  type: EngineType;
  /** KV's version; other engines take no options. */
  options: { version?: '1' | '2' };
}

/** What a tune changes; what is left out stays as it is. */
export interface MountChanges {
  description?: string;
  ttls?: MountTtls;
  /** Upgrade a KV version 1 mount to version 2, moving every secret into version 2's layout. */
  kvVersion?: '2';
}

/** The mount table: which secrets engine serves which path prefix, stored through the barrier. */
export class MountTable extends PathTable<MountEntry> {
  /** The barrier engines are given: it lets an upgrade hold every request off a mount's entries. */
  readonly engineBarrier: EngineBarrier;

  constructor(barrier: SecurityBarrier) {
    super(barrier, MOUNTS_PATH);
    this.engineBarrier = new EngineBarrier(barrier);
  }

  /** The default table written at init: KV at `secret/`, version 1 (version 2 in dev mode, as Vault's dev server has it). */
  static initialOps(secretVersion: '1' | '2' = '1'): BarrierOp[] {
    const table = [newEntry('secret/', 'kv', { version: secretVersion }, 'key/value secret storage', SYSTEM_TTLS), cubbyholeEntry()];
    return [{ kind: 'put', path: MOUNTS_PATH, value: Buffer.from(JSON.stringify(table)) }];
  }

  override async load(): Promise<void> {
    await super.load();
    // A table written before the cubbyhole was listed gets it; it is stored with the next change of the table.
    if (!this.entries.has(CUBBYHOLE_PATH)) this.entries.set(CUBBYHOLE_PATH, cubbyholeEntry());
  }

  protected override routable(entry: MountEntry): boolean {
    return entry.type !== 'cubbyhole';
  }

  async mount(path: string, type: string, version: string, description: string, ttls: MountTtls = SYSTEM_TTLS): Promise<void> {
    const p = mountPath(path);
    if (RESERVED.some((r) => p.startsWith(r))) throw new InvalidRequestError(`cannot mount at reserved path "${p}"`);
    const existing = this.overlapping(p);
    if (existing !== undefined) throw new InvalidRequestError(`path is already in use at ${existing}`);
    checkTtls(ttls);
    const entry = newEntry(p, ...engineOf(type, version), description, ttls);
    await this.save(new Map(this.entries).set(p, entry));
  }

  async unmount(path: string, deleteData: (prefix: string) => Promise<void>): Promise<void> {
    const p = mountPath(path);
    const entry = this.entries.get(p);
    if (!entry) throw new NotFoundError(`no secrets engine mounted at ${p}`);
    if (entry.type === 'cubbyhole') throw new InvalidRequestError(`cannot unmount "${p}"`);
    const next = new Map(this.entries);
    next.delete(p);
    // The mount disappears first, so no request can reach the data while it is being removed.
    await this.save(next);
    await deleteData(`logical/${entry.uuid}/`);
  }

  /**
   * Applies a tune (Vault's sys/mounts/<path>/tune) in one write of the table. Everything is
   * checked before anything is written. A KV v1 → v2 upgrade moves every secret into version 2's
   * layout in the same transaction as the table: a crash leaves either the v1 mount with its
   * data or the v2 mount with all of it.
   */
  async tune(path: string, changes: MountChanges): Promise<void> {
    const p = mountPath(path);
    const entry = this.entries.get(p);
    if (!entry) throw new InvalidRequestError(`tune of path "${p}" failed: no mount entry found`);
    let upgrade = false;
    if (changes.kvVersion) {
      if (entry.type !== 'kv') throw new InvalidRequestError(`options.version applies to kv mounts only; "${p}" is a ${entry.type} mount`);
      upgrade = entry.options.version !== '2';
    }
    const tuned = this.tuned(entry, changes.description, changes.ttls);
    const next: MountEntry = { ...tuned, options: upgrade ? { ...entry.options, version: '2' } : entry.options };
    const table = new Map(this.entries).set(p, next);
    if (!upgrade) {
      await this.save(table);
      return;
    }
    await this.engineBarrier.exclusive(entry.uuid, `the KV mount at "${p}" is being upgraded to version 2; retry in a moment`, async () => {
      await this.barrier.transaction([...(await kvV2LayoutOps(new BarrierView(this.barrier, `logical/${entry.uuid}/`))), this.tableOp(table)]);
      this.entries = table;
    });
  }

  /**
   * Moves a mount to another path (Vault's sys/remount). Its data stays under `logical/<uuid>/`,
   * so only the table changes. Errors use Vault's wording.
   */
  async remount(from: string, to: string): Promise<MountEntry> {
    const src = mountPath(from);
    const dst = mountPath(to);
    if (RESERVED.some((r) => src.startsWith(r))) throw new InvalidRequestError(`cannot remount "${src}"`);
    if (RESERVED.some((r) => dst.startsWith(r))) throw new InvalidRequestError(`cannot remount to destination "${dst}"`);
    const entry = this.entries.get(src);
    if (!entry) throw new InvalidRequestError(`no matching mount at "${src}"`);
    const existing = this.overlapping(dst);
    if (existing !== undefined) throw new InvalidRequestError(`path already in use at "${existing}"`);
    const moved = { ...entry, path: dst };
    const next = new Map(this.entries);
    next.delete(src);
    await this.save(next.set(dst, moved));
    return moved;
  }
}

/**
 * The writes that turn a KV version 1 mount's entries into KV version 2's layout (see KvV2): each
 * secret `k` becomes version 1 of itself, `versions/k/1` with the same data and `metadata/k`, and
 * every v1 entry is deleted unless the new layout writes that very path (a v1 secret named
 * "metadata/k" is moved to `metadata/metadata/k`, and `metadata/k` then holds k's metadata).
 */
async function kvV2LayoutOps(view: BarrierView): Promise<BarrierOp[]> {
  const keys = await view.walk('');
  const now = new Date().toISOString();
  const metadata = Buffer.from(
    JSON.stringify({
      created_time: now,
      updated_time: now,
      current_version: 1,
      oldest_version: 1,
      max_versions: 0,
      cas_required: false,
      delete_version_after: '0s',
      custom_metadata: null,
      versions: { '1': { created_time: now, deletion_time: '', destroyed: false } },
    }),
  );
  const puts = new Map<string, Buffer>();
  for (const key of keys) {
    const value = await view.get(key);
    if (!value) continue;
    puts.set(`versions/${key}/1`, value);
    puts.set(`metadata/${key}`, metadata);
  }
  const ops: BarrierOp[] = [...puts].map(([path, value]) => ({ kind: 'put', path: view.prefix + path, value }));
  for (const key of keys) if (!puts.has(key)) ops.push({ kind: 'delete', path: view.prefix + key });
  return ops;
}

/** The engine type and options a mount request names (Vault's "kv-v2" is KV with version 2). */
function engineOf(type: string, version: string): [EngineType, MountEntry['options']] {
  switch (type) {
    case 'kv-v2':
      return ['kv', { version: '2' }];
    case 'kv':
      return ['kv', { version: version === '2' ? '2' : version === '1' || version === '' ? '1' : badVersion(version) }];
    case 'transit':
      return ['transit', {}];
    default:
      throw new InvalidRequestError(`plugin not found in the catalog: ${type} (this server offers "kv", "kv-v2" and "transit")`);
  }
}

function newEntry(path: string, type: EngineType, options: MountEntry['options'], description: string, config: MountTtls): MountEntry {
  return { ...newTableEntry(path, type, description, config), options };
}

function cubbyholeEntry(): MountEntry {
  return newEntry(CUBBYHOLE_PATH, 'cubbyhole', {}, 'per-token private secret storage', SYSTEM_TTLS);
}

function badVersion(v: string): never {
  throw new InvalidRequestError(`invalid KV version "${v}": use "1" or "2"`);
}

/** The mount UUID of a path under `logical/<uuid>/`, else undefined. */
function mountUuidOf(path: string): string | undefined {
  if (!path.startsWith('logical/')) return undefined;
  const end = path.indexOf('/', 8);
  return end === -1 ? undefined : path.slice(8, end);
}

/**
 * The barrier as engines see it. Each call under a mount's `logical/<uuid>/` is counted while it
 * runs, and refused while that mount is held exclusively (a KV upgrade), so the upgrade reads and
 * rewrites the mount's entries with no engine write landing in between. A KV v1 operation is one
 * barrier call, made as its request is routed, so the count covers every request under way.
 */
export class EngineBarrier implements SecurityBarrier {
  private readonly running = new Map<string, number>();
  /** Mounts held exclusively, with what a refused call is told. */
  private readonly held = new Map<string, string>();
  private readonly drained = new Map<string, () => void>();

  constructor(private readonly barrier: SecurityBarrier) {}

  get sealed(): boolean {
    return this.barrier.sealed;
  }

  initialized(): Promise<boolean> {
    return this.barrier.initialized();
  }

  initialize(...args: Parameters<SecurityBarrier['initialize']>): Promise<void> {
    return this.barrier.initialize(...args);
  }

  unseal(...args: Parameters<SecurityBarrier['unseal']>): Promise<void> {
    return this.barrier.unseal(...args);
  }

  seal(): Promise<void> {
    return this.barrier.seal();
  }

  activeKey(): ReturnType<SecurityBarrier['activeKey']> {
    return this.barrier.activeKey();
  }

  get(path: string): Promise<Buffer | undefined> {
    return this.counted(path, () => this.barrier.get(path));
  }

  exists(path: string): Promise<boolean> {
    return this.counted(path, () => this.barrier.exists(path));
  }

  put(path: string, value: Buffer): Promise<void> {
    return this.counted(path, () => this.barrier.put(path, value));
  }

  delete(path: string): Promise<void> {
    return this.counted(path, () => this.barrier.delete(path));
  }

  list(prefix: string): Promise<string[]> {
    return this.counted(prefix, () => this.barrier.list(prefix));
  }

  transaction(ops: readonly BarrierOp[]): Promise<void> {
    // An engine's transaction stays under its own mount: its first path names it.
    return this.counted(ops[0]?.path ?? '', () => this.barrier.transaction(ops));
  }

  /** Refuses new calls under mount `uuid` with `refusal`, waits for those under way, runs `fn`, then lets calls through again. */
  async exclusive<T>(uuid: string, refusal: string, fn: () => Promise<T>): Promise<T> {
    this.held.set(uuid, refusal);
    try {
      if (this.running.has(uuid)) await new Promise<void>((resolve) => this.drained.set(uuid, resolve));
      return await fn();
    } finally {
      this.held.delete(uuid);
    }
  }

  private counted<T>(path: string, op: () => Promise<T>): Promise<T> {
    const uuid = mountUuidOf(path);
    if (uuid === undefined) return op();
    const refusal = this.held.get(uuid);
    if (refusal !== undefined) return Promise.reject(new InvalidRequestError(refusal));
    this.running.set(uuid, (this.running.get(uuid) ?? 0) + 1);
    let result: Promise<T>;
    try {
      result = op();
    } catch (err) {
      result = Promise.reject(err as Error);
    }
    return result.finally(() => this.finished(uuid));
  }

  private finished(uuid: string): void {
    const left = this.running.get(uuid)! - 1;
    if (left > 0) {
      this.running.set(uuid, left);
      return;
    }
    this.running.delete(uuid);
    this.drained.get(uuid)?.();
    this.drained.delete(uuid);
  }
}
