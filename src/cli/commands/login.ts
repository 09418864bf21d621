// `keyward login [-method=TYPE] [-path=P] [k=v ...]`: authenticate, keep the token for later
// commands in ~/.keyward-token (mode 0600), and print it as Vault's CLI does.
import { writeFile } from 'node:fs/promises';
import { ApiClient, CLIENT_FLAGS, outputFormat, tokenFile } from '../client.js';
import type { Command, Io } from '../command.js';
import { type FlagValues, UsageError } from '../flags.js';
import { promptHidden } from '../prompt.js';
import { parseData, printField, printSecret } from '../secret.js';

type Body = Record<string, unknown>;

/** A login method: sends the credentials in `config` and answers with a response carrying `auth`. */
type Login = (client: ApiClient, config: Record<string, string>, mount: string, flags: FlagValues) => Promise<Body | undefined>;

function required(config: Record<string, string>, key: string, method: string): string {
  const value = config[key];
  if (!value) throw new UsageError(`'${key}' must be specified (keyward login -method=${method} ${key}=...)`);
  return value;
}

async function post(client: ApiClient, path: string, body: Body): Promise<Body | undefined> {
  return (await client.request('POST', path, body, { acceptWrapped: true })).body;
}

/** Vault's token login: the token's own lookup, shown as the `auth` of a login. */
const tokenLogin: Login = async (client, config, _mount, flags) => {
  const token = config.token || (await promptHidden('Token (will be hidden): ', flags));
  if (!token) throw new UsageError('no token given');
  const { body } = await client.withToken(token, false).request('GET', 'auth/token/lookup-self');
  const d = (body?.data as Body | undefined) ?? {};
  return {
    ...body,
    data: null,
    auth: {
      client_token: token,
      accessor: d.accessor,
      lease_duration: d.ttl,
      renewable: d.renewable,
      token_policies: d.policies,
      identity_policies: d.identity_policies ?? [],
      policies: d.policies,
      metadata: d.meta,
    },
  };
};

const LOGINS: Record<string, Login> = {
  token: tokenLogin,
  userpass: async (client, config, mount, flags) => {
    const username = required(config, 'username', 'userpass');
    const password = config.password || (await promptHidden('Password (will be hidden): ', flags));
    return post(client, `auth/${mount}/login/${username}`, { password });
  },
  // Vault's CLI has no AppRole login; keyward's posts the role-id and secret-id as its API takes them.
  approle: async (client, config, mount) => {
    const body: Body = { role_id: required(config, 'role_id', 'approle') };
    if (config.secret_id) body.secret_id = config.secret_id;
    return post(client, `auth/${mount}/login`, body);
  },
  cert: async (client, config, mount) => {
    if (!client.hasClientCertificate || !client.address.startsWith('https://')) {
      throw new UsageError('-method=cert needs a TLS client certificate on an https:// address: give -client-cert and -client-key (or VAULT_CLIENT_CERT and VAULT_CLIENT_KEY)');
    }
    return post(client, `auth/${mount}/login`, config.name ? { name: config.name } : {});
  },
  jwt: async (client, config, mount) => {
    const body: Body = { jwt: required(config, 'jwt', 'jwt') };
    if (config.role) body.role = config.role;
    return post(client, `auth/${mount}/login`, body);
  },
};

/** The login's answer, unwrapped when it came wrapped (-wrap-ttl) and the token is to be used. */
async function extractToken(client: ApiClient, body: Body | undefined, unwrap: boolean): Promise<{ body: Body; wrapped: boolean }> {
  if (body?.auth) return { body, wrapped: false };
  const wrap = body?.wrap_info as Body | undefined;
  if (!body || !wrap) throw new Error('the server answered the login with neither a token nor a wrapped token');
  if (!wrap.wrapped_accessor) throw new Error('the wrapped response does not contain a token');
  if (!unwrap) return { body, wrapped: true };
  const unwrapped = await client.withToken(String(wrap.token), false).request('PUT', 'sys/wrapping/unwrap');
  return extractToken(client, unwrapped.body, unwrap);
}

