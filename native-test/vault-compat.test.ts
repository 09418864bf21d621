import { execFileSync, spawn } from 'node:child_process';
import { createSign, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodeVault from 'node-vault';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcess, startInProcess } from './support/service.js';

/*
 * The compatibility suite of docs/COMPATIBILITY.md: the everyday calls of an application team and
 * an operator coming from Vault, made with Debian's python3-hvac (0.11) and with node-vault against
 * one TLS keyward. Each call either works (its result checked) or is refused with a 4xx naming what
 * keyward does not offer; a 5xx, a bare 404 or a closed connection counts against it.
 */

/** Debian's interpreter, which Debian's python3-hvac (installed by scripts/setup.sh) belongs to. */
const PYTHON = '/usr/bin/python3';
const HVAC_CALLS = 166;
const HVAC_MUST_WORK = 150;
/** What a clear refusal says (keyward's wording for an area or option it does not offer). */
const REFUSAL = /does not offer|not offered|not supported|keyward offers|this server offers/i;

interface Outcome {
  name: string;
  group: string;
  expect: 'works' | 'refused';
  ok: boolean;
  status: number | null;
  message: string;
}

interface Material {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCa: string;
  clientCert: string;
  clientKey: string;
  jwtPublicKey: string;
  jwt: string;
}

/** A server CA and certificate for 127.0.0.1, and a separate client CA with one client certificate, made with openssl. */
async function certificates(dir: string): Promise<Pick<Material, 'ca' | 'serverCert' | 'serverKey' | 'clientCa' | 'clientCert' | 'clientKey'>> {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=keyward-compat-ca');
  run('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  await writeFile(join(dir, 'server.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'server.cnf');
  run('req', '-x509', ...ec, '-keyout', 'client-ca.key', '-out', 'client-ca.crt', '-days', '2', '-subj', '/CN=keyward-compat-hosts');
  run('req', ...ec, '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=host-1.example');
  await writeFile(join(dir, 'client.cnf'), 'extendedKeyUsage=clientAuth\nsubjectAltName=DNS:host-1.example\n');
  run('x509', '-req', '-in', 'client.csr', '-CA', 'client-ca.crt', '-CAkey', 'client-ca.key', '-CAcreateserial', '-out', 'client.crt', '-days', '2', '-extfile', 'client.cnf');
  const at = (f: string) => join(dir, f);
  return { ca: at('ca.crt'), serverCert: at('server.crt'), serverKey: at('server.key'), clientCa: at('client-ca.crt'), clientCert: at('client.crt'), clientKey: at('client.key') };
}

/** An RS256 JWT as a CI system issues one, and the PEM public key that verifies it. */
function jwtMaterial(): { jwtPublicKey: string; jwt: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const b64url = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const signed = `${b64url({ alg: 'RS256', typ: 'JWT' })}.${b64url({ iss: 'https://ci.example', sub: 'pipeline-7', aud: 'keyward', project: 'payments', iat: now, nbf: now - 5, exp: now + 900 })}`;
  const signature = createSign('RSA-SHA256').update(signed).sign(privateKey).toString('base64url');
  return { jwtPublicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(), jwt: `${signed}.${signature}` };
}

function runHvac(env: Record<string, string>): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [join(import.meta.dirname, 'support', 'hvac_compat.py')], { env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, out, err }));
  });
}

/** A refusal is clear when it is a 4xx whose message names what keyward does not offer (not a bare "no handler for route"). */
function clearlyRefused(o: Outcome): boolean {
  return o.status !== null && o.status >= 400 && o.status < 500 && REFUSAL.test(o.message) && !/no handler for route/.test(o.message);
}

function table(title: string, outcomes: Outcome[]): string {
  const works = outcomes.filter((o) => o.expect === 'works' && o.ok).length;
  const lines = outcomes.map((o) => {
    const verdict = o.expect === 'works' ? (o.ok ? 'works' : 'FAILS') : o.ok ? 'refused (clear)' : 'REFUSAL UNCLEAR';
    return `  ${verdict.padEnd(15)} ${o.group.padEnd(13)} ${o.name.padEnd(44)} ${o.ok ? '' : `${o.status ?? '-'} ${o.message.slice(0, 160)}`}`;
  });
  return `${title}: ${works}/${outcomes.length} work\n${lines.join('\n')}`;
}

