import { isAsymmetric, type KeyType } from '../../pkcs11/key-types.js';
import { capabilitiesOf } from './key-types.js';

/** One version of a transit key as stored (through the barrier): key material only as K-wrapped blobs. */
export interface StoredVersion {
  creation_time: string;
  /** The K-wrapped AES key or private key (base64); absent for `hmac` keys and managed keys. */
  key?: string;
  /** The K-wrapped HMAC key of this version (base64), as Vault gives every version one; absent for managed keys. */
  hmac_key?: string;
  /** SPKI PEM of an asymmetric version. */
  public_key?: string;
  /**
   * AES versions: encryptions reserved so far. A node reserves a block before using it, so after
   * a crash the count can only be over, never under, what was done (NIST SP 800-38D's limit).
   */
  encryptions_reserved?: number;
}

/** A transit key: its versions and the settings of Vault's keys/:name and keys/:name/config. */
export interface KeyPolicy {
  name: string;
  type: KeyType;
  deletion_allowed: boolean;
  min_decryption_version: number;
  min_encryption_version: number;
  min_available_version: number;
  latest_version: number;
  /** Seconds; 0 turns automatic rotation off. */
  auto_rotate_period: number;
  /** When the latest version was made (RFC 3339). */
  last_rotated: string;
  /** An existing token object used in place (bring your own HSM key): never wrapped, exported or rotated by keyward. */
  managed?: { label?: string; id?: string };
  /** An `hmac` key's size when given at creation (key_size); 64 bytes otherwise. */
  hmac_key_bytes?: number;
  versions: Record<string, StoredVersion>;
}

const CURVE_NAMES: Partial<Record<KeyType, string>> = { 'ecdsa-p256': 'P-256', 'ecdsa-p384': 'P-384' };

/** Vault's answer to GET keys/:name. */
export function describePolicy(p: KeyPolicy): Record<string, unknown> {
  const keys: Record<string, unknown> = {};
  for (const [v, stored] of Object.entries(p.versions)) {
    const seconds = Math.floor(Date.parse(stored.creation_time) / 1000);
    keys[v] = isAsymmetric(p.type) ? { creation_time: stored.creation_time, name: CURVE_NAMES[p.type] ?? p.type, public_key: stored.public_key ?? '' } : seconds;
  }
  return {
    name: p.name,
    type: p.type,
    keys,
    latest_version: p.latest_version,
    min_available_version: p.min_available_version,
    min_decryption_version: p.min_decryption_version,
    min_encryption_version: p.min_encryption_version,
    deletion_allowed: p.deletion_allowed,
    auto_rotate_period: p.auto_rotate_period,
    derived: false,
    exportable: false,
    allow_plaintext_backup: false,
    imported_key: false,
    ...capabilitiesOf(p.type),
    ...(p.managed ? { managed_key_label: p.managed.label ?? '', managed_key_id: p.managed.id ?? '' } : {}),
  };
}
