import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileBackend } from '../src/storage/file.js';
import { type Baseline, type CrashPoint, unsealsWith, walk } from './support/crash-walk.js';
import { type FreshServer, type ServerProcess, spawnServer, startServerProcess } from './support/process.js';
import { call, expectError, initAndUnseal, type Reply } from './support/service.js';

/** KV v1 secrets, among them names that KV v2's own layout uses ("metadata/…", "config"). */
const V1_SECRETS: Record<string, Record<string, string>> = {
  app: { user: 'app', pass: 'hunter2' },
  'metadata/app': { shadow: 'a v1 secret whose name is a v2 metadata path' },
  'dir/deep/x': { v: 'deep' },
  config: { v: 'a v1 secret named like the v2 engine config' },
};

/** Every key stored under a prefix of a stopped server's file storage (its journal replayed, on a copy). */
async function storedKeys(storageDir: string, prefix: string): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'kw-mounts-read-'));
  try {
    await cp(storageDir, join(dir, 'storage'), { recursive: true });
    const stored = await FileBackend.open(join(dir, 'storage'));
    const walkKeys = async (p: string): Promise<string[]> => (await Promise.all((await stored.list(p)).map((c) => (c.endsWith('/') ? walkKeys(p + c) : [p + c])))).flat();
    const keys = await walkKeys(prefix);
    await stored.close();
    return keys;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Writes the v1 secrets into a v1 mount at `mount`. */
async function fillV1(url: string, token: string, mount: string): Promise<void> {
  for (const [key, data] of Object.entries(V1_SECRETS)) expect((await call(url, 'PUT', `${mount}/${key}`, { token, body: data })).status).toBe(204);
}

/** The mount is KV v1 with every secret as written, or KV v2 with every secret as its version 1: nothing lost, nothing half-moved. */
async function expectWholeMount(url: string, token: string, mount: string, where: string): Promise<'1' | '2'> {
  const version = (await call(url, 'GET', `sys/mounts/${mount}`, { token })).body.data.options.version as '1' | '2';
  for (const [key, data] of Object.entries(V1_SECRETS)) {
    if (version === '1') {
      expect((await call(url, 'GET', `${mount}/${key}`, { token })).body.data, `${where}: v1 ${key}`).toEqual(data);
    } else {
      const read = await call(url, 'GET', `${mount}/data/${key}`, { token });
      expect({ status: read.status, data: read.body.data?.data, version: read.body.data?.metadata?.version }, `${where}: v2 ${key}`).toEqual({ status: 200, data, version: 1 });
    }
  }
  return version;
}

describe('mount management: read, tune, remount, hvac\'s enable body, KV v1 → v2 upgrade', () => {
  let server: ServerProcess;
  let fresh: FreshServer;
  let dir: string;
  let url: string;
  let root: string;
  let keys: string[];
  const mounts = async () => (await call(url, 'GET', 'sys/mounts', { token: root })).body.data as Record<string, Record<string, unknown>>;
  const send = (method: string, path: string, body?: unknown, token = root): Promise<Reply> => call(url, method, path, { token, body });

  /** Stops the server cleanly, starts it again on the same storage and unseals it. */
  const restart = async () => {
    if (server.child.exitCode === null) expect(await server.stop()).toBe(0);
    server = await spawnServer(fresh.config, fresh.token, fresh.port);
    expect(await unsealsWith(url, keys.slice(0, 2))).toBe(true);
  };

  beforeAll(async () => {
    fresh = await startServerProcess();
    ({ server, dir } = fresh);
    url = server.url;
    ({ root, keys } = await initAndUnseal(url));
  });
  afterAll(async () => {
    await server?.kill();
  });

  it('reads one mount in the shape sys/mounts lists it, under either spelling', async () => {
    const listed = (await mounts())['secret/'];
    for (const path of ['sys/mounts/secret', 'sys/mounts/secret/']) {
      const read = await send('GET', path);
      expect(read.status).toBe(200);
      expect(read.body.data).toEqual(listed);
      expect(read.body.data).toMatchObject({ type: 'kv', options: { version: '1' }, config: { default_lease_ttl: 0, max_lease_ttl: 0 } });
    }
    await expectError(await send('GET', 'sys/mounts/nothing'), 400, /No secret engine mount at nothing\//);
  });

  it('enables with the body hvac sends (config, options, plugin_name null; local and seal_wrap false) and with TTLs in config', async () => {
    const hvac = { type: 'kv', description: null, config: null, options: null, plugin_name: null, local: false, seal_wrap: false };
    expect((await send('POST', 'sys/mounts/from-hvac', hvac)).status).toBe(204);
    // node-vault sends its own arguments in the body; fields Vault does not define are ignored, as Vault ignores them.
    expect((await send('POST', 'sys/mounts/from-node-vault', { mount_point: 'from-node-vault', type: 'kv' })).status).toBe(204);
    expect((await mounts())['from-hvac/']).toMatchObject({ type: 'kv', description: '', options: { version: '1' } });
    // What Vault's own CLI sends: empty TTL strings and force_no_cache false mean "not set".
    const vaultCli = { type: 'kv', description: '', config: { default_lease_ttl: '', max_lease_ttl: '', force_no_cache: false, options: null }, local: false, seal_wrap: false, external_entropy_access: false, options: { version: '2' } };
    expect((await send('POST', 'sys/mounts/from-vault-cli', vaultCli)).status).toBe(204);
    expect((await mounts())['from-vault-cli/']).toMatchObject({ options: { version: '2' }, config: { default_lease_ttl: 0, max_lease_ttl: 0 } });
    expect((await send('POST', 'sys/mounts/with-ttls', { type: 'kv-v2', config: { default_lease_ttl: '1h', max_lease_ttl: 86400 } })).status).toBe(204);
    expect((await mounts())['with-ttls/']).toMatchObject({ options: { version: '2' }, config: { default_lease_ttl: 3600, max_lease_ttl: 86400 } });
  });

  it('refuses an enable it would have to half-ignore, naming the field, and mounts nothing', async () => {
    const before = await mounts();
    const refused: Array<[unknown, RegExp]> = [
      [{ type: 'kv', local: true }, /"local" is not supported/],
      [{ type: 'kv', seal_wrap: true }, /"seal_wrap" is not supported/],
      [{ type: 'kv', config: { listing_visibility: 'unauth' } }, /"config\.listing_visibility" is not supported/],
      [{ type: 'kv', config: { force_no_cache: true } }, /"config\.force_no_cache" is not supported/],
      [{ type: 'kv', config: 'fast' }, /"config" must be an object/],
      [{ type: 'kv', config: { default_lease_ttl: '2h', max_lease_ttl: '1h' } }, /backend max lease TTL of 3600 would be less than backend default lease TTL of 7200/],
      [{ type: 'kv', config: { default_lease_ttl: 'soon' } }, /default_lease_ttl must be a number of seconds or a duration/],
      [{ type: 'kv', options: { version: '3' } }, /invalid version provided: 3/],
      [{ type: 'kv', options: { versoin: '2' } }, /option "versoin" is not supported/],
      [{ type: 'transit', options: { version: '2' } }, /options\.version applies to kv mounts only/],
      [{ description: 'no type' }, /missing required field "type"/],
      [['kv'], /request body/],
    ];
    for (const [body, message] of refused) await expectError(await send('POST', 'sys/mounts/refused', body), 400, message);
    expect(await mounts()).toEqual(before);
  });

  it('tunes TTLs and description, reports them in sys/mounts and in tune (the server\'s TTLs where the mount has none)', async () => {
    expect((await send('POST', 'sys/mounts/tuned', { type: 'kv' })).status).toBe(204);
    const system = (await send('GET', 'sys/mounts/tuned/tune')).body.data;
    expect(system).toEqual({ description: '', default_lease_ttl: 2764800, max_lease_ttl: 2764800, force_no_cache: false, options: { version: '1' } });

    expect((await send('POST', 'sys/mounts/tuned/tune', { default_lease_ttl: '30m', max_lease_ttl: 7200, description: 'team secrets' })).status).toBe(204);
    expect((await mounts())['tuned/']).toMatchObject({ description: 'team secrets', config: { default_lease_ttl: 1800, max_lease_ttl: 7200 } });
    expect((await send('GET', 'sys/mounts/tuned/tune')).body.data).toMatchObject({ description: 'team secrets', default_lease_ttl: 1800, max_lease_ttl: 7200 });
    // Only what is given changes; "system" goes back to the server's.
    expect((await send('PUT', 'sys/mounts/tuned/tune', { max_lease_ttl: 'system' })).status).toBe(204);
    expect((await mounts())['tuned/']).toMatchObject({ description: 'team secrets', config: { default_lease_ttl: 1800, max_lease_ttl: 0 } });
    expect((await send('GET', 'sys/mounts/tuned/tune')).body.data).toMatchObject({ default_lease_ttl: 1800, max_lease_ttl: 2764800 });
  });

  it('refuses a bad tune with a 400 naming the problem, and changes nothing', async () => {
    expect((await send('POST', 'sys/mounts/tune-refusals', { type: 'kv' })).status).toBe(204);
    expect((await send('POST', 'sys/mounts/tune-refusals/tune', { default_lease_ttl: '30m' })).status).toBe(204);
    expect((await send('POST', 'sys/mounts/transit-tuned', { type: 'transit' })).status).toBe(204);
    expect((await send('POST', 'sys/mounts/v2-tuned', { type: 'kv-v2' })).status).toBe(204);
    const before = await mounts();
    const refused: Array<[string, unknown, RegExp]> = [
      // A max below the default set earlier is refused too.
      ['tune-refusals', { max_lease_ttl: '10m' }, /backend max lease TTL of 600 would be less than backend default lease TTL of 1800/],
      ['tune-refusals', { default_lease_ttl: '2h', max_lease_ttl: '1h' }, /backend max lease TTL of 3600 would be less than backend default lease TTL of 7200/],
      ['tune-refusals', { max_lease_ttl: -5 }, /max_lease_ttl must be a number of seconds or a duration/],
      ['tune-refusals', { listing_visibility: 'unauth' }, /"listing_visibility" is not supported/],
      ['tune-refusals', { audit_non_hmac_request_keys: ['password'] }, /"audit_non_hmac_request_keys" is not supported/],
      ['tune-refusals', { options: { max_versions: '3' } }, /option "max_versions" is not supported/],
      ['tune-refusals', { description: 7 }, /"description" must be a string/],
      ['tune-refusals', { options: { version: '9' } }, /invalid version provided: 9/],
      ['v2-tuned', { options: { version: '1' } }, /cannot downgrade mount from version 2/],
      ['transit-tuned', { options: { version: '2' } }, /options\.version applies to kv mounts only/],
      ['not-mounted', { description: 'x' }, /tune of path "not-mounted\/" failed: no mount entry found/],
      ['tune-refusals/', { description: 'x' }, /without a "\/" before "\/tune"/],
    ];
    for (const [mount, body, message] of refused) await expectError(await send('POST', `sys/mounts/${mount}/tune`, body), 400, message);
    await expectError(await send('GET', 'sys/mounts/not-mounted/tune'), 400, /cannot fetch sysview for path "not-mounted\/"/);
    expect(await mounts()).toEqual(before);
  });

  it('requires the capability Vault requires: update on sys/mounts/<path>/tune, update with sudo on sys/remount', async () => {
    const policy = `
path "sys/mounts/team/tune" { capabilities = ["read", "update"] }
path "sys/remount" { capabilities = ["update"] }
`;
    expect((await send('PUT', 'sys/policies/acl/team-admin', { policy })).status).toBe(204);
    expect((await send('PUT', 'sys/policies/acl/mover', { policy: 'path "sys/remount" { capabilities = ["update", "sudo"] }' })).status).toBe(204);
    const teamAdmin = (await send('POST', 'auth/token/create', { policies: ['team-admin'] })).body.auth.client_token;
    const mover = (await send('POST', 'auth/token/create', { policies: ['mover'] })).body.auth.client_token;
    expect((await send('POST', 'sys/mounts/team', { type: 'kv' })).status).toBe(204);
    expect((await send('POST', 'sys/mounts/other', { type: 'kv' })).status).toBe(204);

    expect((await send('POST', 'sys/mounts/team/tune', { description: 'ours' }, teamAdmin)).status).toBe(204);
    expect((await send('GET', 'sys/mounts/team/tune', undefined, teamAdmin)).body.data.description).toBe('ours');
    expect((await send('GET', 'sys/mounts/team', undefined, teamAdmin)).status).toBe(403);
    expect((await send('POST', 'sys/mounts/other/tune', { description: 'not ours' }, teamAdmin)).status).toBe(403);
    // update without sudo is not enough for a remount.
    expect((await send('POST', 'sys/remount', { from: 'other', to: 'elsewhere' }, teamAdmin)).status).toBe(403);
    expect((await mounts())['other/']).toMatchObject({ description: '' });
    expect((await send('POST', 'sys/remount', { from: 'other', to: 'elsewhere' }, mover)).status).toBe(200);
    expect(Object.keys(await mounts())).toEqual(expect.arrayContaining(['elsewhere/']));
    expect(Object.keys(await mounts())).not.toContain('other/');
  });

  it('moves a mount with its data (v1 and v2), keeps its identity, reports the move, and refuses bad targets with Vault\'s wording', async () => {
    expect((await send('POST', 'sys/mounts/moving-v1', { type: 'kv' })).status).toBe(204);
    expect((await send('POST', 'sys/mounts/moving-v2', { type: 'kv-v2' })).status).toBe(204);
    expect((await send('PUT', 'moving-v1/app', { v: 'one' })).status).toBe(204);
    expect((await send('POST', 'moving-v2/data/app', { data: { v: 'two' } })).status).toBe(200);
    const before = await mounts();

    const refused: Array<[unknown, RegExp]> = [
      [{ from: 'moving-v1', to: 'sys/x' }, /cannot remount to destination "sys\/x\/"/],
      [{ from: 'moving-v1', to: 'auth/x' }, /cannot remount to destination "auth\/x\/"/],
      [{ from: 'sys', to: 'system' }, /cannot remount "sys\/"/],
      [{ from: 'moving-v1', to: 'secret' }, /path already in use at "secret\/"/],
      [{ from: 'moving-v1', to: 'moving-v1/inner' }, /path already in use at "moving-v1\/"/],
      [{ from: 'moving-v1', to: 'secret/inner' }, /path already in use at "secret\/"/],
      [{ from: 'not-mounted', to: 'anywhere' }, /no matching mount at "not-mounted\/"/],
      [{ from: 'moving-v1' }, /both 'from' and 'to' path must be specified as a string/],
      [{ from: 'moving-v1', to: 7 }, /both 'from' and 'to' path must be specified as a string/],
      [{ from: 'moving-v1', to: ' padded' }, /not canonical/],
    ];
    for (const [body, message] of refused) await expectError(await send('POST', 'sys/remount', body), 400, message);
    expect(await mounts()).toEqual(before);

    const moved = await send('POST', 'sys/remount', { from: 'moving-v1', to: 'moved-v1' });
    expect(moved.status).toBe(200);
    const status = await send('GET', `sys/remount/status/${moved.body.data.migration_id}`);
    expect(status.body.data).toEqual({ migration_id: moved.body.data.migration_id, migration_info: { source_mount: 'moving-v1/', target_mount: 'moved-v1/', status: 'success' } });
    expect((await send('GET', 'sys/remount/status/not-a-migration')).status).toBe(404);
    expect((await send('POST', 'sys/remount', { from: 'moving-v2/', to: 'moved-v2/' })).status).toBe(200);

    const after = await mounts();
    expect(after['moving-v1/']).toBeUndefined();
    expect(after['moved-v1/']).toEqual(before['moving-v1/']);
    expect(after['moved-v2/']).toEqual(before['moving-v2/']);
    expect((await send('GET', 'moved-v1/app')).body.data).toEqual({ v: 'one' });
    expect((await send('GET', 'moved-v2/data/app')).body.data.data).toEqual({ v: 'two' });
    expect((await send('GET', 'moving-v1/app')).status).toBe(404);

    // The move is in the stored table: a restart finds the data at the new path.
    await restart();
    expect((await send('GET', 'moved-v1/app')).body.data).toEqual({ v: 'one' });
    expect((await mounts())['moved-v1/']).toEqual(before['moving-v1/']);
  });

  it('upgrades a KV v1 mount to v2 in place: every secret becomes version 1 of itself, no v1 entry is left, and it survives a restart', async () => {
    expect((await send('POST', 'sys/mounts/legacy', { type: 'kv', description: 'old style' })).status).toBe(204);
    await fillV1(url, root, 'legacy');
    const before = (await mounts())['legacy/']!;
    expect((await send('POST', 'sys/mounts/legacy/tune', { options: { version: '2' }, description: 'upgraded' })).status).toBe(204);
    const after = (await mounts())['legacy/']!;
    expect(after).toEqual({ ...before, description: 'upgraded', options: { version: '2' } });
    expect(await expectWholeMount(url, root, 'legacy', 'after the upgrade')).toBe('2');
    expect((await send('GET', 'legacy/metadata/?list=true')).body.data.keys).toEqual(['app', 'config', 'dir/', 'metadata/']);
    // New writes are versions on top of the moved ones; the v1 paths are gone.
    expect((await send('POST', 'legacy/data/app', { data: { pass: 'new' } })).body.data.version).toBe(2);
    expect((await send('GET', 'legacy/data/app?version=1')).body.data.data).toEqual(V1_SECRETS.app);
    expect((await send('GET', 'legacy/app')).status).toBe(404);
    // Upgrading again changes nothing.
    expect((await send('POST', 'sys/mounts/legacy/tune', { options: { version: '2' } })).status).toBe(204);
    expect((await send('GET', 'legacy/data/app')).body.data).toMatchObject({ data: { pass: 'new' }, metadata: { version: 2 } });

    await restart();
    expect((await send('GET', 'legacy/data/config')).body.data.data).toEqual(V1_SECRETS.config);
    expect(await server.stop()).toBe(0);
    const keys = await storedKeys(join(dir, 'storage'), `logical/${after.uuid as string}/`);
    expect(keys.every((k) => /^logical\/[^/]+\/(metadata|versions)\//.test(k)), keys.join(', ')).toBe(true);
    expect(keys).toHaveLength(Object.keys(V1_SECRETS).length * 2 + 1);
    await restart();
  });

  it('holds requests off the mount while it upgrades: every v1 write that was acknowledged is in the v2 mount', async () => {
    expect((await send('POST', 'sys/mounts/busy', { type: 'kv' })).status).toBe(204);
    // Enough entries that the upgrade takes a while, and writes land before, during and after it.
    for (let i = 0; i < 150; i++) expect((await send('PUT', `busy/old-${i}`, { i })).status).toBe(204);
    const writes = Array.from({ length: 120 }, (_, i) => send('PUT', `busy/racing-${i}`, { i }));
    const upgrade = send('POST', 'sys/mounts/busy/tune', { options: { version: '2' } });
    const results = await Promise.all(writes);
    expect((await upgrade).status).toBe(204);
    const acknowledged = results.flatMap((r, i) => (r.status === 204 ? [i] : []));
    // Refused while the upgrade ran (400, saying so), or after it (a v1 path on a v2 mount: 404).
    for (const r of results.filter((x) => x.status !== 204)) {
      expect([400, 404]).toContain(r.status);
      if (r.status === 400) expect(r.body.errors.join(' ')).toMatch(/being upgraded to version 2; retry/);
    }
    expect(acknowledged.length).toBeGreaterThan(0);
    for (const i of acknowledged) expect((await send('GET', `busy/data/racing-${i}`)).body.data?.data, `racing-${i}`).toEqual({ i });
    for (let i = 0; i < 150; i++) expect((await send('GET', `busy/data/old-${i}`)).body.data.data).toEqual({ i });
  });
});

describe('KV v1 → v2 upgrade survives kill -9 at every storage write', () => {
  it('leaves the v1 mount with all its data before the journal is written, the v2 mount with all of it after', async () => {
    const { server, token, dir } = await startServerProcess();
    const init = await call(server.url, 'PUT', 'sys/init', { body: { secret_shares: 5, secret_threshold: 3 } });
    expect(await unsealsWith(server.url, init.body.keys.slice(0, 3))).toBe(true);
    const root = init.body.root_token;
    expect((await call(server.url, 'POST', 'sys/mounts/legacy', { token: root, body: { type: 'kv' } })).status).toBe(204);
    await fillV1(server.url, root, 'legacy');
    const uuid = (await call(server.url, 'GET', 'sys/mounts/legacy', { token: root })).body.data.uuid;
    expect(await server.stop()).toBe(0);
    const base: Baseline = { token, dir, shares: init.body.keys, root };

    const outcomes = { v1: 0, v2: 0 };
    const result = await walk(
      base,
      async (u) => (await call(u, 'POST', 'sys/mounts/legacy/tune', { token: root, body: { options: { version: '2' } } })).status === 204,
      async (u, point: CrashPoint) => {
        const where = `crash before write ${point.n} (${point.write})`;
        const version = await expectWholeMount(u, root, 'legacy', where);
        // The journal decides: before it nothing changed, once it is on disk the whole upgrade is there.
        expect(version, where).toBe(point.journals > 0 ? '2' : '1');
        outcomes[version === '2' ? 'v2' : 'v1']++;
      },
    );
    // One transaction: its journal, every entry of the v2 layout, the v1 entries it does not overwrite deleted, and the table.
    const prefix = `logical/${uuid as string}/`;
    const moved = Object.keys(V1_SECRETS).flatMap((k) => [`rename ${prefix}versions/${k}/1`, `rename ${prefix}metadata/${k}`]);
    const deleted = Object.keys(V1_SECRETS).filter((k) => !moved.includes(`rename ${prefix}${k}`)).map((k) => `delete ${prefix}${k}`);
    expect(result.writes[0]).toBe('journal');
    expect([...result.writes].sort()).toEqual(['journal', ...moved, ...deleted, 'rename core/mounts'].sort());
    expect(result.points.map((p) => p.write)).toEqual(result.writes);
    expect(outcomes).toEqual({ v1: 1, v2: result.writes.length - 1 });
  }, 600_000);
});