/** Every call that does not work must be a clear 4xx refusal. */
function unclear(outcomes: Outcome[]): string[] {
  return outcomes.filter((o) => !(o.expect === 'works' && o.ok) && !clearlyRefused(o)).map((o) => `${o.name}: ${o.status ?? '-'} ${o.message}`);
}

describe('Vault-client compatibility suite: the everyday calls of hvac (python3-hvac 0.11) and node-vault', () => {
  let kw: InProcess;
  let m: Material;
  let root: string;
  let unsealKeys: string[];
  let caPem: string;

  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kw-compat-'));
    m = { dir, ...(await certificates(dir)), ...jwtMaterial() };
    caPem = await readFile(m.ca, 'utf8');
    kw = await startInProcess('inmem', { listener: { address: '127.0.0.1:0', tlsDisable: false, tlsCertFile: m.serverCert, tlsKeyFile: m.serverKey } });
    const vault = nodeVault({ endpoint: kw.service.url, requestOptions: { ca: caPem } });
    const init = await vault.init({ secret_shares: 3, secret_threshold: 2 });
    for (const key of init.keys.slice(0, 2)) await vault.unseal({ key });
    root = init.root_token;
    unsealKeys = init.keys;
  });

  afterAll(async () => kw?.service.close());

  it(`hvac: at least ${HVAC_MUST_WORK} of ${HVAC_CALLS} everyday calls work, and every other is refused with a 4xx naming what keyward does not offer`, async () => {
    const { out, err } = await runHvac({
      VAULT_ADDR: kw.service.url,
      VAULT_TOKEN: root,
      VAULT_CACERT: m.ca,
      UNSEAL_KEYS: JSON.stringify(unsealKeys),
      CLIENT_CERT: m.clientCert,
      CLIENT_KEY: m.clientKey,
      CLIENT_CA_PEM: m.clientCa,
      JWT_PUBKEY_PEM: m.jwtPublicKey,
      JWT_TOKEN: m.jwt,
      AUDIT_FILE: join(m.dir, 'audit.log'),
    });
    const outcomes = out
      .split('\n')
      .filter((l) => l.startsWith('{"name"'))
      .map((l) => JSON.parse(l) as Outcome);
    console.log(table('hvac 0.11', outcomes));
    expect(outcomes.length, `the script stopped early:\n${err}`).toBe(HVAC_CALLS);
    expect(outcomes.filter((o) => o.expect === 'works' && o.ok).length).toBeGreaterThanOrEqual(HVAC_MUST_WORK);
    expect(unclear(outcomes)).toEqual([]);
  }, 60_000);

  it('node-vault: every everyday command works, and every other is refused with a 4xx naming what keyward does not offer', async () => {
    const outcomes = await runNodeVault(kw.service.url, root, caPem, m);
    console.log(table('node-vault', outcomes));
    expect(outcomes.filter((o) => o.expect === 'works' && !o.ok).map((o) => `${o.name}: ${o.status ?? '-'} ${o.message}`)).toEqual([]);
    expect(unclear(outcomes)).toEqual([]);
  }, 30_000);
});

type NodeVault = ReturnType<typeof nodeVault>;
interface NodeCall {
  name: string;
  group: string;
  refused?: RegExp;
  run: (v: NodeVault, s: Record<string, any>) => Promise<void>;
}

function check(condition: unknown, what: string): void {
  if (!condition) throw new Error(`check failed: ${what}`);
}

async function rejects(p: Promise<unknown>): Promise<boolean> {
  try {
    await p;
    return false;
  } catch {
    return true;
  }
}

