import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, expectError, initAndUnseal, type InProcess, type Reply, restartInProcess, startInProcess } from './support/service.js';

describe('token roles, periodic tokens, CIDR-bound tokens and token types', () => {
  let kw: InProcess;
  let base: string;
  let root: string;
  let keys: string[];
  const send = (method: string, path: string, body?: unknown, token = root): Promise<Reply> => call(base, method, path, { token, body });
  const create = async (path: string, body: unknown, token = root) => {
    const reply = await send('POST', path, body, token);
    expect(reply.status, JSON.stringify(reply.body)).toBe(200);
    return reply.body.auth as { client_token: string; policies: string[]; lease_duration: number; orphan: boolean; renewable: boolean };
  };
  const lookup = async (token: string) => (await send('POST', 'auth/token/lookup', { token })).body.data as Record<string, any>;

  beforeAll(async () => {
    kw = await startInProcess('file');
    base = kw.service.url;
    ({ root, keys } = await initAndUnseal(base));
    for (const name of ['a', 'b', 'c', 'maker']) {
      const rules = name === 'maker' ? 'path "auth/token/create/*" { capabilities = ["update"] }' : `path "secret/${name}" { capabilities = ["read"] }`;
      expect((await send('PUT', `sys/policy/${name}`, { policy: rules })).status).toBe(204);
    }
  });
  afterAll(() => kw.service.close());

  it("writes, reads, lists and deletes roles in Vault's shape (hvac's create_or_update_role body)", async () => {
    const hvacBody = { allowed_policies: ['a', 'b'], disallowed_policies: 'c', orphan: true, renewable: true, path_suffix: 'v1' };
    expect((await send('POST', 'auth/token/roles/web', { ...hvacBody, token_period: '1h', token_explicit_max_ttl: 86400 })).status).toBe(204);
    const read = await send('GET', 'auth/token/roles/web');
    expect(read.status).toBe(200);
    expect(read.body.data).toMatchObject({
      name: 'web',
      allowed_policies: ['a', 'b'],
      disallowed_policies: ['c'],
      orphan: true,
      renewable: true,
      path_suffix: 'v1',
      token_period: 3600,
      period: 3600,
      token_explicit_max_ttl: 86400,
      explicit_max_ttl: 86400,
      token_bound_cidrs: [],
      token_type: 'default-service',
    });
    // An update changes only the fields it gives.
    expect((await send('POST', 'auth/token/roles/web', { renewable: false })).status).toBe(204);
    expect((await send('GET', 'auth/token/roles/web')).body.data).toMatchObject({ renewable: false, orphan: true, token_period: 3600 });
    expect((await send('POST', 'auth/token/roles/tmp', {})).status).toBe(204);
    expect((await send('GET', 'auth/token/roles?list=true')).body.data.keys).toEqual(['tmp', 'web']);
    expect((await send('DELETE', 'auth/token/roles/tmp')).status).toBe(204);
    expect((await send('GET', 'auth/token/roles?list=true')).body.data.keys).toEqual(['web']);
    expectError(await send('GET', 'auth/token/roles/tmp'), 404, /no token role named "tmp"/);
    expect((await send('POST', 'auth/token/roles/web', { renewable: true })).status).toBe(204);
  });

  it('refuses bad role fields with a 400, writing nothing', async () => {
    const refusals: [string, unknown, RegExp][] = [
      ['bad', { token_type: 'batch' }, /batch tokens are not offered/],
      ['bad', { token_period: 'weekly' }, /token_period must be a number of seconds or a duration/],
      ['bad', { allowed_policies: ['Admin'] }, /policy name "Admin" is not canonical/],
      ['bad', { path_suffix: '../x' }, /path_suffix must be segments/],
      ['bad', { token_bound_cidrs: ['10.0.0.0/33'] }, /is not a CIDR block/],
      ['bad', { allowed_entity_aliases: ['x'] }, /"allowed_entity_aliases" is not supported/],
      ['bad name!', {}, /role name "bad name!" is not valid/],
    ];
    for (const [name, body, message] of refusals) expectError(await send('POST', `auth/token/roles/${encodeURIComponent(name)}`, body), 400, message);
    expectError(await send('GET', 'auth/token/roles/bad'), 404, /no token role/);
  });

  it("issues tokens from a role by Vault's rules: allowed and disallowed policies, orphan, period, path", async () => {
    const all = await create('auth/token/create/web', {});
    expect(all.policies).toEqual(['a', 'b', 'default']);
    expect(all.orphan).toBe(true);
    expect(all.lease_duration).toBe(3600);
    const info = await lookup(all.client_token);
    expect(info).toMatchObject({ path: 'auth/token/create/web/v1', period: 3600, explicit_max_ttl: 86400, orphan: true, type: 'service' });
    expect((await create('auth/token/create/web', { policies: ['a'] })).policies).toEqual(['a', 'default']);
    const notAllowed = await send('POST', 'auth/token/create/web', { policies: ['a', 'c'] });
    expectError(notAllowed, 400, /token policies \(c\) must be subset of the role's allowed policies \(a, b\)/);
    expectError(await send('POST', 'auth/token/create/nope', {}), 400, /unknown role nope/);

    // Without allowed policies, the parent's apply, minus the disallowed ones.
    expect((await send('POST', 'auth/token/roles/plain', { disallowed_policies: ['c', 'default'] })).status).toBe(204);
    expectError(await send('POST', 'auth/token/create/plain', { policies: ['a', 'c'] }), 400, /token policies \(c\) are among the role's disallowed policies/);
    const plain = await create('auth/token/create/plain', { policies: ['a'] });
    expect(plain.policies).toEqual(['a']);
    expect(plain.orphan).toBe(false);
    expectError(await send('POST', 'auth/token/create/plain', {}), 400, /root tokens may not be created from a role|needs at least one policy/);

    // A role's allowed policies trump the parent's: a token holding only "maker" makes an "a" token, and an orphan, without sudo.
    const maker = await create('auth/token/create', { policies: ['maker'] });
    const made = await create('auth/token/create/web', { policies: ['b'] }, maker.client_token);
    expect(made.policies).toEqual(['b', 'default']);
    expect(made.orphan).toBe(true);
    expectError(await send('POST', 'auth/token/create/plain', { policies: ['a'] }, maker.client_token), 403, /child policies must be subset of parent/);
  });

  it('renews a periodic token to its period, whatever increment is asked; a period needs sudo without a role', async () => {
    const periodic = await create('auth/token/create', { period: '20m', policies: ['a'] });
    expect(periodic.lease_duration).toBe(1200);
    expect((await lookup(periodic.client_token)).period).toBe(1200);
    const renewed = await send('POST', 'auth/token/renew-self', { increment: '1h' }, periodic.client_token);
    expect(renewed.body.auth.lease_duration).toBe(1200);
    const ordinary = await create('auth/token/create', { ttl: '20m', policies: ['a'] });
    expect((await lookup(ordinary.client_token)).period).toBeUndefined();
    expect((await send('PUT', 'sys/policy/creator', { policy: 'path "auth/token/create" { capabilities = ["update"] }' })).status).toBe(204);
    const creator = await create('auth/token/create', { policies: ['creator', 'a'] });
    const unprivileged = await send('POST', 'auth/token/create', { period: '1h', policies: ['a'] }, creator.client_token);
    expectError(unprivileged, 403, /root or sudo privileges required to create a periodic token/);
    expect((await create('auth/token/create', { policies: ['a'] }, creator.client_token)).policies).toEqual(['a', 'default']);
  });

  it('refuses batch tokens, and chosen ids, by name; takes type service and default', async () => {
    const batch = await send('POST', 'auth/token/create', { type: 'batch' });
    expectError(batch, 400, /^batch tokens are not offered: keyward issues service tokens; omit type or use type=service$/);
    expectError(await send('POST', 'auth/token/create', { type: 'other' }), 400, /type must be "service" or "default"/);
    expectError(await send('POST', 'auth/token/create', { id: 'my-own-token' }), 400, /choosing a token's id is not offered/);
    for (const type of ['service', 'default']) expect((await create('auth/token/create', { type, policies: ['a'] })).policies).toEqual(['a', 'default']);
  });

  it('refuses a CIDR-bound token from outside its blocks, on every use, without echoing it', async () => {
    expect((await send('POST', 'auth/token/roles/lan', { allowed_policies: 'a', token_bound_cidrs: '10.0.0.0/8' })).status).toBe(204);
    expect((await send('POST', 'auth/token/roles/local', { allowed_policies: 'a', token_bound_cidrs: ['127.0.0.1/32', '::1'] })).status).toBe(204);
    const lan = await create('auth/token/create/lan', {});
    expect((await lookup(lan.client_token)).bound_cidrs).toEqual(['10.0.0.0/8']);
    for (const [method, path] of [
      ['GET', 'auth/token/lookup-self'],
      ['GET', 'secret/a'],
      ['GET', 'sys/internal/ui/mounts/secret'],
    ] as const) {
      const refused = await send(method, path, undefined, lan.client_token);
      expectError(refused, 403, /bound to CIDR blocks that do not include the request's address 127\.0\.0\.1/);
      expect(JSON.stringify(refused.body)).not.toContain(lan.client_token);
    }
    const local = await create('auth/token/create/local', {});
    expect((await send('GET', 'auth/token/lookup-self', undefined, local.client_token)).status).toBe(200);
  });

  it('keeps roles across a restart, and loads tokens stored before periods and CIDR bounds', async () => {
    await kw.service.close();
    kw.service = await restartInProcess(kw);
    base = kw.service.url;
    for (const key of keys.slice(0, 2)) await call(base, 'PUT', 'sys/unseal', { body: { key } });
    expect((await send('GET', 'auth/token/roles?list=true')).body.data.keys).toEqual(['lan', 'local', 'plain', 'web']);
    // The init root token's stored entry has neither field.
    const self = await send('GET', 'auth/token/lookup-self');
    expect(self.status).toBe(200);
    expect(self.body.data.period).toBeUndefined();
    expect(self.body.data.bound_cidrs).toBeUndefined();
  });
});
