import nodeVault from 'node-vault';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, initAndUnseal, type InProcess, startInProcess } from './support/service.js';

describe('tokens and ACL policies', () => {
  let kw: InProcess;
  let base: string;
  let root: string;
  let clock = Date.now();

  const policy = (name: string, doc: string) => call(base, 'PUT', `sys/policy/${name}`, { token: root, body: { policy: doc } });
  async function tokenWith(policies: string[], extra: Record<string, unknown> = {}, parent = root): Promise<{ token: string; accessor: string }> {
    const res = await call(base, 'POST', 'auth/token/create', { token: parent, body: { policies, ...extra } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return { token: res.body.auth.client_token, accessor: res.body.auth.accessor };
  }

  /** Sends each request with its token and expects its status; a 403 must say why. */
  async function expectStatuses(cases: Array<[string, string, string, string, unknown, number]>): Promise<void> {
    for (const [name, token, method, path, body, want] of cases) {
      const res = await call(base, method, path, { token, body });
      expect(`${name} ${method} ${path} → ${res.status}`, JSON.stringify(res.body)).toBe(`${name} ${method} ${path} → ${want}`);
      if (want === 403) expect(res.body.errors[0]).toMatch(/permission denied/);
    }
  }

  beforeAll(async () => {
    kw = await startInProcess('file', {}, { now: () => clock });
    base = kw.service.url;
    ({ root } = await initAndUnseal(base));
    await call(base, 'POST', 'sys/mounts/kv', { token: root, body: { type: 'kv-v2' } });
    for (const p of ['secret/a', 'secret/private/x', 'secret/x/team-b', 'secret/x/team-c', 'secret/app/admin', 'secret/app/db']) {
      await call(base, 'PUT', p, { token: root, body: { v: p } });
    }
    await call(base, 'POST', 'kv/data/x', { token: root, body: { data: { v: 1 } } });
    expect((await policy('readonly', 'path "secret/*" {\n  capabilities = ["read", "list"]\n}\npath "kv/data/*" {\n  capabilities = ["read"]\n}\npath "kv/metadata/*" {\n  capabilities = ["list"]\n}\n')).status).toBe(204);
    await policy('writeonly', 'path "secret/*" {\n  capabilities = ["create", "update"]\n}\npath "kv/data/*" {\n  capabilities = ["create", "update"]\n}\n');
    await policy('createonly', 'path "secret/*" {\n  capabilities = ["create"]\n}\n');
    await policy('operator', JSON.stringify({
      path: {
        'sys/rotate': { capabilities: ['update', 'sudo'] },
        'sys/rotate/config': { capabilities: ['read', 'update', 'sudo'] },
        'sys/seal': { capabilities: ['update'] },
        'sys/key-status': { capabilities: ['read'] },
      },
    }));
    await policy('denying', 'path "secret/*" {\n  capabilities = ["read"]\n}\npath "secret/private/*" {\n  capabilities = ["deny"]\n}\npath "secret/+/team-b" {\n  capabilities = ["deny"]\n}\npath "secret/app/*" {\n  capabilities = ["read", "list"]\n}\npath "secret/app/admin" {\n  capabilities = ["deny"]\n}\n');
  });
  afterAll(() => kw.service.close());

  it('allows and denies exactly what the policies say', async () => {
    const ro = (await tokenWith(['readonly'])).token;
    const wo = (await tokenWith(['writeonly'])).token;
    const co = (await tokenWith(['createonly'])).token;
    const op = (await tokenWith(['operator'])).token;
    const dn = (await tokenWith(['denying'])).token;
    // The status each request must get: 403 where the policy denies, the endpoint's success status where it allows.
    const matrix: Array<[string, string, string, string, unknown, number]> = [
      ['readonly', ro, 'GET', 'secret/a', undefined, 200],
      ['readonly', ro, 'GET', 'secret/?list=true', undefined, 200],
      ['readonly', ro, 'PUT', 'secret/a', { v: 'x' }, 403],
      ['readonly', ro, 'DELETE', 'secret/a', undefined, 403],
      ['readonly', ro, 'GET', 'kv/data/x', undefined, 200],
      ['readonly', ro, 'POST', 'kv/data/x', { data: { v: 2 } }, 403],
      ['readonly', ro, 'GET', 'kv/metadata/?list=true', undefined, 200],
      ['readonly', ro, 'POST', 'sys/rotate', undefined, 403],
      ['readonly', ro, 'GET', 'sys/mounts', undefined, 403],
      ['writeonly', wo, 'PUT', 'secret/new', { v: 'n' }, 204],
      ['writeonly', wo, 'PUT', 'secret/a', { v: 'updated' }, 204],
      ['writeonly', wo, 'GET', 'secret/a', undefined, 403],
      ['writeonly', wo, 'DELETE', 'secret/a', undefined, 403],
      ['writeonly', wo, 'POST', 'kv/data/x', { data: { v: 3 } }, 200],
      ['writeonly', wo, 'GET', 'kv/data/x', undefined, 403],
      ['createonly', co, 'PUT', 'secret/fresh', { v: 'f' }, 204],
      ['createonly', co, 'PUT', 'secret/fresh', { v: 'again' }, 403],
      ['operator', op, 'POST', 'sys/rotate', undefined, 204],
      ['operator', op, 'GET', 'sys/rotate/config', undefined, 200],
      ['operator', op, 'GET', 'sys/key-status', undefined, 200],
      ['operator', op, 'PUT', 'sys/seal', undefined, 403],
      ['operator', op, 'GET', 'secret/a', undefined, 403],
      ['denying', dn, 'GET', 'secret/a', undefined, 200],
      ['denying', dn, 'GET', 'secret/private/x', undefined, 403],
      ['denying', dn, 'GET', 'secret/x/team-b', undefined, 403],
      ['denying', dn, 'GET', 'secret/x/team-c', undefined, 200],
      ['denying', dn, 'GET', 'secret/app/db', undefined, 200],
      ['denying', dn, 'GET', 'secret/app/admin', undefined, 403],
      ['denying', dn, 'GET', 'secret/app?list=true', undefined, 200],
    ];
    await expectStatuses(matrix);
    expect((await call(base, 'GET', 'secret/a', { token: root })).body.data).toEqual({ v: 'updated' });

    const caps = await call(base, 'POST', 'sys/capabilities-self', { token: dn, body: { paths: ['secret/a', 'secret/private/x', 'secret/app/db'] } });
    expect(caps.body.data).toMatchObject({ 'secret/a': ['read'], 'secret/private/x': ['deny'], 'secret/app/db': ['read', 'list'] });
    expect((await call(base, 'POST', 'sys/capabilities-self', { token: root, body: { path: 'anything' } })).body.capabilities).toEqual(['root']);
  });

  it('lets a deny win over every other capability on its path: in one block, across policies, on globs and on a more precise path', async () => {
    for (const p of ['secret/mixed', 'secret/locked', 'secret/team/x', 'secret/zone/inner', 'secret/zone/other', 'secret/svc/cfg']) {
      expect((await call(base, 'PUT', p, { token: root, body: { v: p } })).status).toBe(204);
    }
    // Grants on every path the other policy denies: with these alone, each request below succeeds.
    await policy('grants', [
      'path "secret/mixed" {\n  capabilities = ["read", "list", "deny"]\n}',
      'path "secret/locked" {\n  capabilities = ["read", "update"]\n}',
      'path "secret/team/*" {\n  capabilities = ["read", "create", "update"]\n}',
      'path "secret/zone/*" {\n  capabilities = ["read"]\n}',
      'path "secret/zone/inner" {\n  capabilities = ["read", "update"]\n}',
      'path "secret/+/cfg" {\n  capabilities = ["read"]\n}',
      'path "secret/*" {\n  capabilities = ["read"]\n}',
      '',
    ].join('\n'));
    await policy('forbids', [
      'path "secret/locked" {\n  capabilities = ["deny"]\n}',
      'path "secret/team/*" {\n  capabilities = ["deny"]\n}',
      'path "secret/zone/inner" {\n  capabilities = ["deny"]\n}',
      'path "secret/+/cfg" {\n  capabilities = ["deny"]\n}',
      '',
    ].join('\n'));
    const granted = (await tokenWith(['grants'])).token;
    const both = (await tokenWith(['grants', 'forbids'])).token;
    await expectStatuses([
      // "read", "list" and "deny" in one block.
      ['grants', granted, 'GET', 'secret/mixed', undefined, 403],
      ['grants', granted, 'GET', 'secret/locked', undefined, 200],
      ['grants', granted, 'PUT', 'secret/locked', { v: 'changed' }, 204],
      ['grants', granted, 'GET', 'secret/team/x', undefined, 200],
      ['grants', granted, 'PUT', 'secret/team/new', { v: 'n' }, 204],
      ['grants', granted, 'GET', 'secret/zone/inner', undefined, 200],
      ['grants', granted, 'GET', 'secret/svc/cfg', undefined, 200],
      // The same exact path granted by one policy and denied by the other.
      ['grants+forbids', both, 'GET', 'secret/locked', undefined, 403],
      ['grants+forbids', both, 'PUT', 'secret/locked', { v: 'overwritten' }, 403],
      // The same glob.
      ['grants+forbids', both, 'GET', 'secret/team/x', undefined, 403],
      ['grants+forbids', both, 'PUT', 'secret/team/other', { v: 'o' }, 403],
      // A path more precise than the glob granting it, granted and denied on that path.
      ['grants+forbids', both, 'GET', 'secret/zone/inner', undefined, 403],
      ['grants+forbids', both, 'GET', 'secret/zone/other', undefined, 200],
      // A "+" pattern more precise than "secret/*", granted and denied on that pattern.
      ['grants+forbids', both, 'GET', 'secret/svc/cfg', undefined, 403],
      ['grants+forbids', both, 'GET', 'secret/a', undefined, 200],
    ]);
    const caps = await call(base, 'POST', 'sys/capabilities-self', { token: both, body: { paths: ['secret/mixed', 'secret/locked', 'secret/team/x', 'secret/zone/inner', 'secret/svc/cfg'] } });
    expect(caps.status).toBe(200);
    for (const path of ['secret/mixed', 'secret/locked', 'secret/team/x', 'secret/zone/inner', 'secret/svc/cfg']) expect(caps.body.data[path], path).toEqual(['deny']);
    expect((await call(base, 'GET', 'secret/locked', { token: root })).body.data).toEqual({ v: 'changed' });
  });

  it('manages policies through sys/policy and sys/policies/acl, refusing bad ones', async () => {
    expect((await call(base, 'GET', 'sys/policy', { token: root })).body.policies).toEqual(
      expect.arrayContaining(['createonly', 'default', 'denying', 'operator', 'readonly', 'root', 'writeonly']),
    );
    expect((await call(base, 'GET', 'sys/policy/readonly', { token: root })).body.rules).toContain('secret/*');
    expect((await call(base, 'PUT', 'sys/policies/acl/extra', { token: root, body: { policy: 'path "x/*" {\n capabilities = ["read"]\n}\n' } })).status).toBe(204);
    expect((await call(base, 'GET', 'sys/policies/acl/extra', { token: root })).body.data.policy).toContain('x/*');
    expect((await call(base, 'GET', 'sys/policies/acl?list=true', { token: root })).body.data.keys).toContain('extra');
    expect((await call(base, 'PUT', 'sys/policy/extra2', { token: root, body: { rules: '{"path": {"y": {"capabilities": ["list"]}}}' } })).status).toBe(204);
    expect((await call(base, 'DELETE', 'sys/policies/acl/extra', { token: root })).status).toBe(204);
    expect((await call(base, 'GET', 'sys/policies/acl/extra', { token: root })).status).toBe(404);
    const bad = await call(base, 'PUT', 'sys/policy/bad', { token: root, body: { policy: 'path "a" { capabilities = ["fly"] }\n' } });
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0]).toMatch(/invalid capability "fly"/);
    expect((await call(base, 'PUT', 'sys/policy/root', { token: root, body: { policy: 'path "a" {}' } })).status).toBe(400);
    expect((await call(base, 'DELETE', 'sys/policy/default', { token: root })).status).toBe(400);
    expect((await call(base, 'PUT', 'sys/policy/nodoc', { token: root, body: {} })).body.errors[0]).toMatch(/missing policy document/);
    // A policy change applies at once to tokens that already hold it.
    await policy('changing', 'path "secret/a" {\n capabilities = ["read"]\n}\n');
    const holder = (await tokenWith(['changing'])).token;
    expect((await call(base, 'GET', 'secret/a', { token: holder })).status).toBe(200);
    await policy('changing', 'path "secret/a" {\n capabilities = ["deny"]\n}\n');
    expect((await call(base, 'GET', 'secret/a', { token: holder })).status).toBe(403);
    await policy('changing', 'path "secret/a" {\n capabilities = ["read"]\n}\n');
    expect((await call(base, 'GET', 'secret/a', { token: holder })).status).toBe(200);
    expect((await call(base, 'DELETE', 'sys/policy/changing', { token: root })).status).toBe(204);
    expect((await call(base, 'GET', 'secret/a', { token: holder })).status).toBe(403);

    const ro = (await tokenWith(['readonly'])).token;
    expect((await call(base, 'PUT', 'sys/policy/mine', { token: ro, body: { policy: 'path "a" {\n capabilities = ["read"]\n}\n' } })).status).toBe(403);
  });

  it('enforces expiry, use counts, renewal limits and parent revocation', async () => {
    // Expiry (with the injected clock).
    const short = await tokenWith(['readonly'], { ttl: '1h' });
    expect((await call(base, 'GET', 'auth/token/lookup-self', { token: short.token })).body.data).toMatchObject({ policies: ['readonly', 'default'], ttl: 3600 });
    clock += 2 * 3600 * 1000;
    expect((await call(base, 'GET', 'secret/a', { token: short.token })).status).toBe(403);

    // num_uses: the last use works and revokes the token.
    const twice = await tokenWith(['readonly'], { num_uses: 2 });
    expect((await call(base, 'GET', 'secret/a', { token: twice.token })).status).toBe(200);
    expect((await call(base, 'GET', 'secret/a', { token: twice.token })).status).toBe(200);
    expect((await call(base, 'GET', 'secret/a', { token: twice.token })).status).toBe(403);

    // Renewal never passes explicit_max_ttl.
    const capped = await tokenWith(['readonly'], { ttl: '1h', explicit_max_ttl: '2h' });
    const renewed = await call(base, 'POST', 'auth/token/renew-self', { token: capped.token, body: { increment: '5h' } });
    expect(renewed.status).toBe(200);
    expect(renewed.body.auth.lease_duration).toBeLessThanOrEqual(7200);
    expect(renewed.body.auth.lease_duration).toBeGreaterThan(3600);
    const fixed = await tokenWith(['readonly'], { renewable: false });
    expect((await call(base, 'POST', 'auth/token/renew-self', { token: fixed.token })).body.errors[0]).toMatch(/not renewable/);

    // Children: subset of the parent's policies; revoking the parent revokes them.
    const parent = await tokenWith(['readonly', 'writeonly']);
    await policy('parent-creates', 'path "auth/token/create" {\n capabilities = ["update"]\n}\n');
    const parent2 = await tokenWith(['readonly', 'parent-creates']);
    const child = await tokenWith(['readonly'], {}, parent2.token);
    // The child holds no policy on auth/token/create.
    const grandchild = await call(base, 'POST', 'auth/token/create', { token: child.token, body: { policies: ['readonly'] } });
    expect(grandchild.status).toBe(403);
    expect(grandchild.body.errors[0]).toMatch(/permission denied/);
    const wider = await call(base, 'POST', 'auth/token/create', { token: parent2.token, body: { policies: ['writeonly'] } });
    expect(wider.status).toBe(403);
    expect(wider.body.errors[0]).toMatch(/subset of parent/);
    expect((await call(base, 'GET', 'secret/a', { token: child.token })).status).toBe(200);
    expect((await call(base, 'POST', 'auth/token/revoke', { token: root, body: { token: parent2.token } })).status).toBe(204);
    expect((await call(base, 'GET', 'secret/a', { token: child.token })).status).toBe(403);
    expect((await call(base, 'GET', 'secret/a', { token: parent.token })).status).toBe(200);

    // revoke-orphan keeps the children, now orphans.
    const p3 = await tokenWith(['readonly', 'parent-creates']);
    const c3 = await tokenWith(['readonly'], {}, p3.token);
    expect((await call(base, 'POST', 'auth/token/revoke-orphan', { token: root, body: { token: p3.token } })).status).toBe(204);
    expect((await call(base, 'GET', 'auth/token/lookup-self', { token: c3.token })).body.data.orphan).toBe(true);

    // Accessors.
    const keys = (await call(base, 'GET', 'auth/token/accessors?list=true', { token: root })).body.data.keys;
    expect(keys).toContain(c3.accessor);
    expect((await call(base, 'GET', 'auth/token/accessors?list=true', { token: parent.token })).status).toBe(403);
    expect((await call(base, 'POST', 'auth/token/lookup-accessor', { token: root, body: { accessor: c3.accessor } })).body.data).toMatchObject({ id: '', policies: ['readonly', 'default'] });
    expect((await call(base, 'POST', 'auth/token/revoke-accessor', { token: root, body: { accessor: c3.accessor } })).status).toBe(204);
    expect((await call(base, 'GET', 'secret/a', { token: c3.token })).status).toBe(403);

    // A revocation racing a burst of requests with the token: afterwards it is refused, every time.
    const raced = await tokenWith(['readonly']);
    const burst = Array.from({ length: 20 }, () => call(base, 'GET', 'secret/a', { token: raced.token }));
    await call(base, 'POST', 'auth/token/revoke', { token: root, body: { token: raced.token } });
    await Promise.all(burst);
    for (let i = 0; i < 5; i++) expect((await call(base, 'GET', 'secret/a', { token: raced.token })).status).toBe(403);

    // Tokens exist in storage only as keyed hashes.
    const idKeys = await kw.service.storage.list('sys/token/id/');
    expect(idKeys.every((k) => /^[0-9a-f]{64}$/.test(k))).toBe(true);
    expect(idKeys.some((k) => k.includes(parent.token))).toBe(false);
  });

  it('holds token lifetimes and use limits over HTTP: clamped renewals, bounded durations, exact use counts', async () => {
    const maxSeconds = 768 * 3600;
    const t = await tokenWith(['readonly'], { ttl: '1h' });
    const huge = await call(base, 'POST', 'auth/token/renew-self', { token: t.token, body: { increment: '999999999h' } });
    expect(huge.status, JSON.stringify(huge.body)).toBe(200);
    expect(huge.body.auth.lease_duration).toBe(maxSeconds);
    for (const increment of [1e20, '100000000000000000000']) {
      const res = await call(base, 'POST', 'auth/token/renew-self', { token: t.token, body: { increment } });
      expect(res.status).toBe(400);
      expect(res.body.errors[0]).toMatch(/increment is out of range/);
    }
    expect((await call(base, 'GET', 'auth/token/lookup-self', { token: t.token })).status).toBe(200);
    expect((await call(base, 'POST', 'auth/token/create', { token: root, body: { policies: ['readonly'], ttl: 1e20 } })).status).toBe(400);

    // A non-root child asking for no TTL gets the default, and no child outlives its parent.
    await policy('maker', 'path "auth/token/create" {\n capabilities = ["update"]\n}\n');
    const parent = await tokenWith(['readonly', 'maker'], { ttl: '2h' });
    const forever = await tokenWith(['readonly'], { ttl: 0 }, parent.token);
    const life = (await call(base, 'GET', 'auth/token/lookup-self', { token: forever.token })).body.data;
    expect(life.ttl).toBe(7200);
    clock += 7200 * 1000;
    expect((await call(base, 'GET', 'secret/a', { token: forever.token })).status).toBe(403);

    // A use-limited token cannot create tokens; concurrent requests spend exactly num_uses.
    const limited = await tokenWith(['readonly', 'maker'], { num_uses: 3 });
    const child = await call(base, 'POST', 'auth/token/create', { token: limited.token, body: { policies: ['readonly'] } });
    expect(child.status).toBe(400);
    expect(child.body.errors[0]).toMatch(/use limit cannot create tokens/);
    const three = await tokenWith(['readonly'], { num_uses: 3 });
    const statuses = await Promise.all(Array.from({ length: 12 }, async () => (await call(base, 'GET', 'secret/a', { token: three.token })).status));
    expect(statuses.filter((s) => s === 200)).toHaveLength(3);
    expect(statuses.filter((s) => s === 403)).toHaveLength(9);
  });

  it('works through the node-vault client', async () => {
    const vault = nodeVault({ endpoint: base, token: root, noCustomHTTPVerbs: true });
    await vault.addPolicy({ name: 'nv', rules: 'path "secret/nv" {\n capabilities = ["read", "create", "update"]\n}\n' });
    expect((await vault.getPolicy({ name: 'nv' })).rules).toContain('secret/nv');
    const created = await vault.tokenCreate({ policies: ['nv'], ttl: '1h' });
    // node-vault adopts the token it just created (tokenSource); keep acting as root.
    vault.token = root;
    const user = nodeVault({ endpoint: base, token: created.auth.client_token, noCustomHTTPVerbs: true });
    await user.write('secret/nv', { v: 'node-vault' });
    expect((await user.read('secret/nv')).data).toEqual({ v: 'node-vault' });
    expect((await user.tokenLookupSelf()).data.policies).toEqual(['nv', 'default']);
    expect((await user.tokenRenewSelf({ increment: '30m' })).auth.lease_duration).toBe(1800);
    expect((await vault.tokenLookup({ token: created.auth.client_token })).data.accessor).toBe(created.auth.accessor);
    await user.tokenRevokeSelf();
    await expect(user.read('secret/nv')).rejects.toSatisfy((e: unknown) => (e as { response?: { statusCode?: number } }).response?.statusCode === 403);
    await vault.removePolicy({ name: 'nv' });
  });
});