function warnAboutEnvToken(io: Io): void {
  const name = io.env.KEYWARD_TOKEN ? 'KEYWARD_TOKEN' : io.env.VAULT_TOKEN ? 'VAULT_TOKEN' : undefined;
  if (name) io.err(`WARNING! The ${name} environment variable is set! Its value takes precedence over the stored token; unset ${name} if this is unwanted.\n`);
}

export const loginCommand: Command = {
  flags: {
    ...CLIENT_FLAGS,
    method: { kind: 'string', help: 'auth method type: token, userpass, approle, cert or jwt', default: 'token' },
    path: { kind: 'string', help: 'where the method is enabled, below auth/ (default: the type)', default: '' },
    'no-store': { kind: 'bool', help: 'do not keep the token for later commands; only print it', default: false },
    'no-print': { kind: 'bool', help: 'keep the token but do not print it', default: false },
    'token-only': { kind: 'bool', help: 'print only the token, and do not keep it (-field=token -no-store)', default: false },
    field: { kind: 'string', help: 'print only this field (token, token_accessor, ...), piped without a newline', default: '' },
  },
  async run({ flags, args }, io) {
    const tokenOnly = flags['token-only'] === true;
    const noStore = tokenOnly || flags['no-store'] === true;
    const field = tokenOnly ? 'token' : (flags.field as string);
    if (noStore && flags['no-print']) throw new UsageError('-no-store and -no-print cannot be used together');
    const method = ((flags.method as string) || 'token').replace(/^\/+|\/+$/g, '');
    const login = LOGINS[method];
    if (!login) {
      throw new UsageError(`Unknown auth method: ${method}. keyward's CLI logs in with token, userpass, approle, cert or jwt; "keyward auth list" shows the enabled ones.`);
    }
    const mount = ((flags.path as string) || method).replace(/^\/+|\/+$/g, '');
    const format = outputFormat(flags, io.env);
    // A token given alone is `token=TOKEN`, as in Vault.
    const pairs = method === 'token' && args[0] !== undefined && !args[0].includes('=') ? [`token=${args[0]}`, ...args.slice(1)] : args;
    const config: Record<string, string> = {};
    for (const [k, v] of Object.entries(await parseData(pairs))) config[k] = Array.isArray(v) ? String(v.at(-1)) : String(v);

    const client = ApiClient.fromFlags(flags, io.env);
    let result: { body: Body; wrapped: boolean };
    try {
      // Only a token login sends a token: another method's request carries its credentials alone.
      result = await extractToken(client, await login(method === 'token' ? client : client.withToken(undefined), config, mount, flags), !noStore);
    } catch (err) {
      if ((err as Error).name === 'ApiError') (err as Error).message = `Error authenticating: ${(err as Error).message}`;
      throw err;
    }
    const { body, wrapped } = result;
    if (wrapped) return tokenOnly ? printField(io, format, body, undefined, 'wrapping_token') : printSecret(io, format, undefined, body);

    const token = String((body.auth as Body).client_token);
    if (!noStore) {
      await writeFile(tokenFile(io.env), `${token}\n`, { mode: 0o600 });
      warnAboutEnvToken(io);
    } else if (!tokenOnly) {
      io.err('The token was not stored: set KEYWARD_TOKEN (or VAULT_TOKEN) to it, or pass it with each request.\n');
    }
    if (flags['no-print']) return 0;
    if (field) return printField(io, format, body, body.data as Body | null, field);
    if (format === 'table') {
      io.out(
        noStore
          ? 'Success! You are now authenticated.\n'
          : `Success! You are now authenticated. The token information displayed below\nis already stored in ${tokenFile(io.env)}. You do NOT need to run "keyward login"\nagain. Future keyward requests will automatically use this token.\n`,
      );
    }
    return printSecret(io, format, undefined, body);
  },
};
