import { randomUUID } from 'node:crypto';
import type { BarrierOp, SecurityBarrier } from '../barrier/barrier.js';
import { InvalidRequestError, NotFoundError } from './errors.js';
import { mountPath } from './names.js';

export const MOUNTS_PATH = 'core/mounts';
const RESERVED = ['sys/', 'auth/', 'cubbyhole/', 'identity/'];

export interface MountEntry {
  path: string;
  type: 'kv';
  uuid: string;
  accessor: string;
  description: string;
  options: { version: '1' | '2' };
  created_time: string;
}

/** The mount table: which secrets engine serves which path prefix, stored through the barrier. */
export class MountTable {
  private entries = new Map<string, MountEntry>();

  constructor(private readonly barrier: SecurityBarrier) {}

  /** The default table written at init: KV v1 at `secret/`. */
  static initialOps(): BarrierOp[] {
    const table = [newEntry('secret/', '1', 'key/value secret storage')];
    return [{ kind: 'put', path: MOUNTS_PATH, value: Buffer.from(JSON.stringify(table)) }];
  }

  async load(): Promise<void> {
    const raw = await this.barrier.get(MOUNTS_PATH);
    const table = raw ? (JSON.parse(raw.toString('utf8')) as MountEntry[]) : [];
    this.entries = new Map(table.map((m) => [m.path, m]));
  }

  clear(): void {
    this.entries.clear();
  }

  list(): MountEntry[] {
    return [...this.entries.values()].sort((a, b) => a.path.localeCompare(b.path));
  }

  /** The mount with the longest path that prefixes `path`. */
  resolve(path: string): MountEntry | undefined {
    let best: MountEntry | undefined;
    for (const m of this.entries.values()) {
      if ((path + '/').startsWith(m.path) && (!best || m.path.length > best.path.length)) best = m;
    }
    return best;
  }

  async mount(path: string, type: string, version: string, description: string): Promise<void> {
    const p = mountPath(path);
    if (RESERVED.some((r) => p.startsWith(r))) throw new InvalidRequestError(`cannot mount at reserved path "${p}"`);
    for (const existing of this.entries.keys()) {
      if (existing.startsWith(p) || p.startsWith(existing)) throw new InvalidRequestError(`path is already in use at ${existing}`);
    }
    let v: '1' | '2';
    if (type === 'kv-v2') v = '2';
    else if (type === 'kv') v = version === '2' ? '2' : version === '1' || version === '' ? '1' : badVersion(version);
    else throw new InvalidRequestError(`plugin not found in the catalog: ${type} (this server offers "kv" and "kv-v2")`);
    const entry = newEntry(p, v, description);
    await this.save(new Map(this.entries).set(p, entry));
  }

  async unmount(path: string, deleteData: (prefix: string) => Promise<void>): Promise<void> {
    const p = mountPath(path);
    const entry = this.entries.get(p);
    if (!entry) throw new NotFoundError(`no secrets engine mounted at ${p}`);
    const next = new Map(this.entries);
    next.delete(p);
    // The mount disappears first, so no request can reach the data while it is being removed.
    await this.save(next);
    await deleteData(`logical/${entry.uuid}/`);
  }

  private async save(next: Map<string, MountEntry>): Promise<void> {
    await this.barrier.put(MOUNTS_PATH, Buffer.from(JSON.stringify([...next.values()])));
    this.entries = next;
  }
}

function newEntry(path: string, version: '1' | '2', description: string): MountEntry {
  return {
    path,
    type: 'kv',
    uuid: randomUUID(),
    accessor: `kv_${randomUUID().slice(0, 8)}`,
    description,
    options: { version },
    created_time: new Date().toISOString(),
  };
}

function badVersion(v: string): never {
  throw new InvalidRequestError(`invalid KV version "${v}": use "1" or "2"`);
}
