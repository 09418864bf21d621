import { createHash, getHashes } from 'node:crypto';
import type { BarrierView } from '../../barrier/view.js';
import { InvalidRequestError, NotFoundError } from '../../core/errors.js';
import { optionalBool } from '../../core/fields.js';
import { parseDuration } from '../../core/rotation.js';
import type { Token } from '../../pkcs11/token.js';
import type { LogicalRequest, LogicalResponse, SecretsEngine } from '../engine.js';
import { perItem } from './batch.js';
import { base64Field } from './ciphertext.js';
import { parseKeyType } from './key-types.js';
import { type TransitLimits, TransitKeys } from './key-store.js';
import { TransitOperations } from './operations.js';
import { describePolicy, type KeyPolicy } from './policy.js';

/** Vault's key names (framework.GenericNameRegex): word characters, '-' and '.', starting and ending with a word character. */
const KEY_NAME = /^\w(?:[\w.-]*\w)?$/;
/** Vault's smallest auto_rotate_period (1 hour); 0 turns it off. */
const MIN_AUTO_ROTATE_SECONDS = 3600;
const MAX_RANDOM_BYTES = 128 * 1024;
const MIN_HMAC_KEY_BYTES = 64;
const MAX_HMAC_KEY_BYTES = 512;
const HASH_ALGORITHMS: Record<string, string> = {
  'sha2-224': 'sha224',
  'sha2-256': 'sha256',
  'sha2-384': 'sha384',
  'sha2-512': 'sha512',
  'sha3-224': 'sha3-224',
  'sha3-256': 'sha3-256',
  'sha3-384': 'sha3-384',
  'sha3-512': 'sha3-512',
};

type Data = Record<string, unknown>;

/**
 * Vault's transit secrets engine with every key generated and used inside the token: keys kept
 * only K-wrapped (or, brought by the operator, as token objects used in place), encryption,
 * signing and HMAC as token calls.
 */
export class TransitEngine implements SecretsEngine {
  private readonly keys: TransitKeys;
  private readonly ops: TransitOperations;

  constructor(
    view: BarrierView,
    private readonly token: Token,
    now: () => number,
    limits?: TransitLimits,
  ) {
    this.keys = new TransitKeys(view, token, now, limits);
    this.ops = new TransitOperations(this.keys, token);
  }

  /** Writes to keys/:name, and encrypt/:name (which creates a missing key, as Vault's), create when the key is new. */
  async exists(path: string): Promise<boolean> {
    const m = /^(?:keys|encrypt)\/([^/]+)$/.exec(path);
    if (!m) return true;
    return (await this.keys.read(m[1]!)) !== undefined;
  }

  async handle(req: LogicalRequest): Promise<LogicalResponse | undefined> {
    const parts = req.path.split('/');
    const [area, name, extra, more] = parts;
    const write = req.operation === 'update';
    // Paths take a key name, and sign, verify, hmac and datakey one more segment: anything past that names nothing.
    if ((['encrypt', 'decrypt', 'rewrap'].includes(area!) && extra !== undefined) || more !== undefined) throw new NotFoundError(`no handler for route "${req.path}" in a transit mount`);
    switch (area) {
      case 'keys':
        return this.keysArea(req, parts.slice(1));
      case 'encrypt':
        requireWrite(write, 'encrypt');
        return this.encrypt(keyName(name), req.data);
      case 'decrypt':
      case 'rewrap': {
        requireWrite(write, area);
        const policy = await this.keys.require(keyName(name));
        return perItem(req.data, (item) => (area === 'decrypt' ? this.ops.decrypt(policy, item) : this.ops.rewrap(policy, item)));
      }
      case 'datakey': {
        requireWrite(write, 'datakey');
        const policy = await this.keys.require(keyName(extra));
        return { data: await this.ops.datakey(policy, name ?? '', req.data) };
      }
      case 'sign':
      case 'verify':
      case 'hmac': {
        requireWrite(write, area);
        const policy = await this.keys.require(keyName(name));
        if (area === 'sign') return perItem(req.data, (item) => this.ops.sign(policy, extra, item));
        if (area === 'hmac') return perItem(req.data, (item) => this.ops.hmac(policy, extra, item));
        return perItem(req.data, (item) => this.ops.verify(policy, extra, item));
      }
      case 'random':
        requireWrite(write, 'random');
        return { data: this.random(parts.slice(1), { ...req.query, ...req.data }) };
      case 'hash':
        requireWrite(write, 'hash');
        return { data: hash(name, req.data) };
      case 'export':
      case 'backup':
      case 'restore':
        throw new InvalidRequestError(`${area} is not offered: transit keys never leave the HSM in clear`);
      default:
        throw new NotFoundError(`no handler for route "${req.path}" in a transit mount`);
    }
  }

