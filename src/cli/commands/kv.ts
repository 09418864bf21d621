// `keyward kv ...`: Vault's kv verbs, on KV version 1 or 2 as the mount serving the path is.
import { ApiClient, CLIENT_FLAGS, type OutputFormat, outputFormat } from '../client.js';
import type { Command, Io } from '../command.js';
import { type FlagSpec, type FlagValues, type Parsed, splitPair, UsageError } from '../flags.js';
import { column, formatted, table } from '../output.js';
import { parseData, printField } from '../secret.js';

type Body = Record<string, unknown>;

const KV_FLAGS: Record<string, FlagSpec> = {
  ...CLIENT_FLAGS,
  mount: { kind: 'string', help: 'mount path of the KV engine; the path argument is then relative to it', default: '' },
};
const FIELD: FlagSpec = { kind: 'string', help: 'print only this field (piped: without a newline)', default: '' };
const CAS: FlagSpec = { kind: 'int', help: 'check-and-set: write only if the current version is this one (0: only if the secret does not exist); KV v2' };
const VERSIONS: FlagSpec = { kind: 'list', help: 'version numbers, comma-separated or repeated' };

interface KvTarget {
  client: ApiClient;
  format: OutputFormat;
  /** The path as given (with -mount prefixed). */
  display: string;
  version: '1' | '2';
  /** The mount serving it ("secret/"). */
  mount: string;
  /** The path below the mount. */
  rest: string;
}

/** Finds the mount serving the path and whether it is KV v1 or v2, as Vault's CLI does. */
async function resolve(flags: FlagValues, pathArg: string | undefined, io: Io): Promise<KvTarget> {
  if (!pathArg) throw new UsageError('a path is required');
  const format = outputFormat(flags, io.env);
  const client = ApiClient.fromFlags(flags, io.env);
  const mountFlag = (flags.mount as string).replace(/^\/+|\/+$/g, '');
  const full = (mountFlag ? `${mountFlag}/${pathArg}` : pathArg).replace(/^\/+/, '');
  const { body } = await client.request('GET', `sys/internal/ui/mounts/${full}`, undefined, { preflight: true });
  const mount = (body?.data as { path: string; options?: { version?: string } }) ?? { path: '' };
  return { client, format, display: full, version: mount.options?.version === '2' ? '2' : '1', mount: mount.path, rest: full.slice(mount.path.length) };
}

/** The API path of a KV v2 area (data, metadata, delete, undelete, destroy) for the target; v1 has only the secret itself. */
function v2Path(t: KvTarget, area: string): string {
  return `${t.mount}${area}/${t.rest}`;
}

function requireV2(t: KvTarget, what: string): void {
  if (t.version !== '2') throw new UsageError(`${what} needs a KV version 2 mount, and ${t.mount} is version 1 (upgrade it with "keyward kv enable-versioning ${t.mount}")`);
}

function dataTable(data: Body): string {
  return table(Object.keys(data).sort().map((k) => [k, data[k]] as const));
}

function sectioned(title: string, path: string, sections: Array<[string, Body]>): string {
  return [`== ${title} ==\n${path}`, ...sections.map(([heading, rows]) => `======= ${heading} =======\n${dataTable(rows)}`)].join('\n\n');
}

/** Version numbers from -versions, checked here so a typo is not sent. */
function versionsOf(flags: FlagValues, verb: string): number[] {
  const given = flags.versions as string[];
  if (given.length === 0) throw new UsageError(`No versions provided, use the "-versions" flag to specify the version to ${verb}.`);
  return given.map((v) => {
    if (!/^[1-9]\d*$/.test(v)) throw new UsageError(`-versions takes version numbers (1, 2, ...), not "${v}"`);
    return Number(v);
  });
}

/** A KV v2 write's answer (the new version's metadata): its table, one field, or the whole reply. */
function printWritten(io: Io, t: KvTarget, flags: FlagValues, body: Body | undefined, dataPath: string): number {
  const meta = (body?.data as Body | undefined) ?? {};
  if (flags.field) return printField(io, t.format, body ?? {}, meta, flags.field as string);
  io.out(t.format === 'table' ? sectioned('Secret Path', dataPath, [['Metadata', meta]]) : formatted(t.format, body));
  return 0;
}

