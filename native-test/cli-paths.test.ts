import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type ServerProcess, startServerProcess } from './support/process.js';
import { call, initAndUnseal } from './support/service.js';

/** Secret names that a URL would read as something else if the CLI sent them unencoded. */
const NAMES = ['app#old', 'app?version=2', '100%', '100%25', 'with space', 'ünï', 'e\u0301', 'a&b=c+d', 'app%2Fx'];

/** The path as an HTTP client that percent-encodes each segment sends it. */
const encoded = (path: string) => path.split('/').map(encodeURIComponent).join('/');

describe('secret paths with URL characters through the CLI', () => {
  let server: ServerProcess | undefined;
  let base: string;
  let root: string;
  let env: Record<string, string>;
  const cli = async (...args: string[]) => {
    const r = await runCli(args, env);
    return { ...r, json: r.code === 0 && args.includes('-format=json') ? JSON.parse(r.stdout) : undefined };
  };
  const httpGet = (path: string) => call(base, 'GET', encoded(path), { token: root });

  beforeAll(async () => {
    ({ server } = await startServerProcess());
    base = server.url;
    ({ root } = await initAndUnseal(base));
    env = { KEYWARD_ADDR: base, KEYWARD_TOKEN: root, VAULT_ADDR: '', VAULT_TOKEN: '' };
    await call(base, 'PUT', 'secret/app', { token: root, body: { v: 'app' } });
  });
  afterAll(async () => {
    await server?.kill();
  });

  it('KV v1: put, get and delete act on exactly the named key, never on secret/app', async () => {
    for (const name of NAMES) {
      const path = `secret/${name}`;
      expect((await cli('kv', 'put', path, `v=${name}`)).stdout).toBe(`Success! Data written to: ${path}\n`);
      expect((await httpGet(path)).body.data).toEqual({ v: name });
      expect((await cli('kv', 'get', '-format=json', path)).json.data).toEqual({ v: name });
    }
    // Each write made its own key, and secret/app is as it was.
    const listed = await call(base, 'GET', 'secret/?list=true', { token: root });
    expect([...listed.body.data.keys].sort()).toEqual(['app', ...NAMES].sort());
    expect((await httpGet('secret/app')).body.data).toEqual({ v: 'app' });

    for (const name of NAMES) {
      const path = `secret/${name}`;
      expect((await cli('kv', 'delete', path)).code).toBe(0);
      expect((await httpGet(path)).status).toBe(404);
      expect((await httpGet('secret/app')).body.data).toEqual({ v: 'app' });
    }
    expect((await call(base, 'GET', 'secret/?list=true', { token: root })).body.data.keys).toEqual(['app']);
  });

  it('KV v1: lists a folder whose name has "#" and "?" in it', async () => {
    await call(base, 'PUT', `secret/${encoded('dir#?x/inner')}`, { token: root, body: { v: 'inner' } });
    await call(base, 'PUT', 'secret/dir/other', { token: root, body: { v: 'other' } });
    const listed = await cli('kv', 'list', '-format=json', 'secret/dir#?x');
    expect(listed.json).toEqual(['inner']);
  });

  it('KV v2: a "?version=" in the path is part of the key, and -version still picks a version', async () => {
    await call(base, 'POST', 'sys/mounts/kv2', { token: root, body: { type: 'kv-v2' } });
    await cli('kv', 'put', 'kv2/app', 'v=app1');
    await cli('kv', 'put', 'kv2/app', 'v=app2');

    const put = await cli('kv', 'put', '-format=json', 'kv2/app?version=1', 'v=other');
    expect(put.json.data.version).toBe(1);
    expect((await cli('kv', 'get', '-format=json', 'kv2/app?version=1')).json.data.data).toEqual({ v: 'other' });
    expect((await cli('kv', 'get', '-format=json', '-version=1', 'kv2/app')).json.data.data).toEqual({ v: 'app1' });
    const app = await cli('kv', 'get', '-format=json', 'kv2/app');
    expect(app.json.data).toMatchObject({ data: { v: 'app2' }, metadata: { version: 2 } });

    expect((await cli('kv', 'delete', 'kv2/app#old')).code).toBe(0);
    expect((await cli('kv', 'delete', 'kv2/app?version=1')).code).toBe(0);
    expect((await cli('kv', 'get', 'kv2/app?version=1')).code).toBe(2);
    expect((await cli('kv', 'get', '-format=json', 'kv2/app')).json.data.data).toEqual({ v: 'app2' });
    expect((await cli('kv', 'list', '-format=json', 'kv2/')).json).toEqual(['app', 'app?version=1']);
  });

  it('refuses paths with "." or ".." segments instead of sending another path', async () => {
    const r = await cli('kv', 'put', 'secret/../sys/x', 'v=1');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/has a "\." or "\.\." segment/);
    expect((await httpGet('secret/app')).body.data).toEqual({ v: 'app' });
  });
});
