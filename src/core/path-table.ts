import { randomUUID } from 'node:crypto';
import type { BarrierOp, SecurityBarrier } from '../barrier/barrier.js';
import { InvalidRequestError } from './errors.js';
import { mountPath } from './names.js';

/** Lease TTLs tuned for a mount, in seconds; 0 leaves each to the server's default_lease_ttl and max_lease_ttl. */
export interface MountTtls {
  default_lease_ttl: number;
  max_lease_ttl: number;
}

export const SYSTEM_TTLS: MountTtls = { default_lease_ttl: 0, max_lease_ttl: 0 };

/** What every entry of a mount table has, for secrets engines (sys/mounts) and auth methods (sys/auth) alike. */
export interface TableEntry {
  /** "kv/", "approle/": the stored form, with one trailing slash. */
  path: string;
  type: string;
  uuid: string;
  accessor: string;
  description: string;
  /** Absent in secret mount entries written before mounts could be tuned: the server's TTLs. */
  config?: MountTtls;
  created_time: string;
}

/**
 * A mount table: entries by path, stored through the barrier as one JSON value that every change
 * replaces whole, so a crash leaves the old table or the new one. Changes are serialized by the
 * caller (the core's state lock).
 */
export class PathTable<E extends TableEntry> {
  protected entries = new Map<string, E>();

  constructor(
    protected readonly barrier: SecurityBarrier,
    /** Where the table is stored ("core/mounts", "core/auth"). */
    readonly storagePath: string,
  ) {}

  async load(): Promise<void> {
    const raw = await this.barrier.get(this.storagePath);
    const table = raw ? (JSON.parse(raw.toString('utf8')) as E[]) : [];
    this.entries = new Map(table.map((m) => [m.path, m]));
  }

  clear(): void {
    this.entries.clear();
  }

  list(): E[] {
    return [...this.entries.values()].sort((a, b) => a.path.localeCompare(b.path));
  }

  /** The entry at exactly `path` ("kv" or "kv/"). */
  get(path: string): E | undefined {
    return this.entries.get(mountPath(path));
  }

  /** The routable entry with the longest path that prefixes `path`. */
  resolve(path: string): E | undefined {
    let best: E | undefined;
    for (const m of this.entries.values()) {
      if ((path + '/').startsWith(m.path) && this.routable(m) && (!best || m.path.length > best.path.length)) best = m;
    }
    return best;
  }

  /** Whether requests may reach an entry (an auth method being disabled may not). */
  protected routable(_entry: E): boolean {
    return true;
  }

  /** The existing path that `path` would overlap (one a prefix of the other), if any. */
  protected overlapping(path: string): string | undefined {
    for (const existing of this.entries.keys()) if (existing.startsWith(path) || path.startsWith(existing)) return existing;
    return undefined;
  }

  /** `entry` with a tune's description and TTLs (checked first); what is left out stays as it is. */
  protected tuned(entry: E, description: string | undefined, ttls: MountTtls | undefined): E {
    if (ttls) checkTtls(ttls);
    return { ...entry, description: description ?? entry.description, config: ttls ?? entry.config };
  }

  /** The write that stores `table` as the whole table. */
  protected tableOp(table: Map<string, E>): BarrierOp & { kind: 'put' } {
    return { kind: 'put', path: this.storagePath, value: Buffer.from(JSON.stringify([...table.values()])) };
  }

  protected async save(next: Map<string, E>): Promise<void> {
    const op = this.tableOp(next);
    await this.barrier.put(op.path, op.value);
    this.entries = next;
  }
}

/** A new entry's common fields; the accessor is "<accessorPrefix><type>_" and 8 hex digits, as Vault's ("kv_1a2b3c4d", "auth_approle_1a2b3c4d"). */
export function newTableEntry<T extends string>(path: string, type: T, description: string, config: MountTtls, accessorPrefix = '') {
  return {
    path,
    type,
    uuid: randomUUID(),
    accessor: `${accessorPrefix}${type}_${randomUUID().slice(0, 8)}`,
    description,
    config,
    created_time: new Date().toISOString(),
  };
}

/** Vault's check: a max below the default (each non-zero) cannot hold. */
export function checkTtls({ default_lease_ttl: def, max_lease_ttl: max }: MountTtls): void {
  if (def !== 0 && max !== 0 && max < def) {
    throw new InvalidRequestError(`backend max lease TTL of ${max} would be less than backend default lease TTL of ${def}`);
  }
}
