import type { StorageBackend, StorageOp } from '../storage/backend.js';
import { allocateValue, formatValue, HEADER_BYTES, parseValue, termOf } from '../crypto/value-format.js';
import { nextNonce } from '../crypto/nonce.js';
import type { Token, TokenKey } from '../pkcs11/token.js';
import { SealedError, UnknownTermError } from './errors.js';
import { installTimeNow } from './install-time.js';
import { Keyring, type RotationConfig, type TermEntry } from './keyring.js';
import { parseUpgrade, serializeUpgrade, UPGRADE_PREFIX, upgradeFromTerm, upgradePath } from './upgrade.js';
import { BarrierView } from './view.js';

export const KEYRING_PATH = 'core/keyring';
/** The root key wrapped by the seal key, barrier-encrypted: lets other nodes follow a rekey without shares. */
export const ROOT_KEY_PATH = 'core/root-key';
/** Term 0 marks a value encrypted under the root key rather than a keyring term. */
export const ROOT_KEY_TERM = 0;

/** A rekey committed but not yet switched to (the reply with the new shares may not have reached anyone). */
export const REKEY_PENDING_PATH = 'core/rekey-pending';
/** An init committed but not yet confirmed (its reply, with the shares, may not have reached anyone). */
export const INIT_PENDING_PATH = 'core/init-pending';

/**
 * Paths stored in plaintext: what must be readable while sealed (the seal config, and the pending
 * init or rekey an unseal may complete). The barrier owns this list.
 */
export function bypassesBarrier(path: string): boolean {
  return path.startsWith('core/') && (path === 'core/seal-config' || path === REKEY_PENDING_PATH || path === INIT_PENDING_PATH || path.startsWith('core/lock/'));
}

/** A write through the barrier; values for bypass paths are stored as given. */
export type BarrierOp = { kind: 'put'; path: string; value: Buffer } | { kind: 'delete'; path: string };

export interface SecurityBarrier {
  readonly sealed: boolean;
  initialized(): Promise<boolean>;
  /** Writes the first keyring (under `rootKey`) with `extra` entries in one transaction; stays sealed. */
  initialize(rootKey: TokenKey, extra: readonly BarrierOp[]): Promise<void>;
  /** Loads the keyring with the root key; an IntegrityError means the root key is wrong. */
  unseal(rootKey: TokenKey): Promise<void>;
  seal(): Promise<void>;
  get(path: string): Promise<Buffer | undefined>;
  /** Whether an entry is stored at `path`, without decrypting it. */
  exists(path: string): Promise<boolean>;
  put(path: string, value: Buffer): Promise<void>;
  delete(path: string): Promise<void>;
  list(prefix: string): Promise<string[]>;
  transaction(ops: readonly BarrierOp[]): Promise<void>;
  activeKey(): { term: number; installTime: string; encryptions: number };
}

/**
 * Vault's security barrier with every cipher operation in the PKCS#11 token: values are
 * AES-256-GCM under the active term's key with the storage path as AAD; the keyring itself is
 * encrypted under the root key. Only token handles and K-wrapped blobs live in this process.
 */
