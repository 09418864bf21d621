import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, expectError, initAndUnseal, type InProcess, restartInProcess, startInProcess } from './support/service.js';

/** PATH_MAX less its terminating NUL: the longest path, in bytes, a system call takes. */
const PATH_MAX = 4095;

const LONG_ASCII = 'a'.repeat(300);
const LONG_EUROS = '€'.repeat(900);

/** Where file storage keeps a key whose segments are all short enough for plain names (no leading "_" or "*"). */
function plainPath(dataDir: string, key: string): string {
  const segments = key.split('/').map(encodeURIComponent);
  segments.push(`_${segments.pop()!}`);
  return join(dataDir, 'data', ...segments);
}

describe('file storage limits over HTTP: long and multi-byte paths are stored or refused with 400, never wedging the service', () => {
  let kw: InProcess;
  let base: string;
  let root: string;
  let keys: string[];

  beforeAll(async () => {
    kw = await startInProcess('file');
    base = kw.service.url;
    ({ keys, root } = await initAndUnseal(base));
    expect((await call(base, 'POST', 'sys/mounts/kv2', { token: root, body: { type: 'kv-v2' } })).status).toBe(204);
  });
  afterAll(() => kw.service.close());

  async function expectStoredSecrets(): Promise<void> {
    for (const name of [LONG_ASCII, LONG_EUROS]) {
      expect((await call(base, 'GET', `secret/long/${name}`, { token: root })).body.data).toEqual({ name: name.length });
      expect((await call(base, 'GET', `kv2/data/long/${name}`, { token: root })).body.data.data).toEqual({ name: name.length });
    }
    const listed = [LONG_ASCII, LONG_EUROS].sort();
    expect((await call(base, 'GET', 'secret/long/?list=true', { token: root })).body.data.keys).toEqual(listed);
    expect((await call(base, 'GET', 'kv2/metadata/long/?list=true', { token: root })).body.data.keys).toEqual(listed);
    expect((await call(base, 'GET', `kv2/data/team/${LONG_ASCII}`, { token: root })).body.data.data).toEqual({ by: 'team token' });
  }

  it('stores KV v1 and v2 secrets under 300-character and 900-character multi-byte segments, and reads and lists them back', async () => {
    for (const name of [LONG_ASCII, LONG_EUROS]) {
      expect((await call(base, 'PUT', `secret/long/${name}`, { token: root, body: { name: name.length } })).status).toBe(204);
      expect((await call(base, 'POST', `kv2/data/long/${name}`, { token: root, body: { data: { name: name.length } } })).status).toBe(200);
    }
    // The KV v2 write a token with only create rights on a subtree can make: its version path is longer than the metadata path it is checked on.
    await call(base, 'PUT', 'sys/policy/team', { token: root, body: { policy: 'path "kv2/data/team/*" {\n  capabilities = ["create"]\n}\n' } });
    const team = (await call(base, 'POST', 'auth/token/create', { token: root, body: { policies: ['team'] } })).body.auth.client_token;
    expect((await call(base, 'POST', `kv2/data/team/${LONG_ASCII}`, { token: team, body: { data: { by: 'team token' } } })).status).toBe(200);
    await expectStoredSecrets();
  });

  it('answers 400 saying why for paths storage cannot hold, writes nothing of them, and takes the next write', async () => {
    await expectError(await call(base, 'PUT', `secret/${'€'.repeat(1000)}`, { token: root, body: { v: 1 } }), 400, /^cannot store "secret\/€+": its storage path is longer than 1024 characters$/);
    const deep = Array.from({ length: 450 }, () => '€').join('/');
    await expectError(await call(base, 'PUT', `secret/${deep}`, { token: root, body: { v: 1 } }), 400, /is too long for file storage: its file's path would be \d+ bytes, and the system takes at most 4095/);
    await expectError(await call(base, 'PUT', 'secret/a%00b', { token: root, body: { v: 1 } }), 400, /control characters/);

    // A KV v2 path whose metadata entry fits exactly and whose version entry does not: neither is written.
    const { uuid } = (await call(base, 'GET', 'sys/mounts', { token: root })).body.data['kv2/'];
    let path = '';
    for (let k = 1; !path; k++) {
      const head = Array.from({ length: k }, () => '€'.repeat(28)).join('/');
      const tail = PATH_MAX - Buffer.byteLength(plainPath(kw.dataDir, `logical/${uuid}/metadata/${head}/`));
      if (tail >= 1 && tail < 255) path = `${head}/${'a'.repeat(tail)}`;
    }
    expect(Buffer.byteLength(plainPath(kw.dataDir, `logical/${uuid}/metadata/${path}`))).toBe(PATH_MAX);
    await expectError(await call(base, 'POST', `kv2/data/${path}`, { token: root, body: { data: { v: 1 } } }), 400, /^cannot store "kv2\/data\/[^"]+": its storage path is too long for file storage/);
    // The answer names the request's path, never the storage path with the mount's UUID.
    const refused = await call(base, 'POST', `kv2/data/${path}`, { token: root, body: { data: { v: 1 } } });
    expect(JSON.stringify(refused.body)).not.toContain(uuid);
    expect(JSON.stringify(refused.body)).not.toContain('logical/');
    expect((await call(base, 'GET', `kv2/metadata/${path}`, { token: root })).status).toBe(404);

    expect((await call(base, 'PUT', 'secret/normal', { token: root, body: { v: 'after' } })).status).toBe(204);
    expect((await call(base, 'POST', 'kv2/data/normal', { token: root, body: { data: { v: 'after' } } })).status).toBe(200);
    expect((await call(base, 'GET', 'secret/normal', { token: root })).body.data).toEqual({ v: 'after' });
  });

  it('restarts on the same data directory and serves everything it acknowledged', async () => {
    await kw.service.close();
    kw.service = await restartInProcess(kw);
    base = kw.service.url;
    for (const key of keys.slice(0, 2)) await call(base, 'PUT', 'sys/unseal', { body: { key } });
    expect((await call(base, 'GET', 'sys/seal-status')).body.sealed).toBe(false);
    await expectStoredSecrets();
    expect((await call(base, 'GET', 'kv2/data/normal', { token: root })).body.data.data).toEqual({ v: 'after' });
    expect((await call(base, 'PUT', 'secret/after-restart', { token: root, body: { v: 1 } })).status).toBe(204);
  });
});
