import type { TermEntry } from './keyring.js';

/** `core/upgrade/N` holds term N+1's keyring entry, barrier-encrypted under term N. */
export const UPGRADE_PREFIX = 'core/upgrade/';

export function upgradePath(fromTerm: number): string {
  return `${UPGRADE_PREFIX}${fromTerm}`;
}

/** The term an upgrade entry's name starts from, or undefined for anything else under the prefix. */
export function upgradeFromTerm(name: string): number | undefined {
  return /^[1-9]\d{0,9}$/.test(name) ? Number(name) : undefined;
}

export interface UpgradeEntry {
  next: TermEntry;
  /** When the active node wrote it (ms since the epoch); it is deleted after the grace period. */
  createdMs: number;
}

interface SerializedUpgrade {
  term: number;
  wrapped: string;
  install_time: string;
  created_ms: number;
}

export function serializeUpgrade(u: UpgradeEntry): Buffer {
  const body: SerializedUpgrade = {
    term: u.next.term,
    wrapped: u.next.wrapped.toString('base64'),
    install_time: u.next.installTime,
    created_ms: u.createdMs,
  };
  return Buffer.from(JSON.stringify(body));
}

export function parseUpgrade(raw: Buffer): UpgradeEntry {
  const b = JSON.parse(raw.toString('utf8')) as SerializedUpgrade;
  return {
    next: { term: b.term, wrapped: Buffer.from(b.wrapped, 'base64'), installTime: b.install_time, encryptions: 0 },
    createdMs: b.created_ms,
  };
}