  private async keysArea(req: LogicalRequest, [name, action, ...rest]: string[]): Promise<LogicalResponse | undefined> {
    if (name === undefined || name === '') {
      if (req.operation !== 'list') throw new InvalidRequestError('list keys with LIST (or GET ?list=true) on keys/');
      const keys = await this.keys.list();
      if (keys.length === 0) throw new NotFoundError('');
      return { data: { keys } };
    }
    const key = keyName(name);
    if (rest.length) throw new NotFoundError(`no handler for route "keys/${key}/${action}/${rest.join('/')}"`);
    if (action === undefined) {
      switch (req.operation) {
        case 'read':
          return { data: describePolicy(await this.keys.require(key)) };
        case 'update':
          return { data: describePolicy(await this.create(key, req.data)) };
        case 'delete':
          await this.keys.delete(key);
          return undefined;
        default:
          throw new InvalidRequestError(`keys/${key} takes GET, POST or DELETE`);
      }
    }
    requireWrite(req.operation === 'update', `keys/${key}/${action}`);
    switch (action) {
      case 'config':
        return { data: describePolicy(await this.keys.update(key, (p) => configured(p, req.data))) };
      case 'rotate':
        return { data: describePolicy(await this.keys.rotate(key)) };
      case 'trim': {
        const min = Number(req.data.min_available_version);
        if (!Number.isInteger(min)) throw new InvalidRequestError('min_available_version must be a whole number');
        return { data: describePolicy(await this.keys.trim(key, min)) };
      }
      case 'import':
      case 'import_version':
        throw new InvalidRequestError('importing key material is not offered: keys enter the HSM only by generation there, or as HSM objects referenced with managed_key_label or managed_key_id');
      default:
        throw new NotFoundError(`no handler for route "keys/${key}/${action}"`);
    }
  }

  private create(name: string, body: Data): Promise<KeyPolicy> {
    refuseExport(body);
    if (optionalBool(body.derived, 'derived') || optionalBool(body.convergent_encryption, 'convergent_encryption')) {
      throw new InvalidRequestError('derived keys and convergent encryption are not offered: key derivation would have to happen outside the HSM');
    }
    const type = parseKeyType(body.type);
    if (type === 'ed25519' && !this.token.offersEdDsa()) throw new InvalidRequestError('this token does not offer EdDSA (CKM_EC_EDWARDS_KEY_PAIR_GEN and CKM_EDDSA), so ed25519 keys cannot be made in it');
    const keySize = body.key_size === undefined ? undefined : Number(body.key_size);
    if (keySize !== undefined && type !== 'hmac') throw new InvalidRequestError('key_size applies to hmac keys only');
    if (keySize !== undefined && !(Number.isInteger(keySize) && keySize >= MIN_HMAC_KEY_BYTES && keySize <= MAX_HMAC_KEY_BYTES && keySize % 8 === 0)) {
      throw new InvalidRequestError(`key_size must be a multiple of 8 from ${MIN_HMAC_KEY_BYTES} to ${MAX_HMAC_KEY_BYTES} bytes (HSMs refuse HMAC keys shorter than the hash's output, up to SHA-512's 64)`);
    }
    const label = optionalString(body.managed_key_label, 'managed_key_label');
    const id = optionalString(body.managed_key_id, 'managed_key_id');
    if (label !== undefined && id !== undefined) throw new InvalidRequestError('give managed_key_label or managed_key_id, not both');
    if (id !== undefined && !/^(?:[0-9a-fA-F]{2})+$/.test(id)) throw new InvalidRequestError('managed_key_id must be the object\'s CKA_ID in hex');
    const managed = label !== undefined ? { label } : id !== undefined ? { id: id.toLowerCase() } : undefined;
    return this.keys.create(name, { type, autoRotatePeriod: autoRotatePeriod(body.auto_rotate_period) ?? 0, managed, hmacKeyBytes: keySize });
  }

  /** encrypt/:name, creating the key first when it does not exist (as Vault does; the ACL asked "create" for that). */
  private async encrypt(name: string, body: Data): Promise<LogicalResponse> {
    const found = await this.keys.read(name);
    if (!found && parseKeyType(body.type) !== 'aes256-gcm96') throw new InvalidRequestError(`a key created by encrypt must be of type aes256-gcm96, not ${String(body.type)}`);
    const policy = found ? await this.keys.rotatedIfDue(found) : await this.keys.create(name, { type: 'aes256-gcm96', autoRotatePeriod: 0 });
    return perItem(body, (item) => this.ops.encrypt(policy, item));
  }

