// How a client command reaches the server: its flags, then KEYWARD_* and VAULT_* variables, as
// Vault's CLI reads them. Every VAULT_* variable Vault's CLI documents is either honoured here or
// refused with a reason: a variable that would be ignored could make a command do something else
// than its caller meant (talk in clear, skip MFA, bypass a proxy).
import { readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { type FlagSpec, type FlagValues, UsageError } from './flags.js';

/** Flags every command that talks to a server accepts (Vault's "HTTP Options"). */
export const CLIENT_FLAGS: Record<string, FlagSpec> = {
  address: { kind: 'string', help: 'server address; env KEYWARD_ADDR or VAULT_ADDR (VAULT_AGENT_ADDR before it)', default: '' },
  format: { kind: 'string', help: 'output format: table, json or yaml; env KEYWARD_FORMAT or VAULT_FORMAT', default: '' },
  'ca-cert': { kind: 'string', help: 'PEM file of the CA that signed the server certificate; env KEYWARD_CACERT or VAULT_CACERT (VAULT_CACERT_BYTES: the PEM itself)', default: '' },
  'ca-path': { kind: 'string', help: 'directory of PEM CA certificates (when -ca-cert is not given); env KEYWARD_CAPATH or VAULT_CAPATH', default: '' },
  'client-cert': { kind: 'string', help: 'PEM client certificate for TLS (with -client-key); env KEYWARD_CLIENT_CERT or VAULT_CLIENT_CERT', default: '' },
  'client-key': { kind: 'string', help: 'PEM private key of -client-cert; env KEYWARD_CLIENT_KEY or VAULT_CLIENT_KEY', default: '' },
  'tls-server-name': { kind: 'string', help: 'name to send as SNI and check in the server certificate; env KEYWARD_TLS_SERVER_NAME or VAULT_TLS_SERVER_NAME', default: '' },
  'tls-skip-verify': { kind: 'bool', help: 'do not verify the server certificate (testing only); env KEYWARD_SKIP_VERIFY or VAULT_SKIP_VERIFY', default: false },
  'wrap-ttl': { kind: 'string', help: 'wrap the response in a single-use token living this long (e.g. 5m); "keyward unwrap" gives it back; env KEYWARD_WRAP_TTL or VAULT_WRAP_TTL', default: '' },
  namespace: { kind: 'string', help: 'only "root": keyward has one namespace (any other is refused rather than ignored); env KEYWARD_NAMESPACE or VAULT_NAMESPACE', default: '' },
  'non-interactive': { kind: 'bool', help: 'never prompt: fail where a prompt would be needed', default: false },
  'output-curl-string': { kind: 'bool', help: 'print the equivalent curl command (the token as $(keyward print token)) and exit without sending it', default: false },
};

/** VAULT_* variables of Vault's CLI that keyward's does not offer, with why, so that setting one fails rather than being ignored. */
const REFUSED_ENV: Record<string, string> = {
  VAULT_MFA: 'keyward has no multi-factor authentication',
  VAULT_SRV_LOOKUP: 'keyward\'s CLI does not look up DNS SRV records; give the address in KEYWARD_ADDR or VAULT_ADDR',
  VAULT_HTTP_PROXY: 'keyward\'s CLI does not go through an HTTP proxy',
  VAULT_PROXY_ADDR: 'keyward\'s CLI does not go through an HTTP proxy',
  VAULT_RATE_LIMIT: 'keyward\'s CLI has no client-side rate limit',
  VAULT_CONFIG_PATH: 'keyward\'s CLI reads no configuration file (and runs no external token helper)',
};

/** The names a request for Vault's root namespace may give it. */
const ROOT_NAMESPACE = new Set(['', 'root', 'root/', '/']);

/** Vault's CLI gives up on a request after a minute unless VAULT_CLIENT_TIMEOUT says otherwise. */
const DEFAULT_TIMEOUT_SECONDS = 60;

export interface TlsSettings {
  ca?: string | string[];
  cert?: string;
  key?: string;
  servername?: string;
  rejectUnauthorized: boolean;
}

export interface ClientSettings {
  address: string;
  token: string | undefined;
  tls: TlsSettings;
  /** X-Vault-Wrap-TTL in seconds, or undefined: no wrapping. */
  wrapTtl: number | undefined;
  /** -output-curl-string: print the request instead of sending it. */
  curl: boolean;
  maxRetries: number;
  timeoutMs: number;
  followRedirects: boolean;
}

/** Where `keyward login` keeps the token (Vault keeps its own in ~/.vault-token). */
export function tokenFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.HOME || homedir(), '.keyward-token');
}

