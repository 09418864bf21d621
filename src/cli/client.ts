// The HTTP client every client verb uses, on node:http(s) alone: a CLI command loads nothing it
// does not need (undici, fetch's implementation, costs more to load than a whole `kv get`).
import { readFileSync } from 'node:fs';
import { type IncomingMessage, request as httpRequest, type RequestOptions as HttpRequestOptions } from 'node:http';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { FlagSpec, FlagValues } from './flags.js';
import { UsageError } from './flags.js';

/** Flags every command that talks to a server accepts. */
export const CLIENT_FLAGS: Record<string, FlagSpec> = {
  address: { kind: 'string', help: 'server address; env KEYWARD_ADDR or VAULT_ADDR', default: '' },
  format: { kind: 'string', help: 'output format: table, json or yaml; env KEYWARD_FORMAT or VAULT_FORMAT', default: '' },
  'ca-cert': { kind: 'string', help: 'PEM file of the CA that signed the server certificate; env KEYWARD_CACERT or VAULT_CACERT', default: '' },
  'tls-skip-verify': { kind: 'bool', help: 'do not verify the server certificate (testing only); env KEYWARD_SKIP_VERIFY', default: false },
  'wrap-ttl': { kind: 'string', help: 'not supported: keyward does not wrap responses (refused rather than ignored); env VAULT_WRAP_TTL likewise', default: '' },
  namespace: { kind: 'string', help: 'only "root": keyward has one namespace (any other is refused rather than ignored); env VAULT_NAMESPACE likewise', default: '' },
};

/** The names a request for Vault's root namespace may give it. */
const ROOT_NAMESPACE = new Set(['', 'root', 'root/', '/']);

/** The server answered with an error status; `errors` are its messages. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly method: string,
    readonly url: string,
    readonly status: number,
    readonly errors: string[],
  ) {
    super(`Error making API request.\n\nURL: ${method} ${url}\nCode: ${status}. Errors:\n\n${errors.map((e) => `* ${e}`).join('\n') || '* (none)'}`);
  }
}

export interface ApiResponse {
  status: number;
  body: Record<string, unknown> | undefined;
}

export type OutputFormat = 'table' | 'json' | 'yaml';

export function outputFormat(flags: FlagValues, env: NodeJS.ProcessEnv = process.env): OutputFormat {
  const f = (flags.format as string) || env.KEYWARD_FORMAT || env.VAULT_FORMAT || 'table';
  if (f !== 'table' && f !== 'json' && f !== 'yaml') throw new UsageError(`-format must be "table", "json" or "yaml", not "${f}"`);
  return f;
}

/** Where `keyward login` keeps the token (Vault keeps its own in ~/.vault-token). */
export function tokenFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.HOME || homedir(), '.keyward-token');
}

function isTrue(v: string | undefined): boolean {
  return v === '1' || v === 'true';
}

