import type { BarrierOp } from '../../barrier/barrier.js';
import type { BarrierView } from '../../barrier/view.js';
import { InvalidRequestError, NotFoundError } from '../../core/errors.js';
import { optionalBool } from '../../core/fields.js';
import { parseDuration } from '../../core/rotation.js';
import { KeyedMutex } from '../../locks/mutex.js';
import { jsonBuffer, type LogicalRequest, type LogicalResponse, type SecretsEngine } from '../engine.js';

const DEFAULT_MAX_VERSIONS = 10;
/** Vault's mount-wide "off" for delete_version_after: a negative duration, kept as -1s. */
const DVA_OFF = -1;
/** The longest duration Vault can hold (Go's time.Duration: 2^63-1 nanoseconds); longer would also overflow a Date. */
const MAX_DVA_SECONDS = 9_223_372_036;

interface VersionMeta {
  created_time: string;
  /** '' for none; a time in the future is a deletion scheduled by delete_version_after, not yet in force. */
  deletion_time: string;
  destroyed: boolean;
}

interface Metadata {
  created_time: string;
  updated_time: string;
  current_version: number;
  oldest_version: number;
  max_versions: number;
  cas_required: boolean;
  /** As Vault reports it ("1h0m0s"); "0s" leaves it to the mount's config. */
  delete_version_after: string;
  custom_metadata: Record<string, string> | null;
  versions: Record<string, VersionMeta>;
}

interface EngineConfig {
  max_versions: number;
  cas_required: boolean;
  /** As Vault reports it; "-1s" turns it off for every secret, "0s" leaves it to each secret. */
  delete_version_after: string;
}

type Data = Record<string, unknown>;

/**
 * KV version 2 with Vault's API: versions, soft delete, undelete, destroy, metadata and
 * check-and-set. Under its view, `metadata/<path>` holds the version list and
 * `versions/<path>/<n>` each version's data; both change in one transaction.
 */
export class KvV2 implements SecretsEngine {
  private readonly pathLocks = new KeyedMutex();

  constructor(
    private readonly view: BarrierView,
    /** Milliseconds since the epoch; injectable so tests can move time instead of sleeping. */
    private readonly now: () => number = Date.now,
  ) {}

  async exists(path: string): Promise<boolean> {
    const m = /^(data|metadata)\/(.+)$/.exec(path);
    if (!m) return true;
    return this.view.exists(`metadata/${m[2]}`);
  }

  async handle(req: LogicalRequest): Promise<LogicalResponse | undefined> {
    const slash = req.path.indexOf('/');
    const area = slash === -1 ? req.path : req.path.slice(0, slash);
    const path = slash === -1 ? '' : req.path.slice(slash + 1);
    switch (area) {
      case 'config':
        return this.config(req);
      case 'data':
        return this.data(req, path);
      case 'metadata':
        return this.metadata(req, path);
      case 'delete':
      case 'undelete':
      case 'destroy':
        if (req.operation !== 'update') throw new InvalidRequestError(`${area} takes PUT or POST with a "versions" list`);
        return this.changeVersions(area, requireSecretPath(path), req.data);
      default:
        throw new NotFoundError(`no handler for route "${req.path}" in a KV version 2 mount (use data/, metadata/, delete/, undelete/, destroy/ or config)`);
    }
  }

  private async config(req: LogicalRequest): Promise<LogicalResponse | undefined> {
    if (req.operation === 'read') {
      const config = await this.engineConfig();
      return { data: { ...config, delete_version_after: goDuration(storedDva(config.delete_version_after, true)) } };
    }
    if (req.operation !== 'update') throw new InvalidRequestError('config takes GET, PUT or POST');
    const current = await this.engineConfig();
    const next: EngineConfig = {
      max_versions: optionalCount(req.data.max_versions, 'max_versions') ?? current.max_versions,
      cas_required: optionalBool(req.data.cas_required, 'cas_required') ?? current.cas_required,
      delete_version_after: optionalDva(req.data.delete_version_after, true) ?? current.delete_version_after,
    };
    await this.view.put('config', jsonBuffer(next));
    return undefined;
  }