/** node-vault's own commands (its commands.js) and generic calls, as an application and an operator use them. */
const NODE_CALLS: NodeCall[] = [
  { name: 'status', group: 'status', run: async (v) => check((await v.status()).sealed === false, 'sealed') },
  { name: 'initialized', group: 'status', run: async (v) => check((await v.initialized()).initialized === true, 'not initialized') },
  { name: 'health', group: 'status', run: async (v) => check((await v.health()).sealed === false, 'unhealthy') },
  { name: 'leader', group: 'status', run: async (v) => check('ha_enabled' in (await v.leader()), 'no ha_enabled') },
  {
    name: 'mount',
    group: 'mounts',
    run: async (v) => {
      await v.mount({ mount_point: 'nv-kv', type: 'kv', options: { version: '2' } });
      check((await v.mounts()).data['nv-kv/']?.options?.version === '2', 'not version 2');
    },
  },
  { name: 'mounts', group: 'mounts', run: async (v) => check('nv-kv/' in (await v.mounts()).data, 'nv-kv/ not listed') },
  {
    name: 'remount',
    group: 'mounts',
    run: async (v) => {
      await v.mount({ mount_point: 'nv-tmp', type: 'kv' });
      await v.remount({ from: 'nv-tmp', to: 'nv-moved' });
      check('nv-moved/' in (await v.mounts()).data, 'not moved');
    },
  },
  {
    name: 'unmount',
    group: 'mounts',
    run: async (v) => {
      await v.unmount({ mount_point: 'nv-moved' });
      check(!('nv-moved/' in (await v.mounts()).data), 'still mounted');
    },
  },
  {
    name: 'enableAuth',
    group: 'auth-methods',
    run: async (v) => {
      await v.enableAuth({ mount_point: 'nv-people', type: 'userpass', description: 'people' });
      check((await v.auths()).data['nv-people/']?.type === 'userpass', 'not enabled');
    },
  },
  { name: 'auths', group: 'auth-methods', run: async (v) => check((await v.auths()).data['token/']?.type === 'token', 'token/ not listed') },
  {
    name: 'disableAuth',
    group: 'auth-methods',
    run: async (v) => {
      await v.disableAuth({ mount_point: 'nv-people' });
      check(!('nv-people/' in (await v.auths()).data), 'still enabled');
    },
  },
  {
    name: 'addPolicy',
    group: 'policies',
    run: async (v) => {
      await v.addPolicy({ name: 'nv-app', rules: 'path "nv-kv/data/*" { capabilities = ["create", "read", "update", "list"] }' });
      check((await v.getPolicy({ name: 'nv-app' })).rules.includes('nv-kv/data/*'), 'not stored');
    },
  },
  { name: 'getPolicy', group: 'policies', run: async (v) => check((await v.getPolicy({ name: 'nv-app' })).name === 'nv-app', 'wrong name') },
  { name: 'policies', group: 'policies', run: async (v) => check((await v.policies()).policies.includes('nv-app'), 'not listed') },
  {
    name: 'removePolicy',
    group: 'policies',
    run: async (v) => {
      await v.addPolicy({ name: 'nv-doomed', rules: 'path "x" { capabilities = ["read"] }' });
      await v.removePolicy({ name: 'nv-doomed' });
      check(!(await v.policies()).policies.includes('nv-doomed'), 'still there');
    },
  },
  {
    name: 'enableAudit',
    group: 'audit',
    run: async (v, s) => {
      await v.enableAudit({ name: 'nv-file', type: 'file', options: { file_path: join(s.dir, 'nv-audit.log') } });
      check('nv-file/' in (await v.audits()), 'not enabled');
    },
  },
  { name: 'audits', group: 'audit', run: async (v) => check((await v.audits())['nv-file/']?.type === 'file', 'not listed') },
  {
    name: 'disableAudit',
    group: 'audit',
    run: async (v) => {
      await v.disableAudit({ name: 'nv-file' });
      check(!('nv-file/' in (await v.audits())), 'still enabled');
    },
  },
  {
    name: 'tokenCreate',
    group: 'tokens',
    run: async (v, s) => {
      const auth = (await v.tokenCreate({ policies: ['nv-app'], ttl: '1h' })).auth;
      Object.assign(s, { token: auth.client_token, accessor: auth.accessor });
      check(auth.lease_duration === 3600, 'wrong ttl');
    },
  },
  { name: 'tokenCreateOrphan', group: 'tokens', run: async (v) => check((await v.tokenCreateOrphan({ policies: ['nv-app'] })).auth.orphan === true, 'not an orphan') },
  { name: 'tokenLookup', group: 'tokens', run: async (v, s) => check((await v.tokenLookup({ token: s.token })).data.policies.includes('nv-app'), 'wrong policies') },
  { name: 'tokenLookupSelf', group: 'tokens', run: async (v) => check((await v.tokenLookupSelf()).data.policies[0] === 'root', 'not root') },
  { name: 'tokenLookupAccessor', group: 'tokens', run: async (v, s) => check((await v.tokenLookupAccessor({ accessor: s.accessor })).data.accessor === s.accessor, 'wrong token') },
  { name: 'tokenAccessors', group: 'tokens', run: async (v, s) => check((await v.tokenAccessors()).data.keys.includes(s.accessor), 'not listed') },
  { name: 'tokenRenew', group: 'tokens', run: async (v, s) => check((await v.tokenRenew({ token: s.token, increment: '2h' })).auth.lease_duration === 7200, 'not renewed') },
  {
    name: 'tokenRenewSelf',
    group: 'tokens',
    run: async (_v, s) => check((await s.client(s.token).tokenRenewSelf({ increment: '30m' })).auth.lease_duration === 1800, 'not renewed'),
  },
  {
    name: 'tokenRevoke',
    group: 'tokens',
    run: async (v, s) => {
      const t = (await s.mint()).client_token;
      await v.tokenRevoke({ token: t });
      check(await rejects(v.tokenLookup({ token: t })), 'still valid');
    },
  },
  {
    name: 'tokenRevokeAccessor',
    group: 'tokens',
    run: async (v, s) => {
      const auth = await s.mint();
      await v.tokenRevokeAccessor({ accessor: auth.accessor });
      check(await rejects(v.tokenLookup({ token: auth.client_token })), 'still valid');
    },
  },
  {
    name: 'tokenRevokeSelf',
    group: 'tokens',
    run: async (v, s) => {
      const t = (await s.mint()).client_token;
      await s.client(t).tokenRevokeSelf();
      check(await rejects(v.tokenLookup({ token: t })), 'still valid');
    },
  },
  {
    name: 'addTokenRole',
    group: 'tokens',
    run: async (v) => {
      await v.addTokenRole({ role_name: 'nv-ci', allowed_policies: 'nv-app', period: 3600 });
      check((await v.getTokenRole({ role_name: 'nv-ci' })).data.allowed_policies.includes('nv-app'), 'not stored');
    },
  },
  { name: 'getTokenRole', group: 'tokens', run: async (v) => check((await v.getTokenRole({ role_name: 'nv-ci' })).data.period === 3600, 'no period') },
  { name: 'tokenRoles', group: 'tokens', run: async (v) => check((await v.tokenRoles()).data.keys.includes('nv-ci'), 'not listed') },
  {
    name: 'tokenCreateRole',
    group: 'tokens',
    run: async (v) => check((await v.tokenCreateRole({ role_name: 'nv-ci', policies: ['nv-app'] })).auth.policies.includes('nv-app'), 'role not applied'),
  },
  {
    name: 'removeTokenRole',
    group: 'tokens',
    run: async (v) => {
      await v.removeTokenRole({ role_name: 'nv-ci' });
      check(await rejects(v.getTokenRole({ role_name: 'nv-ci' })), 'still there');
    },
  },
  {
    name: 'addApproleRole',
    group: 'approle',
    run: async (v) => {
      await v.addApproleRole({ role_name: 'nv-web', policies: 'nv-app', token_ttl: 1200 });
      check((await v.getApproleRole({ role_name: 'nv-web' })).data.token_ttl === 1200, 'not stored');
    },
  },
  { name: 'getApproleRole', group: 'approle', run: async (v) => check((await v.getApproleRole({ role_name: 'nv-web' })).data.token_policies.includes('nv-app'), 'wrong policies') },
  { name: 'approleRoles', group: 'approle', run: async (v) => check((await v.approleRoles()).data.keys.includes('nv-web'), 'not listed') },
  {
    name: 'getApproleRoleId',
    group: 'approle',
    run: async (v, s) => {
      s.roleId = (await v.getApproleRoleId({ role_name: 'nv-web' })).data.role_id;
      check(s.roleId, 'no role_id');
    },
  },
  {
    name: 'getApproleRoleSecret',
    group: 'approle',
    run: async (v, s) => {
      const d = (await v.getApproleRoleSecret({ role_name: 'nv-web' })).data;
      Object.assign(s, { secretId: d.secret_id, secretIdAccessor: d.secret_id_accessor });
      check(d.secret_id && d.secret_id_accessor, 'no secret-id');
    },
  },
  { name: 'approleSecretAccessors', group: 'approle', run: async (v, s) => check((await v.approleSecretAccessors({ role_name: 'nv-web' })).data.keys.includes(s.secretIdAccessor), 'not listed') },
  {
    name: 'approleSecretLookup',
    group: 'approle',
    run: async (v, s) => check((await v.approleSecretLookup({ role_name: 'nv-web', secret_id: s.secretId })).data.secret_id_accessor === s.secretIdAccessor, 'wrong secret-id'),
  },
  {
    name: 'approleSecretAccessorLookup',
    group: 'approle',
    run: async (v, s) =>
      check((await v.approleSecretAccessorLookup({ role_name: 'nv-web', secret_id_accessor: s.secretIdAccessor })).data.secret_id_accessor === s.secretIdAccessor, 'wrong secret-id'),
  },
  {
    name: 'approleLogin',
    group: 'approle',
    run: async (_v, s) => {
      const app = s.client(undefined);
      const auth = (await app.approleLogin({ role_id: s.roleId, secret_id: s.secretId })).auth;
      check(auth.policies.includes('nv-app') && app.token === auth.client_token, 'wrong login');
    },
  },
  {
    name: 'approleSecretDestroy',
    group: 'approle',
    run: async (v, s) => {
      await v.approleSecretDestroy({ role_name: 'nv-web', secret_id: s.secretId });
      check(await rejects(s.client(undefined).approleLogin({ role_id: s.roleId, secret_id: s.secretId })), 'destroyed secret-id still logs in');
    },
  },
  {
    name: 'deleteApproleRole',
    group: 'approle',
    run: async (v) => {
      await v.deleteApproleRole({ role_name: 'nv-web' });
      check(await rejects(v.getApproleRole({ role_name: 'nv-web' })), 'still there');
    },
  },
  {
    name: 'userpassLogin',
    group: 'userpass',
    run: async (v, s) => {
      await v.write('auth/userpass/users/nv-bob', { password: 'a long passphrase', token_policies: 'nv-app' });
      check((await s.client(undefined).userpassLogin({ username: 'nv-bob', password: 'a long passphrase' })).auth.policies.includes('nv-app'), 'wrong login');
    },
  },
  {
    name: 'certLogin',
    group: 'cert',
    run: async (v, s) => {
      await v.write('auth/cert/certs/nv-hosts', { certificate: s.clientCaPem, token_policies: 'nv-app' });
      // node-vault's certLogin fails on any argument (its schema has no properties), so the client certificate is the
      // client's own and no role is named: either CA role the client certificate chains to may answer.
      const withCert = nodeVault({ endpoint: s.endpoint, requestOptions: { ca: s.caPem, cert: s.clientCertPem, key: s.clientKeyPem } });
      const auth = (await withCert.certLogin()).auth;
      check(auth.policies.includes('nv-app') || auth.policies.includes('app'), 'wrong login');
    },
  },
  {
    name: 'jwtLogin',
    group: 'jwt',
    run: async (v, s) => {
      await v.write('auth/jwt/role/nv-ci', { role_type: 'jwt', user_claim: 'sub', bound_audiences: 'keyward', token_policies: 'nv-app' });
      check((await s.client(undefined).jwtLogin({ role: 'nv-ci', jwt: s.jwt })).auth.policies.includes('nv-app'), 'wrong login');
    },
  },
  {
    name: 'write',
    group: 'generic',
    run: async (v) => check((await v.write('nv-kv/data/app', { data: { k: 'v1' } })).data.version === 1, 'no version'),
  },
  { name: 'read', group: 'generic', run: async (v) => check((await v.read('nv-kv/data/app')).data.data.k === 'v1', 'wrong data') },
  { name: 'list', group: 'generic', run: async (v) => check((await v.list('nv-kv/metadata')).data.keys.includes('app'), 'not listed') },
  {
    name: 'destroySecretVersions',
    group: 'generic',
    run: async (v) => {
      await v.destroySecretVersions({ mount_point: 'nv-kv', path: 'app', versions: [1] });
      check((await v.read('nv-kv/metadata/app')).data.versions['1'].destroyed === true, 'not destroyed');
    },
  },
  {
    name: 'delete',
    group: 'generic',
    run: async (v) => {
      await v.delete('nv-kv/metadata/app');
      check(await rejects(v.read('nv-kv/metadata/app')), 'still there');
    },
  },
  {
    name: 'read (X-Vault-Wrap-TTL)',
    group: 'wrapping',
    run: async (v, s) => {
      await v.write('nv-kv/data/wrapped', { data: { k: 'once' } });
      s.wrapToken = (await v.read('nv-kv/data/wrapped', { headers: { 'X-Vault-Wrap-TTL': '60s' } })).wrap_info.token;
      check(s.wrapToken, 'not wrapped');
    },
  },
  {
    name: 'unwrap',
    group: 'wrapping',
    run: async (v, s) => {
      check((await v.unwrap({ token: s.wrapToken })).data.data.k === 'once', 'wrong data');
      check(await rejects(v.unwrap({ token: s.wrapToken })), 'unwrapped twice');
    },
  },
  {
    name: 'transitCreateKey',
    group: 'transit',
    run: async (v) => {
      await v.mount({ mount_point: 'nv-transit', type: 'transit' });
      await v.write('nv-transit/keys/nv', {});
      check((await v.read('nv-transit/keys/nv')).data.type === 'aes256-gcm96', 'not created');
    },
  },
  {
    name: 'encryptData + decryptData',
    group: 'transit',
    run: async (v) => {
      const plaintext = Buffer.from('node-vault').toString('base64');
      const ciphertext = (await v.write('nv-transit/encrypt/nv', { plaintext })).data.ciphertext;
      check((await v.write('nv-transit/decrypt/nv', { ciphertext })).data.plaintext === plaintext, 'wrong plaintext');
    },
  },
  { name: 'rotate', group: 'operator', run: async (v) => void (await v.rotate()) },
  { name: 'renew', group: 'not-offered', refused: /leases/, run: async (v) => void (await v.renew({ lease_id: 'nv-kv/data/app/abc' })) },
  { name: 'revoke', group: 'not-offered', refused: /leases/, run: async (v) => void (await v.revoke({ lease_id: 'nv-kv/data/app/abc' })) },
  { name: 'revokePrefix', group: 'not-offered', refused: /leases/, run: async (v) => void (await v.revokePrefix({ path_prefix: 'nv-kv' })) },
];