async function kvWrite(t: KvTarget, flags: FlagValues, io: Io, data: Body): Promise<number> {
  const cas = flags.cas as number | undefined;
  if (t.version === '1') {
    if (cas !== undefined) throw new UsageError('-cas needs a KV version 2 mount (version 1 keeps no versions to check against)');
    if (flags.field) throw new UsageError('-field needs a KV version 2 mount (a version 1 write answers with no fields)');
    await t.client.request('PUT', t.display, data);
    io.out(t.format === 'table' ? `Success! Data written to: ${t.display}` : formatted(t.format, {}));
    return 0;
  }
  const { body } = await t.client.request('POST', v2Path(t, 'data'), { data, options: cas === undefined ? {} : { cas } });
  return printWritten(io, t, flags, body, v2Path(t, 'data'));
}

const put: Command['run'] = async ({ flags, args }, io) => {
  const t = await resolve(flags, args[0], io);
  const data = await parseData(args.slice(1));
  if (Object.keys(data).length === 0) throw new UsageError('Must supply data (key=value pairs, "-" or @file.json)');
  return kvWrite(t, flags, io, data);
};

const patch: Command['run'] = async ({ flags, args }, io) => {
  const t = await resolve(flags, args[0], io);
  requireV2(t, 'kv patch');
  const data = await parseData(args.slice(1));
  for (const key of flags.remove as string[]) data[key] = null;
  if (Object.keys(data).length === 0) throw new UsageError('Must supply data (key=value pairs, "-" or @file.json) or -remove');
  const method = flags.method as string;
  const cas = flags.cas as number | undefined;
  const dataPath = v2Path(t, 'data');
  if (method === 'rw') {
    // Vault's "rw" method: read the latest version, merge on the client, write it back with check-and-set.
    const { status, body } = await t.client.request('GET', dataPath, undefined, { allow: [404] });
    const current = (body?.data as Body | null | undefined)?.data as Body | null | undefined;
    if (status === 404 || !current) return notFound(io, dataPath);
    const version = Number(((body!.data as Body).metadata as Body).version);
    const merged = { ...current, ...data };
    for (const key of Object.keys(merged)) if (merged[key] === null) delete merged[key];
    const written = await t.client.request('POST', dataPath, { data: merged, options: { cas: cas ?? version } });
    return printWritten(io, t, flags, written.body, dataPath);
  }
  if (method !== 'patch') throw new UsageError(`-method must be "patch" or "rw", not "${method}"`);
  const { status, body } = await t.client.request('PATCH', dataPath, { data, options: cas === undefined ? {} : { cas } }, { allow: [404], contentType: 'application/merge-patch+json' });
  if (status === 404) return notFound(io, dataPath);
  return printWritten(io, t, flags, body, dataPath);
};

function notFound(io: Io, path: string): number {
  io.err(`No value found at ${path}`);
  return 2;
}

const get: Command['run'] = async ({ flags, args }, io) => {
  const t = await resolve(flags, args[0], io);
  const version = flags.version as number | undefined;
  if (version !== undefined && t.version === '1') throw new UsageError('-version needs a KV version 2 mount (version 1 keeps one value per secret)');
  const dataPath = t.version === '2' ? v2Path(t, 'data') : t.display;
  const { status, body } = await t.client.request('GET', dataPath, undefined, { allow: [404], query: version !== undefined ? { version: String(version) } : {} });
  const payload = body?.data as Body | null | undefined;
  const data = t.version === '2' ? (payload?.data as Body | null | undefined) : payload;
  if (status === 404 || !data) return notFound(io, dataPath);
  if (flags.field) return printField(io, t.format, {}, data, flags.field as string);
  if (t.format !== 'table') io.out(formatted(t.format, body));
  else if (t.version === '1') io.out(dataTable(data));
  else io.out(sectioned('Secret Path', dataPath, [['Metadata', (payload!.metadata as Body) ?? {}], ['Data', data]]));
  return 0;
};

