import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, expectError, initAndUnseal, type InProcess, type Reply, restartInProcess, startInProcess } from './support/service.js';

/** Sends no X-Vault-Token (the helper sends none for an empty token). */
const NO_TOKEN = '';

describe('auth methods: sys/auth (enable, list, read, tune, disable) and auth/<path>/ routing', () => {
  let kw: InProcess;
  let base: string;
  let root: string;
  let keys: string[];
  const send = (method: string, path: string, body?: unknown, token = root): Promise<Reply> => call(base, method, path, { token, body });
  const table = async () => (await send('GET', 'sys/auth')).body.data as Record<string, Record<string, any>>;
  /** A userpass user at `mount` and a login as it: the login reply. */
  const userLogin = async (mount: string, user: string, fields: Record<string, unknown> = {}): Promise<Reply> => {
    expect((await send('POST', `auth/${mount}/users/${user}`, { password: 'a long passphrase', ...fields })).status).toBe(204);
    return send('POST', `auth/${mount}/login/${user}`, { password: 'a long passphrase' }, NO_TOKEN);
  };
  const unseal = async () => {
    for (const key of keys.slice(0, 2)) await call(base, 'PUT', 'sys/unseal', { body: { key } });
  };

  beforeAll(async () => {
    kw = await startInProcess('file');
    base = kw.service.url;
    ({ root, keys } = await initAndUnseal(base));
  });
  afterAll(() => kw.service.close());

  it("lists the built-in token/ method, as Vault does, both at the top level and under data", async () => {
    const reply = await send('GET', 'sys/auth');
    expect(reply.status).toBe(200);
    expect(reply.body['token/']).toEqual(reply.body.data['token/']);
    expect(reply.body.data['token/']).toMatchObject({
      type: 'token',
      description: 'token based credentials',
      accessor: expect.stringMatching(/^auth_token_[0-9a-f]{8}$/),
      local: false,
      seal_wrap: false,
    });
    expect(Object.keys(reply.body.data)).toEqual(['token/']);
  });

  it("enables methods with hvac's and node-vault's bodies, and lists, reads and tunes them in Vault's shapes", async () => {
    // hvac's enable_auth_method: config null (left out only when None), local false.
    expect((await send('POST', 'sys/auth/userpass', { type: 'userpass', description: 'people', config: null, local: false })).status).toBe(204);
    expect((await send('PUT', 'sys/auth/teams/up', { type: 'userpass', config: { default_lease_ttl: '1h', max_lease_ttl: 7200 } })).status).toBe(204);

    const listed = await table();
    expect(Object.keys(listed).sort()).toEqual(['teams/up/', 'token/', 'userpass/']);
    expect(listed['userpass/']).toEqual({
      type: 'userpass',
      description: 'people',
      accessor: expect.stringMatching(/^auth_userpass_[0-9a-f]{8}$/),
      uuid: expect.stringMatching(/^[0-9a-f-]{36}$/),
      config: { default_lease_ttl: 0, max_lease_ttl: 0, force_no_cache: false, token_type: 'default-service' },
      options: null,
      local: false,
      seal_wrap: false,
      external_entropy_access: false,
      plugin_version: '',
    });
    expect(listed['teams/up/']!.config).toMatchObject({ default_lease_ttl: 3600, max_lease_ttl: 7200 });

    for (const spelling of ['userpass', 'userpass/']) {
      const read = await send('GET', `sys/auth/${spelling}`);
      expect(read.status).toBe(200);
      expect(read.body.data).toEqual(listed['userpass/']);
      expect(read.body.type).toBe('userpass');
    }

    // Untuned TTLs read as the server's (768h), as Vault answers.
    const untuned = (await send('GET', 'sys/auth/userpass/tune')).body.data;
    expect(untuned).toMatchObject({ default_lease_ttl: 768 * 3600, max_lease_ttl: 768 * 3600, description: 'people' });
    expect((await send('GET', 'sys/auth/teams/up/tune')).body.data).toMatchObject({ default_lease_ttl: 3600, max_lease_ttl: 7200 });
    expect((await send('POST', 'sys/auth/teams/up/tune', { default_lease_ttl: '30m', description: 'team accounts' })).status).toBe(204);
    const tuned = await send('GET', 'sys/auth/teams/up/tune');
    expect(tuned.body).toMatchObject({ default_lease_ttl: 1800, max_lease_ttl: 7200, description: 'team accounts' });
    expect((await table())['teams/up/']!.accessor).toBe(listed['teams/up/']!.accessor);
  });

  it('refuses bad enables and tunes with a 400 that says why, changing nothing', async () => {
    const before = await table();
    const refusals: [string, unknown, RegExp][] = [
      ['sys/auth/gh', { type: 'github' }, /auth method type "github" is not offered: keyward offers approle, userpass, cert and jwt/],
      ['sys/auth/oidc', { type: 'oidc' }, /"oidc" is not offered: keyward does not run the OIDC browser login flow; enable type "jwt"/],
      ['sys/auth/tok', { type: 'token' }, /token auth method is built in/],
      ['sys/auth/token', { type: 'userpass' }, /built in at "token\/"/],
      ['sys/auth/userpass', { type: 'userpass' }, /path is already in use at userpass\//],
      ['sys/auth/userpass/inner', { type: 'approle' }, /path is already in use at userpass\//],
      ['sys/auth/teams', { type: 'approle' }, /path is already in use at teams\/up\//],
      ['sys/auth/people', {}, /missing required field "type"/],
      ['sys/auth/people', { type: 'userpass', config: { default_lease_ttl: 'forever' } }, /default_lease_ttl must be a number of seconds or a duration/],
      ['sys/auth/people', { type: 'userpass', config: { default_lease_ttl: '2h', max_lease_ttl: '1h' } }, /max lease TTL of 3600 would be less than backend default lease TTL of 7200/],
      ['sys/auth/people', { type: 'userpass', config: { token_type: 'batch' } }, /batch tokens are not offered/],
      ['sys/auth/people', { type: 'userpass', config: 'x' }, /"config" must be an object/],
      ['sys/auth/people', { type: 'userpass', local: true }, /"local" is not supported/],
      ['sys/auth/people', { type: 'userpass', options: { version: '2' } }, /take no options/],
      ['sys/auth/a//b', { type: 'userpass' }, /mount path "a\/\/b" is not canonical/],
      ['sys/auth/userpass/tune', { max_lease_ttl: 'soon' }, /max_lease_ttl must be a number of seconds/],
      ['sys/auth/nothing/tune', { description: 'x' }, /no auth method enabled there/],
      ['sys/auth/token/tune', { default_lease_ttl: '1h' }, /tuning them at auth\/token\/ is not offered/],
    ];
    for (const [path, body, message] of refusals) expectError(await send('POST', path, body), 400, message);
    expectError(await send('DELETE', 'sys/auth/token'), 400, /built in and cannot be disabled/);
    expectError(await send('GET', 'sys/auth/nothing'), 400, /no auth method enabled at "nothing\/"/);
    expect(await table()).toEqual(before);
  });

  it('needs sudo on sys/auth/<path> to enable, read or disable a method', async () => {
    const policy = (sudo: boolean) => `path "sys/auth/*" { capabilities = ["create", "read", "update", "delete"${sudo ? ', "sudo"' : ''}] }`;
    expect((await send('PUT', 'sys/policy/auth-admin', { policy: policy(false) })).status).toBe(204);
    expect((await send('PUT', 'sys/policy/auth-sudo', { policy: policy(true) })).status).toBe(204);
    const tokenWith = async (p: string) => (await send('POST', 'auth/token/create', { policies: [p] })).body.auth.client_token as string;
    const plain = await tokenWith('auth-admin');
    const sudo = await tokenWith('auth-sudo');
    expectError(await send('POST', 'sys/auth/ops', { type: 'approle' }, plain), 403, /update with sudo/);
    expect((await table())['ops/']).toBeUndefined();
    expect((await send('POST', 'sys/auth/ops', { type: 'approle' }, sudo)).status).toBe(204);
    expect((await send('GET', 'sys/auth/ops', undefined, sudo)).body.data.type).toBe('approle');
    expect((await send('DELETE', 'sys/auth/ops', undefined, sudo)).status).toBe(204);
    expect((await table())['ops/']).toBeUndefined();
  });

  it("logs in without a token on the method's login path, with Vault's login reply and the mount's TTLs", async () => {
    const login = await userLogin('teams/up', 'alice', { token_policies: 'dev,dev' });
    expect(login.status).toBe(200);
    expect(login.body).toMatchObject({ lease_id: '', renewable: false, lease_duration: 0, data: null, wrap_info: null, warnings: null });
    expect(login.body.auth).toEqual({
      client_token: expect.stringMatching(/^hvs\.[0-9A-Za-z]{24}$/),
      accessor: expect.any(String),
      policies: ['dev', 'default'],
      token_policies: ['dev', 'default'],
      identity_policies: null,
      metadata: { username: 'alice' },
      // The mount's tuned default (30m).
      lease_duration: 1800,
      renewable: true,
      entity_id: '',
      token_type: 'service',
      orphan: true,
      mfa_requirement: null,
      num_uses: 0,
    });
    const self = await send('GET', 'auth/token/lookup-self', undefined, login.body.auth.client_token);
    expect(self.status).toBe(200);
    expect(self.body.data).toMatchObject({
      display_name: 'userpass-alice',
      path: 'auth/teams/up/login/alice',
      orphan: true,
      type: 'service',
      meta: { username: 'alice' },
    });

    // A role TTL above the mount's maximum (2h) gets the maximum, also on renewal.
    const long = await userLogin('teams/up', 'bob', { token_ttl: '10h', token_max_ttl: '20h' });
    expect(long.body.auth.lease_duration).toBe(7200);
    const renewed = await send('POST', 'auth/token/renew-self', { increment: '20h' }, long.body.auth.client_token);
    expect(renewed.status).toBe(200);
    expect(renewed.body.auth.lease_duration).toBeLessThanOrEqual(7200);

    // Periodic: the TTL is the period, and a renewal gives the period again whatever is asked.
    const periodic = await userLogin('userpass', 'carol', { token_period: '45m' });
    expect(periodic.body.auth.lease_duration).toBe(2700);
    expect((await send('GET', 'auth/token/lookup-self', undefined, periodic.body.auth.client_token)).body.data.period).toBe(2700);
    expect((await send('POST', 'auth/token/renew-self', { increment: 60 }, periodic.body.auth.client_token)).body.auth.lease_duration).toBe(2700);

    expectError(await send('POST', 'auth/userpass/login/carol', { password: 'wrong passphrase' }, NO_TOKEN), 400, /invalid username or password/);
  });

  it('needs a token and the ACL on paths that are not login paths, and 404s paths no method serves', async () => {
    expectError(await send('GET', 'auth/userpass/users/alice', undefined, NO_TOKEN), 403, /no client token/);
    expectError(await send('POST', 'auth/userpass/users/mallory', { password: 'a long passphrase' }, NO_TOKEN), 403, /no client token/);
    const login = await userLogin('userpass', 'dave');
    // The default policy grants nothing under auth/userpass/: a create is refused as "create".
    const asDave = login.body.auth.client_token as string;
    expectError(await send('POST', 'auth/userpass/users/mallory', { password: 'a long passphrase' }, asDave), 403, /do not grant create on "auth\/userpass\/users\/mallory"/);
    expectError(await send('POST', 'auth/userpass/users/dave', { password: 'a long passphrase' }, asDave), 403, /do not grant update on "auth\/userpass\/users\/dave"/);
    expectError(await send('POST', 'auth/nothing/login', {}), 404, /no handler for route "auth\/nothing\/login"/);
    expectError(await send('POST', 'auth/nothing/login', {}, NO_TOKEN), 403, /no client token/);
    // The token store's own routes are unchanged.
    expect((await send('GET', 'auth/token/lookup-self')).status).toBe(200);
    expectError(await send('GET', 'auth/token/no-such-endpoint'), 404, /no handler for route "auth\/token\/no-such-endpoint"/);
  });

  it('disabling a method revokes the tokens its logins issued and deletes its data; disabling nothing succeeds', async () => {
    expect((await send('POST', 'sys/auth/temp', { type: 'userpass' })).status).toBe(204);
    const uuid = (await table())['temp/']!.uuid as string;
    expect((await send('PUT', 'sys/policy/maker', { policy: 'path "auth/token/create" { capabilities = ["update"] }' })).status).toBe(204);
    const first = (await userLogin('temp', 'erin', { token_policies: 'maker' })).body.auth.client_token as string;
    const second = (await send('POST', 'auth/temp/login/erin', { password: 'a long passphrase' }, NO_TOKEN)).body.auth.client_token as string;
    const child = (await send('POST', 'auth/token/create', { policies: ['default'] }, first)).body.auth.client_token as string;
    const other = (await userLogin('userpass', 'frank')).body.auth.client_token as string;
    const barrier = kw.service.core.barrier;
    expect((await barrier.list(`auth/${uuid}/`)).length).toBeGreaterThan(0);

    expect((await send('DELETE', 'sys/auth/temp')).status).toBe(204);
    for (const token of [first, second, child]) expectError(await send('GET', 'auth/token/lookup-self', undefined, token), 403, /invalid token/);
    expect((await send('GET', 'auth/token/lookup-self', undefined, other)).status).toBe(200);
    expect(await barrier.list(`auth/${uuid}/`)).toEqual([]);
    expect((await table())['temp/']).toBeUndefined();
    expectError(await send('POST', 'auth/temp/login/erin', { password: 'a long passphrase' }, NO_TOKEN), 403, /no client token/);
    expect((await send('DELETE', 'sys/auth/temp')).status).toBe(204);

    // Enabled again at the same path, it is a new method with nothing of the old one's.
    expect((await send('POST', 'sys/auth/temp', { type: 'userpass' })).status).toBe(204);
    expect((await table())['temp/']!.uuid).not.toBe(uuid);
    expectError(await send('POST', 'auth/temp/login/erin', { password: 'a long passphrase' }, NO_TOKEN), 400, /invalid username or password/);
  });

  it('answers 503 on a login path while sealed, and keeps the table across a restart', async () => {
    const before = await table();
    expect((await send('PUT', 'sys/seal')).status).toBe(204);
    expectError(await send('POST', 'auth/userpass/login/alice', { password: 'a long passphrase' }, NO_TOKEN), 503, /sealed/);
    expectError(await send('GET', 'sys/auth'), 503, /sealed/);

    await kw.service.close();
    kw.service = await restartInProcess(kw);
    base = kw.service.url;
    await unseal();
    expect(await table()).toEqual(before);
    const login = await send('POST', 'auth/userpass/login/dave', { password: 'a long passphrase' }, NO_TOKEN);
    expect(login.status).toBe(200);
    expect((await send('GET', 'auth/token/lookup-self', undefined, login.body.auth.client_token)).body.data.path).toBe('auth/userpass/login/dave');
  });

  it('finishes at the next unseal a disable that stopped after its first write (a crash)', async () => {
    expect((await send('POST', 'sys/auth/crashy', { type: 'userpass' })).status).toBe(204);
    const token = (await userLogin('crashy', 'gina')).body.auth.client_token as string;
    const core = kw.service.core;
    const uuid = (await table())['crashy/']!.uuid as string;
    // The table as the disable's first write leaves it: the method marked, its tokens and data still there.
    const stored = JSON.parse((await core.barrier.get('core/auth'))!.toString('utf8')) as { path: string; disabling?: true }[];
    await core.barrier.put('core/auth', Buffer.from(JSON.stringify(stored.map((e) => (e.path === 'crashy/' ? { ...e, disabling: true } : e)))));
    await kw.service.close();
    kw.service = await restartInProcess(kw);
    base = kw.service.url;
    await unseal();
    expect((await table())['crashy/']).toBeUndefined();
    expectError(await send('GET', 'auth/token/lookup-self', undefined, token), 403, /invalid token/);
    expect(await kw.service.core.barrier.list(`auth/${uuid}/`)).toEqual([]);
    expect((await send('POST', 'sys/auth/crashy', { type: 'userpass' })).status).toBe(204);
  });
});
