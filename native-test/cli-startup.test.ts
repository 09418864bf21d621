import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type ServerProcess, startServerProcess } from './support/process.js';
import { call, initAndUnseal } from './support/service.js';

// A module-load trace: preloaded with --import, it records every module the CLI process resolves,
// ES modules through a resolve hook and CommonJS ones (a require inside a package) through
// Module._resolveFilename, into the file KEYWARD_TEST_TRACE names.
const HOOKS = `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  appendFileSync(process.env.KEYWARD_TEST_TRACE, resolved.url + '\\n');
  return resolved;
}
`;
const REGISTER = `import Module, { register } from 'node:module';
import { appendFileSync } from 'node:fs';
register('./hooks.mjs', import.meta.url);
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (...args) {
  const file = resolveFilename.apply(this, args);
  appendFileSync(process.env.KEYWARD_TEST_TRACE, file + '\\n');
  return file;
};
`;

/** What a client verb must not load: the server's packages and keyward's own server-side code. */
const SERVER_SIDE: Array<[string, RegExp]> = [
  ['fastify', /\/node_modules\/(fastify|@fastify)\//],
  ['pkcs11js', /\/node_modules\/pkcs11js\//],
  ['openpgp', /\/node_modules\/openpgp\//],
  ['the HCL parser', /\/node_modules\/@cdktf\/hcl2json\//],
  ['pino', /\/node_modules\/pino\//],
  ['keyward\'s server-side modules', /\/(src|dist)\/(http|pkcs11|core|config|storage|barrier|engines|crypto)\/|\/(src|dist)\/(service|logger)\.(ts|js)$/],
];

describe('a client verb loads only what it needs', () => {
  let server: ServerProcess | undefined;
  let env: Record<string, string>;
  let dir: string;

  /** Runs the CLI with the trace preloaded; its output and the modules it resolved. */
  let runs = 0;
  const traced = async (args: string[]) => {
    const trace = join(dir, `trace-${++runs}.txt`);
    await writeFile(trace, '');
    const run = await runCli(args, { ...env, KEYWARD_TEST_TRACE: trace, NODE_OPTIONS: `--import=${pathToFileURL(join(dir, 'register.mjs')).href}` });
    const modules = (await readFile(trace, 'utf8')).split('\n').filter(Boolean);
    return { ...run, modules };
  };
  const serverSideIn = (modules: string[]) => SERVER_SIDE.filter(([, pattern]) => modules.some((m) => pattern.test(m))).map(([name]) => name);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kw-cli-startup-'));
    await writeFile(join(dir, 'hooks.mjs'), HOOKS);
    await writeFile(join(dir, 'register.mjs'), REGISTER);
    ({ server } = await startServerProcess());
    const { root } = await initAndUnseal(server.url);
    env = { KEYWARD_ADDR: server.url, KEYWARD_TOKEN: root, VAULT_ADDR: '', VAULT_TOKEN: '', NODE_DEBUG: '' };
    expect((await call(server.url, 'PUT', 'secret/app', { token: root, body: { password: 'hunter2' } })).status).toBe(204);
  });
  afterAll(async () => {
    await server?.kill();
    await rm(dir, { recursive: true, force: true });
  });

  it('the trace sees the server\'s modules when a verb does load them (keyward server -help)', async () => {
    const run = await traced(['server', '-help']);
    expect(run.code).toBe(0);
    expect(serverSideIn(run.modules)).toEqual(SERVER_SIDE.map(([name]) => name));
  });

  it('keyward kv get: the value, with no fastify, PKCS#11, PGP, HCL parser or other server module loaded', async () => {
    const run = await traced(['kv', 'get', '-field=password', 'secret/app']);
    expect({ code: run.code, stdout: run.stdout, stderr: run.stderr }).toEqual({ code: 0, stdout: 'hunter2', stderr: '' });
    expect(run.modules.some((m) => /\/cli\/commands\/kv\.(ts|js)$/.test(m)), 'the trace recorded the kv verb').toBe(true);
    expect(serverSideIn(run.modules)).toEqual([]);
  });

  it('keyward version: loads no command module at all, and nothing server-side', async () => {
    const run = await traced(['version']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^keyward v\d+\.\d+\.\d+\n$/);
    expect(run.modules.some((m) => /\/cli\/main\.(ts|js)$/.test(m)), 'the trace recorded the CLI').toBe(true);
    expect(run.modules.filter((m) => /\/cli\/commands\//.test(m))).toEqual([]);
    expect(serverSideIn(run.modules)).toEqual([]);
  });
});
