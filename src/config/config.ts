import { DEFAULT_PKCS11_LIB } from '../pkcs11/module.js';
import type { TokenTtls } from '../core/token-store.js';

export interface StorageConfig {
  type: 'file' | 'inmem' | 'postgresql';
  /** file: the data directory. */
  path?: string;
  /** postgresql: connection URL (else the PG* environment variables), table, pool size. */
  connectionUrl?: string;
  table?: string;
  maxParallel?: number;
  /** postgresql: several nodes, one active (leader lease), the others standby. */
  ha?: {
    lockTtlMs: number;
    upgradeGraceMs: number;
    upgradePollMs: number;
  };
}

export interface SealConfigBlock {
  lib: string;
  tokenLabel?: string;
  slot?: number;
  pin: string;
  keyLabel: string;
  generateKey: boolean;
  /**
   * PKCS#11 calls in flight. Unset: decided at startup by a measured round trip (an in-process
   * module runs on the event loop, a remote one on a pool of 16 sessions). 0: always on the event
   * loop. N: a pool of N sessions, each on its own thread.
   */
  maxParallel?: number;
  /** Given to C_Initialize: NSS softokn's `configdir='sql:DIR' certPrefix='' keyPrefix='' secmod='secmod.db' flags=`. */
  libraryParameters?: string;
  /** Who picks AES-GCM IVs: keyward (`caller`) or the token (FIPS-mode HSMs); unset, a probe at the first encryption decides. */
  ivPolicy?: 'caller' | 'token';
}

export interface ListenerConfig {
  address: string;
  tlsDisable: boolean;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  tlsMinVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** Unset: LISTENER_LIMITS. */
  limits?: ListenerLimits;
}

/**
 * How long a client may take and how many may be connected, so a slow or idle client cannot hold
 * the listener: Vault's `http_read_header_timeout`, `http_read_timeout` (the whole request, body
 * included) and `http_idle_timeout` (between requests on a kept-alive connection), and keyward's
 * `max_connections`.
 */
export interface ListenerLimits {
  readHeaderTimeoutMs: number;
  readTimeoutMs: number;
  idleTimeoutMs: number;
  maxConnections: number;
}

export const LISTENER_LIMITS: ListenerLimits = { readHeaderTimeoutMs: 10_000, readTimeoutMs: 30_000, idleTimeoutMs: 300_000, maxConnections: 512 };

export interface ServerConfig {
  storage: StorageConfig;
  seal: SealConfigBlock;
  listener: ListenerConfig;
  apiAddr?: string;
  clusterAddr?: string;
  /** Names this node in sys/leader and the X-Keyward-Node header (default host name and port). */
  nodeId?: string;
  /** What a standby does with requests it does not serve itself: forward them, or answer 307 to the active node. */
  standbyRequests?: 'forward' | 'redirect';
  logLevel: string;
  /** How often automatic rotation is considered (ms). */
  rotationCheckMs?: number;
  /** How often encryption counts are persisted with the keyring (ms); a kill -9 loses at most this much counting. */
  countPersistMs?: number;
  /** Token lifetimes: the TTL a token gets when none is asked, and the most a non-root token gets (seconds). */
  tokenTtls?: TokenTtls;
}

export const DEFAULTS = {
  lib: DEFAULT_PKCS11_LIB,
  keyLabel: 'keyward-seal',
  address: '127.0.0.1:8200',
  logLevel: 'info',
} as const;

/** A configuration mistake; `field` is the dotted path the operator has to fix. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly field: string,
    problem: string,
  ) {
    super(`config: ${field}: ${problem}`);
  }
}