  private async data(req: LogicalRequest, rawPath: string): Promise<LogicalResponse | undefined> {
    if (req.operation === 'list') throw new InvalidRequestError('list keys under metadata/, not data/');
    const path = requireSecretPath(rawPath);
    switch (req.operation) {
      case 'read':
        return this.readVersion(path, req.query.version);
      case 'update':
        return this.pathLocks.run(path, () => this.write(path, req.data, false));
      case 'patch':
        return this.pathLocks.run(path, () => this.write(path, req.data, true));
      case 'delete':
        return this.changeVersions('delete', path, { versions: 'latest' });
    }
  }

  private async readVersion(path: string, versionParam: string | undefined): Promise<LogicalResponse> {
    const meta = await this.view.getJson<Metadata>(`metadata/${path}`);
    if (!meta) throw new NotFoundError('');
    const version = versionParam === undefined || versionParam === '0' ? meta.current_version : parseVersion(versionParam);
    const vmeta = meta.versions[String(version)];
    if (!vmeta) throw new NotFoundError('');
    const metadata = { ...vmeta, custom_metadata: meta.custom_metadata, version };
    if (vmeta.destroyed || isDeleted(vmeta, this.now())) return { status: 404, data: { data: null, metadata } };
    const data = await this.view.getJson<Data>(`versions/${path}/${version}`);
    if (!data) throw new NotFoundError('');
    return { data: { data, metadata } };
  }

  private async write(path: string, body: Data, patch: boolean): Promise<LogicalResponse> {
    const given = body.data;
    if (given === undefined || given === null || typeof given !== 'object' || Array.isArray(given)) {
      throw new InvalidRequestError('no data provided: the body must be {"data": {...}}');
    }
    const nowMs = this.now();
    const config = await this.engineConfig();
    const existing = await this.view.getJson<Metadata>(`metadata/${path}`);
    const latest = existing?.versions[String(existing.current_version)];
    if (patch && (!latest || latest.destroyed || isDeleted(latest, nowMs))) throw new NotFoundError('');
    const cas = optionalCount((body.options as Data | undefined)?.cas, 'options.cas');
    const casRequired = config.cas_required || (existing?.cas_required ?? false);
    if (cas === undefined && casRequired) throw new InvalidRequestError('check-and-set parameter required for this call');
    if (cas !== undefined && cas !== (existing?.current_version ?? 0)) {
      throw new InvalidRequestError('check-and-set parameter did not match the current version');
    }

    let value = given as Data;
    if (patch) {
      const current = (await this.view.getJson<Data>(`versions/${path}/${existing!.current_version}`)) ?? {};
      value = mergePatch(current, value);
    }
    const now = new Date(nowMs).toISOString();
    const version = (existing?.current_version ?? 0) + 1;
    const meta: Metadata = existing
      ? { ...existing, versions: { ...existing.versions } }
      : {
          created_time: now,
          updated_time: now,
          current_version: 0,
          oldest_version: 1,
          max_versions: 0,
          cas_required: false,
          delete_version_after: '0s',
          custom_metadata: null,
          versions: {},
        };
    meta.current_version = version;
    meta.updated_time = now;
    meta.versions[String(version)] = { created_time: now, deletion_time: scheduledDeletion(config, existing, nowMs), destroyed: false };
    const ops: BarrierOp[] = [{ kind: 'put', path: `versions/${path}/${version}`, value: jsonBuffer(value) }];
    const keep = meta.max_versions || config.max_versions || DEFAULT_MAX_VERSIONS;
    for (const v of Object.keys(meta.versions).map(Number).sort((a, b) => a - b)) {
      if (v > version - keep) break;
      delete meta.versions[String(v)];
      ops.push({ kind: 'delete', path: `versions/${path}/${v}` });
    }
    meta.oldest_version = Math.min(...Object.keys(meta.versions).map(Number));
    ops.push({ kind: 'put', path: `metadata/${path}`, value: jsonBuffer(meta) });
    await this.view.transaction(ops);
    return { data: { ...meta.versions[String(version)], custom_metadata: meta.custom_metadata, version } };
  }

