import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BarrierView } from '../src/barrier/view.js';
import { call, expectError, type InProcess, initAndUnseal, type Reply, startInProcess } from './support/service.js';

describe('userpass auth method', () => {
  let kw: InProcess;
  let url: string;
  let root: string;
  const send = (method: string, path: string, body?: unknown, token = root): Promise<Reply> => call(url, method, path, { token, body });
  /** hvac's list: GET with ?list=true. */
  const list = (path: string): Promise<Reply> => send('GET', `${path}?list=true`);
  const login = (user: string, password: unknown): Promise<Reply> => call(url, 'POST', `auth/userpass/login/${user}`, { body: { password } });
  const readUser = async (user: string) => (await send('GET', `auth/userpass/users/${user}`)).body.data;

  beforeAll(async () => {
    kw = await startInProcess('file');
    url = kw.service.url;
    ({ root } = await initAndUnseal(url, 1, 1));
    expect((await send('POST', 'sys/auth/userpass', { type: 'userpass' })).status).toBe(204);
    expect((await send('POST', 'sys/mounts/kv', { type: 'kv' })).status).toBe(204);
    expect((await send('PUT', 'kv/team', { note: 'hello' })).status).toBe(204);
    expect((await send('PUT', 'sys/policy/team-read', { policy: 'path "kv/team" { capabilities = ["read"] }' })).status).toBe(204);
    expect((await send('PUT', 'sys/policy/team-write', { policy: 'path "kv/team" { capabilities = ["update"] }' })).status).toBe(204);
  });

  afterAll(async () => {
    await kw?.service.close();
  });

  it('creates a user, reads it back without the password, and logs in to a token with its token fields', async () => {
    const alice = { password: 'correct horse', token_policies: 'team-read', token_ttl: '30m', token_num_uses: 4 };
    expect((await send('POST', 'auth/userpass/users/alice', alice)).status).toBe(204);
    const user = await readUser('alice');
    expect(user).toMatchObject({ token_policies: ['team-read'], policies: ['team-read'], token_ttl: 1800, token_max_ttl: 0, token_num_uses: 4 });
    expect(user.token_type).toBe('default');
    expect(JSON.stringify(user)).not.toMatch(/password|correct horse|scrypt|salt|hash/);
    expect((await list('auth/userpass/users')).body.data.keys).toEqual(['alice']);

    const reply = await login('alice', 'correct horse');
    expect(reply.status).toBe(200);
    const auth = reply.body.auth;
    expect([...auth.policies].sort()).toEqual(['default', 'team-read']);
    expect(auth.metadata).toEqual({ username: 'alice' });
    expect(auth.lease_duration).toBe(1800);
    const token = (await send('POST', 'auth/token/lookup', { token: auth.client_token })).body.data;
    expect(token).toMatchObject({ display_name: 'userpass-alice', num_uses: 4, meta: { username: 'alice' } });
    expect((await call(url, 'GET', 'kv/team', { token: auth.client_token })).body.data).toEqual({ note: 'hello' });
    expect((await call(url, 'PUT', 'kv/team', { token: auth.client_token, body: { note: 'x' } })).status).toBe(403);
  });

  it('keeps the password only as a salted scrypt hash: no barrier entry holds it', async () => {
    await send('POST', 'auth/userpass/users/hashy', { password: 'a-distinctive-password', token_policies: 'team-read' });
    await send('POST', 'auth/userpass/users/hashy2', { password: 'a-distinctive-password', token_policies: 'team-read' });
    const view = new BarrierView(kw.service.core.barrier, 'auth/');
    const stored: string[] = [];
    for (const path of await view.walk('')) {
      const text = (await view.get(path))!.toString('utf8');
      expect(text).not.toContain('a-distinctive-password');
      if (path.endsWith('/users/hashy') || path.endsWith('/users/hashy2')) stored.push(text);
    }
    expect(stored).toHaveLength(2);
    const [one, two] = stored.map((t) => JSON.parse(t).password);
    expect(one).toMatchObject({ algorithm: 'scrypt', N: 16384, r: 8, p: 1 });
    expect(one.salt).not.toBe(two.salt);
    expect(one.hash).not.toBe(two.hash);
  });

  it('answers the same 400 for a wrong password and an unknown user, after the same scrypt work', async () => {
    await send('POST', 'auth/userpass/users/bob', { password: 'bobs-password', token_policies: 'team-read' });
    expectError(await login('bob', 'wrong'), 400, /^invalid username or password$/);
    expectError(await login('nobody', 'wrong'), 400, /^invalid username or password$/);
    expectError(await login('not a name!', 'wrong'), 400, /^invalid username or password$/);
    expectError(await login('bob', ''), 400, /missing password/);
    expectError(await call(url, 'POST', 'auth/userpass/login/bob', { body: {} }), 400, /missing password/);

    // Unknown users cost an scrypt too: their median login time is within a factor of the known user's.
    const median = async (user: string) => {
      const times: number[] = [];
      for (let i = 0; i < 7; i++) {
        const start = performance.now();
        expect((await login(user, 'wrong')).status).toBe(400);
        times.push(performance.now() - start);
      }
      return times.sort((a, b) => a - b)[3]!;
    };
    const known = await median('bob');
    const unknown = await median('nobody');
    expect(known).toBeGreaterThan(10);
    expect(unknown).toBeGreaterThan(known / 3);
    expect(unknown).toBeLessThan(known * 3);
  });

  it('lowercases usernames, as Vault', async () => {
    expect((await send('POST', 'auth/userpass/users/Carol', { password: 'pw-carol' })).status).toBe(204);
    expect((await send('GET', 'auth/userpass/users/carol')).status).toBe(200);
    const reply = await login('CAROL', 'pw-carol');
    expect(reply.status).toBe(200);
    expect(reply.body.auth.metadata).toEqual({ username: 'carol' });
  });

  it('changes the password: the old one stops working, the new one works, the policies stay', async () => {
    await send('POST', 'auth/userpass/users/dave', { password: 'old-pw', token_policies: 'team-read' });
    expect((await send('POST', 'auth/userpass/users/dave/password', { password: 'new-pw' })).status).toBe(204);
    expectError(await login('dave', 'old-pw'), 400, /^invalid username or password$/);
    expect((await login('dave', 'new-pw')).status).toBe(200);
    expect((await readUser('dave')).token_policies).toEqual(['team-read']);
    expectError(await send('POST', 'auth/userpass/users/dave/password', { password: '' }), 400, /password must not be empty/);
    expectError(await send('POST', 'auth/userpass/users/dave/password', {}), 400, /missing password/);
    expectError(await send('POST', 'auth/userpass/users/nobody/password', { password: 'x' }), 400, /user "nobody" does not exist/);
    expect((await send('GET', 'auth/userpass/users/nobody')).status).toBe(404);
    expect((await login('dave', 'new-pw')).status).toBe(200);
  });

  it('updates policies: later logins get the new ones, the password stays', async () => {
    await send('POST', 'auth/userpass/users/erin', { password: 'erin-pw', policies: 'team-read' });
    expect((await send('POST', 'auth/userpass/users/erin/policies', { token_policies: ['team-write'] })).status).toBe(204);
    const reply = await login('erin', 'erin-pw');
    expect(reply.status).toBe(200);
    expect([...reply.body.auth.policies].sort()).toEqual(['default', 'team-write']);
    expect((await call(url, 'PUT', 'kv/team', { token: reply.body.auth.client_token, body: { note: 'erin' } })).status).toBe(204);
    expect((await call(url, 'GET', 'kv/team', { token: reply.body.auth.client_token })).status).toBe(403);
    // hvac's legacy update_userpass_policies sends `policies` as a comma-separated string.
    expect((await send('POST', 'auth/userpass/users/erin/policies', { policies: 'team-read,team-write' })).status).toBe(204);
    expect((await readUser('erin')).token_policies).toEqual(['team-read', 'team-write']);
    expectError(await send('POST', 'auth/userpass/users/erin/policies', {}), 400, /missing token_policies/);
    expectError(await send('POST', 'auth/userpass/users/erin/policies', { token_policies: 'root' }), 400, /cannot issue root tokens/);
    expect((await readUser('erin')).token_policies).toEqual(['team-read', 'team-write']);
  });

  it('updates only the fields given: a write without a password keeps it', async () => {
    await send('POST', 'auth/userpass/users/frank', { password: 'frank-pw', token_policies: 'team-read', token_ttl: 600 });
    expect((await send('POST', 'auth/userpass/users/frank', { token_max_ttl: '1h' })).status).toBe(204);
    expect(await readUser('frank')).toMatchObject({ token_policies: ['team-read'], token_ttl: 600, token_max_ttl: 3600 });
    expect((await login('frank', 'frank-pw')).status).toBe(200);
  });

  it("deletes a user: the login stops working, and the user's tokens are no longer renewed", async () => {
    await send('POST', 'auth/userpass/users/gone', { password: 'gone-pw', token_period: '1h' });
    const token = (await login('gone', 'gone-pw')).body.auth.client_token as string;
    expect((await send('POST', 'auth/token/renew-self', {}, token)).status).toBe(200);
    expect((await send('DELETE', 'auth/userpass/users/gone')).status).toBe(204);
    expectError(await login('gone', 'gone-pw'), 400, /^invalid username or password$/);
    expect((await send('GET', 'auth/userpass/users/gone')).status).toBe(404);
    // A periodic token would otherwise renew forever after its user was removed.
    expectError(await send('POST', 'auth/token/renew-self', {}, token), 400, /no longer exists: it cannot be renewed; log in again/);
    expectError(await send('POST', 'auth/token/renew', { token }), 400, /no longer exists/);
  });

  it("does not renew a token once its user's policies changed", async () => {
    await send('POST', 'auth/userpass/users/ida', { password: 'ida-pw', token_policies: 'team-read', token_period: '1h' });
    const token = (await login('ida', 'ida-pw')).body.auth.client_token as string;
    expect((await send('POST', 'auth/token/renew-self', {}, token)).status).toBe(200);
    await send('POST', 'auth/userpass/users/ida/policies', { token_policies: '' });
    expectError(await send('POST', 'auth/token/renew-self', {}, token), 400, /have changed: it cannot be renewed; log in again for a token with the new ones/);
    await send('POST', 'auth/userpass/users/ida/policies', { token_policies: 'team-read' });
    expect((await send('POST', 'auth/token/renew-self', {}, token)).status).toBe(200);
  });

  it('refuses a login from outside token_bound_cidrs once the password is right', async () => {
    await send('POST', 'auth/userpass/users/henry', { password: 'henry-pw', token_bound_cidrs: '10.0.0.0/8' });
    expectError(await login('henry', 'wrong'), 400, /^invalid username or password$/);
    expectError(await login('henry', 'henry-pw'), 403, /outside the user's token_bound_cidrs/);
  });

  it('refuses bad input with a 400 and changes nothing', async () => {
    await send('POST', 'auth/userpass/users/ivy', { password: 'ivy-pw', token_policies: 'team-read', token_ttl: 60 });
    const before = await readUser('ivy');
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ password: '' }, /password must not be empty/],
      [{ password: 12 }, /password must be a string/],
      [{ token_ttl: '5 minutes' }, /token_ttl must be a number of seconds/],
      [{ token_num_uses: -1 }, /token_num_uses cannot be negative/],
      [{ token_bound_cidrs: '300.0.0.0/8' }, /token_bound_cidrs: "300.0.0.0\/8" is not a CIDR block/],
      [{ token_type: 'batch' }, /token_type "batch" is not offered/],
      [{ password: 'new-pw', token_ttl: -3 }, /token_ttl must be a number of seconds/],
    ];
    for (const [body, message] of bad) {
      expectError(await send('POST', 'auth/userpass/users/ivy', body), 400, message);
      expectError(await send('POST', 'auth/userpass/users/newbie', { password: 'pw', ...body }), 400, message);
    }
    expect(await readUser('ivy')).toEqual(before);
    expect((await login('ivy', 'ivy-pw')).status).toBe(200);
    expect((await send('GET', 'auth/userpass/users/newbie')).status).toBe(404);
    expectError(await send('POST', 'auth/userpass/users/newbie', { token_policies: 'team-read' }), 400, /missing password/);
    expect((await send('GET', 'auth/userpass/users/newbie')).status).toBe(404);
    expectError(await send('POST', 'auth/userpass/users/bad!name', { password: 'x' }), 400, /invalid username/);
    expect((await send('GET', 'auth/userpass/users/ivy/nothing')).status).toBe(404);
  });
});
