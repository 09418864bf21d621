import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BarrierView } from '../src/barrier/view.js';
import { call, expectError, type InProcess, initAndUnseal, type Reply, startInProcess } from './support/service.js';

describe('AppRole auth method', () => {
  let kw: InProcess;
  let url: string;
  let root: string;
  /** Added to the server's clock: secret-id expiry is tested by moving it, not by sleeping. */
  let clockOffset = 0;
  const send = (method: string, path: string, body?: unknown, token = root): Promise<Reply> => call(url, method, path, { token, body });
  /** hvac's list: GET with ?list=true. */
  const list = (path: string): Promise<Reply> => send('GET', `${path}?list=true`);
  const login = (role_id: string, secret_id?: string): Promise<Reply> => call(url, 'POST', 'auth/approle/login', { body: { role_id, secret_id } });
  const roleId = async (role: string): Promise<string> => (await send('GET', `auth/approle/role/${role}/role-id`)).body.data.role_id;
  const newSecretId = async (role: string, body: Record<string, unknown> = {}): Promise<{ secret_id: string; secret_id_accessor: string }> => {
    const reply = await send('POST', `auth/approle/role/${role}/secret-id`, body);
    expect(reply.status, JSON.stringify(reply.body)).toBe(200);
    return reply.body.data;
  };
  const tokenLookup = async (token: string) => (await send('POST', 'auth/token/lookup', { token })).body.data;
  const readRole = async (role: string) => (await send('GET', `auth/approle/role/${role}`)).body.data;

  beforeAll(async () => {
    kw = await startInProcess('file', {}, { now: () => Date.now() + clockOffset });
    url = kw.service.url;
    ({ root } = await initAndUnseal(url, 1, 1));
    expect((await send('POST', 'sys/auth/approle', { type: 'approle' })).status).toBe(204);
    expect((await send('POST', 'sys/mounts/kv', { type: 'kv' })).status).toBe(204);
    expect((await send('PUT', 'kv/app', { password: 'db-pass' })).status).toBe(204);
    expect((await send('PUT', 'sys/policy/app-read', { policy: 'path "kv/app" { capabilities = ["read"] }' })).status).toBe(204);
  });

  afterAll(async () => {
    await kw?.service.close();
  });

  it('runs the whole flow: role, role-id, secret-id, login, and a token that has exactly the role token fields', async () => {
    const write = await send('POST', 'auth/approle/role/web', {
      token_policies: 'app-read',
      token_ttl: '1h',
      token_max_ttl: '2h',
      token_num_uses: 5,
      secret_id_ttl: '10m',
    });
    expect(write.status).toBe(204);
    expect(await readRole('web')).toMatchObject({
      bind_secret_id: true,
      secret_id_bound_cidrs: [],
      secret_id_num_uses: 0,
      secret_id_ttl: 600,
      token_policies: ['app-read'],
      policies: ['app-read'],
      token_ttl: 3600,
      token_max_ttl: 7200,
      token_explicit_max_ttl: 0,
      token_num_uses: 5,
      token_period: 0,
      token_bound_cidrs: [],
      token_no_default_policy: false,
      token_type: 'default',
    });
    expect((await list('auth/approle/role')).body.data.keys).toContain('web');
    const id = await roleId('web');
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);

    const reply = await send('POST', 'auth/approle/role/web/secret-id', { metadata: JSON.stringify({ env: 'prod' }) });
    expect(reply.status).toBe(200);
    expect(reply.body.data).toEqual({ secret_id: expect.any(String), secret_id_accessor: expect.any(String), secret_id_ttl: 600, secret_id_num_uses: 0 });
    expect(reply.body.data.secret_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);

    const loggedIn = await login(id, reply.body.data.secret_id);
    expect(loggedIn.status).toBe(200);
    const auth = loggedIn.body.auth;
    expect(auth.client_token).toEqual(expect.any(String));
    expect([...auth.policies].sort()).toEqual(['app-read', 'default']);
    expect(auth.metadata).toEqual({ role_name: 'web', env: 'prod' });
    expect(auth.lease_duration).toBe(3600);
    expect(auth.renewable).toBe(true);

    const token = await tokenLookup(auth.client_token);
    expect(token).toMatchObject({ num_uses: 5, display_name: 'approle', meta: { role_name: 'web', env: 'prod' }, orphan: true });
    expect([...token.policies].sort()).toEqual(['app-read', 'default']);
    expect(token.ttl).toBeGreaterThan(3590);
    expect(token.ttl).toBeLessThanOrEqual(3600);

    const read = await call(url, 'GET', 'kv/app', { token: auth.client_token });
    expect(read.status).toBe(200);
    expect(read.body.data).toEqual({ password: 'db-pass' });
    expect((await tokenLookup(auth.client_token)).num_uses).toBe(4);
    expect((await call(url, 'PUT', 'kv/app', { token: auth.client_token, body: { password: 'x' } })).status).toBe(403);
  });

  it('stores secret-ids only as HMACs: no barrier entry under the method holds the secret-id', async () => {
    await send('POST', 'auth/approle/role/hmac-check', { token_policies: 'app-read' });
    const { secret_id } = await newSecretId('hmac-check');
    const view = new BarrierView(kw.service.core.barrier, 'auth/');
    const paths = await view.walk('');
    expect(paths.length).toBeGreaterThan(0);
    for (const path of paths) {
      expect(path).not.toContain(secret_id);
      expect((await view.get(path))!.toString('latin1')).not.toContain(secret_id);
    }
  });

  it('spends secret-id uses exactly: a 2-use secret-id logs in twice, then is gone with its accessor', async () => {
    await send('POST', 'auth/approle/role/twice', { token_policies: 'app-read', secret_id_num_uses: 2 });
    const id = await roleId('twice');
    const { secret_id, secret_id_accessor } = await newSecretId('twice');
    const lookup = () => send('POST', 'auth/approle/role/twice/secret-id-accessor/lookup', { secret_id_accessor });
    expect((await lookup()).body.data.secret_id_num_uses).toBe(2);
    expect((await login(id, secret_id)).status).toBe(200);
    expect((await lookup()).body.data.secret_id_num_uses).toBe(1);
    expect((await login(id, secret_id)).status).toBe(200);
    expectError(await login(id, secret_id), 400, /^invalid role or secret ID$/);
    expect((await lookup()).status).toBe(404);
    expect((await list('auth/approle/role/twice/secret-id')).status).toBe(404);
  });

  it('lets exactly one of several concurrent logins spend a single-use secret-id', async () => {
    await send('POST', 'auth/approle/role/once', { token_policies: 'app-read' });
    const id = await roleId('once');
    for (let round = 0; round < 3; round++) {
      const { secret_id } = await newSecretId('once', { num_uses: 1 });
      const replies = await Promise.all(Array.from({ length: 6 }, () => login(id, secret_id)));
      expect(replies.map((r) => r.status).sort()).toEqual([200, 400, 400, 400, 400, 400]);
      for (const r of replies.filter((x) => x.status === 400)) expect(r.body.errors).toEqual(['invalid role or secret ID']);
    }
  });

  it('refuses an expired secret-id, and tidy removes expired ones', async () => {
    await send('POST', 'auth/approle/role/short', { token_policies: 'app-read', secret_id_ttl: 60 });
    const id = await roleId('short');
    const tooLong = await send('POST', 'auth/approle/role/short/secret-id', { ttl: 61 });
    expectError(tooLong, 400, /ttl \(61s\) cannot be longer than the role's secret_id_ttl \(60s\)/);
    const brief = await newSecretId('short', { ttl: '2s' });
    const kept = await newSecretId('short');
    const tidied = await newSecretId('short', { ttl: 2 });
    const lookup = (secret_id_accessor: string) => send('POST', 'auth/approle/role/short/secret-id-accessor/lookup', { secret_id_accessor });
    const seen = (await lookup(brief.secret_id_accessor)).body.data;
    expect(seen.secret_id_ttl).toBe(2);
    expect(Date.parse(seen.expiration_time) - Date.parse(seen.creation_time)).toBe(2000);
    expect((await lookup(kept.secret_id_accessor)).body.data.secret_id_ttl).toBe(60);

    clockOffset += 3000;
    try {
      expectError(await login(id, brief.secret_id), 400, /^invalid role or secret ID$/);
      expect((await login(id, kept.secret_id)).status).toBe(200);
      expect((await lookup(tidied.secret_id_accessor)).status).toBe(200);
      expect((await send('POST', 'auth/approle/tidy/secret-id')).status).toBe(202);
      expect((await lookup(tidied.secret_id_accessor)).status).toBe(404);
      expect((await list('auth/approle/role/short/secret-id')).body.data.keys).toEqual([kept.secret_id_accessor]);
    } finally {
      clockOffset -= 3000;
    }
  });

  it('refuses a login from 127.0.0.1 when the role or the secret-id is bound to 10.0.0.0/8, without spending a use', async () => {
    await send('POST', 'auth/approle/role/tenner', { token_policies: 'app-read', secret_id_bound_cidrs: ['10.0.0.0/8'] });
    const id = await roleId('tenner');
    const { secret_id, secret_id_accessor } = await newSecretId('tenner', { num_uses: 1 });
    const refused = await login(id, secret_id);
    expectError(refused, 400, /source address (::ffff:)?127\.0\.0\.1 is not allowed by the CIDR restrictions \(secret_id_bound_cidrs\) on the role/);
    const lookup = await send('POST', 'auth/approle/role/tenner/secret-id-accessor/lookup', { secret_id_accessor });
    expect(lookup.body.data.secret_id_num_uses).toBe(1);

    const outside = await send('POST', 'auth/approle/role/tenner/secret-id', { cidr_list: '192.168.0.0/16' });
    expectError(outside, 400, /cidr_list: "192.168.0.0\/16" is not within the role's secret_id_bound_cidrs/);

    await send('POST', 'auth/approle/role/loose', { token_policies: 'app-read' });
    const looseId = await roleId('loose');
    const narrow = await newSecretId('loose', { cidr_list: ['10.1.0.0/16'] });
    expectError(await login(looseId, narrow.secret_id), 400, /not allowed by the CIDR restrictions \(cidr_list\) on the secret ID/);
    const open = await newSecretId('loose', { cidr_list: '127.0.0.0/8' });
    expect((await login(looseId, open.secret_id)).status).toBe(200);
  });

  it('binds the token to token_bound_cidrs: the login works, the token is refused from 127.0.0.1', async () => {
    await send('POST', 'auth/approle/role/bound-token', { token_policies: 'app-read', token_bound_cidrs: '10.0.0.0/8' });
    const { secret_id } = await newSecretId('bound-token');
    const reply = await login(await roleId('bound-token'), secret_id);
    expect(reply.status).toBe(200);
    expect((await call(url, 'GET', 'kv/app', { token: reply.body.auth.client_token })).status).toBe(403);
  });

  it('looks up and destroys secret-ids by value and by accessor, only on their own role', async () => {
    await send('POST', 'auth/approle/role/acc', { token_policies: 'app-read' });
    await send('POST', 'auth/approle/role/other', { token_policies: 'app-read' });
    const id = await roleId('acc');
    const a = await newSecretId('acc', { metadata: '{"team":"blue"}' });
    const b = await newSecretId('acc');
    expect((await list('auth/approle/role/acc/secret-id')).body.data.keys.sort()).toEqual([a.secret_id_accessor, b.secret_id_accessor].sort());

    const byAccessor = await send('POST', 'auth/approle/role/acc/secret-id-accessor/lookup', { secret_id_accessor: a.secret_id_accessor });
    expect(byAccessor.status).toBe(200);
    expect(byAccessor.body.data).toMatchObject({
      secret_id_accessor: a.secret_id_accessor,
      metadata: { team: 'blue' },
      cidr_list: [],
      token_bound_cidrs: [],
      secret_id_num_uses: 0,
      secret_id_ttl: 0,
      expiration_time: '0001-01-01T00:00:00Z',
    });
    expect(JSON.stringify(byAccessor.body)).not.toContain(a.secret_id);
    const bySecret = await send('POST', 'auth/approle/role/acc/secret-id/lookup', { secret_id: a.secret_id });
    expect(bySecret.body.data).toEqual(byAccessor.body.data);

    const byAccessorOn = (role: string, action: string, accessor: string) =>
      send('POST', `auth/approle/role/${role}/secret-id-accessor/${action}`, { secret_id_accessor: accessor });
    expectError(await byAccessorOn('other', 'lookup', a.secret_id_accessor), 404, /no secret ID with accessor/);
    expectError(await byAccessorOn('other', 'destroy', a.secret_id_accessor), 404, /no secret ID with accessor/);
    expectError(await byAccessorOn('acc', 'lookup', '../role/acc'), 404, /no secret ID with accessor/);
    expect((await login(id, a.secret_id)).status).toBe(200);

    expect((await send('POST', 'auth/approle/role/acc/secret-id-accessor/destroy', { secret_id_accessor: a.secret_id_accessor })).status).toBe(204);
    expectError(await login(id, a.secret_id), 400, /^invalid role or secret ID$/);
    expect((await send('POST', 'auth/approle/role/acc/secret-id-accessor/lookup', { secret_id_accessor: a.secret_id_accessor })).status).toBe(404);

    expect((await send('POST', 'auth/approle/role/acc/secret-id/destroy', { secret_id: b.secret_id })).status).toBe(204);
    expectError(await login(id, b.secret_id), 400, /^invalid role or secret ID$/);
    expect((await list('auth/approle/role/acc/secret-id')).status).toBe(404);
  });

  it('answers one message for a wrong role_id, a wrong secret_id and a secret-id of another role', async () => {
    await send('POST', 'auth/approle/role/left', { token_policies: 'app-read' });
    await send('POST', 'auth/approle/role/right', { token_policies: 'app-read' });
    const left = await roleId('left');
    const leftSecret = await newSecretId('left');
    const rightSecret = await newSecretId('right');
    expectError(await login('no-such-role-id', leftSecret.secret_id), 400, /^invalid role or secret ID$/);
    expectError(await login(left, 'no-such-secret-id'), 400, /^invalid role or secret ID$/);
    expectError(await login(left, rightSecret.secret_id), 400, /^invalid role or secret ID$/);
    expectError(await login(left), 400, /^invalid role or secret ID$/);
    expectError(await call(url, 'POST', 'auth/approle/login', { body: { secret_id: leftSecret.secret_id } }), 400, /missing role_id/);
    expectError(await call(url, 'POST', 'auth/approle/login', { body: { role_id: 7 } }), 400, /role_id must be a string/);
    expect((await login(left, leftSecret.secret_id)).status).toBe(200);
  });

  it('sets custom role-ids and secret-ids, keeping role-ids unique', async () => {
    await send('POST', 'auth/approle/role/custom', { token_policies: 'app-read' });
    await send('POST', 'auth/approle/role/custom2', { token_policies: 'app-read' });
    const old = await roleId('custom');
    expect((await send('POST', 'auth/approle/role/custom/role-id', { role_id: 'my-custom-role-id' })).status).toBe(204);
    expect(await roleId('custom')).toBe('my-custom-role-id');
    expectError(await send('POST', 'auth/approle/role/custom2/role-id', { role_id: 'my-custom-role-id' }), 400, /role_id is already in use by another role/);
    expectError(await send('POST', 'auth/approle/role/custom2/role-id', {}), 400, /missing role_id/);

    const custom = await send('POST', 'auth/approle/role/custom/custom-secret-id', { secret_id: 'pushed-secret', metadata: { origin: 'push' } });
    expect(custom.status).toBe(200);
    expect(custom.body.data.secret_id).toBe('pushed-secret');
    expectError(await send('POST', 'auth/approle/role/custom/custom-secret-id', { secret_id: 'pushed-secret' }), 400, /already registered/);
    expectError(await login(old, 'pushed-secret'), 400, /^invalid role or secret ID$/);
    const reply = await login('my-custom-role-id', 'pushed-secret');
    expect(reply.status).toBe(200);
    expect(reply.body.auth.metadata).toEqual({ origin: 'push', role_name: 'custom' });
  });

  it('logs in without a secret-id when bind_secret_id is false and the role is CIDR-bound', async () => {
    expectError(await send('POST', 'auth/approle/role/nosecret', { bind_secret_id: false }), 400, /at least one constraint must be enabled/);
    expect((await send('GET', 'auth/approle/role/nosecret')).status).toBe(404);
    await send('POST', 'auth/approle/role/nosecret', { bind_secret_id: false, secret_id_bound_cidrs: '127.0.0.0/8,::1', token_policies: 'app-read' });
    expect((await login(await roleId('nosecret'))).status).toBe(200);
    expectError(await send('POST', 'auth/approle/role/nosecret/secret-id'), 400, /bind_secret_id is not set/);
  });

  it("deletes a role with its secret-ids: they no longer log in, even under a re-created role of the same name, and the role's tokens are not renewed", async () => {
    await send('POST', 'auth/approle/role/gone', { token_policies: 'app-read' });
    const id = await roleId('gone');
    const { secret_id } = await newSecretId('gone');
    const token = (await login(id, (await newSecretId('gone')).secret_id)).body.auth.client_token as string;
    expect((await send('POST', 'auth/token/renew-self', {}, token)).status).toBe(200);
    expect((await send('DELETE', 'auth/approle/role/gone')).status).toBe(204);
    expectError(await send('POST', 'auth/token/renew-self', {}, token), 400, /no longer exists: it cannot be renewed; log in again/);
    expect((await send('GET', 'auth/approle/role/gone')).status).toBe(404);
    expectError(await login(id, secret_id), 400, /^invalid role or secret ID$/);
    await send('POST', 'auth/approle/role/gone', { token_policies: 'app-read' });
    expect(await roleId('gone')).not.toBe(id);
    expectError(await login(await roleId('gone'), secret_id), 400, /^invalid role or secret ID$/);
  });

  it("does not renew a token once its role's policies changed, and does again when they are back", async () => {
    await send('POST', 'auth/approle/role/shifting', { token_policies: 'app-read', token_period: '1h' });
    const token = (await login(await roleId('shifting'), (await newSecretId('shifting')).secret_id)).body.auth.client_token as string;
    expect((await send('POST', 'auth/token/renew-self', {}, token)).status).toBe(200);
    await send('POST', 'auth/approle/role/shifting', { token_policies: 'app-read,other' });
    expectError(await send('POST', 'auth/token/renew-self', {}, token), 400, /policies of the role or user this token logged in with have changed: it cannot be renewed/);
    expectError(await send('POST', 'auth/token/renew', { token }), 400, /have changed/);
    // A role that adds or drops only "default" grants the same as before (a login adds it).
    await send('POST', 'auth/approle/role/shifting', { token_policies: 'default,app-read' });
    expect((await send('POST', 'auth/token/renew-self', {}, token)).status).toBe(200);
  });

  it('refuses bad input with a 400 and changes nothing', async () => {
    await send('POST', 'auth/approle/role/steady', { token_policies: 'app-read', token_ttl: 60, secret_id_num_uses: 3 });
    const before = await readRole('steady');
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ token_ttl: 'soon' }, /token_ttl must be a number of seconds/],
      [{ secret_id_num_uses: -1 }, /secret_id_num_uses cannot be negative/],
      [{ secret_id_ttl: '-5s' }, /secret_id_ttl must be a number of seconds/],
      [{ secret_id_bound_cidrs: '10.0.0.0/33' }, /secret_id_bound_cidrs: "10.0.0.0\/33" is not a CIDR block/],
      [{ token_bound_cidrs: ['nope'] }, /token_bound_cidrs: "nope" is not a CIDR block/],
      [{ token_type: 'batch' }, /token_type "batch" is not offered/],
      [{ token_policies: 'root' }, /cannot issue root tokens/],
      [{ bind_secret_id: 'maybe' }, /bind_secret_id must be true or false/],
      [{ token_ttl: 7200, token_max_ttl: 3600 }, /cannot be greater than token_max_ttl/],
      [{ token_num_uses: 2, secret_id_num_uses: -2 }, /secret_id_num_uses cannot be negative/],
    ];
    for (const [body, message] of bad) {
      expectError(await send('POST', 'auth/approle/role/steady', body), 400, message);
      expectError(await send('POST', 'auth/approle/role/fresh', body), 400, message);
    }
    expect(await readRole('steady')).toEqual(before);
    expect((await send('GET', 'auth/approle/role/fresh')).status).toBe(404);

    expectError(await send('POST', 'auth/approle/role/steady/secret-id', { num_uses: 4 }), 400, /cannot be higher than the role's secret_id_num_uses \(3\)/);
    expectError(await send('POST', 'auth/approle/role/steady/secret-id', { num_uses: -1 }), 400, /num_uses cannot be negative/);
    expectError(await send('POST', 'auth/approle/role/steady/secret-id', { metadata: 'env=prod' }), 400, /metadata must be a JSON object of string values/);
    expectError(await send('POST', 'auth/approle/role/steady/secret-id', { metadata: '{"n":1}' }), 400, /metadata must be a JSON object of string values/);
    expectError(await send('POST', 'auth/approle/role/steady/secret-id', { cidr_list: 'x' }), 400, /cidr_list: "x" is not a CIDR block/);
    expect((await list('auth/approle/role/steady/secret-id')).status).toBe(404);

    expectError(await send('POST', 'auth/approle/role/missing/secret-id'), 400, /role "missing" does not exist/);
    expectError(await send('GET', 'auth/approle/role/missing/role-id'), 404, /role "missing" does not exist/);
    expectError(await send('POST', 'auth/approle/role/bad%20name', { token_policies: 'x' }), 400, /invalid role name/);
    expectError(await send('POST', 'auth/approle/role/steady/secret-id/lookup', {}), 400, /missing secret_id/);
    expect((await send('GET', 'auth/approle/role/steady/nothing-here')).status).toBe(404);
  });

  it('treats role names case-insensitively, as Vault', async () => {
    expect((await send('POST', 'auth/approle/role/MixedCase', { token_policies: 'app-read' })).status).toBe(204);
    expect((await send('GET', 'auth/approle/role/mixedcase')).status).toBe(200);
    expect((await list('auth/approle/role')).body.data.keys).toContain('mixedcase');
  });
});
