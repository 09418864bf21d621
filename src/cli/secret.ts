// What Vault's generic verbs share: request data from arguments, and a response printed as a
// table, as JSON or YAML, or one field of it.
import { readFile } from 'node:fs/promises';
import type { OutputFormat } from './client.js';
import type { Io } from './command.js';
import { UsageError } from './flags.js';
import { duration, formatted, show, table } from './output.js';

type Body = Record<string, unknown>;

let stdinTaken = false;

/** Standard input as text; a second "-" is refused, as Vault's CLI refuses it. */
export async function readStdin(): Promise<string> {
  if (stdinTaken) throw new UsageError('standard input can be read only once: "-" was given twice');
  stdinTaken = true;
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function readFileArg(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
}

function jsonObject(text: string, source: string): Body {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${source} is not valid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new UsageError(`${source} must hold a JSON object`);
  return value as Body;
}

/**
 * Request data from arguments, as Vault's CLI builds it: `key=value`; `key=@file` (the file's
 * contents as they are); `key=-` (standard input); `key=\@x` (the text "@x"); a lone `-` (a JSON
 * object on standard input) or `@file.json` (a JSON object in a file), merged in. A key given
 * twice becomes a list.
 */
export async function parseData(args: readonly string[]): Promise<Body> {
  const data: Body = {};
  for (const arg of args) {
    if (arg === '') continue;
    const eq = arg.indexOf('=');
    if (eq === -1) {
      if (arg === '-') Object.assign(data, jsonObject(await readStdin(), 'standard input'));
      else if (arg.startsWith('@')) Object.assign(data, jsonObject(await readFileArg(arg.slice(1)), arg.slice(1)));
      else throw new UsageError(`"${arg}" is not key=value (nor "-" or @file.json for a JSON object)`);
      continue;
    }
    if (eq === 0) throw new UsageError(`"${arg}" has no key before "="`);
    const key = arg.slice(0, eq);
    let value = arg.slice(eq + 1);
    if (value.startsWith('@')) value = await readFileArg(value.slice(1));
    else if (value.startsWith('\\@')) value = value.slice(1);
    else if (value === '-') value = await readStdin();
    const existing = data[key];
    data[key] = existing === undefined ? value : [...(Array.isArray(existing) ? existing : [existing]), value];
  }
  return data;
}

/** The name `-field` and the table give each field of a token (a response's `auth`), as Vault's CLI does. */
function authFields(auth: Body): Array<[string, unknown]> {
  const rows: Array<[string, unknown]> = [
    ['token', auth.client_token],
    ['token_accessor', auth.accessor],
    ['token_duration', auth.lease_duration === 0 ? '∞' : duration(Number(auth.lease_duration))],
    ['token_renewable', auth.renewable],
    ['token_policies', auth.token_policies],
    ['identity_policies', auth.identity_policies ?? []],
    ['policies', auth.policies],
  ];
  for (const [k, v] of Object.entries((auth.metadata as Body | null) ?? {})) rows.push([`token_meta_${k}`, v]);
  return rows;
}

/** The fields of a wrapped response's `wrap_info`, by the names `-field` takes (Vault's). */
function wrapFields(wrap: Body): Array<[string, unknown]> {
  const rows: Array<[string, unknown]> = [
    ['wrapping_token', wrap.token],
    ['wrapping_accessor', wrap.accessor],
    ['wrapping_token_ttl', duration(Number(wrap.ttl ?? 0))],
    ['wrapping_token_creation_time', wrap.creation_time],
    ['wrapping_token_creation_path', wrap.creation_path],
  ];
  if (wrap.wrapped_accessor) rows.push(['wrapped_accessor', wrap.wrapped_accessor]);
  return rows;
}

/** Vault's table of a response: its lease (or refresh interval), its token, its wrapping token, then its data fields sorted. */
export function secretTable(body: Body): string | undefined {
  const rows: Array<[string, unknown]> = [];
  const lease = Number(body.lease_duration ?? 0);
  if (lease > 0) {
    if (body.lease_id) rows.push(['lease_id', body.lease_id], ['lease_duration', duration(lease)], ['lease_renewable', body.renewable]);
    else rows.push(['refresh_interval', duration(lease)]);
  }
  if (body.auth && typeof body.auth === 'object') rows.push(...authFields(body.auth as Body));
  // Vault's CLI writes these names with a colon ("wrapping_token:"), and so does this table.
  if (body.wrap_info && typeof body.wrap_info === 'object') rows.push(...wrapFields(body.wrap_info as Body).map(([k, v]): [string, unknown] => [`${k}:`, v]));
  const data = (body.data as Body | null) ?? {};
  for (const k of Object.keys(data).sort()) rows.push([k, data[k]]);
  return rows.length ? table(rows) : undefined;
}

/** Prints the response's warnings to standard error, as Vault's CLI does in table format. */
export function printWarnings(io: Io, body: Body | undefined): void {
  const warnings = body?.warnings;
  if (!Array.isArray(warnings) || warnings.length === 0) return;
  io.err(`WARNING! The following warnings were returned from keyward:\n\n${warnings.map((w) => `  * ${String(w)}`).join('\n')}\n`);
}

/**
 * `-field=NAME`: that field of the response's data (for a token response, of its auth, and for a
 * wrapped one, of its wrap_info, by the names the table shows), printed alone and, piped, without
 * a newline. Exit 1 when absent.
 */
export function printField(io: Io, format: OutputFormat, body: Body, data: Body | null | undefined, name: string): number {
  let value = data?.[name];
  if (body.auth && typeof body.auth === 'object') {
    const fromAuth = authFields(body.auth as Body).find(([k]) => k === name);
    if (fromAuth) value = fromAuth[1];
  }
  if (body.wrap_info && typeof body.wrap_info === 'object') {
    const fromWrap = wrapFields(body.wrap_info as Body).find(([k]) => k === name);
    if (fromWrap) value = name === 'wrapping_token_ttl' ? (body.wrap_info as Body).ttl : fromWrap[1];
  }
  if (value === undefined || value === null) {
    io.err(`Field "${name}" not present in secret`);
    return 1;
  }
  io.raw(format === 'table' ? show(value) : formatted(format, value));
  return 0;
}

/** A response as `read` prints it: one field, the whole response as JSON or YAML, or Vault's table and warnings. */
export function printSecret(io: Io, format: OutputFormat, field: string | undefined, body: Body): number {
  if (field) return printField(io, format, body, body.data as Body | null, field);
  if (format !== 'table') {
    io.out(formatted(format, body));
    return 0;
  }
  const rows = secretTable(body);
  if (rows) io.out(rows);
  printWarnings(io, body);
  return 0;
}