const del: Command['run'] = async ({ flags, args }, io) => {
  const t = await resolve(flags, args[0], io);
  const versions = flags.versions as string[];
  if (versions.length === 0) {
    const path = t.version === '2' ? v2Path(t, 'data') : t.display;
    await t.client.request('DELETE', path);
  } else {
    requireV2(t, 'kv delete -versions');
    await t.client.request('POST', v2Path(t, 'delete'), { versions: versionsOf(flags, 'delete') });
  }
  io.out(t.format === 'table' ? `Success! Data deleted (if it existed) at: ${t.display}` : formatted(t.format, {}));
  return 0;
};

/** undelete and destroy: a list of versions posted to that area of a KV v2 mount. */
function versionsVerb(verb: 'undelete' | 'destroy'): Command['run'] {
  return async ({ flags, args }, io) => {
    const t = await resolve(flags, args[0], io);
    requireV2(t, `kv ${verb}`);
    const path = v2Path(t, verb);
    await t.client.request('POST', path, { versions: versionsOf(flags, verb) });
    io.out(t.format === 'table' ? `Success! Data written to: ${path}` : formatted(t.format, {}));
    return 0;
  };
}

const list: Command['run'] = async ({ flags, args }, io) => {
  const t = await resolve(flags, args[0], io);
  const listPath = t.version === '2' ? v2Path(t, 'metadata') : t.display;
  const { status, body } = await t.client.request('GET', listPath.replace(/\/?$/, '/'), undefined, { allow: [404], query: { list: 'true' } });
  const keys = ((body?.data as { keys?: string[] } | undefined)?.keys ?? []) as string[];
  if (status === 404 || keys.length === 0) return notFound(io, listPath);
  io.out(t.format === 'table' ? column('Keys', keys) : formatted(t.format, keys));
  return 0;
};

/**
 * Vault's kv rollback, on the client as Vault's CLI does it: read the version asked for and write
 * its data as a new version, with check-and-set on the version that was current, so a write in
 * between makes the rollback fail rather than be overwritten.
 */
const rollback: Command['run'] = async ({ flags, args }, io) => {
  const t = await resolve(flags, args[0], io);
  requireV2(t, 'kv rollback');
  const target = flags.version as number | undefined;
  if (target === undefined || target < 1) throw new UsageError('Must specify a version to rollback to, with -version=N');
  const dataPath = v2Path(t, 'data');
  const latest = await t.client.request('GET', dataPath, undefined, { allow: [404] });
  const current = Number(((latest.body?.data as Body | null | undefined)?.metadata as Body | undefined)?.version ?? 0);
  if (!current) return notFound(io, dataPath);
  const old = await t.client.request('GET', dataPath, undefined, { allow: [404], query: { version: String(target) } });
  const oldData = old.body?.data as Body | null | undefined;
  const oldMeta = oldData?.metadata as Body | undefined;
  if (!oldMeta) throw new UsageError(`version ${target} of ${t.display} does not exist (the current version is ${current})`);
  if (oldMeta.destroyed === true) throw new UsageError(`Cannot roll back to a version that has been destroyed (version ${target})`);
  if (!oldData!.data) throw new UsageError(`Cannot roll back to a version that has been deleted (version ${target}); undelete it first`);
  const { body } = await t.client.request('POST', dataPath, { data: oldData!.data, options: { cas: current } });
  return printWritten(io, t, flags, body, dataPath);
};

const enableVersioning: Command['run'] = async ({ flags, args }, io) => {
  if (args.length !== 1) throw new UsageError('give the path of the KV mount to upgrade to version 2');
  const path = args[0]!.replace(/^\/+/, '').replace(/\/?$/, '/');
  await ApiClient.fromFlags(flags, io.env).request('POST', `sys/mounts/${path.slice(0, -1)}/tune`, { options: { version: '2' } });
  io.out(`Success! Tuned the secrets engine at: ${path}`);
  return 0;
};

