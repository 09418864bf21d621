import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, expectError, initAndUnseal, type InProcess, startInProcess } from './support/service.js';

describe('cubbyhole: each token\'s private store', () => {
  let kw: InProcess;
  let base: string;
  let root: string;

  const newToken = async (body: Record<string, unknown> = { policies: ['default'] }) => {
    const created = await call(base, 'POST', 'auth/token/create', { token: root, body });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    return created.body.auth as { client_token: string; accessor: string };
  };
  const cubbyholeOwners = () => kw.service.core.barrier.list('sys/cubbyhole/');

  beforeAll(async () => {
    kw = await startInProcess('inmem');
    base = kw.service.url;
    root = (await initAndUnseal(base, 1, 1)).root;
  });
  afterAll(() => kw?.service.close());

  it('reads, writes, lists and deletes with Vault\'s KV version 1 shapes under the default policy', async () => {
    const { client_token: t } = await newToken();
    expect((await call(base, 'PUT', 'cubbyhole/app/db', { token: t, body: { password: 'p1', port: 5432 } })).status).toBe(204);
    expect((await call(base, 'POST', 'cubbyhole/top', { token: t, body: { v: 'x' } })).status).toBe(204);
    const read = await call(base, 'GET', 'cubbyhole/app/db', { token: t });
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ data: { password: 'p1', port: 5432 }, lease_duration: 0, renewable: false, wrap_info: null, mount_type: 'cubbyhole' });
    expect((await call(base, 'GET', 'cubbyhole/?list=true', { token: t })).body.data.keys).toEqual(['app/', 'top']);
    expect((await call(base, 'GET', 'cubbyhole?list=true', { token: t })).body.data.keys).toEqual(['app/', 'top']);
    expect((await call(base, 'GET', 'cubbyhole/app?list=true', { token: t })).body.data.keys).toEqual(['db']);
    expect((await call(base, 'DELETE', 'cubbyhole/app/db', { token: t })).status).toBe(204);
    expect((await call(base, 'GET', 'cubbyhole/app/db', { token: t })).status).toBe(404);
    expect((await call(base, 'GET', 'cubbyhole/app?list=true', { token: t })).status).toBe(404);

    expectError(await call(base, 'PUT', 'cubbyhole/empty', { token: t, body: {} }), 400, /missing data fields/);
    expectError(await call(base, 'PUT', 'cubbyhole/folder/', { token: t, body: { v: 1 } }), 400, /may not end with "\/"/);
    const listBody = { token: t, raw: '[1,2]', headers: { 'Content-Type': 'application/json' } };
    expectError(await call(base, 'PUT', 'cubbyhole/list-body', listBody), 400, /JSON object/);
    expect((await call(base, 'PATCH', 'cubbyhole/top', { token: t, body: { v: 'y' } })).status).toBe(403);
    expectError(await call(base, 'PATCH', 'cubbyhole/top', { token: root, body: { v: 'y' } }), 405, /does not support PATCH/);
    expect((await call(base, 'GET', 'cubbyhole/top', { token: t })).body.data).toEqual({ v: 'x' });
  });

  it('keeps each token\'s cubbyhole invisible to every other token, root included', async () => {
    const a = await newToken();
    const b = await newToken();
    await call(base, 'PUT', 'cubbyhole/shared-name', { token: a.client_token, body: { owner: 'a' } });
    await call(base, 'PUT', 'cubbyhole/shared-name', { token: b.client_token, body: { owner: 'b' } });
    await call(base, 'PUT', 'cubbyhole/only-a', { token: a.client_token, body: { owner: 'a' } });
    expect((await call(base, 'GET', 'cubbyhole/shared-name', { token: a.client_token })).body.data).toEqual({ owner: 'a' });
    expect((await call(base, 'GET', 'cubbyhole/shared-name', { token: b.client_token })).body.data).toEqual({ owner: 'b' });
    expect((await call(base, 'GET', 'cubbyhole/only-a', { token: b.client_token })).status).toBe(404);
    expect((await call(base, 'GET', 'cubbyhole/?list=true', { token: b.client_token })).body.data.keys).toEqual(['shared-name']);
    expect((await call(base, 'GET', 'cubbyhole/only-a', { token: root })).status).toBe(404);
    expect((await call(base, 'GET', 'cubbyhole/?list=true', { token: root })).status).toBe(404);
    // Root writes its own, which changes neither of theirs.
    await call(base, 'PUT', 'cubbyhole/shared-name', { token: root, body: { owner: 'root' } });
    expect((await call(base, 'GET', 'cubbyhole/shared-name', { token: a.client_token })).body.data).toEqual({ owner: 'a' });
    expect((await call(base, 'GET', 'cubbyhole/shared-name', { token: root })).body.data).toEqual({ owner: 'root' });
    expect((await call(base, 'DELETE', 'cubbyhole/only-a', { token: b.client_token })).status).toBe(204);
    expect((await call(base, 'GET', 'cubbyhole/only-a', { token: a.client_token })).body.data).toEqual({ owner: 'a' });
  });

  it('deletes a token\'s cubbyhole when the token is revoked, and with it its children\'s', async () => {
    const creator = 'path "auth/token/create" { capabilities = ["update"] }';
    expect((await call(base, 'PUT', 'sys/policy/token-creator', { token: root, body: { policy: creator } })).status).toBe(204);
    const parent = await newToken({ policies: ['default', 'token-creator'] });
    const childCreated = await call(base, 'POST', 'auth/token/create', { token: parent.client_token, body: { policies: ['default'] } });
    const child = childCreated.body.auth as { client_token: string; accessor: string };
    const other = await newToken();
    for (const t of [parent, child, other]) await call(base, 'PUT', 'cubbyhole/k', { token: t.client_token, body: { v: 1 } });
    expect(await cubbyholeOwners()).toEqual(expect.arrayContaining([`${parent.accessor}/`, `${child.accessor}/`, `${other.accessor}/`]));

    expect((await call(base, 'POST', 'auth/token/revoke', { token: root, body: { token: parent.client_token } })).status).toBe(204);
    const owners = await cubbyholeOwners();
    expect(owners).not.toContain(`${parent.accessor}/`);
    expect(owners).not.toContain(`${child.accessor}/`);
    expect(owners).toContain(`${other.accessor}/`);
    expect((await call(base, 'GET', 'cubbyhole/k', { token: parent.client_token })).status).toBe(403);
    expect((await call(base, 'GET', 'cubbyhole/k', { token: other.client_token })).body.data).toEqual({ v: 1 });

    // A new token never sees what a revoked one kept.
    const next = await newToken();
    expect((await call(base, 'GET', 'cubbyhole/k', { token: next.client_token })).status).toBe(404);
  });

  it('makes an expired token\'s cubbyhole unreachable at once and deletes it when swept', async () => {
    const t = await newToken({ policies: ['default'], ttl: '1s' });
    await call(base, 'PUT', 'cubbyhole/k', { token: t.client_token, body: { v: 1 } });
    await new Promise((r) => setTimeout(r, 1200));
    expect((await call(base, 'GET', 'cubbyhole/k', { token: t.client_token })).status).toBe(403);
    const u = await newToken({ policies: ['default'], ttl: '1s' });
    await call(base, 'PUT', 'cubbyhole/k', { token: u.client_token, body: { v: 1 } });
    await new Promise((r) => setTimeout(r, 1200));
    expect(await cubbyholeOwners()).toContain(`${u.accessor}/`);
    const core = kw.service.core;
    expect(await core.cubbyholes.sweep(core.tokens, Date.now())).toBeGreaterThanOrEqual(1);
    expect(await cubbyholeOwners()).not.toContain(`${u.accessor}/`);
    expect(await cubbyholeOwners()).not.toContain(`${t.accessor}/`);
  });

  it('checks policies on cubbyhole paths, telling create from update', async () => {
    const policy = 'path "cubbyhole/new-only" { capabilities = ["create", "read"] }\npath "auth/token/lookup-self" { capabilities = ["read"] }';
    expect((await call(base, 'PUT', 'sys/policy/cubby-create', { token: root, body: { policy } })).status).toBe(204);
    const t = (await newToken({ policies: ['cubby-create'], no_default_policy: true })).client_token;
    expect((await call(base, 'PUT', 'cubbyhole/new-only', { token: t, body: { v: 1 } })).status).toBe(204);
    expect((await call(base, 'PUT', 'cubbyhole/new-only', { token: t, body: { v: 2 } })).status).toBe(403);
    expect((await call(base, 'GET', 'cubbyhole/new-only', { token: t })).body.data).toEqual({ v: 1 });
    expect((await call(base, 'PUT', 'cubbyhole/elsewhere', { token: t, body: { v: 1 } })).status).toBe(403);
    expect((await call(base, 'GET', 'cubbyhole/?list=true', { token: t })).status).toBe(403);
    expect((await call(base, 'GET', 'cubbyhole/new-only')).status).toBe(403);
  });

  it('lists cubbyhole/ among the mounts, as Vault does', async () => {
    const mounts = await call(base, 'GET', 'sys/mounts', { token: root });
    expect(mounts.body.data['cubbyhole/']).toMatchObject({ type: 'cubbyhole', description: 'per-token private secret storage' });
    expect(mounts.body.data['cubbyhole/'].accessor).toMatch(/^cubbyhole_[0-9a-f]{8}$/);
    expect((await call(base, 'GET', 'sys/mounts/cubbyhole', { token: root })).body.data.type).toBe('cubbyhole');
    expectError(await call(base, 'POST', 'sys/mounts/cubbyhole', { token: root, body: { type: 'kv' } }), 400, /reserved/);
    expectError(await call(base, 'DELETE', 'sys/mounts/cubbyhole', { token: root }), 400, /cannot unmount "cubbyhole\/"/);
    expectError(await call(base, 'POST', 'sys/remount', { token: root, body: { from: 'cubbyhole', to: 'moved' } }), 400, /cannot remount "cubbyhole\/"/);
    // Still listed and still served after the refusals.
    expect((await call(base, 'GET', 'sys/mounts', { token: root })).body.data['cubbyhole/'].uuid).toBe(mounts.body.data['cubbyhole/'].uuid);
    const t = (await newToken()).client_token;
    expect((await call(base, 'PUT', 'cubbyhole/after', { token: t, body: { v: 1 } })).status).toBe(204);
  });
});
