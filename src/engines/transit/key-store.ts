import type { BarrierView } from '../../barrier/view.js';
import { DEFAULT_ROTATION } from '../../barrier/keyring.js';
import { InvalidRequestError, NotFoundError } from '../../core/errors.js';
import { KeyedMutex } from '../../locks/mutex.js';
import type { KeyType } from '../../pkcs11/key-types.js';
import type { ManagedKey, Token, TokenKey } from '../../pkcs11/token.js';
import type { KeyPolicy, StoredVersion } from './policy.js';

const POLICY_PREFIX = 'policy/';
/** Working keys kept as session objects at once; the least recently used is destroyed past this. */
const LOADED_KEYS = 512;
/**
 * Every version's HMAC key: as long as SHA-512's output, since HSMs (SoftHSM2 among them) refuse
 * HMAC under a key shorter than the hash's output, and any of sha1 to sha2-512 may be asked for.
 */
const HMAC_KEY_BYTES = 64;
/** Encryptions a node reserves per storage write. */
const RESERVATION_BLOCK = 65_536;

export interface TransitLimits {
  /** Encryptions per AES version before keyward rotates the key (NIST SP 800-38D, as the barrier's terms). */
  maxEncryptions: number;
}

export interface NewKey {
  type: KeyType;
  autoRotatePeriod: number;
  /** An `hmac` key's size, kept for its later versions. */
  hmacKeyBytes?: number;
  managed?: { label?: string; id?: string };
}

/**
 * Transit keys: policies stored through the barrier under `policy/<name>`, their versions made
 * inside the token and kept only K-wrapped, and working copies loaded into the token on use (a
 * bounded cache; reloaded from the blobs after a session loss by the token itself).
 */
export class TransitKeys {
  private readonly locks = new KeyedMutex();
  /** Working keys by `<name>/<version>/<which>`, least recently used first. */
  private readonly loaded = new Map<string, TokenKey>();
  /** The slot most recently moved to the end of `loaded`. */
  private lastUsed: string | undefined;
  /** Encryptions still reserved for this node, by key name, then version. */
  private readonly reserved = new Map<string, Map<number, number>>();

  constructor(
    private readonly view: BarrierView,
    private readonly token: Token,
    private readonly now: () => number,
    private readonly limits: TransitLimits = { maxEncryptions: DEFAULT_ROTATION.maxOperations },
  ) {}

  async read(name: string): Promise<KeyPolicy | undefined> {
    return this.view.getJson<KeyPolicy>(POLICY_PREFIX + name);
  }

  /** The key, rotated first if its auto_rotate_period has passed. */
  async require(name: string): Promise<KeyPolicy> {
    const policy = await this.read(name);
    if (!policy) throw new NotFoundError(`transit key "${name}" not found`);
    return this.rotatedIfDue(policy);
  }

  /** The key as read, or with a new version when its auto_rotate_period has passed. */
  rotatedIfDue(policy: KeyPolicy): Promise<KeyPolicy> {
    return this.rotationDue(policy) ? this.rotate(policy.name, true) : Promise.resolve(policy);
  }

  async list(): Promise<string[]> {
    return this.view.list(POLICY_PREFIX);
  }

  /** Creates the key unless it exists (as Vault, an existing key is left as it is); returns it. */
  create(name: string, spec: NewKey): Promise<KeyPolicy> {
    return this.locks.run(name, async () => {
      const existing = await this.read(name);
      if (existing) return existing;
      const now = new Date(this.now()).toISOString();
      const version = spec.managed ? this.managedVersion(spec, now) : this.newVersion(spec.type, now, spec.hmacKeyBytes);
      const policy: KeyPolicy = {
        name,
        type: spec.type,
        deletion_allowed: false,
        min_decryption_version: 1,
        min_encryption_version: 0,
        min_available_version: 0,
        latest_version: 1,
        auto_rotate_period: spec.managed ? 0 : spec.autoRotatePeriod,
        last_rotated: now,
        ...(spec.managed ? { managed: spec.managed } : {}),
        ...(spec.hmacKeyBytes ? { hmac_key_bytes: spec.hmacKeyBytes } : {}),
        versions: { '1': version },
      };
      await this.write(policy);
      return policy;
    });
  }

  /** Applies `change` to the stored key under its lock and writes the result. */
  update(name: string, change: (p: KeyPolicy) => KeyPolicy): Promise<KeyPolicy> {
    return this.locks.run(name, async () => {
      const policy = await this.read(name);
      if (!policy) throw new NotFoundError(`transit key "${name}" not found`);
      const next = change(policy);
      await this.write(next);
      return next;
    });
  }

  /** A new version made in the token; `ifDue` rotates only if the period has still passed once under the lock. */
  rotate(name: string, ifDue = false): Promise<KeyPolicy> {
    return this.locks.run(name, async () => {
      const policy = await this.read(name);
      if (!policy) throw new NotFoundError(`transit key "${name}" not found`);
      if (ifDue && !this.rotationDue(policy)) return policy;
      return this.addVersion(policy);
    });
  }