  private changeVersions(kind: 'delete' | 'undelete' | 'destroy', path: string, body: Data): Promise<undefined> {
    return this.pathLocks.run(path, async () => {
      const meta = await this.view.getJson<Metadata>(`metadata/${path}`);
      if (!meta) return undefined;
      const versions = body.versions === 'latest' ? [meta.current_version] : versionList(body.versions);
      const ops: BarrierOp[] = [];
      const nowMs = this.now();
      const now = new Date(nowMs).toISOString();
      // As in Vault, an undeleted version gets a fresh delete_version_after from now: undelete cannot keep it forever.
      const restoredDeletion = kind === 'undelete' ? scheduledDeletion(await this.engineConfig(), meta, nowMs) : '';
      for (const v of versions) {
        const vm = meta.versions[String(v)];
        if (!vm) continue;
        if (kind === 'delete' && !vm.destroyed && !isDeleted(vm, nowMs)) vm.deletion_time = now;
        if (kind === 'undelete' && !vm.destroyed) vm.deletion_time = restoredDeletion;
        if (kind === 'destroy' && !vm.destroyed) {
          vm.destroyed = true;
          ops.push({ kind: 'delete', path: `versions/${path}/${v}` });
        }
      }
      meta.updated_time = now;
      ops.push({ kind: 'put', path: `metadata/${path}`, value: jsonBuffer(meta) });
      await this.view.transaction(ops);
      return undefined;
    });
  }

