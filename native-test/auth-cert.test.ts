import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, type InProcess, type Reply, startInProcess } from './support/service.js';

const LOGIN_FAILED = /^invalid certificate or no client certificate supplied$/;

interface Pair {
  cert: string;
  key: string;
}

/** Test PKI made with openssl: CAs, an intermediate, client certificates valid, expired, self-signed, and the server's certificate. */
async function makePki(dir: string) {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' }).toString();
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const caExt = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n';
  const clientExt = (san: string) => `basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\nsubjectAltName=${san}\n`;
  const ca = (name: string, cn: string) => {
    run('req', '-x509', ...ec, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${cn}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  };
  const issue = async (name: string, subj: string, issuer: string, ext: string, days = '2') => {
    await writeFile(join(dir, `${name}.ext`), ext);
    run('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.crt`, '-CAkey', `${issuer}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', days, '-extfile', `${name}.ext`);
  };
  ca('ca', 'client-ca');
  ca('other-ca', 'other-ca');
  ca('server-ca', 'server-ca');
  await issue('server', '/CN=localhost', 'server-ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await issue('alice', '/CN=alice/OU=payments', 'ca', clientExt('DNS:alice.svc.example,email:alice@example.com,URI:spiffe://example/alice'));
  await issue('mallory', '/CN=mallory/OU=payments', 'ca', clientExt('DNS:mallory.svc.example'));
  await issue('stranger', '/CN=alice/OU=payments', 'other-ca', clientExt('DNS:alice.svc.example'));
  await issue('server-only', '/CN=alice', 'ca', 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  await issue('intermediate', '/CN=client-intermediate', 'ca', caExt);
  await issue('bob', '/CN=bob/OU=payments', 'intermediate', clientExt('DNS:bob.svc.example'));
  // An expired certificate: `openssl x509` cannot back-date before 3.4, `openssl ca` can.
  await writeFile(join(dir, 'index.txt'), '');
  await writeFile(join(dir, 'serial'), '1000\n');
  await writeFile(
    join(dir, 'ca.cnf'),
    '[ca]\ndefault_ca=test\n[test]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\ndefault_md=sha256\npolicy=any\n[any]\ncommonName=supplied\n',
  );
  await writeFile(join(dir, 'expired.ext'), clientExt('DNS:alice.svc.example'));
  run('req', ...ec, '-keyout', 'expired.key', '-out', 'expired.csr', '-subj', '/CN=alice');
  run('ca', '-batch', '-config', 'ca.cnf', '-cert', 'ca.crt', '-keyfile', 'ca.key', '-in', 'expired.csr', '-out', 'expired.crt', '-notext', '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', '-extfile', 'expired.ext');
  // A self-signed client certificate trusted on its own, and another with the same name that is not.
  for (const name of ['solo', 'solo-twin']) {
    run('req', '-x509', ...ec, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', '/CN=solo', '-addext', 'extendedKeyUsage=clientAuth');
  }
  const read = (name: string) => readFile(join(dir, name), 'utf8');
  const pair = async (name: string): Promise<Pair> => ({ cert: await read(`${name}.crt`), key: await read(`${name}.key`) });
  const field = (name: string, ext: string) => run('x509', '-in', `${name}.crt`, '-noout', '-ext', ext).split('\n')[1]!.trim().toLowerCase();
  return {
    caPem: await read('ca.crt'),
    otherCaPem: await read('other-ca.crt'),
    serverCaPem: await read('server-ca.crt'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    alice: await pair('alice'),
    mallory: await pair('mallory'),
    stranger: await pair('stranger'),
    serverOnly: await pair('server-only'),
    expired: await pair('expired'),
    solo: await pair('solo'),
    soloTwin: await pair('solo-twin'),
    // bob presents his certificate followed by the intermediate that issued it.
    bobChain: { cert: (await read('bob.crt')) + (await read('intermediate.crt')), key: await read('bob.key') },
    bobAlone: await pair('bob'),
    aliceSerial: BigInt(`0x${run('x509', '-in', 'alice.crt', '-noout', '-serial').trim().split('=')[1]}`).toString(10),
    aliceSkid: field('alice', 'subjectKeyIdentifier'),
    aliceAkid: field('alice', 'authorityKeyIdentifier'),
  };
}

describe('cert auth method', () => {
  let kw: InProcess;
  let pki: Awaited<ReturnType<typeof makePki>>;
  let root: string;
  /** Added to the service's clock: certificate validity is checked against it. */
  let clockOffset = 0;

  /** One request over TLS on a fresh connection, presenting `client` if given. */
  const send = (method: string, path: string, opts: { token?: string; body?: unknown; client?: Pair } = {}): Promise<Reply> => {
    const url = new URL(kw.service.url);
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const headers: Record<string, string> = {};
    if (opts.token) headers['X-Vault-Token'] = opts.token;
    if (body) headers['Content-Type'] = 'application/json';
    const tls = { ca: pki.serverCaPem, cert: opts.client?.cert, key: opts.client?.key };
    return new Promise((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, method, path: `/v1/${path}`, headers, agent: false, ...tls }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }));
      });
      req.on('error', reject);
      req.end(body);
    });
  };
  const admin = (method: string, path: string, body?: unknown) => send(method, path, { token: root, body });
  const login = (client: Pair | undefined, body: Record<string, unknown> = {}) => send('POST', 'auth/cert/login', { client, body });

  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kw-cert-'));
    pki = await makePki(dir);
    const listener = { address: '127.0.0.1:0', tlsDisable: false, tlsCertFile: pki.serverCert, tlsKeyFile: pki.serverKey };
    kw = await startInProcess('inmem', { listener }, { now: () => Date.now() + clockOffset });
    const init = await send('PUT', 'sys/init', { body: { secret_shares: 1, secret_threshold: 1 } });
    await send('PUT', 'sys/unseal', { body: { key: init.body.keys[0] } });
    root = init.body.root_token;
    expect((await admin('POST', 'sys/auth/cert', { type: 'cert' })).status).toBe(204);
    expect((await admin('POST', 'sys/mounts/kv', { type: 'kv' })).status).toBe(204);
    expect((await admin('PUT', 'kv/payments', { db: 'pw' })).status).toBe(204);
    expect((await admin('PUT', 'sys/policy/payments', { policy: 'path "kv/payments" { capabilities = ["read"] }' })).status).toBe(204);
    const web = {
      certificate: pki.caPem,
      display_name: 'payments',
      allowed_common_names: 'alice,bob',
      allowed_organizational_units: ['pay*'],
      token_policies: 'payments',
      token_ttl: '20m',
    };
    expect((await admin('POST', 'auth/cert/certs/web', web)).status).toBe(204);
  }, 60_000);

  afterAll(async () => {
    await kw?.service.close();
  });

  it('logs in with a certificate issued by the configured CA, with Vault metadata, to a token that reads what its policy allows', async () => {
    const reply = await login(pki.alice);
    expect(reply.status).toBe(200);
    const auth = reply.body.auth;
    expect([...auth.policies].sort()).toEqual(['default', 'payments']);
    expect(auth.metadata).toEqual({
      cert_name: 'web',
      common_name: 'alice',
      serial_number: pki.aliceSerial,
      subject_key_id: pki.aliceSkid,
      authority_key_id: pki.aliceAkid,
    });
    expect(auth.lease_duration).toBe(1200);
    // Vault binds renewals to the certificate by default; keyward cannot check it at renewal, so the token does not renew.
    expect(auth.renewable).toBe(false);
    const lookup = await send('GET', 'auth/token/lookup-self', { token: auth.client_token });
    expect(lookup.body.data).toMatchObject({ display_name: 'cert-payments', meta: { cert_name: 'web', common_name: 'alice' } });
    expect((await send('GET', 'kv/payments', { token: auth.client_token })).body.data).toEqual({ db: 'pw' });
    expect((await send('PUT', 'kv/payments', { token: auth.client_token, body: { db: 'x' } })).status).toBe(403);
  });

  it('follows a presented intermediate up to the configured CA, but not without it', async () => {
    const reply = await login(pki.bobChain, { name: 'web' });
    expect(reply.status).toBe(200);
    expect(reply.body.auth.metadata.common_name).toBe('bob');
    expectError(await login(pki.bobAlone), 400, LOGIN_FAILED);
  });

  it('refuses, with one message, a certificate from another CA, an expired one, one without client auth, and a name the entry does not allow', async () => {
    for (const client of [pki.stranger, pki.expired, pki.serverOnly, pki.mallory]) expectError(await login(client), 400, LOGIN_FAILED);
    expectError(await login(pki.alice, { name: 'nosuch' }), 400, LOGIN_FAILED);
  });

  it('asks for a certificate when the connection presented none', async () => {
    expectError(await login(undefined), 400, /^client certificate must be supplied$/);
  });

  it('checks validity against the service clock: the same certificate fails once the clock passes its end', async () => {
    clockOffset = 3 * 86_400_000;
    try {
      expectError(await login(pki.alice), 400, LOGIN_FAILED);
    } finally {
      clockOffset = 0;
    }
    expect((await login(pki.alice)).status).toBe(200);
  });

  it('trusts a configured non-CA certificate as itself only, and picks the first matching entry by name', async () => {
    expect((await admin('POST', 'auth/cert/certs/solo', { certificate: pki.solo.cert, token_policies: 'payments' })).status).toBe(204);
    const reply = await login(pki.solo);
    expect(reply.status).toBe(200);
    expect(reply.body.auth.metadata.cert_name).toBe('solo');
    expect(reply.body.auth.metadata.common_name).toBe('solo');
    expectError(await login(pki.soloTwin), 400, LOGIN_FAILED);

    // Two entries trust alice's CA: without a name the first by name wins; with one, only that entry counts.
    expect((await admin('POST', 'auth/cert/certs/a-first', { certificate: pki.caPem, allowed_dns_sans: '*.svc.example' })).status).toBe(204);
    expect((await login(pki.alice)).body.auth.metadata.cert_name).toBe('a-first');
    expect((await login(pki.alice, { name: 'web' })).body.auth.metadata.cert_name).toBe('web');
    expect((await admin('POST', 'auth/cert/certs/a-first', { allowed_dns_sans: 'nomatch.example' })).status).toBe(204);
    expect((await login(pki.alice)).body.auth.metadata.cert_name).toBe('web');
    expect((await admin('POST', 'auth/cert/certs/a-first', { allowed_dns_sans: '', allowed_email_sans: 'alice@*', allowed_uri_sans: 'spiffe://example/*' })).status).toBe(204);
    expect((await login(pki.alice)).body.auth.metadata.cert_name).toBe('a-first');
    expect((await admin('DELETE', 'auth/cert/certs/a-first')).status).toBe(204);
    expect((await admin('DELETE', 'auth/cert/certs/solo')).status).toBe(204);
  });

  it('reads, lists and deletes entries in Vault shapes', async () => {
    const read = await admin('GET', 'auth/cert/certs/web');
    expect(read.status).toBe(200);
    expect(read.body.data).toMatchObject({
      certificate: pki.caPem,
      display_name: 'payments',
      allowed_common_names: ['alice', 'bob'],
      allowed_organizational_units: ['pay*'],
      allowed_dns_sans: [],
      required_extensions: [],
      token_policies: ['payments'],
      token_ttl: 1200,
      token_type: 'default',
    });
    // A misspelt field is not silently dropped: Vault's warning names it.
    const warned = await admin('POST', 'auth/cert/certs/other', { certificate: pki.otherCaPem, allowed_comon_names: 'x' });
    expect(warned.status).toBe(200);
    expect(warned.body.warnings).toEqual(['Endpoint ignored these unrecognized parameters: [allowed_comon_names]']);
    expect((await admin('LIST', 'auth/cert/certs')).body.data.keys).toEqual(['other', 'web']);
    expect((await admin('GET', 'auth/cert/certs?list=true')).body.data.keys).toEqual(['other', 'web']);
    expect((await admin('DELETE', 'auth/cert/certs/other')).status).toBe(204);
    expect((await admin('GET', 'auth/cert/certs/other')).status).toBe(404);
  });

  it('refuses bad entries and features it does not have with a 400, storing nothing', async () => {
    expectError(await admin('POST', 'auth/cert/certs/bad', {}), 400, /certificate is required/);
    expectError(await admin('POST', 'auth/cert/certs/bad', { certificate: 'not a pem' }), 400, /PEM-encoded certificates/);
    expectError(await admin('POST', 'auth/cert/certs/bad', { certificate: pki.alice.key }), 400, /PEM-encoded certificates/);
    expectError(await admin('POST', 'auth/cert/certs/bad', { certificate: pki.serverOnly.cert }), 400, /client authentication/);
    expectError(await admin('POST', 'auth/cert/certs/bad', { certificate: pki.caPem, required_extensions: ['1.2.3.4:*'] }), 400, /required_extensions is not offered/);
    expectError(await admin('POST', 'auth/cert/certs/bad', { certificate: pki.caPem, ocsp_enabled: true }), 400, /OCSP/);
    expectError(await admin('POST', 'auth/cert/certs/bad', { certificate: pki.caPem, token_type: 'batch' }), 400, /batch/);
    expectError(await admin('POST', 'auth/cert/certs/Bad', { certificate: pki.caPem }), 400, /use "bad"/);
    expect((await admin('GET', 'auth/cert/certs/bad')).status).toBe(404);
    expectError(await admin('POST', 'auth/cert/crls/revoked', { crl: 'x' }), 400, /crls\/\) are not offered/);
    // hvac 0.11's create_ca_certificate_role sends every optional field, empty: accepted.
    const hvacStyle = {
      name: 'hvac',
      certificate: pki.caPem,
      ...Object.fromEntries(
        ['allowed_common_names', 'allowed_dns_sans', 'allowed_email_sans', 'allowed_uri_sans', 'allowed_organizational_units', 'required_extensions', 'display_name', 'token_type'].map(
          (f) => [f, ''],
        ),
      ),
      ...Object.fromEntries(['token_ttl', 'token_max_ttl', 'token_explicit_max_ttl', 'token_num_uses', 'token_period'].map((f) => [f, 0])),
      token_policies: ['payments'],
      token_bound_cidrs: [],
      token_no_default_policy: false,
    };
    expect((await admin('POST', 'auth/cert/certs/hvac', hvacStyle)).status).toBe(204);
    expect((await login(pki.alice, { name: 'hvac' })).body.auth.metadata.cert_name).toBe('hvac');
    expect((await admin('DELETE', 'auth/cert/certs/hvac')).status).toBe(204);
  });

  it('makes tokens renewable once disable_binding is set, and refuses identity alias metadata', async () => {
    expect((await admin('GET', 'auth/cert/config')).body.data).toMatchObject({ disable_binding: false });
    expect((await admin('POST', 'auth/cert/config', { disable_binding: true })).status).toBe(204);
    expect((await admin('GET', 'auth/cert/config')).body.data).toMatchObject({ disable_binding: true });
    expect((await login(pki.alice)).body.auth.renewable).toBe(true);
    expectError(await admin('POST', 'auth/cert/config', { enable_identity_alias_metadata: true }), 400, /identity/);
    expect((await admin('POST', 'auth/cert/config', { disable_binding: false })).status).toBe(204);
    expect((await login(pki.alice)).body.auth.renewable).toBe(false);
  });

  it('refuses a login from outside the entry\'s bound CIDRs', async () => {
    expect((await admin('POST', 'auth/cert/certs/web', { token_bound_cidrs: '10.0.0.0/8' })).status).toBe(204);
    expect((await login(pki.alice, { name: 'web' })).status).toBe(403);
    expect((await admin('POST', 'auth/cert/certs/web', { token_bound_cidrs: '127.0.0.1/32' })).status).toBe(204);
    expect((await login(pki.alice, { name: 'web' })).status).toBe(200);
  });
});