export class TokenBarrier implements SecurityBarrier {
  private keyring: Keyring | undefined;
  private rootKey: TokenKey | undefined;
  private readonly termKeys = new Map<number, TokenKey>();
  private readonly counts = new Map<number, number>();
  private keyringWrites: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly storage: StorageBackend,
    private readonly token: Token,
    /** In a cluster, rotate also writes `core/upgrade/N` so standbys can follow without the root key. */
    private readonly opts: { upgradeEntries?: boolean; now?: () => number } = {},
  ) {}

  get sealed(): boolean {
    return this.keyring === undefined;
  }

  async initialized(): Promise<boolean> {
    return (await this.storage.get(KEYRING_PATH)) !== undefined;
  }

  async initialize(rootKey: TokenKey, extra: readonly BarrierOp[]): Promise<void> {
    const first = this.token.generateKey();
    try {
      const keyring = Keyring.first(first.blob, installTimeNow());
      const encryptT1 = async (path: string, v: Buffer) => this.encryptWith(first, 1, path, v);
      const ops: StorageOp[] = [
        { kind: 'put', key: KEYRING_PATH, value: this.encryptWith(rootKey, ROOT_KEY_TERM, KEYRING_PATH, keyring.serialize()) },
        { kind: 'put', key: ROOT_KEY_PATH, value: await encryptT1(ROOT_KEY_PATH, rootKey.blob) },
        ...(await Promise.all(extra.map((op) => this.toStorageOp(op, encryptT1)))),
      ];
      await this.storage.transaction(ops);
    } finally {
      this.token.releaseKey(first);
    }
  }

  async unseal(rootKey: TokenKey): Promise<void> {
    this.adoptKeyring(await this.readKeyring(rootKey));
    this.rootKey = rootKey;
  }

  async seal(): Promise<void> {
    if (this.keyring) await this.persistCounts().catch(() => undefined);
    for (const key of this.termKeys.values()) this.token.releaseKey(key);
    if (this.rootKey) this.token.releaseKey(this.rootKey);
    this.termKeys.clear();
    this.counts.clear();
    this.rootKey = undefined;
    this.keyring = undefined;
  }

  /**
   * The current root key encrypted under `newRoot`, for a pending rekey: whoever holds the new
   * shares can recover the current root key from it, unseal, and finish the switch.
   */
  sealCurrentRootFor(newRoot: TokenKey): Buffer {
    this.requireUnsealed();
    return this.encryptWith(newRoot, ROOT_KEY_TERM, REKEY_PENDING_PATH, this.rootKey!.blob);
  }

  /** The root key a pending rekey sealed under `candidate`; IntegrityError when `candidate` is not that rekey's new root key. */
  openSealedRoot(candidate: TokenKey, sealed: Buffer): TokenKey {
    const blob = this.decryptWith(candidate, REKEY_PENDING_PATH, sealed);
    return this.token.loadKey(blob);
  }

  /** Whether `candidate` is the root key this barrier was unsealed with (compared inside the token). */
  isRootKey(candidate: TokenKey): boolean {
    this.requireUnsealed();
    return this.token.sameKey(candidate, this.rootKey!);
  }

  /**
   * Re-encrypts the keyring under `newRoot` and writes it, `core/root-key` and `extra` in one
   * transaction; only then does the barrier switch to the new root key.
   */
  rekey(newRoot: TokenKey, extra: readonly BarrierOp[]): Promise<void> {
    const write = this.keyringWrites.then(async () => {
      const encrypt = (path: string, v: Buffer) => this.encrypt(path, v);
      const rootKeyEntry = await encrypt(ROOT_KEY_PATH, newRoot.blob);
      const extraOps = await Promise.all(extra.map((op) => this.toStorageOp(op, encrypt)));
      // Counts taken after this rekey's own encryptions, so the keyring written carries them.
      const keyring = this.requireUnsealed().withCounts(this.counts);
      await this.storage.transaction([
        { kind: 'put', key: KEYRING_PATH, value: this.encryptWith(newRoot, ROOT_KEY_TERM, KEYRING_PATH, keyring.serialize()) },
        { kind: 'put', key: ROOT_KEY_PATH, value: rootKeyEntry },
        ...extraOps,
      ]);
      const old = this.rootKey!;
      this.rootKey = newRoot;
      this.keyring = keyring;
      this.token.releaseKey(old);
    });
    this.keyringWrites = write.catch(() => undefined);
    return write;
  }

  // get and put are the hot path: plain promise chains, one layer fewer than async functions.
  get(path: string): Promise<Buffer | undefined> {
    if (bypassesBarrier(path)) return this.storage.get(path);
    if (!this.keyring) return Promise.reject(new SealedError());
    return this.storage.get(path).then((value) => value && this.decrypt(path, value));
  }

  async exists(path: string): Promise<boolean> {
    if (!bypassesBarrier(path)) this.requireUnsealed();
    return (await this.storage.get(path)) !== undefined;
  }

  put(path: string, value: Buffer): Promise<void> {
    if (bypassesBarrier(path)) return this.storage.put(path, value);
    return this.encrypt(path, value).then((sealed) => this.storage.put(path, sealed));
  }

  async delete(path: string): Promise<void> {
    if (!bypassesBarrier(path)) this.requireUnsealed();
    await this.storage.delete(path);
  }

  async list(prefix: string): Promise<string[]> {
    this.requireUnsealed();
    return this.storage.list(prefix);
  }

  async transaction(ops: readonly BarrierOp[]): Promise<void> {
    this.requireUnsealed();
    await this.storage.transaction(await Promise.all(ops.map((op) => this.toStorageOp(op, (path, v) => this.encrypt(path, v)))));
  }

  activeKey(): { term: number; installTime: string; encryptions: number } {
    const keyring = this.requireUnsealed();
    const active = keyring.active;
    return { term: active.term, installTime: active.installTime, encryptions: this.counts.get(active.term) ?? 0 };
  }

  /** Term entries with live encryption counts. */
  terms(): TermEntry[] {
    return this.requireUnsealed().withCounts(this.counts).terms;
  }

  /**
   * Encrypts under the active term (exposed for benchmarks and for building transactions). The
   * data path: on a remote token the call runs on the session pool, off the event loop.
   */
  encrypt(path: string, plaintext: Buffer): Promise<Buffer> {
    if (!this.keyring) return Promise.reject(new SealedError());
    const term = this.keyring.activeTerm;
    this.counts.set(term, (this.counts.get(term) ?? 0) + 1);
    const key = this.termKeys.get(term)!;
    if (this.token.ivStyle() !== 'caller') return this.token.sealAsync(key, Buffer.from(path), plaintext).then(({ iv, sealed }) => formatValue(term, iv, sealed));
    const nonce = nextNonce();
    const value = allocateValue(term, nonce, plaintext.length);
    return this.token.encryptAsync(key, nonce, Buffer.from(path), plaintext, value.subarray(HEADER_BYTES)).then(() => value);
  }

  decrypt(path: string, value: Buffer): Promise<Buffer> {
    if (!this.keyring) return Promise.reject(new SealedError());
    let parsed: ReturnType<typeof parseValue>;
    try {
      parsed = parseValue(value, path);
    } catch (err) {
      return Promise.reject(err);
    }
    const key = this.termKeys.get(parsed.term);
    if (!key) return Promise.reject(new UnknownTermError(parsed.term));
    return this.token.decryptAsync(key, parsed.nonce, Buffer.from(path), parsed.sealed, `value at "${path}"`);
  }

  rotationConfig(): RotationConfig {
    return this.requireUnsealed().rotation;
  }

  /**
   * Generates a new term key in the token and makes it active. The keyring is written (one atomic
   * put) before any value is encrypted under the new term; older terms stay for reading.
   */
  async rotate(installTime = installTimeNow()): Promise<TermEntry> {
    let key: TokenKey | undefined;
    let added: TermEntry | undefined;
    try {
      await this.writeKeyring(
        (k) => {
          key = this.token.generateKey();
          const next = k.addKey(key.blob, installTime);
          this.termKeys.set(next.activeTerm, key);
          this.counts.set(next.activeTerm, 0);
          added = next.active;
          return next;
        },
        (before) => {
          if (!this.opts.upgradeEntries) return [];
          const path = upgradePath(before.activeTerm);
          const entry = serializeUpgrade({ next: added!, createdMs: this.now() });
          return [{ kind: 'put', key: path, value: this.encryptWith(this.termKeys.get(before.activeTerm)!, before.activeTerm, path, entry) }];
        },
      );
    } catch (err) {
      if (added) {
        this.termKeys.delete(added.term);
        this.counts.delete(added.term);
      }
      if (key) this.token.releaseKey(key);
      throw err;
    }
    return added!;
  }

  setRotationConfig(rotation: RotationConfig): Promise<void> {
    return this.writeKeyring((k) => k.withRotation(rotation));
  }

  /** Removes terms from the keyring (callers first make sure no value uses them) and destroys their keys. */
  async pruneTerms(terms: readonly number[]): Promise<void> {
    await this.writeKeyring((k) => k.withoutTerms(terms));
    for (const t of terms) {
      const key = this.termKeys.get(t);
      if (key) this.token.releaseKey(key);
      this.termKeys.delete(t);
      this.counts.delete(t);
    }
  }

  /**
   * Every stored path that holds a barrier value under a keyring term, sorted: not the keyring,
   * not bypass entries, not upgrade entries (they must stay under their old term, and go by themselves).
   */
  async valuePaths(): Promise<string[]> {
    const all = await new BarrierView(this, '').walk('');
    return all.filter((path) => path !== KEYRING_PATH && !bypassesBarrier(path) && !path.startsWith(UPGRADE_PREFIX)).sort();
  }

  /** How many stored values each term encrypts (reads every value's first four bytes). */
  async termUsage(): Promise<Map<number, number>> {
    const usage = new Map<number, number>();
    for (const path of await this.valuePaths()) {
      const raw = await this.storage.get(path);
      if (!raw || raw.length < 4) continue;
      const term = termOf(raw);
      usage.set(term, (usage.get(term) ?? 0) + 1);
    }
    return usage;
  }

  /**
   * Re-encrypts one stored value under the active term if an older term protects it. The write is
   * a compare-and-swap, so a foreground write that lands meanwhile is never overwritten.
   */
  async rewrapValue(path: string): Promise<'rewrapped' | 'current' | 'gone'> {
    for (;;) {
      const raw = await this.storage.get(path);
      if (!raw) return 'gone';
      if (termOf(raw) === this.requireUnsealed().activeTerm) return 'current';
      const next = await this.encrypt(path, await this.decrypt(path, raw));
      if (await this.storage.compareAndSwap(path, raw, next)) return 'rewrapped';
    }
  }

  /** Writes the keyring with current encryption counts (best-effort bookkeeping; callers decide when). */
  persistCounts(): Promise<void> {
    return this.writeKeyring((k) => k);
  }

  /**
   * Follows rotations made by another node: each `core/upgrade/N` from the active term on gives
   * the next term's entry. A gap in the chain (this node missed the grace period) reloads the
   * whole keyring with the root key instead. Returns the terms learnt.
   */
  async followUpgrades(): Promise<number[]> {
    const learnt: number[] = [];
    for (const from of await this.upgradeFromTerms()) {
      const keyring = this.requireUnsealed();
      if (from < keyring.activeTerm) continue;
      if (from > keyring.activeTerm) return [...learnt, ...(await this.reloadKeyring())];
      const path = upgradePath(from);
      const raw = await this.storage.get(path);
      if (!raw) break;
      const { next } = parseUpgrade(this.decryptWith(this.termKeys.get(from)!, path, raw));
      if (this.requireUnsealed().term(next.term)) continue;
      this.termKeys.set(next.term, this.token.loadKey(next.wrapped));
      this.counts.set(next.term, 0);
      this.keyring = this.requireUnsealed().withTerm(next);
      learnt.push(next.term);
    }
    return learnt;
  }

  /** Reads the stored keyring again with the root key (a node becoming active, or one that missed upgrades). Returns the terms learnt. */
  async reloadKeyring(): Promise<number[]> {
    this.requireUnsealed();
    return this.adoptKeyring(await this.readKeyring(this.rootKey!));
  }

  /** The stored keyring, decrypted with `rootKey` (an IntegrityError when it is the wrong one). */
  private async readKeyring(rootKey: TokenKey): Promise<Keyring> {
    const stored = await this.storage.get(KEYRING_PATH);
    if (!stored) throw new Error('keyring not found: the service is not initialized');
    return Keyring.deserialize(this.decryptWith(rootKey, KEYRING_PATH, stored));
  }

  /** Takes `keyring` as current: unwraps the terms not loaded yet, drops those it no longer has, takes its counts. Returns the terms loaded. */
  private adoptKeyring(keyring: Keyring): number[] {
    const learnt: number[] = [];
    for (const entry of keyring.terms) {
      if (!this.termKeys.has(entry.term)) {
        this.termKeys.set(entry.term, this.token.loadKey(entry.wrapped));
        learnt.push(entry.term);
      }
      this.counts.set(entry.term, entry.encryptions);
    }
    for (const [term, key] of this.termKeys) {
      if (keyring.term(term)) continue;
      this.token.releaseKey(key);
      this.termKeys.delete(term);
      this.counts.delete(term);
    }
    this.keyring = keyring;
    return learnt;
  }

  /**
   * Follows a rekey made by another node: `core/root-key` holds the current root key (K-wrapped,
   * barrier-encrypted). Compared inside the token; true when it changed and was taken up.
   */
  async followRootKey(): Promise<boolean> {
    this.requireUnsealed();
    const raw = await this.storage.get(ROOT_KEY_PATH);
    if (!raw) return false;
    const candidate = this.token.loadKey(await this.decrypt(ROOT_KEY_PATH, raw));
    if (this.token.sameKey(candidate, this.rootKey!)) {
      this.token.releaseKey(candidate);
      return false;
    }
    const old = this.rootKey!;
    this.rootKey = candidate;
    this.token.releaseKey(old);
    return true;
  }

  /** Deletes upgrade entries older than the grace period (the active node's housekeeping). */
  async pruneUpgrades(graceMs: number): Promise<number> {
    const now = this.now();
    let removed = 0;
    for (const from of await this.upgradeFromTerms()) {
      const path = upgradePath(from);
      const raw = await this.storage.get(path);
      const key = this.termKeys.get(from);
      // An entry whose term was pruned can no longer be read by anyone: it goes too.
      const created = raw && key ? parseUpgrade(this.decryptWith(key, path, raw)).createdMs : 0;
      if (now - created < graceMs) continue;
      await this.storage.delete(path);
      removed++;
    }
    return removed;
  }

  /** The terms stored upgrade entries start from, ascending. */
  private async upgradeFromTerms(): Promise<number[]> {
    return (await this.storage.list(UPGRADE_PREFIX))
      .map(upgradeFromTerm)
      .filter((t): t is number => t !== undefined)
      .sort((a, b) => a - b);
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  private writeKeyring(change: (k: Keyring) => Keyring, extra: (before: Keyring) => StorageOp[] = () => []): Promise<void> {
    const write = this.keyringWrites.then(async () => {
      const before = this.requireUnsealed();
      const keyring = change(before.withCounts(this.counts));
      const value = this.encryptWith(this.rootKey!, ROOT_KEY_TERM, KEYRING_PATH, keyring.serialize());
      const ops = extra(before);
      if (ops.length) await this.storage.transaction([{ kind: 'put', key: KEYRING_PATH, value }, ...ops]);
      else await this.storage.put(KEYRING_PATH, value);
      this.keyring = keyring;
    });
    this.keyringWrites = write.catch(() => undefined);
    return write;
  }

  private async toStorageOp(op: BarrierOp, encrypt: (path: string, v: Buffer) => Promise<Buffer>): Promise<StorageOp> {
    if (op.kind === 'delete') return { kind: 'delete', key: op.path };
    return { kind: 'put', key: op.path, value: bypassesBarrier(op.path) ? op.value : await encrypt(op.path, op.value) };
  }

  /** The control path (keyring, upgrade entries): few calls, made inline on the token's own session. */
  private encryptWith(key: TokenKey, term: number, path: string, plaintext: Buffer): Buffer {
    if (this.token.ivStyle() !== 'caller') {
      const { iv, sealed } = this.token.seal(key, Buffer.from(path), plaintext);
      return formatValue(term, iv, sealed);
    }
    const nonce = nextNonce();
    const value = allocateValue(term, nonce, plaintext.length);
    this.token.encrypt(key, nonce, Buffer.from(path), plaintext, value.subarray(HEADER_BYTES));
    return value;
  }

  private decryptWith(key: TokenKey, path: string, value: Buffer): Buffer {
    const { nonce, sealed } = parseValue(value, path);
    return this.token.decrypt(key, nonce, Buffer.from(path), sealed, `value at "${path}"`);
  }

  private requireUnsealed(): Keyring {
    if (!this.keyring) throw new SealedError();
    return this.keyring;
  }
}

