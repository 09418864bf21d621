import { spawn } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodeVault from 'node-vault';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, expectError, initAndUnseal, type InProcess, type Reply, startInProcess } from './support/service.js';

/** Debian's interpreter, which Debian's python3-hvac belongs to. */
const PYTHON = '/usr/bin/python3';

function runPython(script: string, env: Record<string, string>): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ['-c', script], { env: { ...process.env, ...env } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

/** The reply without its request id, which differs between any two requests. */
function withoutRequestId(body: Record<string, unknown>): Record<string, unknown> {
  return { ...body, request_id: '' };
}

describe('response wrapping (X-Vault-Wrap-TTL, sys/wrapping/*)', () => {
  let kw: InProcess;
  let base: string;
  let root: string;
  let auditLog: string;
  /** Values that must never appear in the audit log in clear. */
  const secrets: string[] = [];

  const wrapped = (method: string, path: string, ttl: string, opts: { token?: string; body?: unknown } = {}) =>
    call(base, method, path, { token: opts.token ?? root, body: opts.body, headers: { 'X-Vault-Wrap-TTL': ttl } });
  const unwrap = (token: string, caller?: string) => call(base, 'POST', 'sys/wrapping/unwrap', caller ? { token: caller, body: { token } } : { token });

  /** Asserts Vault's envelope of a wrapped reply and returns its wrap_info. */
  function wrapInfoOf(reply: Reply, path: string, ttl: number): Record<string, any> {
    expect(reply.status, JSON.stringify(reply.body)).toBe(200);
    expect(reply.body).toMatchObject({ request_id: '', lease_id: '', renewable: false, lease_duration: 0, data: null, auth: null, warnings: null });
    const info = reply.body.wrap_info;
    expect(info).toMatchObject({ ttl, creation_path: path });
    expect(info.token).toMatch(/^hvs\.[0-9A-Za-z]{24}$/);
    expect(info.accessor).toMatch(/^[0-9A-Za-z]{24}$/);
    expect(Date.parse(info.creation_time)).toBeGreaterThan(Date.now() - 60_000);
    secrets.push(info.token);
    return info;
  }

  beforeAll(async () => {
    kw = await startInProcess('file');
    base = kw.service.url;
    root = (await initAndUnseal(base, 1, 1)).root;
    auditLog = join(await mkdtemp(join(tmpdir(), 'kw-wrap-audit-')), 'audit.log');
    expect((await call(base, 'PUT', 'sys/audit/file', { token: root, body: { type: 'file', options: { file_path: auditLog } } })).status).toBe(204);
  });
  afterAll(() => kw?.service.close());

  it('wraps a KV v1 read; unwrapping gives the reply the client would have had, once', async () => {
    const password = 'kv1-wrapped-password-5120';
    secrets.push(password);
    await call(base, 'PUT', 'secret/app', { token: root, body: { password } });
    const plain = await call(base, 'GET', 'secret/app', { token: root });

    const reply = await wrapped('GET', 'secret/app', '5m');
    const info = wrapInfoOf(reply, 'secret/app', 300);
    expect(info).not.toHaveProperty('wrapped_accessor');
    expect(JSON.stringify(reply.body)).not.toContain(password);

    const unwrapped = await unwrap(info.token);
    expect(unwrapped.status).toBe(200);
    expect(withoutRequestId(unwrapped.body)).toEqual(withoutRequestId(plain.body));
    expect(unwrapped.body.data).toEqual({ password });

    expectError(await unwrap(info.token), 400, /^wrapping token is not valid or does not exist$/);
    expectError(await unwrap(info.token, root), 400, /wrapping token is not valid or does not exist/);
  });

  it('wraps a KV v2 read; another token may unwrap it with the token in the body', async () => {
    expect((await call(base, 'POST', 'sys/mounts/kv2', { token: root, body: { type: 'kv', options: { version: '2' } } })).status).toBe(204);
    const apiKey = 'kv2-wrapped-api-key-7781';
    secrets.push(apiKey);
    expect((await call(base, 'PUT', 'kv2/data/svc', { token: root, body: { data: { api_key: apiKey } } })).status).toBe(200);
    const plain = await call(base, 'GET', 'kv2/data/svc', { token: root });

    const info = wrapInfoOf(await wrapped('GET', 'kv2/data/svc', '60'), 'kv2/data/svc', 60);
    const child = (await call(base, 'POST', 'auth/token/create', { token: root, body: { policies: ['default'] } })).body.auth.client_token;
    secrets.push(child);
    const unwrapped = await unwrap(info.token, child);
    expect(unwrapped.status).toBe(200);
    expect(withoutRequestId(unwrapped.body)).toEqual(withoutRequestId(plain.body));
    expect(unwrapped.body.data.data).toEqual({ api_key: apiKey });
    expect(unwrapped.body.data.metadata.version).toBe(1);
    expectError(await unwrap(info.token, child), 400, /wrapping token is not valid/);
  });

  it('wraps a token creation: wrapped_accessor names the new token, which works once unwrapped', async () => {
    const reply = await wrapped('POST', 'auth/token/create', '2m', { body: { policies: ['default'], ttl: '1h' } });
    const info = wrapInfoOf(reply, 'auth/token/create', 120);
    expect(info.wrapped_accessor).toMatch(/^[0-9A-Za-z]{24}$/);
    expect(info.wrapped_accessor).not.toBe(info.accessor);

    const unwrapped = await unwrap(info.token);
    expect(unwrapped.status).toBe(200);
    const auth = unwrapped.body.auth;
    secrets.push(auth.client_token);
    expect(auth).toMatchObject({ accessor: info.wrapped_accessor, policies: ['default'], renewable: true });
    expect(unwrapped.body.data).toBeNull();
    const self = await call(base, 'GET', 'auth/token/lookup-self', { token: auth.client_token });
    expect(self.status).toBe(200);
    expect(self.body.data.accessor).toBe(info.wrapped_accessor);
  });

  it('wraps an AppRole secret-id and a login, which takes no token: the hook serves every route', async () => {
    expect((await call(base, 'POST', 'sys/auth/approle', { token: root, body: { type: 'approle' } })).status).toBe(204);
    expect((await call(base, 'POST', 'auth/approle/role/web', { token: root, body: { token_policies: ['default'] } })).status).toBe(204);
    const roleId = (await call(base, 'GET', 'auth/approle/role/web/role-id', { token: root })).body.data.role_id;
    const secretInfo = wrapInfoOf(await wrapped('POST', 'auth/approle/role/web/secret-id', '60s'), 'auth/approle/role/web/secret-id', 60);
    const secretId = (await unwrap(secretInfo.token)).body.data.secret_id;
    secrets.push(secretId);
    const login = await call(base, 'POST', 'auth/approle/login', { body: { role_id: roleId, secret_id: secretId }, headers: { 'X-Vault-Wrap-TTL': '60s' } });
    const loginInfo = wrapInfoOf(login, 'auth/approle/login', 60);
    const auth = (await unwrap(loginInfo.token)).body.auth;
    secrets.push(auth.client_token);
    expect(auth.accessor).toBe(loginInfo.wrapped_accessor);
    expect((await call(base, 'GET', 'auth/token/lookup-self', { token: auth.client_token })).body.data.policies).toEqual(['default']);
  });

  it('wraps a transit encryption', async () => {
    expect((await call(base, 'POST', 'sys/mounts/transit', { token: root, body: { type: 'transit' } })).status).toBe(204);
    await call(base, 'POST', 'transit/keys/app', { token: root });
    const plaintext = Buffer.from('transit plaintext').toString('base64');
    const info = wrapInfoOf(await wrapped('POST', 'transit/encrypt/app', '60s', { body: { plaintext } }), 'transit/encrypt/app', 60);
    const ciphertext = (await unwrap(info.token)).body.data.ciphertext;
    expect(ciphertext).toMatch(/^vault:v1:/);
    expect((await call(base, 'POST', 'transit/decrypt/app', { token: root, body: { ciphertext } })).body.data.plaintext).toBe(plaintext);
  });

  it('looks a wrapping token up without a client token and without using it', async () => {
    const info = wrapInfoOf(await wrapped('GET', 'secret/app', '90s'), 'secret/app', 90);
    const lookup = await call(base, 'POST', 'sys/wrapping/lookup', { body: { token: info.token } });
    expect(lookup.status).toBe(200);
    expect(lookup.body.data).toEqual({ creation_ttl: 90, creation_time: info.creation_time, creation_path: 'secret/app' });
    expect((await call(base, 'POST', 'sys/wrapping/lookup', { token: info.token })).body.data.creation_path).toBe('secret/app');
    expect((await unwrap(info.token)).status).toBe(200);
    expectError(await call(base, 'POST', 'sys/wrapping/lookup', { body: { token: info.token } }), 400, /wrapping token is not valid/);
    expectError(await call(base, 'POST', 'sys/wrapping/lookup', { body: {} }), 400, /missing "token"/);
  });

  it('wraps any JSON with sys/wrapping/wrap, and rewraps it into a new token that replaces the old', async () => {
    const value = { user: 'svc', pin: 'wrap-endpoint-pin-3141', nested: { n: 2, list: [1, 'two'] } };
    secrets.push(value.pin);
    expectError(await call(base, 'POST', 'sys/wrapping/wrap', { token: root, body: value }), 400, /requires response wrapping/);
    const first = wrapInfoOf(await wrapped('POST', 'sys/wrapping/wrap', '10m', { body: value }), 'sys/wrapping/wrap', 600);

    const rewrap = await call(base, 'POST', 'sys/wrapping/rewrap', { token: root, body: { token: first.token } });
    const second = wrapInfoOf(rewrap, 'sys/wrapping/wrap', 600);
    expect(second.token).not.toBe(first.token);
    expectError(await unwrap(first.token), 400, /wrapping token is not valid/);
    const unwrapped = await unwrap(second.token);
    expect(unwrapped.status).toBe(200);
    expect(unwrapped.body.data).toEqual(value);
  });

  it('refuses to unwrap tokens that are not wrapping tokens, and wrapping tokens anything but unwrapping', async () => {
    expectError(await unwrap(root, root), 400, /wrapping token is not valid or does not exist/);
    const child = (await call(base, 'POST', 'auth/token/create', { token: root, body: { policies: ['default'] } })).body.auth.client_token;
    secrets.push(child);
    expectError(await unwrap(child), 400, /wrapping token is not valid or does not exist/);
    expectError(await unwrap('hvs.not-a-token-at-all-xxxxxx', root), 400, /wrapping token is not valid or does not exist/);

    const info = wrapInfoOf(await wrapped('GET', 'secret/app', '60s'), 'secret/app', 60);
    expect((await call(base, 'GET', 'secret/app', { token: info.token })).status).toBe(403);
    expect((await call(base, 'GET', 'auth/token/lookup-self', { token: info.token })).status).toBe(403);
    expect((await call(base, 'GET', 'cubbyhole/response', { token: info.token })).status).toBe(403);
    expect((await call(base, 'POST', 'sys/wrapping/rewrap', { token: info.token })).status).toBe(403);
    // The default policy unwraps and looks up, but does not rewrap.
    expect((await call(base, 'POST', 'sys/wrapping/rewrap', { token: child, body: { token: info.token } })).status).toBe(403);
    expect((await unwrap(info.token)).status).toBe(200);
  });

  it('gives a reply out once when unwraps race', async () => {
    const info = wrapInfoOf(await wrapped('GET', 'secret/app', '60s'), 'secret/app', 60);
    const replies = await Promise.all([...Array(6)].map((_, i) => (i % 2 ? unwrap(info.token) : unwrap(info.token, root))));
    expect(replies.filter((r) => r.status === 200)).toHaveLength(1);
    for (const r of replies.filter((r) => r.status !== 200)) expectError(r, 400, /wrapping token is not valid/);
  });

  it('ends a wrapping token at its TTL, and sweeps away the reply of one never presented', async () => {
    const presented = wrapInfoOf(await wrapped('GET', 'secret/app', '1s'), 'secret/app', 1);
    const forgotten = wrapInfoOf(await wrapped('GET', 'secret/app', '1'), 'secret/app', 1);
    const core = kw.service.core;
    expect(await core.barrier.list('sys/cubbyhole/')).toContain(`${forgotten.accessor}/`);
    await new Promise((r) => setTimeout(r, 1200));
    expectError(await call(base, 'POST', 'sys/wrapping/lookup', { body: { token: presented.token } }), 400, /wrapping token is not valid/);
    expectError(await unwrap(presented.token), 400, /wrapping token is not valid/);
    expectError(await unwrap(presented.token, root), 400, /wrapping token is not valid/);
    expect(await core.barrier.list('sys/cubbyhole/')).not.toContain(`${presented.accessor}/`);
    expect(await core.cubbyholes.sweep(core.tokens, Date.now())).toBeGreaterThanOrEqual(1);
    expect(await core.barrier.list('sys/cubbyhole/')).not.toContain(`${forgotten.accessor}/`);
    await expect(core.tokens.lookupAccessor(forgotten.accessor)).rejects.toThrow(/invalid accessor/);
  });

  it('caps the wrap TTL at the system maximum', async () => {
    const info = wrapInfoOf(await wrapped('GET', 'secret/app', '100000h'), 'secret/app', 768 * 3600);
    expect((await unwrap(info.token)).status).toBe(200);
  });

  it('refuses a malformed X-Vault-Wrap-TTL before doing anything, and does not wrap with 0', async () => {
    for (const ttl of ['abc', '-5s', '5x', '1.5']) {
      expectError(await wrapped('PUT', 'secret/never', ttl, { body: { v: 1 } }), 400, /X-Vault-Wrap-TTL must be a number of seconds or a duration/);
    }
    expect((await call(base, 'GET', 'secret/never', { token: root })).status).toBe(404);
    const plain = await wrapped('GET', 'secret/app', '0');
    expect(plain.status).toBe(200);
    expect(plain.body.wrap_info).toBeNull();
    expect(plain.body.data.password).toBeDefined();
  });

  it('does not wrap errors or bodiless replies', async () => {
    const missing = await wrapped('GET', 'secret/missing', '60s');
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ errors: [] });
    expectError(await wrapped('GET', 'secret/app', '60s', { token: 'hvs.unknown-token-xxxxxxxxxxx' }), 403, /invalid token/);
    expect((await wrapped('PUT', 'secret/written', '60s', { body: { v: 'x' } })).status).toBe(204);
    expect((await call(base, 'GET', 'secret/written', { token: root })).body.data).toEqual({ v: 'x' });
  });

  it('keeps response-wrapping a built-in policy that cannot be changed or listed', async () => {
    expect((await call(base, 'GET', 'sys/policy', { token: root })).body.policies).not.toContain('response-wrapping');
    const policy = 'path "*" { capabilities = ["read"] }';
    expectError(await call(base, 'PUT', 'sys/policy/response-wrapping', { token: root, body: { policy } }), 400, /cannot update the response-wrapping policy/);
    expectError(await call(base, 'DELETE', 'sys/policy/response-wrapping', { token: root }), 400, /cannot delete the response-wrapping policy/);
    // Only wrapping tokens hold it: not root's children, nor a role's.
    const accessors = (await call(base, 'GET', 'auth/token/accessors?list=true', { token: root })).body.data.keys.length;
    expectError(await call(base, 'POST', 'auth/token/create', { token: root, body: { policies: ['response-wrapping'] } }), 400, /given only to the tokens response wrapping makes/);
    await call(base, 'POST', 'auth/token/roles/wrapper', { token: root, body: { allowed_policies: 'response-wrapping' } });
    expectError(await call(base, 'POST', 'auth/token/create/wrapper', { token: root, body: {} }), 400, /given only to the tokens response wrapping makes/);
    expect((await call(base, 'GET', 'auth/token/accessors?list=true', { token: root })).body.data.keys.length).toBe(accessors);
  });

  it('round-trips with hvac 0.11 (read and token create with wrap_ttl, sys.unwrap, auth_cubbyhole) and node-vault (unwrap)', async () => {
    const script = `
import hvac, os, json
c = hvac.Client(url=os.environ['VAULT_ADDR'], token=os.environ['VAULT_TOKEN'])
c.write('secret/hvac', value='hvac-wrapped-value')
w = c.read('secret/hvac', wrap_ttl='60s')
assert w['data'] is None and w['wrap_info']['creation_path'] == 'secret/hvac', w
u = c.sys.unwrap(w['wrap_info']['token'])
assert u['data'] == {'value': 'hvac-wrapped-value'}, u
t = c.create_token(policies=['default'], wrap_ttl='2m')
login = hvac.Client(url=os.environ['VAULT_ADDR'])
auth = login.auth_cubbyhole(t['wrap_info']['token'])
assert login.token == auth['auth']['client_token'] and login.is_authenticated()
assert auth['auth']['accessor'] == t['wrap_info']['wrapped_accessor']
print('hvac wrapping ok')
`;
    const { code, out } = await runPython(script, { VAULT_ADDR: base, VAULT_TOKEN: root });
    expect(out, out).toContain('hvac wrapping ok');
    expect(code).toBe(0);
    secrets.push('hvac-wrapped-value');

    const info = wrapInfoOf(await wrapped('GET', 'secret/app', '60s'), 'secret/app', 60);
    const vault = nodeVault({ endpoint: base, token: root });
    expect((await vault.unwrap({ token: info.token })).data.password).toBe('kv1-wrapped-password-5120');
  });

  it('never writes a wrapped value or a wrapping token to the audit log in clear', async () => {
    const text = await readFile(auditLog, 'utf8');
    const lines = text.trim().split('\n').map((l) => JSON.parse(l));
    const wrappedReply = lines.find((l) => l.type === 'response' && l.request.path === 'secret/app' && l.response.data?.wrap_info);
    expect(wrappedReply.response.data.wrap_info.token).toMatch(/^hmac-sha256:/);
    const unwrapReply = lines.find((l) => l.type === 'response' && l.request.path === 'sys/wrapping/unwrap' && l.response.status === 200);
    expect(unwrapReply.response.data.data).toBeDefined();
    expect(secrets.length).toBeGreaterThan(10);
    for (const value of secrets) expect(text.includes(value), `audit log contains ${value.slice(0, 8)}…`).toBe(false);
  });
});
