import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { split } from '../src/crypto/shamir.js';
import { call, expectError, type InProcess, rawPathRequest, startInProcess } from './support/service.js';

describe('bad input gets a clear 4xx and changes nothing', () => {
  let kw: InProcess;
  let base: string;
  let keys: string[];
  let root: string;

  async function sealState(): Promise<unknown> {
    const s = (await call(base, 'GET', 'sys/seal-status')).body;
    return { sealed: s.sealed, t: s.t, n: s.n, progress: s.progress };
  }

  beforeAll(async () => {
    kw = await startInProcess('file');
    base = kw.service.url;
    const init = await call(base, 'PUT', 'sys/init', { body: { secret_shares: 5, secret_threshold: 3 } });
    keys = init.body.keys;
    root = init.body.root_token;
  });
  afterAll(() => kw.service.close());

  it('refuses bad init requests', async () => {
    const again = await call(base, 'PUT', 'sys/init', { body: { secret_shares: 1, secret_threshold: 1 } });
    await expectError(again, 400, /^Vault is already initialized$/);
    await expectError(await call(base, 'PUT', 'sys/init', { body: { secret_shares: 3, secret_threshold: 4 } }), 400, /already initialized/);
    expect(await sealState()).toEqual({ sealed: true, t: 3, n: 5, progress: 0 });
  });

  it('refuses shares of the wrong length or encoding without counting them', async () => {
    await expectError(await call(base, 'PUT', 'sys/unseal', { body: { key: 'abcd' } }), 400, /decodes to 2 bytes.*33 bytes/);
    await expectError(await call(base, 'PUT', 'sys/unseal', { body: { key: 'not a share!' } }), 400, /valid hex or base64/);
    await expectError(await call(base, 'PUT', 'sys/unseal', { body: { key: keys[0]!.slice(0, -2) } }), 400, /32 bytes.*33 bytes/);
    await expectError(await call(base, 'PUT', 'sys/unseal', { body: {} }), 400, /'key' must be specified/);
    await expectError(await call(base, 'PUT', 'sys/unseal', { body: { key: { nested: true } } }), 400, /"key" must be string/);
    await expectError(await call(base, 'PUT', 'sys/unseal', { raw: '{"key": ', headers: { 'Content-Type': 'application/json' } }), 400, /failed to parse JSON/);
    expect(await sealState()).toEqual({ sealed: true, t: 3, n: 5, progress: 0 });
  });

  it('fails a quorum with a share from another cluster, resets progress, and the right shares still work', async () => {
    const realXs = new Set(keys.map((k) => Buffer.from(k, 'hex')[32]));
    const foreign = split(randomBytes(32), 5, 3).find((s) => !realXs.has(s[32]))!;
    await call(base, 'PUT', 'sys/unseal', { body: { key: keys[0] } });
    await call(base, 'PUT', 'sys/unseal', { body: { key: keys[1] } });
    const failed = await call(base, 'PUT', 'sys/unseal', { body: { key: foreign.toString('hex') } });
    await expectError(failed, 400, /do not rebuild this cluster's root key.*progress has been reset/);
    expect(await sealState()).toEqual({ sealed: true, t: 3, n: 5, progress: 0 });

    // A corrupted share with the same x-coordinate as a real one cannot be combined at all.
    const clash = Buffer.from(keys[3]!, 'hex');
    clash[0]! ^= 0xff;
    await call(base, 'PUT', 'sys/unseal', { body: { key: keys[3] } });
    await call(base, 'PUT', 'sys/unseal', { body: { key: keys[4] } });
    await expectError(await call(base, 'PUT', 'sys/unseal', { body: { key: clash.toString('base64') } }), 400, /cannot be combined.*duplicate part/);
    expect(await sealState()).toEqual({ sealed: true, t: 3, n: 5, progress: 0 });

    for (const k of keys.slice(2)) await call(base, 'PUT', 'sys/unseal', { body: { key: k } });
    expect(await sealState()).toEqual({ sealed: false, t: 3, n: 5, progress: 0 });
    // Unsealed, a malformed key is still refused as Vault refuses it; a well-formed one changes nothing.
    await expectError(await call(base, 'PUT', 'sys/unseal', { body: { key: 'not a share!' } }), 400, /^'key' must be a valid hex or base64 string$/);
    await expectError(await call(base, 'PUT', 'sys/unseal', { body: { key: 'abcd' } }), 400, /decodes to 2 bytes/);
    expect((await call(base, 'PUT', 'sys/unseal', { body: { key: keys[0] } })).status).toBe(200);
    expect(await sealState()).toEqual({ sealed: false, t: 3, n: 5, progress: 0 });
  });

  it('requires a valid token on every non-public route', async () => {
    expect((await call(base, 'PUT', 'secret/x', { token: root, body: { v: '1' } })).status).toBe(204);
    await expectError(await call(base, 'GET', 'secret/x'), 403, /permission denied.*no client token/);
    await expectError(await call(base, 'GET', 'secret/x', { token: 'hvs.wrong' }), 403, /permission denied: invalid token/);
    await expectError(await call(base, 'PUT', 'sys/seal'), 403, /permission denied/);
    await expectError(await call(base, 'GET', 'sys/mounts', { headers: { Authorization: 'Bearer nope' } }), 403, /invalid token/);
    expect((await call(base, 'GET', 'sys/mounts', { headers: { Authorization: `Bearer ${root}` } })).status).toBe(200);
    expect(await sealState()).toEqual({ sealed: false, t: 3, n: 5, progress: 0 });
  });

  it('answers unknown paths with 404 and oversize or malformed bodies with 4xx, losing nothing', async () => {
    await expectError(await call(base, 'GET', 'nowhere/x', { token: root }), 404, /no handler for route "nowhere\/x"/);
    await expectError(await call(base, 'GET', 'sys/nonsense', { token: root }), 404, /no handler for route/);
    const big = JSON.stringify({ v: 'x'.repeat(1024 * 1024) });
    await expectError(await call(base, 'PUT', 'secret/x', { token: root, raw: big, headers: { 'Content-Type': 'application/json' } }), 413, /1 MiB/);
    await expectError(await call(base, 'PUT', 'secret/x', { token: root, raw: '{oops', headers: { 'Content-Type': 'application/json' } }), 400, /failed to parse JSON/);
    await expectError(await call(base, 'PUT', 'secret/x', { token: root, raw: '[1,2]' }), 400, /must be a JSON object/);
    await expectError(await call(base, 'PUT', 'secret/x', { token: root, raw: '{"__proto__": {"polluted": 1}}' }), 400, /failed to parse JSON/);
    await expectError(await call(base, 'PUT', 'secret/x', { token: root, body: {} }), 400, /missing data fields/);
    for (const path of ['/v1/secret/../core/keyring', '/v1/secret/%2E%2E/core/keyring', '/v1/secret/a//b']) {
      await expectError(await rawPathRequest(base, 'PUT', path, root, '{"a":1}'), 400, /segment/);
    }
    expect((await kw.service.storage.get('core/keyring'))?.readUInt32BE(0)).toBe(0);
    await expectError(await call(base, 'POST', 'sys/mounts/new', { token: root, body: { type: 'aws' } }), 400, /plugin not found/);
    await expectError(await call(base, 'POST', 'sys/mounts/secret', { token: root, body: { type: 'kv' } }), 400, /already in use/);
    await expectError(await call(base, 'POST', 'sys/mounts/sys/x', { token: root, body: { type: 'kv' } }), 400, /reserved/);
    expect((await call(base, 'GET', 'secret/x', { token: root })).body.data).toEqual({ v: '1' });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('serves KV v2 through sys/mounts with versions, and refuses writes without data', async () => {
    expect((await call(base, 'POST', 'sys/mounts/kv2', { token: root, body: { type: 'kv', options: { version: '2' } } })).status).toBe(204);
    await expectError(await call(base, 'POST', 'kv2/data/app', { token: root, body: { value: 'no data wrapper' } }), 400, /no data provided/);
    expect((await call(base, 'POST', 'kv2/data/app', { token: root, body: { data: { v: 1 } } })).body.data.version).toBe(1);
    expect((await call(base, 'POST', 'kv2/data/app', { token: root, body: { data: { v: 2 } } })).body.data.version).toBe(2);
    await expectError(await call(base, 'POST', 'kv2/data/app', { token: root, body: { data: { v: 3 }, options: { cas: 1 } } }), 400, /check-and-set/);
    expect((await call(base, 'GET', 'kv2/data/app?version=1', { token: root })).body.data.data).toEqual({ v: 1 });
    expect((await call(base, 'GET', 'kv2/data/app', { token: root })).body.data).toMatchObject({ data: { v: 2 }, metadata: { version: 2 } });
    expect((await call(base, 'DELETE', 'kv2/data/app', { token: root })).status).toBe(204);
    const deleted = await call(base, 'GET', 'kv2/data/app', { token: root });
    expect(deleted.status).toBe(404);
    expect(deleted.body.data.metadata.deletion_time).not.toBe('');
    expect((await call(base, 'POST', 'kv2/undelete/app', { token: root, body: { versions: [2] } })).status).toBe(204);
    expect((await call(base, 'GET', 'kv2/data/app', { token: root })).body.data.data).toEqual({ v: 2 });
    expect((await call(base, 'GET', 'kv2/metadata/?list=true', { token: root })).body.data.keys).toEqual(['app']);
    expect((await call(base, 'DELETE', 'sys/mounts/kv2', { token: root })).status).toBe(204);
    expect(await kw.service.storage.list('logical/')).toHaveLength(1);
  });

  it('rate-limits a flood of key-share requests per client, without locking the operator out', async () => {
    const started = Date.now();
    const replies = await Promise.all(Array.from({ length: 300 }, () => call(base, 'PUT', 'sys/unseal', { body: { reset: true } })));
    const seconds = (Date.now() - started) / 1000;
    const limited = replies.filter((r) => r.status === 429);
    // A burst of 100, then 20 per second for as long as the flood took to arrive (slow on a busy machine).
    expect(replies.length - limited.length).toBeLessThanOrEqual(100 + Math.ceil(20 * seconds));
    expect(limited.length).toBeGreaterThan(0);
    expect(limited[0]!.body.errors[0]).toMatch(/too many requests .* retry in \d+s/);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await call(base, 'PUT', 'sys/unseal', { body: { reset: true } })).status).toBe(200);
    expect((await call(base, 'GET', 'sys/seal-status')).status).toBe(200);
  });
});
