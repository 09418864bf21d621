import { readFile } from 'node:fs/promises';
import { parse as parseHcl } from '@cdktf/hcl2json';
import { ConfigError, DEFAULTS, LISTENER_LIMITS, type ListenerConfig, type ListenerLimits, type SealConfigBlock, type ServerConfig, type StorageConfig } from './config.js';
import { DEFAULT_TOKEN_TTL, type TokenTtls } from '../core/token-store.js';

type Obj = Record<string, unknown>;

/** Reads an HCL (Vault style) or JSON config file and validates it into a ServerConfig. */
export async function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<ServerConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, `cannot read: ${(err as Error).message}`);
  }
  let raw: unknown;
  if (file.endsWith('.json')) {
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new ConfigError(file, `invalid JSON: ${(err as Error).message}`);
    }
  } else {
    try {
      raw = await parseHcl(file, text);
    } catch (err) {
      throw new ConfigError(file, `invalid HCL: ${String((err as Error).message ?? err).replace(/^parse config: /, '')}`);
    }
  }
  return validateConfig(raw, env);
}

/** Validates a parsed document (HCL blocks come as one-element arrays; JSON may omit them). */
export function validateConfig(raw: unknown, env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const top = object(raw, '(top level)');
  allowOnly(top, '', [
    'storage',
    'seal',
    'listener',
    'api_addr',
    'cluster_addr',
    'log_level',
    'ui',
    'disable_mlock',
    'rotation_check_interval',
    'encryption_count_persist_interval',
    'node_id',
    'standby_requests',
    'default_lease_ttl',
    'max_lease_ttl',
  ]);
  const standbyRequests = optionalString(top.standby_requests, 'standby_requests') ?? 'forward';
  if (standbyRequests !== 'forward' && standbyRequests !== 'redirect') throw new ConfigError('standby_requests', 'must be "forward" or "redirect"');
  return {
    storage: storageBlock(top.storage, env),
    seal: sealBlock(top.seal, env),
    listener: listenerBlock(top.listener),
    apiAddr: optionalString(top.api_addr, 'api_addr'),
    clusterAddr: optionalString(top.cluster_addr, 'cluster_addr'),
    nodeId: optionalString(top.node_id, 'node_id'),
    standbyRequests,
    logLevel: logLevel(top.log_level),
    rotationCheckMs: optionalDurationMs(top.rotation_check_interval, 'rotation_check_interval'),
    countPersistMs: optionalDurationMs(top.encryption_count_persist_interval, 'encryption_count_persist_interval'),
    tokenTtls: tokenTtls(top.default_lease_ttl, top.max_lease_ttl),
  };
}

/** Vault's `default_lease_ttl` and `max_lease_ttl`, in seconds, each 768h when not given. */
function tokenTtls(defaultTtl: unknown, maxTtl: unknown): TokenTtls {
  const max = (optionalDurationMs(maxTtl, 'max_lease_ttl') ?? DEFAULT_TOKEN_TTL * 1000) / 1000;
  const given = optionalDurationMs(defaultTtl, 'default_lease_ttl');
  const def = given === undefined ? Math.min(DEFAULT_TOKEN_TTL, max) : given / 1000;
  if (def > max) throw new ConfigError('default_lease_ttl', `must not exceed max_lease_ttl (${max}s)`);
  return { defaultTtl: Math.floor(def), maxTtl: Math.floor(max) };
}

/** "250ms", "10s", "5m", "1h" (or a number of seconds) as milliseconds. */
function optionalDurationMs(v: unknown, field: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'number' && v > 0) return v * 1000;
  const m = typeof v === 'string' ? /^(\d+)(ms|s|m|h)$/.exec(v) : null;
  if (!m || Number(m[1]) === 0) throw new ConfigError(field, 'must be a positive duration such as "250ms", "10s" or "5m"');
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * unit;
}