  private random([first, second]: string[], body: Data): Data {
    // random, random/<bytes>, random/<source>/<bytes>: every source is the token's RNG.
    const source = second !== undefined ? first : /^\d+$/.test(first ?? '') ? undefined : first;
    if (source !== undefined && source !== '' && !['platform', 'seal', 'all'].includes(source)) throw new InvalidRequestError(`unsupported source "${source}": use platform, seal or all`);
    const countText = second ?? (source === undefined ? first : undefined) ?? body.bytes;
    const bytes = countText === undefined || countText === '' ? 32 : Number(countText);
    if (!Number.isInteger(bytes) || bytes < 1 || bytes > MAX_RANDOM_BYTES) throw new InvalidRequestError(`bytes must be a whole number from 1 to ${MAX_RANDOM_BYTES}`);
    const format = body.format ?? 'base64';
    if (format !== 'base64' && format !== 'hex') throw new InvalidRequestError('format must be base64 or hex');
    return { random_bytes: this.token.random(bytes).toString(format) };
  }
}

function hash(urlAlgorithm: string | undefined, body: Data): Data {
  const algorithm = urlAlgorithm ?? (body.algorithm as string | undefined) ?? 'sha2-256';
  const name = HASH_ALGORITHMS[algorithm];
  if (!name || !getHashes().includes(name)) throw new InvalidRequestError(`unsupported algorithm "${algorithm}": use one of ${Object.keys(HASH_ALGORITHMS).join(', ')}`);
  const format = body.format ?? 'hex';
  if (format !== 'hex' && format !== 'base64') throw new InvalidRequestError('format must be hex or base64');
  return { sum: createHash(name).update(base64Field(body.input, 'input', true)).digest(format) };
}

/** A config write applied to the key: only the fields given change, checked against each other as Vault does. */
function configured(p: KeyPolicy, body: Data): KeyPolicy {
  refuseExport(body);
  const next = { ...p };
  const version = (v: unknown, field: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidRequestError(`${field} must be a whole number`);
    return n;
  };
  if (body.min_decryption_version !== undefined) {
    const v = version(body.min_decryption_version, 'min_decryption_version');
    if (v > 0) next.min_decryption_version = v;
  }
  if (body.min_encryption_version !== undefined) next.min_encryption_version = version(body.min_encryption_version, 'min_encryption_version');
  const deletion = optionalBool(body.deletion_allowed, 'deletion_allowed');
  if (deletion !== undefined) next.deletion_allowed = deletion;
  const period = autoRotatePeriod(body.auto_rotate_period);
  if (period !== undefined) {
    if (p.managed && period > 0) throw new InvalidRequestError(`transit key "${p.name}" is an HSM key used in place: keyward cannot rotate it`);
    next.auto_rotate_period = period;
  }
  if (next.min_decryption_version > next.latest_version) throw new InvalidRequestError(`min_decryption_version cannot be greater than the latest version (${next.latest_version})`);
  if (next.min_encryption_version > next.latest_version) throw new InvalidRequestError(`min_encryption_version cannot be greater than the latest version (${next.latest_version})`);
  if (next.min_encryption_version > 0 && next.min_encryption_version < next.min_decryption_version) {
    throw new InvalidRequestError('min_encryption_version must be at least min_decryption_version');
  }
  if (next.min_available_version > 0 && next.min_decryption_version < next.min_available_version) {
    throw new InvalidRequestError(`min_decryption_version cannot be below min_available_version (${next.min_available_version}): those versions were trimmed`);
  }
  return next;
}

function autoRotatePeriod(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  const seconds = parseDuration(v, 'auto_rotate_period');
  if (seconds !== 0 && seconds < MIN_AUTO_ROTATE_SECONDS) throw new InvalidRequestError('auto_rotate_period must be 0 (off) or at least 1h');
  return seconds;
}

function refuseExport(body: Data): void {
  if (optionalBool(body.exportable, 'exportable')) throw new InvalidRequestError('exportable keys are not offered: transit keys never leave the HSM in clear');
  if (optionalBool(body.allow_plaintext_backup, 'allow_plaintext_backup')) throw new InvalidRequestError('allow_plaintext_backup is not offered: transit keys never leave the HSM in clear');
}

function keyName(name: string | undefined): string {
  if (!name) throw new InvalidRequestError('missing key name');
  if (!KEY_NAME.test(name)) throw new InvalidRequestError(`invalid key name "${name}": use letters, digits, "_", "-" and "."`);
  return name;
}

function optionalString(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new InvalidRequestError(`${field} must be a string`);
  return v;
}

function requireWrite(ok: boolean, what: string): void {
  if (!ok) throw new InvalidRequestError(`${what} takes POST or PUT`);
}

