/** One change inside an atomic transaction. */
export type StorageOp = { kind: 'put'; key: string; value: Buffer } | { kind: 'delete'; key: string };

/**
 * Where keyward keeps its (already encrypted) entries. Keys are slash-separated paths
 * such as `core/keyring` or `logical/<uuid>/db/password`.
 */
export interface StorageBackend {
  readonly type: string;
  get(key: string): Promise<Buffer | undefined>;
  put(key: string, value: Buffer): Promise<void>;
  delete(key: string): Promise<void>;
  /** The immediate children of `prefix` ('' or ending in '/'), sorted; sub-folders end in '/'. */
  list(prefix: string): Promise<string[]>;
  /** Applies every op or none, even across a crash. */
  transaction(ops: readonly StorageOp[]): Promise<void>;
  /** Replaces the value only if it still equals `expected`; false when it changed (or vanished) meanwhile. */
  compareAndSwap(key: string, expected: Buffer, next: Buffer): Promise<boolean>;
  close(): Promise<void>;
  /** Present when the backend can elect a leader among several nodes (PostgreSQL with ha_enabled). */
  readonly ha?: HaStorage;
}

/** Who holds the leader lease, as stored. `remainingMs` is measured by the storage's own clock. */
export interface LeaderRecord {
  /** This node's id plus a per-process instance id: a restarted node never inherits its old lease. */
  holder: string;
  nodeId: string;
  address: string;
  clusterAddress: string;
  epoch: number;
  acquiredAt: Date;
  remainingMs: number;
}

export interface LeaseClaim {
  holder: string;
  nodeId: string;
  address: string;
  clusterAddress: string;
}

/**
 * Which writes the backend lets through: all (not in a cluster, or sealed before init), none (a
 * standby), or only those made while `holder` still holds lease `epoch` (checked in the same
 * transaction as the write, so a paused old leader cannot write after losing the lease).
 */
export type WriteFence = { kind: 'open' } | { kind: 'refuse' } | { kind: 'lease'; holder: string; epoch: number };

/** Leader election and change notification in the storage itself. */
export interface HaStorage {
  /** Takes the lease if it is free or expired; the new epoch, or undefined when another node holds it. */
  acquire(claim: LeaseClaim, ttlMs: number): Promise<number | undefined>;
  /** Extends the lease; false when it was lost (expired, or taken by another node). */
  renew(holder: string, epoch: number, ttlMs: number): Promise<boolean>;
  /** Gives the lease up at once (step-down, seal, shutdown). */
  release(holder: string, epoch: number): Promise<void>;
  leader(): Promise<LeaderRecord | undefined>;
  setWriteFence(fence: WriteFence): void;
  /**
   * Calls `onChange(path)` for every committed change outside `logical/` (and "lease" when a lease
   * is released), and `onResync()` whenever notifications may have been missed (reconnects).
   */
  watch(onChange: (path: string) => void, onResync: () => void): { close(): Promise<void> };
}

/** A write refused because this node is a standby, or no longer holds the leader lease. */
export class NotActiveError extends Error {
  override readonly name = 'NotActiveError';
}

/** A storage key that cannot name an entry (empty segment, `.`/`..`, control characters). */
export class StorageKeyError extends Error {
  override readonly name = 'StorageKeyError';
  /** `problem` says what is wrong without naming the key, so the HTTP layer can name the request path instead. */
  constructor(
    readonly key: string,
    readonly problem: string,
  ) {
    super(`storage path "${key}" ${problem}`);
  }
}

// Non-empty segments without control characters; then no "." or ".." segment. Two regex tests,
// no allocation: this runs on every storage call.
const WELL_FORMED = /^[^/\u0000-\u001f\u007f]+(?:\/[^/\u0000-\u001f\u007f]+)*$/;
const DOT_SEGMENT = /(?:^|\/)\.\.?(?:\/|$)/;

/** The storage could not be reached for longer than its retry window: requests answer 503 until it is back. */
export class StorageUnavailableError extends Error {
  override readonly name = 'StorageUnavailableError';
  constructor(detail: string) {
    super(`storage unavailable: ${detail}`);
  }
}

export function validateKey(key: string): void {
  if (key.length > 1024) throw new StorageKeyError(key, 'is longer than 1024 characters');
  if (!WELL_FORMED.test(key) || DOT_SEGMENT.test(key)) {
    if (key.length === 0) throw new StorageKeyError(key, 'is empty');
    if (/[\u0000-\u001f\u007f]/.test(key)) throw new StorageKeyError(key, 'contains control characters');
    throw new StorageKeyError(key, 'has an empty, "." or ".." segment');
  }
}

export function validatePrefix(prefix: string): void {
  if (prefix === '') return;
  if (!prefix.endsWith('/')) throw new StorageKeyError(prefix, 'is listed as a folder but does not end with "/"');
  validateKey(prefix.slice(0, -1));
}

/** Immediate children of `prefix` among `keys` (any order), in Vault's list form. */
export function childrenOf(keys: Iterable<string>, prefix: string): string[] {
  const children = new Set<string>();
  for (const key of keys) {
    if (!key.startsWith(prefix)) continue;
    const rest = key.slice(prefix.length);
    const slash = rest.indexOf('/');
    children.add(slash === -1 ? rest : rest.slice(0, slash + 1));
  }
  return [...children].sort();
}