function storageBlock(v: unknown, env: NodeJS.ProcessEnv): StorageConfig {
  const [type, body] = labelledBlock(v, 'storage', ['file', 'inmem', 'postgresql']);
  if (type === 'inmem') {
    allowOnly(body, 'storage.inmem', []);
    return { type };
  }
  if (type === 'postgresql') {
    const f = (name: string) => `storage.postgresql.${name}`;
    allowOnly(body, 'storage.postgresql', ['connection_url', 'table', 'ha_enabled', 'max_parallel', 'lock_ttl', 'upgrade_grace_period', 'upgrade_poll_interval']);
    const ha = bool(body.ha_enabled ?? false, f('ha_enabled'))
      ? {
          lockTtlMs: optionalDurationMs(body.lock_ttl, f('lock_ttl')) ?? 15_000,
          upgradeGraceMs: optionalDurationMs(body.upgrade_grace_period, f('upgrade_grace_period')) ?? 120_000,
          upgradePollMs: optionalDurationMs(body.upgrade_poll_interval, f('upgrade_poll_interval')) ?? 10_000,
        }
      : undefined;
    if (!ha && (body.lock_ttl ?? body.upgrade_grace_period ?? body.upgrade_poll_interval) !== undefined) {
      throw new ConfigError(f('ha_enabled'), 'lock_ttl and the upgrade settings only apply with ha_enabled = true');
    }
    if (ha && ha.lockTtlMs < 1000) throw new ConfigError(f('lock_ttl'), 'must be at least 1s');
    const table = optionalString(body.table, f('table')) ?? 'keyward_kv_store';
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(table)) throw new ConfigError(f('table'), 'must be a plain SQL identifier');
    return {
      type,
      connectionUrl: optionalString(body.connection_url ?? env.KEYWARD_PG_CONNECTION_URL ?? env.VAULT_PG_CONNECTION_URL, f('connection_url')),
      table,
      maxParallel: body.max_parallel === undefined ? 10 : integer(body.max_parallel, f('max_parallel')) || 10,
      ha,
    };
  }
  allowOnly(body, 'storage.file', ['path']);
  const path = requiredString(body.path, 'storage.file.path');
  return { type, path };
}

const MAX_PARALLEL_LIMIT = 256;
const CKM_AES_GCM = 0x1087;

/**
 * Vault's seal takes `mechanism`, the encryption mechanism, as a number (`0x1087`) or a name.
 * keyward's barrier always encrypts with AES-GCM, so a config copied from Vault that names it is
 * accepted and anything else refused, rather than silently ignored.
 */
function aesGcmMechanism(v: unknown, field: string): void {
  if (v === undefined || v === null) return;
  const text = typeof v === 'number' ? String(v) : v;
  if (typeof text !== 'string') throw new ConfigError(field, 'must be a string or a number');
  const value = /^0x[0-9a-f]+$/i.test(text) ? Number.parseInt(text, 16) : /^\d+$/.test(text) ? Number(text) : text.toUpperCase();
  if (value !== CKM_AES_GCM && value !== 'CKM_AES_GCM') {
    throw new ConfigError(field, `"${text}" is not supported: keyward encrypts with AES-GCM only (CKM_AES_GCM, 0x1087); set that or leave mechanism out`);
  }
}