async function runNodeVault(endpoint: string, root: string, caPem: string, m: Material): Promise<Outcome[]> {
  const client = (token: string | undefined) => nodeVault({ endpoint, token, requestOptions: { ca: caPem } });
  const state: Record<string, any> = {
    client,
    endpoint,
    caPem,
    dir: m.dir,
    jwt: m.jwt,
    clientCaPem: await readFile(m.clientCa, 'utf8'),
    clientCertPem: await readFile(m.clientCert, 'utf8'),
    clientKeyPem: await readFile(m.clientKey, 'utf8'),
  };
  const vault = client(root);
  // node-vault's tokenCreate makes the client use the new token; a separate client keeps the root one.
  state.mint = async () => (await client(root).tokenCreate({ policies: ['nv-app'] })).auth;
  const outcomes: Outcome[] = [];
  for (const c of NODE_CALLS) {
    // node-vault's login and token-create commands replace the client's token with the one they got.
    vault.token = root;
    const base = { name: c.name, group: c.group, expect: c.refused ? ('refused' as const) : ('works' as const) };
    try {
      await c.run(vault, state);
      outcomes.push({ ...base, ok: !c.refused, status: 200, message: c.refused ? 'answered instead of refusing' : '' });
    } catch (err) {
      const e = err as Error & { response?: { statusCode?: number }; code?: string };
      const status = e.response?.statusCode ?? null;
      const message = e.message ?? String(err);
      const outcome = { ...base, ok: false, status, message };
      outcome.ok = !!c.refused && clearlyRefused(outcome) && c.refused.test(message);
      outcomes.push(outcome);
    }
  }
  return outcomes;
}
