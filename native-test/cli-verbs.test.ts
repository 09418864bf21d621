import { spawn } from 'node:child_process';
import { type AddressInfo } from 'node:net';
import { createServer } from 'node:http';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, freePort, KEYWARD, runCli, type ServerProcess, startServerProcess } from './support/process.js';
import { call, initAndUnseal } from './support/service.js';

describe('the everyday CLI: generic verbs, secrets verbs and kv verbs against a real server', () => {
  let server: ServerProcess | undefined;
  let base: string;
  let root: string;
  let env: Record<string, string>;
  let files: string;
  const cli = (args: string[], stdin?: string, extraEnv: Record<string, string> = {}): Promise<CliResult> => runCli(args, { ...env, ...extraEnv }, stdin);
  /** Runs a command that must succeed, and gives its output. */
  const ok = async (args: string[], stdin?: string): Promise<string> => {
    const r = await cli(args, stdin);
    expect(r.code, `keyward ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const json = async (args: string[]) => JSON.parse(await ok([...args, '-format=json']));
  /** A command that must fail with this exit code and a message matching `message`. */
  const fails = async (args: string[], code: number, message: RegExp, stdin?: string, extraEnv?: Record<string, string>) => {
    const r = await cli(args, stdin, extraEnv);
    expect({ code: r.code, stderr: r.stderr }, `keyward ${args.join(' ')}`).toMatchObject({ code, stderr: expect.stringMatching(message) });
    return r;
  };
  const mounts = async () => (await call(base, 'GET', 'sys/mounts', { token: root })).body.data;

  beforeAll(async () => {
    ({ server } = await startServerProcess());
    base = server.url;
    ({ root } = await initAndUnseal(base));
    env = { KEYWARD_ADDR: base, KEYWARD_TOKEN: root, VAULT_ADDR: '', VAULT_TOKEN: '', KEYWARD_FORMAT: '', VAULT_FORMAT: '', VAULT_WRAP_TTL: '', KEYWARD_WRAP_TTL: '', KEYWARD_NAMESPACE: '', VAULT_NAMESPACE: '' };
    files = await mkdtemp(join(tmpdir(), 'kw-cli-verbs-'));
  });
  afterAll(async () => {
    await server?.kill();
  });

  it('read, write, list and delete any path, as table, JSON, YAML or one field', async () => {
    expect(await ok(['write', 'secret/app', 'user=app', 'pass=hunter2'])).toBe('Success! Data written to: secret/app\n');
    const table = await ok(['read', 'secret/app']);
    expect(table).toMatch(/^Key\s+Value\n---\s+-----\nrefresh_interval\s+768h\npass\s+hunter2\nuser\s+app\n$/);
    // -field prints the value alone: piped, with no newline, so $(keyward read -field=...) is the value.
    expect(await ok(['read', '-field=pass', 'secret/app'])).toBe('hunter2');
    expect((await json(['read', 'secret/app'])).data).toEqual({ user: 'app', pass: 'hunter2' });
    const yaml = await ok(['read', '-format=yaml', 'secret/app']);
    expect(yaml).toContain('data:\n  pass: hunter2\n  user: app\n');
    expect(yaml).toContain('lease_duration: 2764800\n');
    expect(await ok(['read', '-format=yaml', '-field=user', 'secret/app'])).toBe('app');

    expect(await ok(['write', 'secret/dir/one', 'v=1'])).toMatch(/Success/);
    expect(await ok(['list', 'secret'])).toBe('Keys\n----\napp\ndir/\n');
    expect(await json(['list', 'secret/dir/'])).toEqual(['one']);
    expect(await ok(['delete', 'secret/dir/one'])).toBe('Success! Data deleted (if it existed) at: secret/dir/one\n');
    await fails(['read', 'secret/dir/one'], 2, /No value found at secret\/dir\/one/);
    await fails(['list', 'secret/dir'], 2, /No value found at secret\/dir\//);

    // A write that answers with data prints it; a token's fields go by the names Vault's CLI gives them.
    const created = await json(['write', 'auth/token/create', 'policies=default', 'ttl=1h']);
    expect(created.auth.client_token).toMatch(/^hvs\./);
    expect(await ok(['write', '-field=token_policies', 'auth/token/create', 'policies=default'])).toBe('[default]');
    expect(await ok(['read', '-field=type', 'sys/mounts/secret'])).toBe('kv');
  });

  it('takes values from files, standard input and JSON documents, as Vault\'s CLI does', async () => {
    const pem = join(files, 'cert.pem');
    await writeFile(pem, 'line one\nline two\n');
    const doc = join(files, 'data.json');
    await writeFile(doc, JSON.stringify({ from: 'file', n: 3, nested: { ok: true } }));
    await ok(['write', 'secret/files', `cert=@${pem}`, 'literal=\\@not-a-file', 'tag=a', 'tag=b']);
    // The file exactly as it is, trailing newline included; a key given twice becomes a list.
    expect((await json(['read', 'secret/files'])).data).toEqual({ cert: 'line one\nline two\n', literal: '@not-a-file', tag: ['a', 'b'] });
    await ok(['write', 'secret/stdin-value', 'password=-', 'user=u'], 's3cret from a pipe');
    expect((await json(['read', 'secret/stdin-value'])).data).toEqual({ password: 's3cret from a pipe', user: 'u' });
    await ok(['write', 'secret/stdin-json', '-'], '{"a": "from stdin", "b": 2}');
    expect((await json(['read', 'secret/stdin-json'])).data).toEqual({ a: 'from stdin', b: 2 });
    await ok(['write', 'secret/doc', `@${doc}`, 'extra=yes']);
    expect((await json(['read', 'secret/doc'])).data).toEqual({ from: 'file', n: 3, nested: { ok: true }, extra: 'yes' });
  });

  it('encrypts and decrypts through transit as Vault\'s docs show, with -field giving the bare value', async () => {
    await ok(['secrets', 'enable', 'transit']);
    await ok(['write', '-f', 'transit/keys/app']);
    const plaintext = Buffer.from('my secret data\n').toString('base64');
    const ciphertext = await ok(['write', '-field=ciphertext', 'transit/encrypt/app', `plaintext=${plaintext}`]);
    expect(ciphertext).toMatch(/^vault:v1:[A-Za-z0-9+/=]+$/);
    expect(await ok(['write', '-field=plaintext', 'transit/decrypt/app', `ciphertext=${ciphertext}`])).toBe(plaintext);
  });

  it('refuses bad input with a message and a non-zero exit, and writes nothing', async () => {
    const before = (await json(['read', 'secret/app'])).data;
    await fails(['write', 'secret/refused'], 2, /Must supply data/);
    await fails(['write', 'secret/refused', 'novalue'], 2, /"novalue" is not key=value/);
    await fails(['write', 'secret/refused', '=x'], 2, /no key before "="/);
    await fails(['write', 'secret/refused', 'v=@/nonexistent/file'], 2, /cannot read \/nonexistent\/file/);
    await fails(['write', 'secret/refused', '@/nonexistent/doc.json'], 2, /cannot read \/nonexistent\/doc\.json/);
    await fails(['write', 'secret/refused', '-'], 2, /standard input is not valid JSON/, 'user=x');
    await fails(['write', 'secret/refused', '-'], 2, /standard input must hold a JSON object/, '["a"]');
    await fails(['write', 'secret/refused', 'a=-', 'b=-'], 2, /standard input can be read only once/, 'x');
    await fails(['read'], 2, /give an API path/);
    await fails(['list', 'a', 'b'], 2, /exactly one path/);
    await fails(['read', '-format=xml', 'secret/app'], 2, /-format must be "table", "json" or "yaml", not "xml"/);
    await fails(['read', '-field=nope', 'secret/app'], 1, /Field "nope" not present in secret/);
    // A wrapping TTL that is not a duration is refused before anything is sent.
    await fails(['write', '-wrap-ttl=soon', 'secret/refused', 'a=1'], 2, /-wrap-ttl takes a duration such as "5m"/);
    await fails(['read', 'secret/app'], 2, /VAULT_WRAP_TTL takes a duration/, undefined, { VAULT_WRAP_TTL: '5 minutes' });
    // One namespace, the root: any other is refused, never served the root's data; "root" is accepted.
    await fails(['read', '-namespace=team-a', 'secret/app'], 2, /namespace "team-a" \(-namespace\) does not exist: keyward has one namespace/);
    await fails(['kv', 'get', 'secret/app'], 2, /namespace "team-a" \(VAULT_NAMESPACE\) does not exist/, undefined, { VAULT_NAMESPACE: 'team-a' });
    await fails(['write', 'secret/refused', 'a=1'], 2, /namespace "team-a\/" \(KEYWARD_NAMESPACE\) does not exist/, undefined, { KEYWARD_NAMESPACE: 'team-a/' });
    expect(await ok(['read', '-namespace=root', '-field=user', 'secret/app'])).toBe('app');
    await fails(['write', 'sys/mounts/refused', 'type=bogus'], 1, /Code: 400[\s\S]*plugin not found/);
    await fails(['read', 'secret/app'], 1, /Code: 403/, undefined, { KEYWARD_TOKEN: 'hvs.not-a-token' });
    await fails(['write', 'secret/refused', 'a=1'], 1, /Code: 403/, undefined, { KEYWARD_TOKEN: 'hvs.not-a-token' });
    await fails(['read', 'secret/refused'], 2, /No value found/);
    expect((await json(['read', 'secret/app'])).data).toEqual(before);
    expect(Object.keys(await mounts())).not.toContain('refused/');
  });

  it('secrets enable, list, tune, move and disable, with Vault\'s flags', async () => {
    expect(await ok(['secrets', 'enable', '-path=team', '-description=team secrets', '-default-lease-ttl=1h', '-max-lease-ttl=24h', '-version=2', 'kv'])).toBe(
      'Success! Enabled the kv secrets engine at: team/\n',
    );
    expect(await ok(['secrets', 'enable', '-path=opts', '-options=version=2', 'kv'])).toMatch(/at: opts\//);
    expect((await mounts())['opts/'].options).toEqual({ version: '2' });
    const list = await ok(['secrets', 'list']);
    expect(list).toMatch(/^Path\s+Type\s+Accessor\s+Description\n/);
    expect(list).toMatch(/\nteam\/\s+kv\s+kv_\w+\s+team secrets\n/);
    expect(await ok(['secrets', 'list', '-detailed'])).toMatch(/\nteam\/\s+kv\s+kv_\w+\s+1h\s+24h\s+map\[version:2\]\s+team secrets\s+[0-9a-f-]{36}\n/);
    expect((await json(['secrets', 'list']))['team/']).toMatchObject({ type: 'kv', config: { default_lease_ttl: 3600, max_lease_ttl: 86400 } });

    expect(await ok(['secrets', 'tune', '-description=renamed', '-max-lease-ttl=48h', 'team'])).toBe('Success! Tuned the secrets engine at: team/\n');
    expect((await json(['read', 'sys/mounts/team/tune'])).data).toMatchObject({ description: 'renamed', default_lease_ttl: 3600, max_lease_ttl: 172800 });

    await ok(['kv', 'put', 'team/db', 'password=p1']);
    const moved = await ok(['secrets', 'move', 'team', 'squad']);
    expect(moved).toMatch(/^Success! Finished moving secrets engine team\/ to squad\/, with migration ID [0-9a-f-]{36}\n$/);
    expect(await ok(['kv', 'get', '-field=password', 'squad/db'])).toBe('p1');
    await fails(['kv', 'get', 'team/db'], 1, /Code: 403|Code: 404/);

    expect(await ok(['secrets', 'disable', 'squad'])).toBe('Success! Disabled the secrets engine (if it existed) at: squad/\n');
    expect(Object.keys(await mounts())).not.toContain('squad/');
  });

  it('refuses bad secrets commands with a message, changing no mount', async () => {
    const before = await mounts();
    await fails(['secrets', 'enable', 'nosuchtype'], 1, /plugin not found in the catalog: nosuchtype/);
    await fails(['secrets', 'enable', '-local', 'kv'], 2, /unknown flag -local/);
    await fails(['secrets', 'enable', '-version=3', '-path=v3', 'kv'], 1, /invalid version provided: 3/);
    await fails(['secrets', 'enable', '-options=version', 'kv'], 2, /"version" is not key=value/);
    await fails(['secrets', 'enable'], 2, /give exactly one argument/);
    await fails(['secrets', 'enable', '-path=secret', 'kv'], 1, /path is already in use at secret\//);
    await fails(['secrets', 'tune', 'opts'], 2, /nothing to tune/);
    await fails(['secrets', 'tune', '-default-lease-ttl=1h', '-max-lease-ttl=1m', 'opts'], 1, /backend max lease TTL of 60 would be less than backend default lease TTL of 3600/);
    await fails(['secrets', 'tune', '-default-lease-ttl=soon', 'opts'], 1, /default_lease_ttl must be a number of seconds or a duration/);
    await fails(['secrets', 'tune', '-options=version=1', 'opts'], 1, /cannot downgrade mount from version 2/);
    await fails(['secrets', 'move', 'opts'], 2, /give the current path and the new path/);
    await fails(['secrets', 'move', 'opts', 'sys/x'], 1, /cannot remount to destination "sys\/x\/"/);
    await fails(['secrets', 'move', 'opts', 'secret'], 1, /path already in use at "secret\/"/);
    await fails(['secrets', 'move', 'nothing-here', 'x'], 1, /no matching mount at "nothing-here\/"/);
    await fails(['secrets', 'frobnicate'], 2, /Unknown command "secrets frobnicate"[\s\S]*secrets enable/);
    expect(await mounts()).toEqual(before);
  });

  it('kv put, get, patch, delete, undelete, destroy, rollback and metadata on KV v2, with -cas and -field', async () => {
    await ok(['secrets', 'enable', '-path=kv2', 'kv-v2']);
    expect(await ok(['kv', 'put', 'kv2/app', 'a=1'])).toMatch(/== Secret Path ==\nkv2\/data\/app\n[\s\S]*version\s+1\n/);
    expect(await ok(['kv', 'put', '-cas=1', '-field=version', 'kv2/app', 'a=2'])).toBe('2');
    await fails(['kv', 'put', '-cas=1', 'kv2/app', 'a=3'], 1, /check-and-set parameter did not match the current version/);
    expect(await ok(['kv', 'get', '-field=a', 'kv2/app'])).toBe('2');
    expect(await ok(['kv', 'get', '-version=1', '-field=a', 'kv2/app'])).toBe('1');
    await fails(['kv', 'get', '-field=zzz', 'kv2/app'], 1, /Field "zzz" not present/);
    const doc = join(files, 'kv.json');
    await writeFile(doc, '{"user": "svc", "port": 5432}');
    await ok(['kv', 'put', 'kv2/file', `@${doc}`]);
    expect((await json(['kv', 'get', 'kv2/file'])).data.data).toEqual({ user: 'svc', port: 5432 });

    // patch keeps the other keys: by HTTP PATCH (the server merges), or read-merge-write with check-and-set.
    await ok(['kv', 'patch', 'kv2/app', 'b=x']);
    await ok(['kv', 'patch', '-method=rw', 'kv2/app', 'c=y']);
    expect((await json(['kv', 'get', 'kv2/app'])).data).toMatchObject({ data: { a: '2', b: 'x', c: 'y' }, metadata: { version: 4 } });
    await ok(['kv', 'patch', '-remove=b', 'kv2/app']);
    expect((await json(['kv', 'get', 'kv2/app'])).data.data).toEqual({ a: '2', c: 'y' });
    await fails(['kv', 'patch', '-cas=1', 'kv2/app', 'd=z'], 1, /check-and-set parameter did not match/);
    await fails(['kv', 'patch', 'kv2/missing', 'a=1'], 2, /No value found at kv2\/data\/missing/);
    await fails(['kv', 'patch', '-method=rw', 'kv2/missing', 'a=1'], 2, /No value found at kv2\/data\/missing/);
    await fails(['kv', 'patch', '-method=put', 'kv2/app', 'a=1'], 2, /-method must be "patch" or "rw"/);

    // Versions 1..5 now: delete, undelete, destroy.
    await ok(['kv', 'delete', 'kv2/app']);
    await fails(['kv', 'get', 'kv2/app'], 2, /No value found at kv2\/data\/app/);
    expect(await ok(['kv', 'undelete', '-versions=5', 'kv2/app'])).toBe('Success! Data written to: kv2/undelete/app\n');
    expect(await ok(['kv', 'get', '-field=c', 'kv2/app'])).toBe('y');
    await ok(['kv', 'delete', '-versions=2,3', 'kv2/app']);
    await fails(['kv', 'get', '-version=2', 'kv2/app'], 2, /No value found/);
    expect(await ok(['kv', 'destroy', '-versions=1', 'kv2/app'])).toBe('Success! Data written to: kv2/destroy/app\n');
    await ok(['kv', 'undelete', '-versions=1', 'kv2/app']);
    await fails(['kv', 'get', '-version=1', 'kv2/app'], 2, /No value found/);
    const meta = await json(['kv', 'metadata', 'get', 'kv2/app']);
    expect(meta.data.versions['1']).toMatchObject({ destroyed: true });
    expect(meta.data.versions['2'].deletion_time).not.toBe('');

    // rollback: the old version's data as a new version.
    expect(await ok(['kv', 'rollback', '-version=4', '-field=version', 'kv2/app'])).toBe('6');
    expect((await json(['kv', 'get', 'kv2/app'])).data.data).toEqual({ a: '2', b: 'x', c: 'y' });
    await fails(['kv', 'rollback', '-version=1', 'kv2/app'], 2, /Cannot roll back to a version that has been destroyed/);
    await fails(['kv', 'rollback', '-version=2', 'kv2/app'], 2, /Cannot roll back to a version that has been deleted/);
    await fails(['kv', 'rollback', '-version=99', 'kv2/app'], 2, /version 99 of kv2\/app does not exist/);
    await fails(['kv', 'rollback', 'kv2/app'], 2, /Must specify a version to rollback to/);

    expect(await ok(['kv', 'metadata', 'put', '-max-versions=5', '-cas-required', '-custom-metadata=owner=ops', 'kv2/app'])).toBe('Success! Data written to: kv2/metadata/app\n');
    expect((await json(['kv', 'metadata', 'get', 'kv2/app'])).data).toMatchObject({ max_versions: 5, cas_required: true, custom_metadata: { owner: 'ops' } });
    const metaTable = await ok(['kv', 'metadata', 'get', 'kv2/app']);
    expect(metaTable).toMatch(/== Metadata Path ==\nkv2\/metadata\/app\n/);
    expect(metaTable).toMatch(/======= Version 6 =======\nKey\s+Value\n/);
    await fails(['kv', 'put', 'kv2/app', 'a=no-cas'], 1, /check-and-set parameter required/);
    await fails(['kv', 'metadata', 'put', 'kv2/app'], 2, /nothing to set/);
    expect(await ok(['kv', 'metadata', 'delete', 'kv2/app'])).toBe('Success! Data deleted (if it existed) at: kv2/metadata/app\n');
    await fails(['kv', 'metadata', 'get', 'kv2/app'], 2, /No value found at kv2\/metadata\/app/);
    await fails(['kv', 'get', 'kv2/app'], 2, /No value found/);
  });

  it('refuses kv flags the mount cannot honour, and bad versions, writing nothing', async () => {
    await ok(['kv', 'put', 'secret/v1only', 'a=1']);
    await fails(['kv', 'put', '-cas=0', 'secret/v1only', 'a=2'], 2, /-cas needs a KV version 2 mount/);
    await fails(['kv', 'get', '-version=1', 'secret/v1only'], 2, /-version needs a KV version 2 mount/);
    await fails(['kv', 'put', '-field=version', 'secret/v1only', 'a=2'], 2, /-field needs a KV version 2 mount/);
    await fails(['kv', 'patch', 'secret/v1only', 'a=2'], 2, /kv patch needs a KV version 2 mount, and secret\/ is version 1/);
    await fails(['kv', 'delete', '-versions=1', 'secret/v1only'], 2, /needs a KV version 2 mount/);
    await fails(['kv', 'undelete', '-versions=1', 'secret/v1only'], 2, /needs a KV version 2 mount/);
    await fails(['kv', 'metadata', 'get', 'secret/v1only'], 2, /needs a KV version 2 mount/);
    await fails(['kv', 'undelete', 'kv2/file'], 2, /No versions provided/);
    await fails(['kv', 'destroy', '-versions=one', 'kv2/file'], 2, /-versions takes version numbers/);
    await fails(['kv', 'put', 'kv2/file'], 2, /Must supply data/);
    expect((await json(['kv', 'get', 'secret/v1only'])).data).toEqual({ a: '1' });
    expect((await json(['kv', 'get', 'kv2/file'])).data).toMatchObject({ data: { user: 'svc', port: 5432 }, metadata: { version: 1 } });
  });

  it('kv enable-versioning upgrades a KV v1 mount in place: the secrets are version 1 of themselves', async () => {
    await ok(['secrets', 'enable', '-path=upgrade-me', 'kv']);
    await ok(['kv', 'put', 'upgrade-me/db', 'password=old-style']);
    await ok(['kv', 'put', 'upgrade-me/nested/app', 'token=t']);
    expect(await ok(['kv', 'enable-versioning', 'upgrade-me'])).toBe('Success! Tuned the secrets engine at: upgrade-me/\n');
    expect((await json(['kv', 'get', 'upgrade-me/db'])).data).toMatchObject({ data: { password: 'old-style' }, metadata: { version: 1 } });
    expect(await ok(['kv', 'get', '-field=token', 'upgrade-me/nested/app'])).toBe('t');
    expect(await ok(['kv', 'list', 'upgrade-me'])).toBe('Keys\n----\ndb\nnested/\n');
    await fails(['kv', 'enable-versioning', 'not-mounted'], 1, /no mount entry found/);
  });
  it('print token, operator init -status, token capabilities and path-help', async () => {
    expect(await ok(['print', 'token'])).toBe(`${root}\n`);
    const home = await mkdtemp(join(tmpdir(), 'kw-cli-home-'));
    await writeFile(join(home, '.keyward-token'), 'hvs.stored-by-login\n');
    expect((await cli(['print', 'token'], undefined, { KEYWARD_TOKEN: '', HOME: home })).stdout).toBe('hvs.stored-by-login\n');

    expect(await ok(['operator', 'init', '-status'])).toBe('keyward is initialized\n');
    await fails(['operator', 'init', '-status'], 1, /cannot reach http:\/\/127\.0\.0\.1:1/, undefined, { KEYWARD_ADDR: 'http://127.0.0.1:1' });
    const fresh = await startServerProcess();
    try {
      const r = await cli(['operator', 'init', '-status'], undefined, { KEYWARD_ADDR: fresh.server.url });
      expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 2, stdout: 'keyward is not initialized\n' });
    } finally {
      await fresh.server.kill();
    }

    const policy = join(files, 'reader.hcl');
    await writeFile(policy, 'path "secret/*" { capabilities = ["read", "list"] }\n');
    await ok(['policy', 'write', 'reader', policy]);
    const reader = await ok(['token', 'create', '-policy=reader', '-field=token']);
    expect(reader).toMatch(/^hvs\./);
    expect(await ok(['token', 'capabilities', reader, 'secret/app'])).toBe('list, read\n');
    expect(await ok(['token', 'capabilities', reader, 'sys/mounts'])).toBe('deny\n');
    expect(await ok(['token', 'capabilities', 'secret/app'])).toBe('root\n');
    expect(await json(['token', 'capabilities', reader, 'secret/app'])).toEqual(['read', 'list']);
    await fails(['token', 'capabilities'], 2, /give a path, or a token and a path/);

    const kvHelp = await ok(['path-help', 'secret/']);
    expect(kvHelp).toMatch(/^## DESCRIPTION\n\nThe key\/value secrets engine, version 1/);
    expect(kvHelp).toMatch(/## PATHS\n\n {4}secret\/<path>\n/);
    expect(await ok(['path-help', 'sys/mounts'])).toMatch(/The system backend[\s\S]*sys\/wrapping\/wrap/);
    expect(await ok(['path-help', 'auth/token/create'])).toMatch(/The token store[\s\S]*auth\/token\/create-orphan/);
    await ok(['secrets', 'enable', '-path=helpkv', 'kv-v2']);
    expect(await ok(['path-help', 'helpkv/data/app'])).toMatch(/version 2[\s\S]*helpkv\/data\/<path>/);
    expect((await json(['path-help', 'secret/'])).see_also).toBeNull();
    await fails(['path-help', 'nothing-mounted/x'], 1, /Error retrieving help: Error making API request[\s\S]*Code: 40[34]/);
    // A token that may not read the path gets no help for it.
    await fails(['path-help', 'sys/mounts'], 1, /Code: 403/, undefined, { KEYWARD_TOKEN: reader });
  });

  it('token create takes -role, -period, -type and -field, and a batch token is the server\'s 400', async () => {
    const periodic = await json(['token', 'create', '-policy=default', '-period=1h']);
    expect(periodic.auth).toMatchObject({ lease_duration: 3600, renewable: true });
    expect((await call(base, 'POST', 'auth/token/lookup', { token: root, body: { token: periodic.auth.client_token } })).body.data.period).toBe(3600);
    await ok(['write', 'auth/token/roles/ci', 'allowed_policies=reader', 'orphan=true', 'token_period=30m']);
    const fromRole = await json(['token', 'create', '-role=ci', '-policy=reader']);
    expect(fromRole.auth).toMatchObject({ lease_duration: 1800, orphan: true });
    expect([...fromRole.auth.policies].sort()).toEqual(['default', 'reader']);
    expect(await ok(['token', 'create', '-role=ci', '-field=token_policies'])).toMatch(/^\[.*default.*\]$/);
    await fails(['token', 'create', '-type=batch'], 1, /Code: 400/);
    await fails(['token', 'create', '-role=nope'], 1, /Code: 400[\s\S]*unknown role nope|Code: 404/);
    await fails(['token', 'create', '-role=ci', '-policy=root'], 1, /Code: 400|Code: 403/);
    expect(await ok(['token', 'create', '-policy=default'])).toMatch(/^Key\s+Value\n---\s+-----\ntoken\s+hvs\.\S+\ntoken_accessor\s+\S+\ntoken_duration\s+768h\ntoken_renewable\s+true\ntoken_policies\s+\[default\]\nidentity_policies\s+\[\]\npolicies\s+\[default\]\n$/);
  });

  it('-output-curl-string prints the request (never the token) and sends nothing; -non-interactive never prompts', async () => {
    const curl = await ok(['write', '-output-curl-string', 'secret/curl', 'a=1', "quote=it's"]);
    expect(curl).toBe(`curl -X PUT -H "X-Vault-Token: $(keyward print token)" -H "Content-Type: application/json" -d '{"a":"1","quote":"it'"'"'s"}' ${base}/v1/secret/curl\n`);
    expect(curl).not.toContain(root);
    await fails(['read', 'secret/curl'], 2, /No value found/);
    expect(await ok(['kv', 'get', '-output-curl-string', 'secret/app'])).toBe(`curl -X GET -H "X-Vault-Token: $(keyward print token)" ${base}/v1/secret/app\n`);
    expect(await ok(['list', '-output-curl-string', '-wrap-ttl=2m', 'secret'])).toBe(
      `curl -X GET -H "X-Vault-Token: $(keyward print token)" -H "X-Vault-Wrap-TTL: 120" ${base}/v1/secret/?list=true\n`,
    );
    await fails(['operator', 'unseal', '-non-interactive'], 2, /Unseal Key is needed, and -non-interactive forbids asking for it/);
    await fails(['login', '-non-interactive'], 2, /Token is needed, and -non-interactive forbids asking for it/);
    await fails(['login', '-non-interactive', '-method=userpass', 'username=alice'], 2, /Password is needed, and -non-interactive forbids asking for it/);
  });

  it('honours or refuses each VAULT_* setting of Vault\'s CLI, never ignoring one', async () => {
    for (const name of ['VAULT_MFA', 'VAULT_SRV_LOOKUP', 'VAULT_HTTP_PROXY', 'VAULT_PROXY_ADDR', 'VAULT_RATE_LIMIT', 'VAULT_CONFIG_PATH']) {
      await fails(['kv', 'get', 'secret/app'], 2, new RegExp(`${name} is set, but keyward does not support it`), undefined, { [name]: 'x' });
    }
    const pem = join(files, 'cert.pem');
    await fails(['read', 'secret/app'], 2, /a client certificate needs its key: VAULT_CLIENT_CERT is given but not -client-key/, undefined, { VAULT_CLIENT_CERT: pem });
    await fails(['read', '-client-key=/x.pem', 'secret/app'], 2, /-client-key is given but not -client-cert/);
    await fails(['read', '-client-cert=/nonexistent.pem', '-client-key=/nonexistent.key', 'secret/app'], 2, /cannot read client certificate \/nonexistent\.pem/);
    await fails(['read', 'secret/app'], 2, /cannot read CA directory \/nonexistent/, undefined, { VAULT_CAPATH: '/nonexistent' });
    await fails(['read', 'secret/app'], 2, /VAULT_CLIENT_TIMEOUT takes a duration/, undefined, { VAULT_CLIENT_TIMEOUT: 'forever' });
    await fails(['read', 'secret/app'], 2, /KEYWARD_MAX_RETRIES takes a whole number/, undefined, { KEYWARD_MAX_RETRIES: 'many' });
    // VAULT_AGENT_ADDR comes before VAULT_ADDR, as in Vault's CLI.
    expect((await cli(['read', '-field=user', 'secret/app'], undefined, { KEYWARD_ADDR: '', VAULT_ADDR: 'http://127.0.0.1:1', VAULT_AGENT_ADDR: base })).stdout).toBe('app');

    // A standby in redirect mode answers 307: followed unless VAULT_DISABLE_REDIRECTS; a 503 is retried only as VAULT_MAX_RETRIES allows.
    let answered = 0;
    const redirector = createServer((req, res) => {
      res.writeHead(answered++ % 2 === 0 ? 503 : 307, { Location: `${base}${req.url}` }).end();
    });
    await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
    const addr = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}`;
    try {
      await fails(['read', 'secret/app'], 1, /Code: 503/, undefined, { KEYWARD_ADDR: addr });
      answered = 0;
      expect((await cli(['read', '-field=user', 'secret/app'], undefined, { KEYWARD_ADDR: addr, VAULT_MAX_RETRIES: '1' })).stdout).toBe('app');
      answered = 1;
      await fails(['read', 'secret/app'], 1, /redirected the request to http:\/\/127\.0\.0\.1:\d+\/v1\/secret\/app, and redirects are disabled/, undefined, { KEYWARD_ADDR: addr, VAULT_DISABLE_REDIRECTS: 'true' });
    } finally {
      redirector.close();
    }
  });

  it('-wrap-ttl on any verb prints the wrapping token; unwrap gives the response back once, as read prints it', async () => {
    const wrapped = await ok(['read', '-wrap-ttl=5m', 'secret/app']);
    expect(wrapped).toMatch(
      /^Key\s+Value\n---\s+-----\nwrapping_token:\s+hvs\.\S+\nwrapping_accessor:\s+\S+\nwrapping_token_ttl:\s+5m\nwrapping_token_creation_time:\s+\S+.*\nwrapping_token_creation_path:\s+secret\/app\n$/,
    );
    expect(wrapped).not.toContain('hunter2');
    const token = /wrapping_token:\s+(\S+)/.exec(wrapped)![1]!;
    expect(await ok(['unwrap', token])).toMatch(/^Key\s+Value\n---\s+-----\nrefresh_interval\s+768h\npass\s+hunter2\nuser\s+app\n$/);
    await fails(['unwrap', token], 1, /Error unwrapping: Error making API request[\s\S]*Code: 400[\s\S]*wrapping token is not valid or does not exist/);

    // -field picks the wrapping token; the env variables ask for wrapping as the flag does; -field works on the unwrapped data.
    const viaEnv = await ok(['read', '-wrap-ttl=5m', '-field=wrapping_token', 'secret/app']);
    expect(viaEnv).toMatch(/^hvs\./);
    expect(await ok(['unwrap', '-field=pass', viaEnv])).toBe('hunter2');
    for (const name of ['VAULT_WRAP_TTL', 'KEYWARD_WRAP_TTL']) {
      const r = await cli(['kv', 'get', '-format=json', 'secret/app'], undefined, { [name]: '90' });
      expect(r.code, r.stderr).toBe(0);
      const body = JSON.parse(r.stdout);
      expect(body.data).toBeNull();
      expect(body.wrap_info).toMatchObject({ ttl: 90, creation_path: 'secret/app' });
      // With no argument, the CLI's own token is the wrapping token, as in Vault.
      const own = await cli(['unwrap', '-format=json'], undefined, { KEYWARD_TOKEN: body.wrap_info.token });
      expect(JSON.parse(own.stdout).data).toEqual({ user: 'app', pass: 'hunter2' });
    }

    // A wrapped list unwraps to its keys; a wrapped token shows the wrapped accessor.
    const list = (await json(['list', '-wrap-ttl=1m', 'secret'])).wrap_info.token;
    expect(await ok(['unwrap', list])).toMatch(/^Keys\n----\napp\n/);
    const tokenWrap = await json(['token', 'create', '-policy=default', '-wrap-ttl=1m']);
    expect(tokenWrap.wrap_info).toMatchObject({ creation_path: 'auth/token/create', wrapped_accessor: expect.stringMatching(/\S/) });
    expect(await ok(['token', 'create', '-policy=default', '-wrap-ttl=1m'])).toMatch(/\nwrapped_accessor:\s+\S+\n$/);
    const unwrappedToken = await json(['unwrap', tokenWrap.wrap_info.token]);
    expect(unwrappedToken.auth.accessor).toBe(tokenWrap.wrap_info.wrapped_accessor);
    expect(await ok(['write', '-wrap-ttl=1m', '-field=wrapping_token_creation_path', 'sys/wrapping/wrap', 'k=v'])).toBe('sys/wrapping/wrap');
    expect(await ok(['write', '-wrap-ttl=1m', '-field=wrapping_token_ttl', 'sys/wrapping/wrap', 'k=v'])).toBe('60');
  });

});

describe('dev mode', () => {
  it('mounts secret/ as KV version 2, as Vault\'s dev server does', async () => {
    const port = await freePort();
    const child = spawn(KEYWARD, ['server', '-dev', `-dev-listen-address=127.0.0.1:${port}`, '-log-level=warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      const deadline = Date.now() + 60_000;
      while (!/Root Token: (\S+)/.test(out)) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the dev server did not start:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const token = /Root Token: (\S+)/.exec(out)![1]!;
      const url = `http://127.0.0.1:${port}`;
      expect((await call(url, 'GET', 'sys/mounts/secret', { token })).body.data.options).toEqual({ version: '2' });
      const devEnv = { KEYWARD_ADDR: url, KEYWARD_TOKEN: token, VAULT_ADDR: '', VAULT_TOKEN: '' };
      expect((await runCli(['kv', 'put', 'secret/hello', 'foo=world'], devEnv)).stdout).toMatch(/secret\/data\/hello[\s\S]*version\s+1/);
      expect((await call(url, 'GET', 'secret/data/hello', { token })).body.data.data).toEqual({ foo: 'world' });
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});