function sealBlock(v: unknown, env: NodeJS.ProcessEnv): SealConfigBlock {
  const [, body] = labelledBlock(v, 'seal', ['pkcs11']);
  const f = (name: string) => `seal.pkcs11.${name}`;
  allowOnly(body, 'seal.pkcs11', ['lib', 'token_label', 'slot', 'pin', 'key_label', 'generate_key', 'mechanism', 'max_parallel', 'library_parameters', 'iv_policy']);
  const fromEnv = (name: string) => env[`KEYWARD_HSM_${name}`] ?? env[`VAULT_HSM_${name}`];
  const tokenLabel = optionalString(body.token_label ?? fromEnv('TOKEN_LABEL'), f('token_label'));
  const slotRaw = body.slot ?? fromEnv('SLOT');
  const slot = slotRaw === undefined ? undefined : integer(slotRaw, f('slot'));
  if (tokenLabel === undefined && slot === undefined) throw new ConfigError(f('token_label'), 'set token_label (or slot) to choose the token');
  aesGcmMechanism(body.mechanism ?? fromEnv('MECHANISM'), f('mechanism'));
  const maxParallelRaw = body.max_parallel ?? fromEnv('MAX_PARALLEL');
  const maxParallel = maxParallelRaw === undefined ? undefined : integer(maxParallelRaw, f('max_parallel'));
  if (maxParallel !== undefined && maxParallel > MAX_PARALLEL_LIMIT) {
    throw new ConfigError(f('max_parallel'), `at most ${MAX_PARALLEL_LIMIT} (each is a thread and an HSM session)`);
  }
  const pin = optionalString(body.pin ?? fromEnv('PIN'), f('pin'));
  if (!pin) throw new ConfigError(f('pin'), 'missing: set pin in the config or KEYWARD_HSM_PIN in the environment');
  return {
    lib: optionalString(body.lib ?? fromEnv('LIB'), f('lib')) ?? DEFAULTS.lib,
    tokenLabel,
    slot,
    pin,
    keyLabel: optionalString(body.key_label ?? fromEnv('KEY_LABEL'), f('key_label')) ?? DEFAULTS.keyLabel,
    generateKey: bool(body.generate_key ?? fromEnv('GENERATE_KEY') ?? false, f('generate_key')),
    maxParallel,
    libraryParameters: optionalString(body.library_parameters ?? fromEnv('LIBRARY_PARAMETERS'), f('library_parameters')),
    ivPolicy: ivPolicy(body.iv_policy ?? fromEnv('IV_POLICY'), f('iv_policy')),
  };
}

function listenerBlock(v: unknown): ListenerConfig {
  if (v === undefined) return { address: DEFAULTS.address, tlsDisable: false };
  const [, body] = labelledBlock(v, 'listener', ['tcp']);
  const f = (name: string) => `listener.tcp.${name}`;
  allowOnly(body, 'listener.tcp', [
    'address',
    'tls_disable',
    'tls_cert_file',
    'tls_key_file',
    'tls_min_version',
    'cluster_address',
    'http_read_header_timeout',
    'http_read_timeout',
    'http_idle_timeout',
    'max_connections',
  ]);
  const address = optionalString(body.address, f('address')) ?? DEFAULTS.address;
  if (!/^(\[[0-9a-fA-F:]+\]|[^:]+):\d{1,5}$/.test(address)) throw new ConfigError(f('address'), `"${address}" is not host:port`);
  const tlsDisable = bool(body.tls_disable ?? false, f('tls_disable'));
  const tlsCertFile = optionalString(body.tls_cert_file, f('tls_cert_file'));
  const tlsKeyFile = optionalString(body.tls_key_file, f('tls_key_file'));
  if (!tlsDisable && (!tlsCertFile || !tlsKeyFile)) {
    throw new ConfigError(tlsCertFile ? f('tls_key_file') : f('tls_cert_file'), 'required unless tls_disable = true');
  }
  const minVersion = optionalString(body.tls_min_version, f('tls_min_version'));
  const tlsMinVersion = minVersion === undefined ? undefined : minVersion === 'tls12' ? 'TLSv1.2' : minVersion === 'tls13' ? 'TLSv1.3' : undefined;
  if (minVersion !== undefined && !tlsMinVersion) throw new ConfigError(f('tls_min_version'), 'must be "tls12" or "tls13"');
  return { address, tlsDisable, tlsCertFile, tlsKeyFile, tlsMinVersion, limits: listenerLimits(body, f) };
}