  delete(name: string): Promise<void> {
    return this.locks.run(name, async () => {
      const policy = await this.read(name);
      if (!policy) throw new NotFoundError(`transit key "${name}" not found`);
      if (!policy.deletion_allowed) throw new InvalidRequestError(`deletion is not allowed for transit key "${name}": set deletion_allowed with keys/${name}/config first`);
      await this.view.delete(POLICY_PREFIX + name);
      this.forget(name, () => true);
    });
  }

  /** Removes versions below `minAvailable` for good (their blobs are gone, so nothing they made opens again). */
  trim(name: string, minAvailable: number): Promise<KeyPolicy> {
    return this.locks.run(name, async () => {
      const policy = await this.read(name);
      if (!policy) throw new NotFoundError(`transit key "${name}" not found`);
      if (policy.managed) throw new InvalidRequestError(`transit key "${name}" is an HSM key used in place: it has one version and nothing to trim`);
      if (minAvailable < 1) throw new InvalidRequestError('min_available_version must be at least 1');
      if (minAvailable > policy.min_decryption_version) throw new InvalidRequestError('cannot trim: min_available_version is greater than min_decryption_version');
      const minEncryption = policy.min_encryption_version === 0 ? policy.latest_version : policy.min_encryption_version;
      if (minAvailable > minEncryption) throw new InvalidRequestError('cannot trim: min_available_version is greater than min_encryption_version');
      const versions = Object.fromEntries(Object.entries(policy.versions).filter(([v]) => Number(v) >= minAvailable));
      const next = { ...policy, min_available_version: minAvailable, versions };
      await this.write(next);
      this.forget(name, (v) => v < minAvailable);
      return next;
    });
  }

  /**
   * Counts one encryption under `version` (the caller's `key_version` when `pinned`, else the
   * latest) when takeReserved found none left: reserves another block, rotating the key first when
   * the latest has reached the limit; returns the key (possibly rotated) and the version to use.
   */
  async countEncryption(policy: KeyPolicy, version: number, pinned: boolean): Promise<{ policy: KeyPolicy; version: number }> {
    return this.locks.run(policy.name, async () => {
      let current = await this.read(policy.name);
      if (!current) throw new NotFoundError(`transit key "${policy.name}" not found`);
      let v = pinned ? version : current.latest_version;
      // Another encryption waiting on the lock may have reserved a block (or rotated) meanwhile.
      if (this.takeReserved(policy.name, v)) return { policy: current, version: v };
      const block = Math.min(RESERVATION_BLOCK, this.limits.maxEncryptions);
      if ((current.versions[String(v)]?.encryptions_reserved ?? 0) + block > this.limits.maxEncryptions) {
        if (v !== current.latest_version) throw new InvalidRequestError(`version ${v} of transit key "${policy.name}" has reached its encryption limit; encrypt with the latest version`);
        current = await this.addVersion(current);
        v = current.latest_version;
      }
      const stored = current.versions[String(v)]!;
      const next = { ...current, versions: { ...current.versions, [String(v)]: { ...stored, encryptions_reserved: (stored.encryptions_reserved ?? 0) + block } } };
      await this.write(next);
      const reserved = this.reserved.get(policy.name) ?? new Map<number, number>();
      this.reserved.set(policy.name, reserved.set(v, block - 1));
      return { policy: next, version: v };
    });
  }

  /** Takes one encryption of this node's reservation for a version, if any is left (else countEncryption reserves more). */
  takeReserved(name: string, version: number): boolean {
    const reserved = this.reserved.get(name);
    const left = reserved?.get(version) ?? 0;
    if (left <= 0) return false;
    reserved!.set(version, left - 1);
    return true;
  }

  /** The working AES or private key of a version. */
  key(policy: KeyPolicy, version: number): TokenKey {
    if (policy.managed) return this.managedKey(policy);
    const stored = this.version(policy, version);
    if (!stored.key) throw new InvalidRequestError(`transit key "${policy.name}" is of type ${policy.type}, which has no key for this operation`);
    return this.load(`${policy.name}/${version}/key`, stored.key);
  }

  /** The HMAC key of a version (for an `hmac` key, the key itself). */
  hmacKey(policy: KeyPolicy, version: number): TokenKey {
    if (policy.managed) {
      if (policy.type !== 'hmac') throw new InvalidRequestError(`transit key "${policy.name}" is an HSM ${policy.type} key used in place: it has no HMAC key`);
      return this.managedKey(policy);
    }
    const stored = this.version(policy, version);
    return this.load(`${policy.name}/${version}/hmac`, stored.hmac_key!);
  }

