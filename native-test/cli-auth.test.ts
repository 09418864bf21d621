import { createSign, generateKeyPairSync } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtemp, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, runCli } from './support/process.js';
import { type InProcess, startInProcess } from './support/service.js';

/** A CA for the server's certificate, and a client CA with one client certificate (CN=alice), made with openssl. */
async function makePki(dir: string) {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  for (const ca of ['server-ca', 'client-ca']) {
    run('req', '-x509', ...ec, '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', '2', '-subj', `/CN=${ca}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  }
  const issue = async (name: string, subj: string, ca: string, ext: string) => {
    await writeFile(join(dir, `${name}.ext`), ext);
    run('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  };
  await issue('server', '/CN=localhost', 'server-ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await issue('alice', '/CN=alice', 'client-ca', 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n');
  const at = (f: string) => join(dir, f);
  return { serverCa: at('server-ca.crt'), serverCert: at('server.crt'), serverKey: at('server.key'), clientCa: at('client-ca.crt'), aliceCert: at('alice.crt'), aliceKey: at('alice.key') };
}

/** An RS256 JWT signed by hand with a key pair made here (the test's own issuer), and its PEM public key. */
function signJwt(claims: Record<string, unknown>): { jwt: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const part = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const signed = `${part({ alg: 'RS256', typ: 'JWT' })}.${part(claims)}`;
  const signature = createSign('RSA-SHA256').update(signed).sign(privateKey).toString('base64url');
  return { jwt: `${signed}.${signature}`, publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

describe('logging in from the CLI with AppRole (a response-wrapped secret-id), a TLS client certificate, a JWT and userpass', () => {
  let kw: InProcess;
  let pki: Awaited<ReturnType<typeof makePki>>;
  let dir: string;
  let admin: Record<string, string>;
  /** An environment with no token but the one `login` stores in its own home. */
  let userHome = 0;
  const asUser = async () => {
    const home = await mkdtemp(join(tmpdir(), `kw-cli-auth-home-${++userHome}-`));
    return { ...admin, KEYWARD_TOKEN: '', HOME: home };
  };
  const cli = (args: string[], env: Record<string, string> = admin, stdin?: string): Promise<CliResult> => runCli(args, env, stdin);
  const ok = async (args: string[], env: Record<string, string> = admin, stdin?: string): Promise<string> => {
    const r = await cli(args, env, stdin);
    expect(r.code, `keyward ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const fails = async (args: string[], code: number, message: RegExp, env: Record<string, string> = admin) => {
    const r = await cli(args, env);
    expect({ code: r.code, stderr: r.stderr }, `keyward ${args.join(' ')}`).toMatchObject({ code, stderr: expect.stringMatching(message) });
  };
  /** What a logged-in user can do: read the secret its policy allows, and nothing more. */
  const readsOnlyTheSecret = async (env: Record<string, string>) => {
    expect(await ok(['kv', 'get', '-field=password', 'secret/app'], env)).toBe('hunter2');
    expect(await ok(['token', 'capabilities', 'secret/app'], env)).toBe('read\n');
    await fails(['kv', 'put', 'secret/app', 'password=overwritten'], 1, /Code: 403/, env);
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kw-cli-auth-'));
    pki = await makePki(dir);
    kw = await startInProcess('inmem', { listener: { address: '127.0.0.1:0', tlsDisable: false, tlsCertFile: pki.serverCert, tlsKeyFile: pki.serverKey } });
    const base = { KEYWARD_ADDR: kw.service.url, KEYWARD_CACERT: pki.serverCa, KEYWARD_TOKEN: '', VAULT_ADDR: '', VAULT_TOKEN: '', VAULT_CACERT: '', KEYWARD_WRAP_TTL: '', VAULT_WRAP_TTL: '' };
    const init = JSON.parse(await ok(['operator', 'init', '-key-shares=1', '-key-threshold=1', '-format=json'], base));
    await ok(['operator', 'unseal', init.unseal_keys_b64[0]], base);
    admin = { ...base, KEYWARD_TOKEN: init.root_token };
    await ok(['kv', 'put', 'secret/app', 'password=hunter2']);
    await writeFile(join(dir, 'app-read.hcl'), 'path "secret/app" { capabilities = ["read"] }\n');
    await ok(['policy', 'write', 'app-read', join(dir, 'app-read.hcl')]);
  }, 120_000);
  afterAll(async () => {
    await kw?.service.close();
  });

  it('auth enable, list, tune and disable, with Vault\'s messages', async () => {
    expect(await ok(['auth', 'enable', '-description=machines', 'approle'])).toBe('Success! Enabled approle auth method at: approle/\n');
    expect(await ok(['auth', 'enable', '-path=people', '-default-lease-ttl=1h', 'userpass'])).toBe('Success! Enabled userpass auth method at: people/\n');
    const list = await ok(['auth', 'list']);
    expect(list).toMatch(/^Path\s+Type\s+Accessor\s+Description\n/);
    expect(list).toMatch(/\napprole\/\s+approle\s+auth_approle_\w+\s+machines\n/);
    expect(list).toMatch(/\ntoken\/\s+token\s+auth_token_\w+\s+token based credentials\n/);
    expect(await ok(['auth', 'tune', '-max-lease-ttl=2h', '-description=humans', 'people'])).toBe('Success! Tuned the auth method at: people/\n');
    expect(await ok(['auth', 'list', '-detailed'])).toMatch(/\npeople\/\s+userpass\s+auth_userpass_\w+\s+1h\s+2h\s+default-service\s+\S+\s+humans\s+[0-9a-f-]{36}\n/);
    expect(JSON.parse(await ok(['auth', 'list', '-format=json']))['people/']).toMatchObject({ type: 'userpass', config: { default_lease_ttl: 3600, max_lease_ttl: 7200 } });
    await fails(['auth', 'enable', 'github'], 1, /Code: 400[\s\S]*"github" is not offered/);
    await fails(['auth', 'enable', '-path=people', 'userpass'], 1, /path is already in use at people\//);
    await fails(['auth', 'tune', 'people'], 2, /nothing to tune/);
    await fails(['auth', 'enable'], 2, /give exactly one argument/);
    expect(await ok(['auth', 'disable', 'people'])).toBe('Success! Disabled the auth method (if it existed) at: people/\n');
    expect(await ok(['auth', 'list'])).not.toMatch(/people\//);
  });

  it('AppRole: a secret-id delivered wrapped, unwrapped once, then login and read the secret', async () => {
    await ok(['write', 'auth/approle/role/web', 'token_policies=app-read', 'secret_id_num_uses=1', 'token_ttl=20m']);
    const roleId = await ok(['read', '-field=role_id', 'auth/approle/role/web/role-id']);
    expect(roleId).toMatch(/^[0-9a-f-]{36}$/);
    const wrapped = await ok(['write', '-wrap-ttl=2m', '-f', 'auth/approle/role/web/secret-id']);
    expect(wrapped).toMatch(/wrapping_token:\s+hvs\.\S+\n[\s\S]*wrapping_token_creation_path:\s+auth\/approle\/role\/web\/secret-id\n/);
    const wrappingToken = /wrapping_token:\s+(\S+)/.exec(wrapped)![1]!;
    // The deliverer had no need to see the secret-id: it is only in the wrapping token's cubbyhole.
    expect(wrapped).not.toMatch(/secret_id\s/);
    const secretId = await ok(['unwrap', '-field=secret_id', wrappingToken]);
    expect(secretId).toMatch(/^[0-9a-f-]{36}$/);
    await fails(['unwrap', wrappingToken], 1, /Error unwrapping[\s\S]*wrapping token is not valid or does not exist/);

    const user = await asUser();
    const login = await ok(['login', '-method=approle', `role_id=${roleId}`, `secret_id=${secretId}`], user);
    expect(login).toMatch(/^Success! You are now authenticated\. The token information displayed below\nis already stored in .*\.keyward-token\./);
    expect(login).toMatch(/\ntoken\s+hvs\.\S+\ntoken_accessor\s+\S+\ntoken_duration\s+20m\ntoken_renewable\s+true\ntoken_policies\s+\[app-read default\]\n/);
    expect(login).toMatch(/\ntoken_meta_role_name\s+web\n/);
    expect((await stat(join(user.HOME, '.keyward-token'))).mode & 0o777).toBe(0o600);
    await readsOnlyTheSecret(user);
    // The secret-id had one use.
    await fails(['login', '-method=approle', `role_id=${roleId}`, `secret_id=${secretId}`], 1, /Error authenticating: Error making API request[\s\S]*Code: 400/, await asUser());
    await fails(['login', '-method=approle', `secret_id=${secretId}`], 2, /'role_id' must be specified/, await asUser());
  });

  it('cert: login with a TLS client certificate from flags or VAULT_CLIENT_CERT/KEY, wrapped or not, then read the secret', async () => {
    await ok(['auth', 'enable', 'cert']);
    await ok(['write', 'auth/cert/certs/web', `certificate=@${pki.clientCa}`, 'allowed_common_names=alice', 'token_policies=app-read']);
    const flags = [`-client-cert=${pki.aliceCert}`, `-client-key=${pki.aliceKey}`];

    const user = await asUser();
    const token = await ok(['login', '-method=cert', '-token-only', ...flags], user);
    expect(token).toMatch(/^hvs\.\S+$/);
    // -token-only does not store it.
    await expect(stat(join(user.HOME, '.keyward-token'))).rejects.toThrow();
    await readsOnlyTheSecret({ ...user, KEYWARD_TOKEN: token });

    // A login asked to be wrapped is unwrapped and stored, as Vault's CLI does.
    const fromEnv = { ...(await asUser()), VAULT_CLIENT_CERT: pki.aliceCert, VAULT_CLIENT_KEY: pki.aliceKey };
    expect(await ok(['login', '-method=cert', '-wrap-ttl=1m', 'name=web'], fromEnv)).toMatch(/Success! You are now authenticated[\s\S]*token_meta_common_name\s+alice/);
    await readsOnlyTheSecret(fromEnv);
    // With -no-store the wrapping token's details are printed instead, and that token unwraps to the login.
    const wrappedLogin = await ok(['login', '-method=cert', '-no-store', '-wrap-ttl=1m', ...flags], await asUser());
    expect(wrappedLogin).toMatch(/wrapping_token:\s+hvs\.\S+[\s\S]*wrapped_accessor:\s+\S+/);
    const unwrapped = JSON.parse(await ok(['unwrap', '-format=json', /wrapping_token:\s+(\S+)/.exec(wrappedLogin)![1]!]));
    expect([...unwrapped.auth.policies].sort()).toEqual(['app-read', 'default']);

    await fails(['login', '-method=cert'], 2, /-method=cert needs a TLS client certificate/, await asUser());
    await fails(['login', '-method=cert', `-client-cert=${pki.serverCert}`, `-client-key=${pki.serverKey}`], 1, /Error authenticating[\s\S]*Code: 400[\s\S]*invalid certificate/, await asUser());
  });

  it('jwt: login with a JWT from the test\'s own issuer, then read the secret', async () => {
    const now = Math.floor(Date.now() / 1000);
    const { jwt, publicKey } = signJwt({ iss: 'https://ci.example', sub: 'pipeline-7', aud: 'keyward', iat: now, nbf: now - 5, exp: now + 600 });
    await writeFile(join(dir, 'issuer.pem'), publicKey);
    await writeFile(join(dir, 'ci.jwt'), jwt);
    await ok(['auth', 'enable', 'jwt']);
    await ok(['write', 'auth/jwt/config', `jwt_validation_pubkeys=@${join(dir, 'issuer.pem')}`, 'bound_issuer=https://ci.example']);
    await ok(['write', 'auth/jwt/role/ci', 'bound_audiences=keyward', 'bound_subject=pipeline-7', 'user_claim=sub', 'token_policies=app-read']);

    const user = await asUser();
    expect(await ok(['login', '-method=jwt', 'role=ci', `jwt=@${join(dir, 'ci.jwt')}`], user)).toMatch(/token_policies\s+\[app-read default\]/);
    await readsOnlyTheSecret(user);
    const forged = `${jwt.slice(0, jwt.lastIndexOf('.'))}.${Buffer.from('not the signature').toString('base64url')}`;
    await fails(['login', '-method=jwt', 'role=ci', `jwt=${forged}`], 1, /Error authenticating[\s\S]*Code: 400/, await asUser());
    await fails(['login', '-method=jwt', 'role=ci'], 2, /'jwt' must be specified/, await asUser());
  });

  it('userpass: the password from the arguments or, when absent, from the prompt (here a pipe)', async () => {
    await ok(['auth', 'enable', 'userpass']);
    await ok(['write', 'auth/userpass/users/alice', 'password=correct horse', 'token_policies=app-read']);
    const user = await asUser();
    expect(await ok(['login', '-method=userpass', 'username=alice', 'password=correct horse'], user)).toMatch(/token_meta_username\s+alice/);
    await readsOnlyTheSecret(user);
    const prompted = await asUser();
    await ok(['login', '-method=userpass', 'username=alice'], prompted, 'correct horse\n');
    await readsOnlyTheSecret(prompted);
    await fails(['login', '-method=userpass', 'username=alice', 'password=wrong'], 1, /Error authenticating[\s\S]*Code: 400/, await asUser());
    await fails(['login', '-method=userpass', 'password=x'], 2, /'username' must be specified/, await asUser());
    await fails(['login', '-method=github'], 2, /Unknown auth method: github/, await asUser());
    await fails(['login', '-no-store', '-no-print', 'x'], 2, /-no-store and -no-print cannot be used together/);
    expect(await ok(['path-help', 'auth/userpass/login/alice'])).toMatch(/Userpass: people log in[\s\S]*auth\/userpass\/login\/<name>/);
  });
});
