import type { KeyObject } from 'node:crypto';
import { KEY_TYPES, type KeyKind, type KeyType } from './key-types.js';
import type { ManagedKeyRef } from './managed-keys.js';

/**
 * A key as keyward holds it: its K-wrapped blob plus the handle of a session object unwrapped from
 * it. After a session loss the handle is stale (generation mismatch) and is unwrapped again from the
 * blob. Root and keyring keys are AES keys (`aes256-gcm96`), the type a blob without one has.
 */
export class TokenKey {
  handle: Buffer | undefined;
  generation = -1;
  /** @param wrapped the K-wrapped key; a ManagedKey has none. */
  constructor(
    private readonly wrapped: Buffer | undefined,
    readonly type: KeyType = 'aes256-gcm96',
  ) {}

  /** What the token holds, which decides the working copy's template and the mechanisms it takes. */
  get kind(): KeyKind {
    return KEY_TYPES[this.type].kind;
  }

  /** The K-wrapped key: what is stored, and what loadKey takes back. */
  get blob(): Buffer {
    if (!this.wrapped) throw new Error('a managed key has no blob: it never leaves the HSM (keep its label or id instead)');
    return this.wrapped;
  }
}

/**
 * A key made in the HSM by its operator that keyward uses in place: its handle comes from finding it
 * by label or id (again after a session loss) instead of from an unwrap, and nothing of keyward's
 * ever wraps, exports or destroys it.
 */
export class ManagedKey extends TokenKey {
  readonly ref: Readonly<ManagedKeyRef>;

  constructor(
    ref: ManagedKeyRef,
    type: KeyType,
    /** A private key's public key; undefined for a secret key. */
    readonly publicKey: KeyObject | undefined,
  ) {
    super(undefined, type);
    this.ref = { label: ref.label, id: ref.id && Buffer.from(ref.id) };
  }
}