function listenerLimits(body: Obj, f: (name: string) => string): ListenerLimits {
  const limits: ListenerLimits = {
    readHeaderTimeoutMs: optionalDurationMs(body.http_read_header_timeout, f('http_read_header_timeout')) ?? LISTENER_LIMITS.readHeaderTimeoutMs,
    readTimeoutMs: optionalDurationMs(body.http_read_timeout, f('http_read_timeout')) ?? LISTENER_LIMITS.readTimeoutMs,
    idleTimeoutMs: optionalDurationMs(body.http_idle_timeout, f('http_idle_timeout')) ?? LISTENER_LIMITS.idleTimeoutMs,
    maxConnections: LISTENER_LIMITS.maxConnections,
  };
  if (body.max_connections !== undefined) {
    const n = body.max_connections;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new ConfigError(f('max_connections'), 'must be a positive integer');
    limits.maxConnections = n;
  }
  // Node times a request from its first byte, headers included: a header timeout past it would never fire.
  if (limits.readHeaderTimeoutMs > limits.readTimeoutMs) throw new ConfigError(f('http_read_header_timeout'), 'must not exceed http_read_timeout');
  return limits;
}

/** `storage "file" { ... }` arrives as {file: [{...}]} from HCL or {file: {...}} from JSON. */
function labelledBlock<T extends string>(v: unknown, name: string, allowed: readonly T[]): [T, Obj] {
  if (v === undefined) throw new ConfigError(name, `missing block (one of: ${allowed.map((a) => `${name} "${a}"`).join(', ')})`);
  const blocks = object(unwrap(v, name), name);
  const labels = Object.keys(blocks);
  if (labels.length !== 1) throw new ConfigError(name, `exactly one ${name} block is allowed, found ${labels.length}`);
  const label = labels[0]!;
  if (!(allowed as readonly string[]).includes(label)) {
    throw new ConfigError(`${name} "${label}"`, `unsupported type (supported: ${allowed.join(', ')})`);
  }
  return [label as T, object(unwrap(blocks[label], `${name}.${label}`), `${name}.${label}`)];
}

function unwrap(v: unknown, field: string): unknown {
  if (!Array.isArray(v)) return v;
  if (v.length !== 1) throw new ConfigError(field, `declared ${v.length} times; declare it once`);
  return v[0];
}

function object(v: unknown, field: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(field, 'must be a block');
  return v as Obj;
}

function allowOnly(body: Obj, where: string, allowed: string[]): void {
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) {
      throw new ConfigError(where ? `${where}.${key}` : key, `unknown setting${allowed.length ? ` (known: ${allowed.join(', ')})` : ''}`);
    }
  }
}

function optionalString(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number') return String(v);
  if (typeof v !== 'string') throw new ConfigError(field, 'must be a string');
  return v;
}

function requiredString(v: unknown, field: string): string {
  const s = optionalString(v, field);
  if (!s) throw new ConfigError(field, 'required');
  return s;
}

function integer(v: unknown, field: string): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new ConfigError(field, 'must be a non-negative integer');
  return n;
}

function bool(v: unknown, field: string): boolean {
  if (typeof v === 'boolean') return v;
  if (v === 1 || v === '1' || v === 'true') return true;
  if (v === 0 || v === '0' || v === 'false') return false;
  throw new ConfigError(field, 'must be true or false');
}

function logLevel(v: unknown): string {
  const level = optionalString(v, 'log_level') ?? DEFAULTS.logLevel;
  const levels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
  if (!levels.includes(level.toLowerCase())) throw new ConfigError('log_level', `must be one of ${levels.join(', ')}`);
  return level.toLowerCase();
}

/** Who picks AES-GCM IVs: `caller` (keyward) or `token` (a FIPS-mode HSM); unset, a probe decides. */
function ivPolicy(v: unknown, field: string): 'caller' | 'token' | undefined {
  const text = optionalString(v, field);
  if (text === undefined || text === 'caller' || text === 'token') return text;
  throw new ConfigError(field, `must be "caller" or "token" (or left out, for a probe to decide), not "${text}"`);
}