const metadataGet: Command['run'] = async ({ flags, args }, io) => {
  const t = await resolve(flags, args[0], io);
  requireV2(t, 'kv metadata');
  const path = v2Path(t, 'metadata');
  const { status, body } = await t.client.request('GET', path, undefined, { allow: [404] });
  const meta = body?.data as Body | null | undefined;
  if (status === 404 || !meta) return notFound(io, path);
  if (t.format !== 'table') {
    io.out(formatted(t.format, body));
    return 0;
  }
  const { versions, ...fields } = meta;
  const byVersion = Object.entries((versions as Record<string, Body>) ?? {}).sort(([a], [b]) => Number(a) - Number(b));
  io.out(sectioned('Metadata Path', path, [['Metadata', fields], ...byVersion.map(([v, vm]): [string, Body] => [`Version ${v}`, vm])]));
  return 0;
};

const metadataPut: Command['run'] = async ({ flags, args }, io) => {
  const t = await resolve(flags, args[0], io);
  requireV2(t, 'kv metadata');
  if (args.length > 1) throw new UsageError(`unexpected argument "${args[1]}": metadata is set with flags`);
  const body: Body = {};
  if (flags['max-versions'] !== undefined) body.max_versions = flags['max-versions'];
  if (flags['cas-required'] !== undefined) body.cas_required = flags['cas-required'];
  if (flags['delete-version-after'] !== undefined) body.delete_version_after = flags['delete-version-after'];
  const custom = flags['custom-metadata'] as string[];
  if (custom.length) body.custom_metadata = Object.fromEntries(custom.map((pair) => splitPair(pair, '-custom-metadata ')));
  if (Object.keys(body).length === 0) throw new UsageError('nothing to set: give -max-versions, -cas-required, -delete-version-after or -custom-metadata');
  const path = v2Path(t, 'metadata');
  await t.client.request('POST', path, body);
  io.out(t.format === 'table' ? `Success! Data written to: ${path}` : formatted(t.format, {}));
  return 0;
};

const metadataDelete: Command['run'] = async ({ flags, args }, io) => {
  const t = await resolve(flags, args[0], io);
  requireV2(t, 'kv metadata');
  const path = v2Path(t, 'metadata');
  await t.client.request('DELETE', path);
  io.out(t.format === 'table' ? `Success! Data deleted (if it existed) at: ${path}` : formatted(t.format, {}));
  return 0;
};

function command(flags: Record<string, FlagSpec>, run: (parsed: Parsed, io: Io) => Promise<number>): Command {
  return { flags, run };
}

/** Every kv verb, by its name after "kv". */
export const kvCommands: Record<string, Command> = {
  put: command({ ...KV_FLAGS, cas: CAS, field: FIELD }, put),
  patch: command(
    {
      ...KV_FLAGS,
      cas: CAS,
      field: FIELD,
      method: { kind: 'string', help: '"patch" (an HTTP PATCH, the server merges) or "rw" (read, merge here, write back with check-and-set)', default: 'patch' },
      remove: { kind: 'list', help: 'key to remove (repeatable)' },
    },
    patch,
  ),
  get: command({ ...KV_FLAGS, version: { kind: 'int', help: 'version to read (KV v2)' }, field: FIELD }, get),
  delete: command({ ...KV_FLAGS, versions: VERSIONS }, del),
  undelete: command({ ...KV_FLAGS, versions: VERSIONS }, versionsVerb('undelete')),
  destroy: command({ ...KV_FLAGS, versions: VERSIONS }, versionsVerb('destroy')),
  list: command(KV_FLAGS, list),
  rollback: command({ ...KV_FLAGS, version: { kind: 'int', help: 'the version to roll back to' }, field: FIELD }, rollback),
  'enable-versioning': command(CLIENT_FLAGS, enableVersioning),
  'metadata get': command(KV_FLAGS, metadataGet),
  'metadata put': command(
    {
      ...KV_FLAGS,
      'max-versions': { kind: 'int', help: 'versions to keep (0: the mount\'s setting)' },
      'cas-required': { kind: 'bool', help: 'require -cas on every write of this secret' },
      'delete-version-after': { kind: 'string', help: 'delete each version this long after it is written, e.g. 720h ("0s": the mount\'s setting)' },
      'custom-metadata': { kind: 'list', help: 'key=value to keep with the secret (repeatable)' },
    },
    metadataPut,
  ),
  'metadata delete': command(KV_FLAGS, metadataDelete),
};