function storedToken(env: NodeJS.ProcessEnv): string | undefined {
  try {
    return readFileSync(tokenFile(env), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export interface RequestOptions {
  /** Error statuses to return rather than throw (404 where "nothing there" is an answer). */
  allow?: number[];
  /** Query parameters, kept apart from the path so that nothing in a path can turn into one; pairs may repeat a name. */
  query?: Record<string, string> | Array<[string, string]>;
  /** Content type of the body (JSON by default; a KV v2 patch sends a JSON merge patch). */
  contentType?: string;
}

function encodeSegment(segment: string, path: string): string {
  try {
    return encodeURIComponent(segment);
  } catch {
    throw new UsageError(`path "${path}" is not valid Unicode`);
  }
}

/**
 * The URL of an API path. Each `/`-separated segment is percent-encoded, so `#`, `?`, `%` and the
 * like stay part of the path: `secret/app#old` must reach the server as that key, never as
 * `secret/app`. The server decodes each segment back (decodeURIComponent).
 */
export function apiUrl(address: string, path: string, query: Record<string, string> | Array<[string, string]> = {}): string {
  const segments = path.split('/');
  // URLs resolve "." and ".." segments away (`secret/../sys/seal` is `sys/seal`), encoded or not,
  // so such a path cannot be sent as given; no storage key has them anyway.
  if (segments.some((s) => s === '.' || s === '..')) throw new UsageError(`path "${path}" has a "." or ".." segment`);
  const search = new URLSearchParams(query).toString();
  return `${address}/v1/${segments.map((s) => encodeSegment(s, path)).join('/')}${search ? `?${search}` : ''}`;
}

/** TLS settings for an https address: a CA file, or no verification at all. */
interface Tls {
  ca?: string;
  rejectUnauthorized: boolean;
}

/** A small client for keyward's (and Vault's) HTTP API. */
export class ApiClient {
  constructor(
    readonly address: string,
    private readonly token: string | undefined,
    private readonly tls: Tls = { rejectUnauthorized: true },
  ) {}

  static fromFlags(flags: FlagValues, env: NodeJS.ProcessEnv = process.env): ApiClient {
    // Response wrapping would hand back a wrapping token instead of the secret: a caller asking
    // for it must not get the secret in clear, so it is refused until it is implemented.
    if (flags['wrap-ttl'] || env.VAULT_WRAP_TTL) {
      throw new UsageError(`response wrapping (${flags['wrap-ttl'] ? '-wrap-ttl' : 'VAULT_WRAP_TTL'}) is not supported by keyward: the response would carry the secret in clear; leave it out`);
    }
    // Another namespace would read the root namespace's data under a name that says otherwise.
    const namespace = (flags.namespace as string) || env.KEYWARD_NAMESPACE || env.VAULT_NAMESPACE || '';
    if (!ROOT_NAMESPACE.has(namespace)) {
      const given = flags.namespace ? '-namespace' : env.KEYWARD_NAMESPACE ? 'KEYWARD_NAMESPACE' : 'VAULT_NAMESPACE';
      throw new UsageError(`namespace "${namespace}" (${given}) does not exist: keyward has one namespace, the root; leave it out or give "root"`);
    }
    const address = ((flags.address as string) || env.KEYWARD_ADDR || env.VAULT_ADDR || 'https://127.0.0.1:8200').replace(/\/+$/, '');
    if (!/^https?:\/\//.test(address)) throw new UsageError(`address "${address}" must start with http:// or https://`);
    const caFile = (flags['ca-cert'] as string) || env.KEYWARD_CACERT || env.VAULT_CACERT;
    const skipVerify = flags['tls-skip-verify'] === true || isTrue(env.KEYWARD_SKIP_VERIFY) || isTrue(env.VAULT_SKIP_VERIFY);
    let ca: string | undefined;
    if (caFile) {
      try {
        ca = readFileSync(caFile, 'utf8');
      } catch (err) {
        throw new UsageError(`cannot read CA certificate ${caFile}: ${(err as Error).message}`);
      }
    }
    return new ApiClient(address, env.KEYWARD_TOKEN || env.VAULT_TOKEN || storedToken(env), { ca, rejectUnauthorized: !skipVerify });
  }

  /** `path` is the API path as text (below /v1/, unencoded): every verb's URL is built here. */
  async request(method: string, path: string, body?: unknown, { allow = [], query, contentType = 'application/json' }: RequestOptions = {}): Promise<ApiResponse> {
    const url = apiUrl(this.address, path, query);
    const headers: Record<string, string> = {};
    if (this.token) headers['X-Vault-Token'] = this.token;
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (payload) {
      headers['Content-Type'] = contentType;
      headers['Content-Length'] = String(payload.length);
    }
    let res: { status: number; text: string };
    try {
      res = await this.send(url, { method, headers }, payload);
    } catch (err) {
      throw new Error(`cannot reach ${this.address}: ${(err as Error).message}`);
    }
    let parsed: Record<string, unknown> | undefined;
    if (res.text) {
      try {
        parsed = JSON.parse(res.text) as Record<string, unknown>;
      } catch {
        throw new Error(`${method} ${url}: the server answered ${res.status} with a body that is not JSON`);
      }
    }
    if (res.status >= 400 && !allow.includes(res.status)) {
      const errors = Array.isArray(parsed?.errors) ? (parsed.errors as unknown[]).map(String) : [];
      throw new ApiError(method, url, res.status, errors);
    }
    return { status: res.status, body: parsed };
  }

  private async send(url: string, options: HttpRequestOptions, payload: Buffer | undefined): Promise<{ status: number; text: string }> {
    const target = new URL(url);
    // node:https (and with it TLS) is loaded only for an https address.
    const request = target.protocol === 'https:' ? (await import('node:https')).request : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(target, { ...options, ca: this.tls.ca, rejectUnauthorized: this.tls.rejectUnauthorized }, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(payload);
    });
  }
}
