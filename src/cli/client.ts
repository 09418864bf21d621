// The HTTP client every client verb uses, on node:http(s) alone: a CLI command loads nothing it
// does not need (undici, fetch's implementation, costs more to load than a whole `kv get`).
import { type IncomingMessage, request as httpRequest, type RequestOptions as HttpRequestOptions } from 'node:http';
import type { FlagValues } from './flags.js';
import { UsageError } from './flags.js';
import { type ClientSettings, clientSettings } from './settings.js';

export { CLIENT_FLAGS, tokenFile } from './settings.js';

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

/**
 * The server wrapped the response (-wrap-ttl): what the command would have printed is in a
 * cubbyhole behind a wrapping token. main() prints the wrapping token's details instead.
 */
export class WrappedResponse extends Error {
  override readonly name = 'WrappedResponse';
  constructor(readonly body: Record<string, unknown>) {
    super('the response is wrapped');
  }
}

/** -output-curl-string: the request as a curl command, printed by main() in place of sending it. */
export class CurlOutput extends Error {
  override readonly name = 'CurlOutput';
  constructor(readonly command: string) {
    super(command);
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

export interface RequestOptions {
  /** Error statuses to return rather than throw (404 where "nothing there" is an answer). */
  allow?: number[];
  /** Query parameters, kept apart from the path so that nothing in a path can turn into one; pairs may repeat a name. */
  query?: Record<string, string> | Array<[string, string]>;
  /** Content type of the body (JSON by default; a KV v2 patch sends a JSON merge patch). */
  contentType?: string;
  /**
   * A lookup the command makes before its own request (which KV version a mount is): never
   * wrapped, and sent even with -output-curl-string, whose command is the request that follows.
   */
  preflight?: boolean;
  /** The caller handles a wrapped answer itself (login unwraps a wrapped token) rather than having it printed. */
  acceptWrapped?: boolean;
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

/** The request as Vault's CLI prints it for -output-curl-string: the token as a command that prints it, never itself. */
function curlCommand(method: string, url: string, headers: Record<string, string>, payload: Buffer | undefined): string {
  const parts = ['curl', '-X', method];
  for (const [name, value] of Object.entries(headers)) {
    if (name === 'Content-Length') continue;
    parts.push('-H', `"${name}: ${name === 'X-Vault-Token' ? '$(keyward print token)' : value}"`);
  }
  if (payload) parts.push('-d', `'${payload.toString('utf8').replaceAll("'", `'"'"'`)}'`);
  parts.push(url);
  return parts.join(' ');
}

/** Vault's client retries (when VAULT_MAX_RETRIES allows) on 412 and 5xx but 501. */
function retryable(status: number): boolean {
  return status === 412 || (status >= 500 && status !== 501);
}

interface RawResponse {
  status: number;
  text: string;
  location: string | undefined;
}

/** A small client for keyward's (and Vault's) HTTP API. */
export class ApiClient {
  constructor(private readonly settings: ClientSettings) {}

  get address(): string {
    return this.settings.address;
  }

  static fromFlags(flags: FlagValues, env: NodeJS.ProcessEnv = process.env): ApiClient {
    return new ApiClient(clientSettings(flags, env));
  }

  /**
   * The same client sending another token (login checks a token, unwrap sends a wrapping token);
   * `wrap` false: its answers are never wrapped (what unwraps a token must not wrap it again).
   */
  withToken(token: string | undefined, wrap = true): ApiClient {
    return new ApiClient({ ...this.settings, token, wrapTtl: wrap ? this.settings.wrapTtl : undefined });
  }

  get token(): string | undefined {
    return this.settings.token;
  }

  get hasClientCertificate(): boolean {
    return this.settings.tls.cert !== undefined;
  }

  /** `path` is the API path as text (below /v1/, unencoded): every verb's URL is built here. */
  async request(method: string, path: string, body?: unknown, options: RequestOptions = {}): Promise<ApiResponse> {
    const { allow = [], query, contentType = 'application/json', preflight = false } = options;
    const url = apiUrl(this.address, path, query);
    const headers: Record<string, string> = {};
    if (this.settings.token) headers['X-Vault-Token'] = this.settings.token;
    if (this.settings.wrapTtl && !preflight) headers['X-Vault-Wrap-TTL'] = String(this.settings.wrapTtl);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (payload) {
      headers['Content-Type'] = contentType;
      headers['Content-Length'] = String(payload.length);
    }
    if (this.settings.curl && !preflight) throw new CurlOutput(curlCommand(method, url, headers, payload));
    const res = await this.exchange(method, url, headers, payload);
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
    if (res.status === 307) {
      throw new Error(`${method} ${url}: the server redirected the request to ${res.location ?? '(no address)'}, and redirects are disabled (VAULT_DISABLE_REDIRECTS)`);
    }
    if (parsed?.wrap_info && !options.acceptWrapped) throw new WrappedResponse(parsed);
    return { status: res.status, body: parsed };
  }

  /** Sends the request, following a standby's 307 to the active node and retrying as VAULT_MAX_RETRIES allows. */
  private async exchange(method: string, url: string, headers: Record<string, string>, payload: Buffer | undefined): Promise<RawResponse> {
    let target = url;
    for (let attempt = 0, hops = 0; ; attempt++) {
      let res: RawResponse;
      try {
        res = await this.send(target, { method, headers }, payload);
      } catch (err) {
        if (attempt < this.settings.maxRetries) {
          await backoff(attempt);
          continue;
        }
        throw new Error(`cannot reach ${this.address}: ${(err as Error).message}`);
      }
      if (res.status === 307 && res.location && this.settings.followRedirects && hops < 3) {
        hops++;
        target = new URL(res.location, target).href;
        attempt--;
        continue;
      }
      if (retryable(res.status) && attempt < this.settings.maxRetries) {
        await backoff(attempt);
        continue;
      }
      return res;
    }
  }

  private async send(url: string, options: HttpRequestOptions, payload: Buffer | undefined): Promise<RawResponse> {
    const target = new URL(url);
    const { tls, timeoutMs } = this.settings;
    // node:https (and with it TLS) is loaded only for an https address.
    const request = target.protocol === 'https:' ? (await import('node:https')).request : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(target, { ...options, ...tls }, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), location: res.headers.location }));
        res.on('error', reject);
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs / 1000}s (VAULT_CLIENT_TIMEOUT)`)));
      req.on('error', reject);
      req.end(payload);
    });
  }
}

/** Vault's client waits 1 to 1.5 s between retries. */
function backoff(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.min(1000 * 2 ** attempt, 1500)));
}
