import { readFile } from 'node:fs/promises';
import { ApiClient, CLIENT_FLAGS, outputFormat, type OutputFormat } from '../client.js';
import type { Command, Io } from '../command.js';
import { type FlagValues, splitPair, UsageError } from '../flags.js';
import { column, json, table } from '../output.js';

const KV_FLAGS = {
  ...CLIENT_FLAGS,
  mount: { kind: 'string' as const, help: 'mount path of the KV engine; the path argument is then relative to it', default: '' },
};

interface KvTarget {
  client: ApiClient;
  format: OutputFormat;
  display: string;
  version: '1' | '2';
  /** Path to the data API: `mount/rest` for v1, `mount/data/rest` for v2. */
  dataPath: string;
  /** Path for lists: `mount/rest` for v1, `mount/metadata/rest` for v2. */
  listPath: string;
}

/** Finds the mount serving the path and whether it is KV v1 or v2, as Vault's CLI does. */
async function resolve(flags: FlagValues, pathArg: string | undefined, io: Io): Promise<KvTarget> {
  if (!pathArg) throw new UsageError('a path is required');
  const format = outputFormat(flags, io.env);
  const client = ApiClient.fromFlags(flags, io.env);
  const mountFlag = (flags.mount as string).replace(/^\/+|\/+$/g, '');
  const full = (mountFlag ? `${mountFlag}/${pathArg}` : pathArg).replace(/^\/+/, '');
  const { body } = await client.request('GET', `sys/internal/ui/mounts/${full}`);
  const mount = (body?.data as { path: string; options?: { version?: string } }) ?? { path: '' };
  const rest = full.slice(mount.path.length);
  const version = mount.options?.version === '2' ? '2' : '1';
  return {
    client,
    format,
    display: full,
    version,
    dataPath: version === '2' ? `${mount.path}data/${rest}` : full,
    listPath: version === '2' ? `${mount.path}metadata/${rest}` : full,
  };
}

async function parsePairs(pairs: string[]): Promise<Record<string, unknown>> {
  if (pairs.length === 0) throw new UsageError('Must supply data (key=value pairs)');
  if (pairs.length === 1 && pairs[0] === '-') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
  }
  const data: Record<string, unknown> = {};
  for (const pair of pairs) {
    const [key, value] = splitPair(pair);
    data[key] = value.startsWith('@') ? (await readFile(value.slice(1), 'utf8')).replace(/\n$/, '') : value;
  }
  return data;
}

function dataTable(data: Record<string, unknown>): string {
  return table(Object.keys(data).sort().map((k) => [k, data[k]] as const));
}

const put: Command['run'] = async ({ flags, args }, io) => {
  const t = await resolve(flags, args[0], io);
  const data = await parsePairs(args.slice(1));
  if (t.version === '1') {
    await t.client.request('PUT', t.dataPath, data);
    io.out(t.format === 'json' ? json({}) : `Success! Data written to: ${t.display}`);
    return 0;
  }
  const { body } = await t.client.request('POST', t.dataPath, { data });
  const meta = (body?.data as Record<string, unknown>) ?? {};
  io.out(t.format === 'json' ? json(body) : `== Secret Path ==\n${t.dataPath}\n\n======= Metadata =======\n${dataTable(meta)}`);
  return 0;
};

const get: Command['run'] = async ({ flags, args }, io) => {
  const t = await resolve(flags, args[0], io);
  const version = flags.version as number | undefined;
  const { status, body } = await t.client.request('GET', t.dataPath, undefined, { allow: [404], query: version ? { version: String(version) } : {} });
  const payload = body?.data as Record<string, unknown> | null | undefined;
  const data = t.version === '2' ? (payload?.data as Record<string, unknown> | null | undefined) : payload;
  if (status === 404 || !data) {
    io.err(`No value found at ${t.dataPath}`);
    return 2;
  }
  if (t.format === 'json') io.out(json(body));
  else if (t.version === '1') io.out(dataTable(data));
  else io.out(`== Secret Path ==\n${t.dataPath}\n\n======= Metadata =======\n${dataTable((payload!.metadata as Record<string, unknown>) ?? {})}\n\n====== Data ======\n${dataTable(data)}`);
  return 0;
};

const del: Command['run'] = async ({ flags, args }, io) => {
  const t = await resolve(flags, args[0], io);
  await t.client.request('DELETE', t.dataPath);
  io.out(t.format === 'json' ? json({}) : `Success! Data deleted (if it existed) at: ${t.display}`);
  return 0;
};

const list: Command['run'] = async ({ flags, args }, io) => {
  const t = await resolve(flags, args[0], io);
  const { status, body } = await t.client.request('GET', t.listPath.replace(/\/?$/, '/'), undefined, { allow: [404], query: { list: 'true' } });
  const keys = ((body?.data as { keys?: string[] } | undefined)?.keys ?? []) as string[];
  if (status === 404 || keys.length === 0) {
    io.err(`No value found at ${t.listPath}`);
    return 2;
  }
  io.out(t.format === 'json' ? json(keys) : column('Keys', keys));
  return 0;
};

export const kvCommands: Command[] = [
  { name: 'kv put', synopsis: 'Write key=value pairs to a secret (KEY=@file reads a file, "-" reads JSON from stdin)', flags: KV_FLAGS, run: put },
  {
    name: 'kv get',
    synopsis: 'Read a secret (exit 2 when none)',
    flags: { ...KV_FLAGS, version: { kind: 'int', help: 'version to read (KV v2)' } },
    run: get,
  },
  { name: 'kv delete', synopsis: 'Delete a secret (KV v2: its latest version, which undelete can restore)', flags: KV_FLAGS, run: del },
  { name: 'kv list', synopsis: 'List the keys under a path (exit 2 when none)', flags: KV_FLAGS, run: list },
];