  private async metadata(req: LogicalRequest, path: string): Promise<LogicalResponse | undefined> {
    if (req.operation === 'list') {
      const prefix = path === '' ? '' : path.replace(/\/*$/, '/');
      const keys = await this.view.list(`metadata/${prefix}`);
      if (keys.length === 0) throw new NotFoundError('');
      return { data: { keys } };
    }
    const secret = requireSecretPath(path);
    switch (req.operation) {
      case 'read': {
        const meta = await this.view.getJson<Metadata>(`metadata/${secret}`);
        if (!meta) throw new NotFoundError('');
        return { data: { ...meta, delete_version_after: goDuration(storedDva(meta.delete_version_after, false)) } };
      }
      case 'update':
        return this.pathLocks.run(secret, async () => {
          const now = new Date(this.now()).toISOString();
          const meta = (await this.view.getJson<Metadata>(`metadata/${secret}`)) ?? {
            created_time: now,
            updated_time: now,
            current_version: 0,
            oldest_version: 0,
            max_versions: 0,
            cas_required: false,
            delete_version_after: '0s',
            custom_metadata: null,
            versions: {},
          };
          meta.max_versions = optionalCount(req.data.max_versions, 'max_versions') ?? meta.max_versions;
          meta.cas_required = optionalBool(req.data.cas_required, 'cas_required') ?? meta.cas_required;
          meta.delete_version_after = optionalDva(req.data.delete_version_after, false) ?? meta.delete_version_after;
          if (req.data.custom_metadata !== undefined) meta.custom_metadata = stringMap(req.data.custom_metadata);
          meta.updated_time = now;
          await this.view.put(`metadata/${secret}`, jsonBuffer(meta));
          return undefined;
        });
      case 'delete':
        return this.pathLocks.run(secret, async () => {
          const meta = await this.view.getJson<Metadata>(`metadata/${secret}`);
          if (!meta) return undefined;
          const ops: BarrierOp[] = Object.keys(meta.versions).map((v) => ({ kind: 'delete' as const, path: `versions/${secret}/${v}` }));
          ops.push({ kind: 'delete', path: `metadata/${secret}` });
          await this.view.transaction(ops);
          return undefined;
        });
      case 'patch':
        throw new InvalidRequestError('PATCH of metadata is not supported; use POST');
    }
  }

  private async engineConfig(): Promise<EngineConfig> {
    return (await this.view.getJson<EngineConfig>('config')) ?? { max_versions: 0, cas_required: false, delete_version_after: '0s' };
  }
}

function requireSecretPath(path: string): string {
  if (path === '' || path.endsWith('/')) throw new InvalidRequestError('a secret path is required (it may not end with "/")');
  return path;
}

function parseVersion(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidRequestError(`version "${v}" is not a number`);
  return Number(v);
}

function versionList(v: unknown): number[] {
  const list = Array.isArray(v) ? v : typeof v === 'string' ? v.split(',') : undefined;
  if (!list || list.length === 0) throw new InvalidRequestError('no version number provided');
  return list.map((x) => {
    const n = typeof x === 'number' ? x : typeof x === 'string' && /^\s*\d+\s*$/.test(x) ? Number(x) : NaN;
    if (!Number.isInteger(n) || n < 1) throw new InvalidRequestError(`invalid version ${JSON.stringify(x)}`);
    return n;
  });
}

function optionalCount(v: unknown, field: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new InvalidRequestError(`${field} must be a non-negative integer`);
  return n;
}

/** Whether a version reads as deleted at `nowMs`: a delete, or its delete_version_after, has come into force. */
function isDeleted(vm: VersionMeta, nowMs: number): boolean {
  return vm.deletion_time !== '' && Date.parse(vm.deletion_time) <= nowMs;
}

/**
 * The deletion time a version made live at `fromMs` gets ('' for none). As in Vault, the mount's
 * negative setting turns it off; otherwise the shorter of the mount's and the secret's non-zero
 * settings applies, so a secret can shorten the mount's limit but never lengthen it.
 */
function scheduledDeletion(config: EngineConfig, meta: Metadata | undefined, fromMs: number): string {
  const mount = storedDva(config.delete_version_after, true);
  const secret = meta ? storedDva(meta.delete_version_after, false) : 0;
  if (mount === DVA_OFF) return '';
  const seconds = mount && secret ? Math.min(mount, secret) : mount || secret;
  return seconds ? new Date(fromMs + seconds * 1000).toISOString() : '';
}

/** Seconds of a delete_version_after: a duration such as "1h30m" or a number of seconds; a negative one (off) only where `allowOff`. */
function parseDva(v: unknown, allowOff: boolean): number {
  const off = allowOff && (typeof v === 'string' ? v.startsWith('-') : typeof v === 'number' && v < 0);
  const magnitude = off ? (typeof v === 'string' ? v.slice(1) : -(v as number)) : v;
  const seconds = parseDuration(magnitude, 'delete_version_after');
  if (seconds > MAX_DVA_SECONDS) throw new InvalidRequestError(`delete_version_after is too long: at most ${goDuration(MAX_DVA_SECONDS)}`);
  return off && seconds > 0 ? DVA_OFF : seconds;
}

/** A delete_version_after from a request, in the form stored and reported. */
function optionalDva(v: unknown, allowOff: boolean): string | undefined {
  if (v === undefined || v === null) return undefined;
  return goDuration(parseDva(v, allowOff));
}

/** Seconds of a stored delete_version_after. One stored before values were checked never took effect, so it counts as unset. */
function storedDva(v: string, allowOff: boolean): number {
  try {
    return parseDva(v, allowOff);
  } catch {
    return 0;
  }
}

/** Whole seconds as Go prints a time.Duration, the way Vault reports durations: "0s", "30s", "5m0s", "1h0m0s", "-1s". */
function goDuration(seconds: number): string {
  if (seconds < 0) return `-${goDuration(-seconds)}`;
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  return m > 0 ? `${m}m${s}s` : `${s}s`;
}

function stringMap(v: unknown): Record<string, string> | null {
  if (v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw new InvalidRequestError('custom_metadata must be an object of strings');
  for (const val of Object.values(v as Data)) {
    if (typeof val !== 'string') throw new InvalidRequestError('custom_metadata values must be strings');
  }
  return v as Record<string, string>;
}

/** RFC 7386 JSON merge patch: null removes a key, objects merge recursively. */
function mergePatch(target: Data, patch: Data): Data {
  const out: Data = { ...target };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else if (typeof v === 'object' && !Array.isArray(v) && typeof out[k] === 'object' && out[k] !== null && !Array.isArray(out[k])) {
      out[k] = mergePatch(out[k] as Data, v as Data);
    } else out[k] = v;
  }
  return out;
}
