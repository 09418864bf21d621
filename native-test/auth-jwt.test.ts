import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CryptoKey, exportJWK, exportPKCS8, exportSPKI, generateKeyPair, type JWTPayload, SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, expectError, type InProcess, initAndUnseal, type Reply, startInProcess } from './support/service.js';

const ISSUER = 'https://ci.example';
const NO_OIDC = /^OIDC discovery and the browser flow are not offered: configure jwt_validation_pubkeys or jwks_url$/;
const nowSeconds = () => Math.floor(Date.now() / 1000);

/** The claims a CI system would put in a job's token. */
const jobClaims = (extra: JWTPayload = {}): JWTPayload => ({
  iss: ISSUER,
  sub: 'repo:team/app:ref:refs/heads/main',
  aud: 'keyward',
  repo: 'team/app',
  ref: 'refs/heads/main',
  actor: 'octo',
  iat: nowSeconds(),
  exp: nowSeconds() + 300,
  ...extra,
});

function sign(key: CryptoKey, alg: string, claims: JWTPayload, kid?: string): Promise<string> {
  return new SignJWT(claims).setProtectedHeader(kid ? { alg, kid } : { alg }).sign(key);
}

/** Serves a JWKS document (over TLS when given a certificate) and counts the fetches. */
async function serveJwks(jwks: () => object, tls?: { cert: string; key: string }): Promise<{ url: string; fetches: () => number; server: Server }> {
  let fetches = 0;
  const handler = (_req: unknown, res: import('node:http').ServerResponse) => {
    fetches += 1;
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(jwks()));
  };
  const server: Server = tls ? createHttpsServer(tls, handler) : createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}/.well-known/jwks.json`, fetches: () => fetches, server };
}

describe('jwt auth method', () => {
  let kw: InProcess;
  let url: string;
  let root: string;
  let rsa: { publicKey: CryptoKey; privateKey: CryptoKey };
  let ec: { publicKey: CryptoKey; privateKey: CryptoKey };
  let stranger: { publicKey: CryptoKey; privateKey: CryptoKey };
  const servers: Server[] = [];
  const send = (method: string, path: string, body?: unknown, token = root): Promise<Reply> => call(url, method, path, { token, body });
  const login = (jwt: unknown, role: string | undefined = 'ci', mount = 'jwt'): Promise<Reply> =>
    call(url, 'POST', `auth/${mount}/login`, { body: { role, jwt } });
  /** A refused login: a 400 whose message matches and never contains the token. */
  const expectRefused = async (jwt: string, pattern: RegExp, role = 'ci', mount = 'jwt') => {
    const reply = await login(jwt, role, mount);
    expectError(reply, 400, pattern);
    expect(JSON.stringify(reply.body)).not.toContain(jwt);
    expect(JSON.stringify(reply.body)).not.toContain(jwt.split('.')[1]);
  };
  const ciRole = {
    bound_audiences: ['keyward'],
    bound_claims: { repo: 'team/app', ref: ['refs/heads/main', 'refs/heads/release'] },
    claim_mappings: { repo: 'repository', actor: 'actor' },
    user_claim: 'actor',
    token_policies: 'ci',
    token_ttl: '10m',
  };

  beforeAll(async () => {
    [rsa, ec, stranger] = await Promise.all([
      generateKeyPair('RS256', { extractable: true }),
      generateKeyPair('ES256', { extractable: true }),
      generateKeyPair('RS256'),
    ]);
    kw = await startInProcess('inmem');
    url = kw.service.url;
    ({ root } = await initAndUnseal(url, 1, 1));
    expect((await send('POST', 'sys/auth/jwt', { type: 'jwt' })).status).toBe(204);
    expect((await send('POST', 'sys/mounts/kv', { type: 'kv' })).status).toBe(204);
    expect((await send('PUT', 'kv/ci', { deploy: 'key' })).status).toBe(204);
    expect((await send('PUT', 'sys/policy/ci', { policy: 'path "kv/ci" { capabilities = ["read"] }' })).status).toBe(204);
    const config = {
      jwt_validation_pubkeys: [await exportSPKI(rsa.publicKey), await exportSPKI(ec.publicKey)],
      bound_issuer: ISSUER,
      jwt_supported_algs: ['RS256', 'ES256'],
    };
    expect((await send('POST', 'auth/jwt/config', config)).status).toBe(204);
    expect((await send('POST', 'auth/jwt/role/ci', ciRole)).status).toBe(204);
  });

  afterAll(async () => {
    for (const server of servers) server.close();
    await kw?.service.close();
  });

  it('logs in with an RS256 or ES256 token signed by a configured key, to a token with the role\'s policies and mapped metadata', async () => {
    const reply = await login(await sign(rsa.privateKey, 'RS256', jobClaims()));
    expect(reply.status).toBe(200);
    const auth = reply.body.auth;
    expect([...auth.policies].sort()).toEqual(['ci', 'default']);
    expect(auth.metadata).toEqual({ role: 'ci', repository: 'team/app', actor: 'octo' });
    expect(auth.lease_duration).toBe(600);
    const lookup = await call(url, 'GET', 'auth/token/lookup-self', { token: auth.client_token });
    expect(lookup.body.data).toMatchObject({ display_name: 'jwt-octo', meta: { role: 'ci', repository: 'team/app' } });
    expect((await call(url, 'GET', 'kv/ci', { token: auth.client_token })).body.data).toEqual({ deploy: 'key' });

    const ecLogin = await login(await sign(ec.privateKey, 'ES256', jobClaims({ ref: 'refs/heads/release', actor: 'hubot' })));
    expect(ecLogin.status).toBe(200);
    expect(ecLogin.body.auth.metadata.actor).toBe('hubot');
  });

  it('refuses a token from another key, expired, for another audience or issuer, or outside the bound claims, without echoing it', async () => {
    await expectRefused(await sign(stranger.privateKey, 'RS256', jobClaims()), /no known key successfully validated the token signature/);
    await expectRefused(await sign(rsa.privateKey, 'RS256', jobClaims({ iat: nowSeconds() - 7200, exp: nowSeconds() - 3600 })), /expired/);
    await expectRefused(await sign(rsa.privateKey, 'RS256', jobClaims({ aud: 'someone-else' })), /"aud"/);
    await expectRefused(await sign(rsa.privateKey, 'RS256', jobClaims({ iss: 'https://evil.example' })), /"iss"/);
    await expectRefused(await sign(rsa.privateKey, 'RS256', jobClaims({ ref: 'refs/heads/feature' })), /claim "ref" does not match any associated bound claim values/);
    await expectRefused(await sign(rsa.privateKey, 'RS256', jobClaims({ repo: undefined })), /claim "repo" is missing/);
    await expectRefused(await sign(rsa.privateKey, 'RS256', jobClaims({ actor: undefined })), /claim "actor" not found in token/);
  });

  it('refuses alg "none", an HMAC token keyed with the public key, algorithms outside jwt_supported_algs, and garbage', async () => {
    await expectRefused(new UnsecuredJWT(jobClaims()).encode(), /not among jwt_supported_algs/);
    const publicPem = new TextEncoder().encode(await exportSPKI(rsa.publicKey));
    await expectRefused(await new SignJWT(jobClaims()).setProtectedHeader({ alg: 'HS256' }).sign(publicPem), /not among jwt_supported_algs/);
    const ps = await generateKeyPair('PS256');
    await expectRefused(await sign(ps.privateKey, 'PS256', jobClaims()), /not among jwt_supported_algs/);
    expectError(await login('not.a.jwt'), 400, /not a well-formed signed JWT/);
    expectError(await login(''), 400, /missing token/);
  });

  it('applies Vault\'s leeways: 60 s of clock skew plus 150 s on exp and nbf by default, none when set to -1', async () => {
    const rs = (claims: JWTPayload) => sign(rsa.privateKey, 'RS256', jobClaims(claims));
    expect((await login(await rs({ iat: nowSeconds() - 400, exp: nowSeconds() - 100 }))).status).toBe(200);
    expect((await login(await rs({ nbf: nowSeconds() + 100 }))).status).toBe(200);
    await expectRefused(await rs({ nbf: nowSeconds() + 1000, exp: nowSeconds() + 2000 }), /nbf/);
    // Without exp a token lives 300 s from its start.
    expect((await login(await rs({ exp: undefined }))).status).toBe(200);
    await expectRefused(await rs({ exp: undefined, iat: nowSeconds() - 1000 }), /expired/);
    await expectRefused(await rs({ exp: undefined, iat: undefined }), /no issue time, notbefore, or expiration time/);

    expect((await send('POST', 'auth/jwt/role/strict', { ...ciRole, clock_skew_leeway: -1, expiration_leeway: '-1', not_before_leeway: 0 })).status).toBe(204);
    expect((await send('GET', 'auth/jwt/role/strict')).body.data).toMatchObject({ clock_skew_leeway: -1, expiration_leeway: -1, not_before_leeway: 0 });
    await expectRefused(await rs({ iat: nowSeconds() - 400, exp: nowSeconds() - 5 }), /expired/, 'strict');
    expect((await send('POST', 'auth/jwt/role/strict-nbf', { ...ciRole, not_before_leeway: -1 })).status).toBe(204);
    await expectRefused(await rs({ nbf: nowSeconds() + 100 }), /not valid yet/, 'strict-nbf');
    expect((await login(await rs({ nbf: nowSeconds() + 30 }), 'strict-nbf')).status).toBe(200);
  });

  it('follows Vault on audiences: a token with "aud" needs a role with bound_audiences', async () => {
    expect((await send('POST', 'auth/jwt/role/subject-only', { bound_subject: 'repo:team/app:ref:refs/heads/main', token_policies: 'ci' })).status).toBe(204);
    await expectRefused(await sign(rsa.privateKey, 'RS256', jobClaims()), /^audience claim found in JWT but no audiences bound to the role$/, 'subject-only');
    expect((await login(await sign(rsa.privateKey, 'RS256', jobClaims({ aud: undefined })), 'subject-only')).status).toBe(200);
    await expectRefused(await sign(rsa.privateKey, 'RS256', jobClaims({ aud: undefined, sub: 'repo:other' })), /"sub"/, 'subject-only');
    await expectRefused(await sign(rsa.privateKey, 'RS256', jobClaims({ aud: undefined })), /"aud"/);
  });

  it('matches bound claims as globs when bound_claims_type is "glob"', async () => {
    const globRole = { ...ciRole, bound_claims_type: 'glob', bound_claims: { ref: 'refs/heads/release-*' } };
    expect((await send('POST', 'auth/jwt/role/release', globRole)).status).toBe(204);
    expect((await login(await sign(rsa.privateKey, 'RS256', jobClaims({ ref: 'refs/heads/release-1.2' })), 'release')).status).toBe(200);
    await expectRefused(await sign(rsa.privateKey, 'RS256', jobClaims({ ref: 'refs/heads/main' })), /claim "ref" does not match/, 'release');
    expectError(await send('POST', 'auth/jwt/role/release', { bound_claims: { ref: 5 } }), 400, /must be a string or a list of strings/);
  });

  it('answers for a missing role, and uses default_role when none is named', async () => {
    const token = await sign(rsa.privateKey, 'RS256', jobClaims());
    expectError(await login(token, 'nope'), 400, /^role "nope" could not be found$/);
    expectError(await login(token, ''), 400, /^missing role$/);
    const config = (await send('GET', 'auth/jwt/config')).body.data;
    expect((await send('POST', 'auth/jwt/config', { ...config, default_role: 'ci' })).status).toBe(204);
    expect((await login(token, undefined)).body.auth.metadata.role).toBe('ci');
  });

  it('reads config and roles back in Vault shapes, lists and deletes roles', async () => {
    const config = (await send('GET', 'auth/jwt/config')).body.data;
    expect(config).toMatchObject({ bound_issuer: ISSUER, jwt_supported_algs: ['RS256', 'ES256'], jwks_url: '', oidc_discovery_url: '' });
    expect(config.jwt_validation_pubkeys).toHaveLength(2);
    expect((await send('GET', 'auth/jwt/role/ci')).body.data).toMatchObject({
      role_type: 'jwt',
      bound_audiences: ['keyward'],
      bound_claims: ciRole.bound_claims,
      bound_claims_type: 'string',
      claim_mappings: ciRole.claim_mappings,
      user_claim: 'actor',
      clock_skew_leeway: 60,
      expiration_leeway: 150,
      not_before_leeway: 150,
      token_policies: ['ci'],
      token_ttl: 600,
    });
    const warned = await send('POST', 'auth/jwt/role/temp', { bound_subject: 'x', bound_claim: { a: 'b' } });
    expect(warned.status).toBe(200);
    expect(warned.body.warnings).toEqual(['Endpoint ignored these unrecognized parameters: [bound_claim]']);
    expect((await send('GET', 'auth/jwt/role/temp')).body.data.user_claim).toBe('sub');
    expect((await send('LIST', 'auth/jwt/role')).body.data.keys).toContain('temp');
    expect((await send('GET', 'auth/jwt/role?list=true')).body.data.keys).toContain('temp');
    expect((await send('DELETE', 'auth/jwt/role/temp')).status).toBe(204);
    expect((await send('GET', 'auth/jwt/role/temp')).status).toBe(404);
  });

  it('refuses OIDC, a config without exactly one key source, and bad keys or roles, changing nothing', async () => {
    const before = (await send('GET', 'auth/jwt/config')).body.data;
    const pem = await exportSPKI(rsa.publicKey);
    expectError(await send('POST', 'auth/jwt/config', { oidc_discovery_url: 'https://accounts.example' }), 400, NO_OIDC);
    expectError(await send('POST', 'auth/jwt/config', { jwt_validation_pubkeys: [pem], oidc_client_id: 'abc' }), 400, NO_OIDC);
    expectError(await send('POST', 'auth/jwt/config', { bound_issuer: ISSUER }), 400, /exactly one of jwt_validation_pubkeys or jwks_url/);
    expectError(await send('POST', 'auth/jwt/config', { jwt_validation_pubkeys: [pem], jwks_url: 'http://127.0.0.1:1/jwks' }), 400, /exactly one of/);
    expectError(await send('POST', 'auth/jwt/config', { jwt_validation_pubkeys: ['not a key'] }), 400, /PEM-encoded RSA, EC or Ed25519 public key/);
    const privatePem = await exportPKCS8(rsa.privateKey);
    const refused = await send('POST', 'auth/jwt/config', { jwt_validation_pubkeys: [privatePem] });
    expectError(refused, 400, /private key/);
    expect(JSON.stringify(refused.body)).not.toContain(privatePem.split('\n')[1]);
    expectError(await send('POST', 'auth/jwt/config', { jwt_validation_pubkeys: [pem], jwt_supported_algs: ['HS256'] }), 400, /"HS256" is not one of/);
    expectError(await send('POST', 'auth/jwt/config', { jwks_url: 'http://127.0.0.1:1/jwks' }), 400, /error checking jwks_url/);
    expect((await send('GET', 'auth/jwt/config')).body.data).toEqual(before);

    expectError(await send('POST', 'auth/jwt/role/web', { role_type: 'oidc', allowed_redirect_uris: ['https://x'] }), 400, NO_OIDC);
    expectError(await send('POST', 'auth/jwt/role/web', { token_policies: 'ci' }), 400, /at least one bound constraint/);
    expectError(await send('POST', 'auth/jwt/role/web', { bound_subject: 'x', claim_mappings: { a: 'role' } }), 400, /"role"/);
    expectError(await send('POST', 'auth/jwt/role/web', { bound_subject: 'x', bound_claims_type: 'regex' }), 400, /"string" or "glob"/);
    expectError(await send('POST', 'auth/jwt/role/web', { bound_subject: 'x', clock_skew_leeway: 'soon' }), 400, /clock_skew_leeway/);
    expectError(await send('POST', 'auth/jwt/role/bad%20name', { bound_subject: 'x' }), 400, /role name/);
    expect((await send('GET', 'auth/jwt/role/web')).status).toBe(404);
    expectError(await send('POST', 'auth/jwt/oidc/auth_url', { role: 'ci', redirect_uri: 'https://x' }), 400, NO_OIDC);
  });

  it('takes keys from a JWKS URL, cached between logins, restricted to jwt_supported_algs', async () => {
    const rsaJwk = { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', use: 'sig' };
    const ecJwk = { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', use: 'sig' };
    const jwks = await serveJwks(() => ({ keys: [rsaJwk, ecJwk] }));
    servers.push(jwks.server);
    expect((await send('POST', 'sys/auth/jwks', { type: 'jwt' })).status).toBe(204);
    expect((await send('POST', 'auth/jwks/config', { jwks_url: jwks.url, bound_issuer: ISSUER })).status).toBe(204);
    expect((await send('POST', 'auth/jwks/role/ci', ciRole)).status).toBe(204);
    const fetchedAtConfig = jwks.fetches();
    expect(fetchedAtConfig).toBeGreaterThanOrEqual(1);

    expect((await login(await sign(rsa.privateKey, 'RS256', jobClaims(), 'rsa-1'), 'ci', 'jwks')).status).toBe(200);
    expect((await login(await sign(rsa.privateKey, 'RS256', jobClaims({ actor: 'second' }), 'rsa-1'), 'ci', 'jwks')).status).toBe(200);
    expect(jwks.fetches()).toBe(fetchedAtConfig);
    // The EC key is in the set, but ES256 is not among the (default, RS256) supported algorithms.
    await expectRefused(await sign(ec.privateKey, 'ES256', jobClaims(), 'ec-1'), /not among jwt_supported_algs/, 'ci', 'jwks');
    await expectRefused(await sign(stranger.privateKey, 'RS256', jobClaims(), 'rsa-1'), /no known key successfully validated/, 'ci', 'jwks');
  });

  it('fetches a JWKS over TLS trusting only jwks_ca_pem', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kw-jwks-'));
    const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    const ec256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    run('req', '-x509', ...ec256, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=jwks-test-ca');
    run('req', ...ec256, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
    await writeFile(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
    run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf');
    const caPem = await readFile(join(dir, 'ca.crt'), 'utf8');
    const rsaJwk = { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1' };
    const tls = { cert: await readFile(join(dir, 'server.crt'), 'utf8'), key: await readFile(join(dir, 'server.key'), 'utf8') };
    const jwks = await serveJwks(() => ({ keys: [rsaJwk] }), tls);
    servers.push(jwks.server);
    expect((await send('POST', 'sys/auth/jwks-tls', { type: 'jwt' })).status).toBe(204);
    expectError(await send('POST', 'auth/jwks-tls/config', { jwks_url: jwks.url }), 400, /error checking jwks_url/);
    expect((await send('POST', 'auth/jwks-tls/config', { jwks_url: jwks.url, jwks_ca_pem: caPem })).status).toBe(204);
    expect((await send('POST', 'auth/jwks-tls/role/ci', ciRole)).status).toBe(204);
    expect((await login(await sign(rsa.privateKey, 'RS256', jobClaims(), 'rsa-1'), 'ci', 'jwks-tls')).status).toBe(200);
  });
});
