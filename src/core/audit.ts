import { createHmac, randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { pino, type Logger } from 'pino';
import type { SecurityBarrier } from '../barrier/barrier.js';
import { InvalidRequestError, NotFoundError } from './errors.js';
import { auditPath } from './names.js';

export const AUDIT_TABLE_PATH = 'core/audit';
const AUDIT_SALT_PATH = 'core/audit-salt';

export interface AuditDeviceConfig {
  path: string;
  type: 'file';
  description: string;
  options: { file_path: string };
}

/** Every enabled device failed to write: the request must not proceed unaudited (Vault's rule). */
export class AuditFailedError extends Error {
  override readonly name = 'AuditFailedError';
  constructor(detail: string) {
    super(`audit log write failed on every enabled device, so the request was refused: ${detail}`);
  }
}

/** A `file` device: one JSON line per request and per response, written synchronously through pino. */
class FileDevice {
  private readonly fd: number;
  private readonly logger: Logger;

  constructor(readonly config: AuditDeviceConfig) {
    try {
      this.fd = openSync(config.options.file_path, 'a', 0o600);
    } catch (err) {
      throw new InvalidRequestError(`cannot open audit file "${config.options.file_path}": ${(err as Error).message}`);
    }
    const fd = this.fd;
    // A synchronous stream: a write error surfaces here, at the request, not later.
    this.logger = pino({ base: null, timestamp: false, messageKey: 'msg' }, { write: (line: string) => void writeSync(fd, line) });
  }

  write(entry: Record<string, unknown>): void {
    this.logger.info(entry);
  }

  close(): void {
    try {
      closeSync(this.fd);
    } catch {
      // Already closed.
    }
  }
}

/**
 * Audit devices, their table (kept in the barrier) and the per-install HMAC key that replaces
 * every string of request and response data with `hmac-sha256:…`, so the log holds no token,
 * share or secret value, yet an auditor can find a known value through sys/audit-hash.
 */
export class AuditBroker {
  private devices = new Map<string, FileDevice>();
  private salt: Buffer | undefined;

  constructor(private readonly barrier: SecurityBarrier) {}

  get enabled(): boolean {
    return this.devices.size > 0;
  }

  async load(): Promise<void> {
    this.clear();
    const raw = await this.barrier.get(AUDIT_TABLE_PATH);
    const table = raw ? (JSON.parse(raw.toString('utf8')) as AuditDeviceConfig[]) : [];
    for (const c of table) {
      try {
        this.devices.set(c.path, new FileDevice(c));
      } catch {
        // A device whose file cannot be opened stays in the table; writes then fail as Vault's would.
      }
    }
    if (table.length) this.salt = await this.loadSalt();
  }

  clear(): void {
    for (const d of this.devices.values()) d.close();
    this.devices.clear();
    this.salt?.fill(0);
    this.salt = undefined;
  }

  list(): AuditDeviceConfig[] {
    return [...this.devices.values()].map((d) => d.config);
  }

  async enable(path: string, type: string, options: Record<string, unknown>, description: string): Promise<void> {
    const p = auditPath(path);
    if (this.devices.has(p)) throw new InvalidRequestError(`path already in use: an audit device is enabled at ${p}`);
    if (type !== 'file') throw new InvalidRequestError(`unknown audit device type "${type}" (this server offers "file")`);
    const filePath = options.file_path;
    if (typeof filePath !== 'string' || !filePath.startsWith('/')) throw new InvalidRequestError('options.file_path must be an absolute path');
    const device = new FileDevice({ path: p, type: 'file', description, options: { file_path: filePath } });
    this.salt = await this.loadSalt();
    const table = [...this.list(), device.config];
    await this.barrier.put(AUDIT_TABLE_PATH, Buffer.from(JSON.stringify(table)));
    this.devices.set(p, device);
  }

  async disable(path: string): Promise<void> {
    const p = auditPath(path);
    const device = this.devices.get(p);
    if (!device) throw new NotFoundError(`no audit device enabled at ${p}`);
    this.devices.delete(p);
    await this.barrier.put(AUDIT_TABLE_PATH, Buffer.from(JSON.stringify(this.list())));
    device.close();
  }

  /** The HMAC an audit line carries for `input`. */
  async hash(input: string): Promise<string> {
    return hmac(this.salt ?? (await this.loadSalt()), input);
  }

  /** `value` with every string replaced by its HMAC (for tokens, shares and data in audit lines). */
  hashed(value: unknown): unknown {
    return hashStrings(value, this.salt!);
  }

  /** Writes a line to every device; throws when all of them fail. */
  record(line: Record<string, unknown>): void {
    if (!this.devices.size) return;
    const failures: string[] = [];
    for (const d of this.devices.values()) {
      try {
        d.write(line);
      } catch (err) {
        failures.push(`${d.config.path}: ${(err as Error).message}`);
      }
    }
    if (failures.length === this.devices.size) throw new AuditFailedError(failures.join('; '));
  }

  private async loadSalt(): Promise<Buffer> {
    let salt = await this.barrier.get(AUDIT_SALT_PATH);
    if (!salt) {
      salt = randomBytes(32);
      await this.barrier.put(AUDIT_SALT_PATH, salt);
    }
    return salt;
  }
}

function hmac(salt: Buffer, input: string): string {
  return `hmac-sha256:${createHmac('sha256', salt).update(input).digest('hex')}`;
}

/** Replaces every string (at any depth) with its HMAC; numbers, booleans and nulls stay. */
export function hashStrings(value: unknown, salt: Buffer): unknown {
  if (typeof value === 'string') return hmac(salt, value);
  if (Array.isArray(value)) return value.map((v) => hashStrings(v, salt));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, hashStrings(v, salt)]));
  }
  return value;
}