export function storedToken(env: NodeJS.ProcessEnv): string | undefined {
  try {
    return readFileSync(tokenFile(env), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The token a command would send: KEYWARD_TOKEN, VAULT_TOKEN, then the one `keyward login` stored. */
export function currentToken(env: NodeJS.ProcessEnv): string | undefined {
  return env.KEYWARD_TOKEN || env.VAULT_TOKEN || storedToken(env);
}

/** A setting from KEYWARD_<name>, else VAULT_<name>, with the variable it came from (for messages). */
function fromEnv(env: NodeJS.ProcessEnv, name: string): { value: string; source: string } | undefined {
  for (const prefix of ['KEYWARD_', 'VAULT_']) {
    const value = env[prefix + name];
    if (value) return { value, source: prefix + name };
  }
  return undefined;
}

/** A flag's value, else the variable's, with where it came from. */
function setting(flags: FlagValues, flag: string, env: NodeJS.ProcessEnv, name: string): { value: string; source: string } | undefined {
  const given = flags[flag];
  if (typeof given === 'string' && given) return { value: given, source: `-${flag}` };
  return fromEnv(env, name);
}

function isTrue(v: string | undefined): boolean {
  return v !== undefined && /^(1|t|true)$/i.test(v);
}

/** Vault's durations on the command line: seconds as digits, or Go's "5m", "1h30m", "90s". */
export function durationSeconds(text: string, source: string): number {
  if (/^\d+$/.test(text)) return Number(text);
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
  if (!m || text === '') throw new UsageError(`${source} takes a duration such as "5m", "1h" or a number of seconds, not "${text}"`);
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

function readPem(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${what} ${file}: ${(err as Error).message}`);
  }
}

/** The CA certificates to trust: -ca-cert, -ca-path, then VAULT_CACERT_BYTES, VAULT_CACERT, VAULT_CAPATH (Vault's order). */
function caOf(flags: FlagValues, env: NodeJS.ProcessEnv): string | string[] | undefined {
  const caPath = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => /\.(pem|crt|cer)$/i.test(n));
    } catch (err) {
      throw new UsageError(`cannot read CA directory ${dir}: ${(err as Error).message}`);
    }
    if (names.length === 0) throw new UsageError(`CA directory ${dir} holds no .pem, .crt or .cer file`);
    return names.map((n) => readPem(join(dir, n), 'CA certificate'));
  };
  if (flags['ca-cert']) return readPem(flags['ca-cert'] as string, 'CA certificate');
  if (flags['ca-path']) return caPath(flags['ca-path'] as string);
  const bytes = fromEnv(env, 'CACERT_BYTES');
  if (bytes) return bytes.value;
  const file = fromEnv(env, 'CACERT');
  if (file) return readPem(file.value, 'CA certificate');
  const dir = fromEnv(env, 'CAPATH');
  return dir ? caPath(dir.value) : undefined;
}

function tlsOf(flags: FlagValues, env: NodeJS.ProcessEnv): TlsSettings {
  const cert = setting(flags, 'client-cert', env, 'CLIENT_CERT');
  const key = setting(flags, 'client-key', env, 'CLIENT_KEY');
  if (cert && !key) throw new UsageError(`a client certificate needs its key: ${cert.source} is given but not -client-key (nor KEYWARD_CLIENT_KEY, VAULT_CLIENT_KEY)`);
  if (key && !cert) throw new UsageError(`a client certificate needs its key: ${key.source} is given but not -client-cert (nor KEYWARD_CLIENT_CERT, VAULT_CLIENT_CERT)`);
  return {
    ca: caOf(flags, env),
    cert: cert && readPem(cert.value, 'client certificate'),
    key: key && readPem(key.value, 'client key'),
    servername: setting(flags, 'tls-server-name', env, 'TLS_SERVER_NAME')?.value,
    rejectUnauthorized: !(flags['tls-skip-verify'] === true || isTrue(env.KEYWARD_SKIP_VERIFY) || isTrue(env.VAULT_SKIP_VERIFY)),
  };
}

export function clientSettings(flags: FlagValues, env: NodeJS.ProcessEnv): ClientSettings {
  for (const [name, why] of Object.entries(REFUSED_ENV)) {
    if (env[name]) throw new UsageError(`${name} is set, but keyward does not support it: ${why}; unset it`);
  }
  // Another namespace would read the root namespace's data under a name that says otherwise.
  const namespace = setting(flags, 'namespace', env, 'NAMESPACE');
  if (namespace && !ROOT_NAMESPACE.has(namespace.value)) {
    throw new UsageError(`namespace "${namespace.value}" (${namespace.source}) does not exist: keyward has one namespace, the root; leave it out or give "root"`);
  }
  const address = ((flags.address as string) || fromEnv(env, 'AGENT_ADDR')?.value || fromEnv(env, 'ADDR')?.value || 'https://127.0.0.1:8200').replace(/\/+$/, '');
  if (!/^https?:\/\//.test(address)) throw new UsageError(`address "${address}" must start with http:// or https://`);
  const wrap = setting(flags, 'wrap-ttl', env, 'WRAP_TTL');
  const wrapTtl = wrap ? durationSeconds(wrap.value, wrap.source) : 0;
  const retries = fromEnv(env, 'MAX_RETRIES');
  if (retries && !/^\d+$/.test(retries.value)) throw new UsageError(`${retries.source} takes a whole number, not "${retries.value}"`);
  const timeout = fromEnv(env, 'CLIENT_TIMEOUT');
  const timeoutSeconds = timeout ? durationSeconds(timeout.value, timeout.source) : DEFAULT_TIMEOUT_SECONDS;
  return {
    address,
    token: currentToken(env),
    tls: tlsOf(flags, env),
    wrapTtl: wrapTtl > 0 ? wrapTtl : undefined,
    curl: flags['output-curl-string'] === true,
    maxRetries: retries ? Number(retries.value) : 0,
    timeoutMs: (timeoutSeconds || DEFAULT_TIMEOUT_SECONDS) * 1000,
    followRedirects: !isTrue(fromEnv(env, 'DISABLE_REDIRECTS')?.value),
  };
}