  /** The stored version, or a clear error when it was trimmed or never existed. */
  version(policy: KeyPolicy, version: number): StoredVersion {
    const stored = policy.versions[String(version)];
    if (!stored) {
      if (version < policy.min_available_version) throw new InvalidRequestError(`version ${version} of transit key "${policy.name}" was trimmed`);
      throw new InvalidRequestError(`transit key "${policy.name}" has no version ${version} (latest is ${policy.latest_version})`);
    }
    return stored;
  }

  private rotationDue(policy: KeyPolicy): boolean {
    return !policy.managed && policy.auto_rotate_period > 0 && this.now() - Date.parse(policy.last_rotated) >= policy.auto_rotate_period * 1000;
  }

  private async addVersion(policy: KeyPolicy): Promise<KeyPolicy> {
    if (policy.managed) throw new InvalidRequestError(`transit key "${policy.name}" is an HSM key used in place: rotate it in the HSM (a new object), then point a new transit key at it`);
    const now = new Date(this.now()).toISOString();
    const latest = policy.latest_version + 1;
    const next: KeyPolicy = { ...policy, latest_version: latest, last_rotated: now, versions: { ...policy.versions, [String(latest)]: this.newVersion(policy.type, now, policy.hmac_key_bytes) } };
    await this.write(next);
    return next;
  }

  private newVersion(type: KeyType, now: string, hmacKeyBytes = HMAC_KEY_BYTES): StoredVersion {
    const made: TokenKey[] = [];
    const keep = (k: TokenKey) => (made.push(k), k.blob.toString('base64'));
    try {
      const hmac = keep(this.token.generateHmacKey(hmacKeyBytes));
      if (type === 'hmac') return { creation_time: now, hmac_key: hmac };
      if (type === 'aes256-gcm96') return { creation_time: now, key: keep(this.token.generateKey()), hmac_key: hmac, encryptions_reserved: 0 };
      const pair = this.token.generateKeyPair(type);
      made.push(pair.key);
      return { creation_time: now, key: pair.key.blob.toString('base64'), hmac_key: hmac, public_key: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString() };
    } finally {
      // The blobs are what is kept; the working copies are loaded again on use.
      for (const k of made) this.token.releaseKey(k);
    }
  }

  private managedVersion(spec: NewKey, now: string): StoredVersion {
    const found = this.findManaged(spec.managed!);
    try {
      if (found.type !== spec.type) {
        throw new InvalidRequestError(`the HSM key ${describeRef(spec.managed!)} is of type ${found.type}, not ${spec.type}: give type=${found.type}`);
      }
      return { creation_time: now, ...(found.publicKey ? { public_key: found.publicKey.export({ type: 'spki', format: 'pem' }).toString() } : {}) };
    } finally {
      this.token.releaseKey(found);
    }
  }

  private managedKey(policy: KeyPolicy): TokenKey {
    const slot = `${policy.name}/managed`;
    return this.touch(slot) ?? this.remember(slot, this.findManaged(policy.managed!));
  }

  private findManaged(ref: { label?: string; id?: string }): ManagedKey {
    return this.token.findManagedKey({ label: ref.label, id: ref.id === undefined ? undefined : Buffer.from(ref.id, 'hex') });
  }

  private load(slot: string, blob: string): TokenKey {
    return this.touch(slot) ?? this.remember(slot, this.token.loadKey(Buffer.from(blob, 'base64')));
  }

  private touch(slot: string): TokenKey | undefined {
    const key = this.loaded.get(slot);
    // Moved to the most recent end, unless it is there already (a batch uses one key item after item).
    if (key && slot !== this.lastUsed) {
      this.loaded.delete(slot);
      this.loaded.set(slot, key);
      this.lastUsed = slot;
    }
    return key;
  }

  private remember(slot: string, key: TokenKey): TokenKey {
    this.loaded.set(slot, key);
    this.lastUsed = slot;
    if (this.loaded.size > LOADED_KEYS) {
      const [oldest, k] = this.loaded.entries().next().value as [string, TokenKey];
      this.loaded.delete(oldest);
      this.token.releaseKey(k);
    }
    return key;
  }

  /** Releases the working keys of `name`'s versions that `drop` picks (and its managed key, which stays in the token). */
  private forget(name: string, drop: (version: number) => boolean): void {
    for (const [slot, key] of this.loaded) {
      const [owner, v] = slot.split('/');
      if (owner === name && (v === 'managed' || drop(Number(v)))) {
        this.loaded.delete(slot);
        this.token.releaseKey(key);
      }
    }
    this.reserved.delete(name);
  }

  private async write(policy: KeyPolicy): Promise<void> {
    await this.view.put(POLICY_PREFIX + policy.name, Buffer.from(JSON.stringify(policy)));
  }
}

function describeRef(ref: { label?: string; id?: string }): string {
  return ref.label !== undefined ? `labelled "${ref.label}"` : `with id ${ref.id}`;
}
