// Vault's generic verbs, on any API path: read, write, list, delete.
import { ApiClient, CLIENT_FLAGS, type OutputFormat, outputFormat } from '../client.js';
import type { Command, Io } from '../command.js';
import { type FlagSpec, type FlagValues, UsageError } from '../flags.js';
import { column, formatted, show } from '../output.js';
import { parseData, printField, printWarnings, secretTable } from '../secret.js';

type Body = Record<string, unknown>;

const FIELD: FlagSpec = { kind: 'string', help: 'print only this field of the response (piped: without a newline)', default: '' };

/** The API path of an argument, as Vault's CLI takes it (a leading "/" is dropped). */
function apiPath(arg: string | undefined): string {
  const path = (arg ?? '').replace(/^\/+/, '');
  if (!path) throw new UsageError('give an API path, such as secret/app or sys/mounts');
  return path;
}

/** key=value arguments as query parameters (read and delete send their data in the URL, as Vault's CLI does). */
async function queryOf(args: string[]): Promise<Array<[string, string]>> {
  const pairs: Array<[string, string]> = [];
  for (const [k, v] of Object.entries(await parseData(args))) {
    for (const item of Array.isArray(v) ? v : [v]) pairs.push([k, typeof item === 'string' ? item : JSON.stringify(item)]);
  }
  return pairs;
}

/**
 * A response that may carry nothing (204): Vault's CLI says `success` (if any) in table format and
 * prints nothing otherwise; with data it prints the data (or the one field asked for).
 */
function printResponse(io: Io, flags: FlagValues, format: OutputFormat, body: Body | undefined, success: string): number {
  const field = flags.field as string;
  if (!body) {
    if (field) {
      io.err(`Field "${field}" not present in secret`);
      return 1;
    }
    if (format === 'table') io.out(success);
    return 0;
  }
  if (field) return printField(io, format, body, body.data as Body | null, field);
  if (format !== 'table') {
    io.out(formatted(format, body));
    return 0;
  }
  const rows = secretTable(body) ?? success;
  if (rows) io.out(rows);
  printWarnings(io, body);
  return 0;
}

export const readCommand: Command = {
  flags: { ...CLIENT_FLAGS, field: FIELD },
  async run({ flags, args }, io) {
    const path = apiPath(args[0]);
    const format = outputFormat(flags, io.env);
    const client = ApiClient.fromFlags(flags, io.env);
    const { status, body } = await client.request('GET', path, undefined, { allow: [404], query: await queryOf(args.slice(1)) });
    // A 404 with data (a deleted KV v2 version's metadata) is still an answer, as in Vault.
    const data = body?.data as Body | null | undefined;
    if (!body || (status === 404 && (!data || Object.keys(data).length === 0))) {
      const errors = Array.isArray(body?.errors) ? (body.errors as unknown[]).map((e) => `\n* ${String(e)}`).join('') : '';
      io.err(`No value found at ${path}${errors}`);
      return 2;
    }
    return printResponse(io, flags, format, body, '');
  },
};

export const writeCommand: Command = {
  flags: {
    ...CLIENT_FLAGS,
    field: FIELD,
    force: { kind: 'bool', help: 'write even with no data', default: false },
    f: { kind: 'bool', help: 'same as -force', default: false },
  },
  async run({ flags, args }, io) {
    const path = apiPath(args[0]);
    const format = outputFormat(flags, io.env);
    const data = await parseData(args.slice(1));
    if (Object.keys(data).length === 0 && !flags.force && !flags.f) throw new UsageError('Must supply data (key=value, "-" or @file.json) or use -force');
    const { body } = await ApiClient.fromFlags(flags, io.env).request('PUT', path, data);
    return printResponse(io, flags, format, body, `Success! Data written to: ${path}`);
  },
};

export const listCommand: Command = {
  flags: CLIENT_FLAGS,
  async run({ flags, args }, io) {
    if (args.length !== 1) throw new UsageError('give exactly one path to list');
    const path = apiPath(args[0]).replace(/\/?$/, '/');
    const format = outputFormat(flags, io.env);
    const { status, body } = await ApiClient.fromFlags(flags, io.env).request('GET', path, undefined, { allow: [404], query: { list: 'true' } });
    const keys = (body?.data as { keys?: unknown } | undefined)?.keys;
    if (status === 404 || !Array.isArray(keys) || keys.length === 0) {
      io.err(`No value found at ${path}`);
      return 2;
    }
    io.out(format === 'table' ? column('Keys', keys.map(show)) : formatted(format, keys));
    return 0;
  },
};

export const deleteCommand: Command = {
  flags: CLIENT_FLAGS,
  async run({ flags, args }, io) {
    const path = apiPath(args[0]);
    const format = outputFormat(flags, io.env);
    const { body } = await ApiClient.fromFlags(flags, io.env).request('DELETE', path, undefined, { query: await queryOf(args.slice(1)) });
    return printResponse(io, flags, format, body, `Success! Data deleted (if it existed) at: ${path}`);
  },
};
