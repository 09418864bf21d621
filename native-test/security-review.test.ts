import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH } from '../src/http/json-body.js';
import { call, initAndUnseal, type InProcess, startInProcess } from './support/service.js';

/** Every GET route the server declares, with its parameters filled in (read from fastify's printed route tree). */
function getRoutes(kw: InProcess): string[] {
  const routes: string[] = [];
  const stack: string[] = [];
  for (const line of kw.service.app.printRoutes({ method: 'GET' }).split('\n')) {
    const m = /^([│ ]*)[├└]── (\S+)( \(GET)?/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    stack.length = depth;
    stack.push(m[2]!);
    if (m[3]) routes.push(stack.join(''));
  }
  return routes.filter((r) => r.startsWith('/v1/')).map((r) => r.slice('/v1/'.length).replace(/:[a-z_]+/g, 'default').replace(/\*$/, 'secret'));
}

describe('security review: list, mount disclosure, caching, JSON depth, unsupported headers', () => {
  let kw: InProcess;
  let base: string;
  let root: string;

  const tokenWith = async (policy: string): Promise<string> => {
    const name = `p${Math.random().toString(36).slice(2, 10)}`;
    expect((await call(base, 'PUT', `sys/policy/${name}`, { token: root, body: { policy } })).status).toBe(204);
    return (await call(base, 'POST', 'auth/token/create', { token: root, body: { policies: [name] } })).body.auth.client_token;
  };

  beforeAll(async () => {
    kw = await startInProcess('file');
    base = kw.service.url;
    ({ root } = await initAndUnseal(base, 1, 1));
    await call(base, 'POST', 'sys/mounts/kv', { token: root, body: { type: 'kv-v2' } });
    await call(base, 'PUT', 'secret/a', { token: root, body: { v: 1 } });
    await call(base, 'POST', 'kv/data/a', { token: root, body: { data: { v: 1 } } });
  });
  afterAll(() => kw.service.close());

  it('asks for list only where a route lists: ?list=true on any other GET needs read', async () => {
    const listOnly = await tokenWith('path "*" {\n  capabilities = ["list"]\n}\n');
    const defaultOnly = await tokenWith('path "nothing" {\n  capabilities = ["read"]\n}\n');
    const routes = getRoutes(kw);
    expect(routes).toEqual(expect.arrayContaining(['sys/mounts', 'sys/policy/default', 'sys/policies/acl', 'auth/token/accessors']));
    const listing = new Set(['sys/policies/acl', 'auth/token/accessors', 'auth/token/roles', 'auth/secret', 'cubbyhole', 'secret']);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), fc.constantFrom('?list=true', '?list=1', ''), async (route, query) => {
        const res = await call(base, 'GET', `${route}${query}`, { token: listOnly });
        // A listing route lets the list through; a route open to every token (public ones, the
        // default policy's, a mount's description under a glob the token holds) answers as it
        // would without ?list; every other one refuses.
        if (res.status === 403) return;
        const withoutList = (await call(base, 'GET', route, { token: defaultOnly })).status !== 403;
        const openToAnyToken = withoutList || route.startsWith('sys/internal/ui/mounts/');
        expect(openToAnyToken || (query !== '' && listing.has(route)), `GET ${route}${query} → ${res.status} ${JSON.stringify(res.body)}`).toBe(true);
      }),
      { numRuns: routes.length * 6 },
    );
    for (const path of ['sys/policy/default?list=true', 'sys/mounts?list=true', 'sys/audit?list=true']) {
      expect((await call(base, 'GET', path, { token: listOnly })).status, path).toBe(403);
    }
    expect((await call(base, 'GET', 'sys/policies/acl?list=true', { token: listOnly })).status).toBe(200);
    expect((await call(base, 'GET', 'secret?list=true', { token: listOnly })).body.data.keys).toEqual(['a']);
  });

  it('describes a mount only to a token with some capability below it, as Vault does', async () => {
    const kvOnly = await tokenWith('path "kv/data/+" {\n  capabilities = ["read"]\n}\npath "secret/*" {\n  capabilities = ["deny"]\n}\n');
    const ok = await call(base, 'GET', 'sys/internal/ui/mounts/kv', { token: kvOnly });
    expect(ok.status).toBe(200);
    expect(ok.body.data.path).toBe('kv/');
    for (const path of ['secret', 'secret/a', 'nothing-here']) {
      const res = await call(base, 'GET', `sys/internal/ui/mounts/${path}`, { token: kvOnly });
      expect(res.status, path).toBe(403);
      expect(JSON.stringify(res.body)).not.toMatch(/uuid|accessor/);
    }
    expect((await call(base, 'GET', 'sys/internal/ui/mounts/nothing-here', { token: root })).status).toBe(404);
    expect((await call(base, 'GET', 'sys/internal/ui/mounts/secret', { token: root })).body.data.type).toBe('kv');
  });

  it('sends Cache-Control: no-store on every reply: secrets, errors and public routes', async () => {
    for (const [path, token] of [
      ['kv/data/a', root],
      ['secret/a', root],
      ['secret/missing', root],
      ['secret/a', 'not-a-token'],
      ['sys/seal-status', ''],
      ['no/such/route', root],
    ] as const) {
      const res = await fetch(`${base}/v1/${path}`, { headers: token ? { 'X-Vault-Token': token } : {} });
      expect(res.headers.get('cache-control'), path).toBe('no-store');
    }
  });

  it(`answers 400 to JSON nested more than ${MAX_JSON_DEPTH} levels, and takes ${MAX_JSON_DEPTH}`, async () => {
    const nested = (depth: number) => '{"v":'.repeat(depth - 1) + '{}' + '}'.repeat(depth - 1);
    for (const depth of [MAX_JSON_DEPTH + 1, 5000, 100_000]) {
      const res = await call(base, 'PUT', 'secret/deep', { token: root, raw: nested(depth), headers: { 'Content-Type': 'application/json' } });
      expect(res.status, `depth ${depth}`).toBe(400);
      expect(res.body.errors[0]).toMatch(/nested more than 300 levels|failed to parse JSON input/);
    }
    const arrays = `{"v":${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH)}}`;
    expect((await call(base, 'PUT', 'secret/deep', { token: root, raw: arrays })).status).toBe(400);
    expect((await call(base, 'GET', 'secret/deep', { token: root })).status).toBe(404);
    expect((await call(base, 'PUT', 'secret/deep', { token: root, raw: nested(MAX_JSON_DEPTH) })).status).toBe(204);
    expect((await call(base, 'GET', 'secret/deep', { token: root })).status).toBe(200);
  });

  it('names the request path in errors about stored data, never the storage path or the mount UUID', async () => {
    const { uuid } = (await call(base, 'GET', 'sys/mounts', { token: root })).body.data['secret/'];
    await call(base, 'PUT', 'secret/tampered', { token: root, body: { v: 1 } });
    const key = `logical/${uuid}/tampered`;
    const stored = (await kw.service.storage.get(key))!;
    stored[stored.length - 1]! ^= 1;
    await kw.service.storage.put(key, stored);
    const res = await call(base, 'GET', 'secret/tampered', { token: root });
    expect(res.status).toBe(500);
    expect(res.body.errors).toEqual(['the data stored for "secret/tampered" failed its integrity check; see the server log']);
    const tooLong = await call(base, 'PUT', `secret/${'x'.repeat(1100)}`, { token: root, body: { v: 1 } });
    expect(tooLong.status).toBe(400);
    for (const body of [res.body, tooLong.body]) {
      expect(JSON.stringify(body)).not.toContain(uuid);
      expect(JSON.stringify(body)).not.toContain('logical/');
    }
  });

  it('wraps a reply X-Vault-Wrap-TTL asks to wrap and refuses a namespace other than root, rather than ignore either', async () => {
    const wrapped = await call(base, 'GET', 'secret/a', { token: root, headers: { 'X-Vault-Wrap-TTL': '60s' } });
    expect(wrapped.status).toBe(200);
    expect(wrapped.body.data).toBeNull();
    expect(wrapped.body.wrap_info).toMatchObject({ ttl: 60, creation_path: 'secret/a' });
    expect(JSON.stringify(wrapped.body)).not.toContain('"v"');
    const namespaced = await call(base, 'GET', 'secret/a', { token: root, headers: { 'X-Vault-Namespace': 'team-a' } });
    expect(namespaced.status).toBe(400);
    expect(namespaced.body.errors[0]).toMatch(/namespaces are not supported/);
    for (const ns of ['', 'root', '/']) {
      expect((await call(base, 'GET', 'secret/a', { token: root, headers: { 'X-Vault-Namespace': ns } })).status, ns).toBe(200);
    }
  });
});
