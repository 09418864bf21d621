import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { call, expectError, initAndUnseal, type InProcess, startInProcess } from './support/service.js';

/**
 * KV v2 `delete_version_after`: a version reads as deleted once that long has passed since it was
 * written. The engine takes the time from Date, which these tests fake so they can move time on.
 */
describe('KV v2 delete_version_after', () => {
  let kw: InProcess;
  let base: string;
  let root: string;

  const kv = (method: string, path: string, body?: unknown) => call(base, method, `kv/${path}`, { token: root, body });
  const write = async (path: string, data: Record<string, unknown>) => {
    const res = await kv('POST', `data/${path}`, { data });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.data as { version: number; created_time: string; deletion_time: string };
  };
  const configure = async (body: Record<string, unknown>) => expect((await kv('POST', 'config', body)).status).toBe(204);
  const setSecret = async (path: string, body: Record<string, unknown>) => expect((await kv('POST', `metadata/${path}`, body)).status).toBe(204);
  const metadata = async (path: string) => (await kv('GET', `metadata/${path}`)).body.data;
  /** Moves the faked clock on; only Date is faked, so nothing else in the process skips ahead. */
  const advance = (seconds: number) => vi.setSystemTime(Date.now() + seconds * 1000);
  const inSeconds = (seconds: number) => new Date(Date.now() + seconds * 1000).toISOString();

  async function expectLive(path: string, version: number, data: Record<string, unknown>): Promise<void> {
    const res = await kv('GET', `data/${path}?version=${version}`);
    expect(res.status, `${path} v${version}: ${JSON.stringify(res.body)}`).toBe(200);
    expect(res.body.data.data).toEqual(data);
  }

  async function expectDeleted(path: string, version: number, deletionTime: string): Promise<void> {
    const res = await kv('GET', `data/${path}?version=${version}`);
    expect(res.status, `${path} v${version}: ${JSON.stringify(res.body)}`).toBe(404);
    expect(res.body.data).toMatchObject({ data: null, metadata: { version, deletion_time: deletionTime, destroyed: false } });
  }

  beforeAll(async () => {
    kw = await startInProcess('inmem');
    base = kw.service.url;
    ({ root } = await initAndUnseal(base));
    // Faked before the mount exists, so its engine's clock is the fake one.
    vi.useFakeTimers({ toFake: ['Date'] });
  });
  afterAll(async () => {
    vi.useRealTimers();
    await kw?.service.close();
  });

  beforeEach(async () => {
    expect((await call(base, 'POST', 'sys/mounts/kv', { token: root, body: { type: 'kv-v2' } })).status).toBe(204);
  });
  afterEach(async () => {
    expect((await call(base, 'DELETE', 'sys/mounts/kv', { token: root })).status).toBe(204);
  });

  it("deletes each version once the mount's delete_version_after has passed since it was written", async () => {
    await configure({ delete_version_after: '1m' });
    expect((await kv('GET', 'config')).body.data.delete_version_after).toBe('1m0s');
    const v1Deletion = inSeconds(60);
    expect(await write('app', { v: 1 })).toMatchObject({ version: 1, deletion_time: v1Deletion });
    advance(30);
    const v2Deletion = inSeconds(60);
    expect(await write('app', { v: 2 })).toMatchObject({ version: 2, deletion_time: v2Deletion });

    advance(29);
    await expectLive('app', 1, { v: 1 });
    expect((await kv('GET', 'data/app?version=1')).body.data.metadata.deletion_time).toBe(v1Deletion);
    advance(1);
    await expectDeleted('app', 1, v1Deletion);
    await expectLive('app', 2, { v: 2 });
    const meta = await metadata('app');
    expect(meta.delete_version_after).toBe('0s');
    expect(meta.versions['1']).toMatchObject({ deletion_time: v1Deletion, destroyed: false });
    expect(meta.versions['2']).toMatchObject({ deletion_time: v2Deletion, destroyed: false });

    advance(30);
    await expectDeleted('app', 2, v2Deletion);
    expect((await kv('GET', 'data/app')).status).toBe(404);
    expect((await kv('PATCH', 'data/app', { data: { v: 3 } })).status).toBe(404);
    // As in Vault, a secret whose versions are all deleted keeps its metadata, so it is still listed.
    expect((await kv('GET', 'metadata/?list=true')).body.data.keys).toEqual(['app']);
  });

  it("lets a secret's own setting shorten the mount's, never lengthen it", async () => {
    await configure({ delete_version_after: 60 });
    await setSecret('short', { delete_version_after: '10s' });
    await setSecret('long', { delete_version_after: '1h' });
    expect((await metadata('short')).delete_version_after).toBe('10s');
    expect((await metadata('long')).delete_version_after).toBe('1h0m0s');
    const shortDeletion = inSeconds(10);
    expect((await write('short', { v: 's' })).deletion_time).toBe(shortDeletion);
    const longDeletion = inSeconds(60);
    expect((await write('long', { v: 'l' })).deletion_time).toBe(longDeletion);

    advance(10);
    await expectDeleted('short', 1, shortDeletion);
    await expectLive('long', 1, { v: 'l' });
    advance(50);
    await expectDeleted('long', 1, longDeletion);

    // With nothing set on the mount, the secret's own setting applies alone.
    await configure({ delete_version_after: '0s' });
    expect((await write('long', { v: 'l2' })).deletion_time).toBe(inSeconds(3600));
  });

  it('"0s" everywhere, or a negative mount setting, writes versions that never expire', async () => {
    await configure({ delete_version_after: '30s' });
    const early = await write('app', { v: 1 });
    await configure({ delete_version_after: '0s' });
    await setSecret('app', { delete_version_after: '0s' });
    expect((await kv('GET', 'config')).body.data.delete_version_after).toBe('0s');
    expect((await write('app', { v: 2 })).deletion_time).toBe('');

    // A negative duration on the mount turns the setting off even for secrets that have their own.
    await configure({ delete_version_after: '-1h' });
    expect((await kv('GET', 'config')).body.data.delete_version_after).toBe('-1s');
    await setSecret('own', { delete_version_after: '10s' });
    expect((await write('own', { v: 1 })).deletion_time).toBe('');

    advance(7 * 24 * 3600);
    await expectLive('app', 2, { v: 2 });
    await expectLive('own', 1, { v: 1 });
    // Changing the settings does not reschedule versions already written.
    await expectDeleted('app', 1, early.deletion_time);
  });

  it('undeletes an expired version under a fresh delete_version_after, and deletes a scheduled one at once', async () => {
    await configure({ delete_version_after: '1m' });
    const first = await write('app', { v: 1 });
    advance(60);
    await expectDeleted('app', 1, first.deletion_time);

    advance(5);
    expect((await kv('POST', 'undelete/app', { versions: [1] })).status).toBe(204);
    const renewed = inSeconds(60);
    await expectLive('app', 1, { v: 1 });
    expect((await metadata('app')).versions['1'].deletion_time).toBe(renewed);
    advance(60);
    await expectDeleted('app', 1, renewed);

    // With the setting off, undelete clears the deletion time for good.
    await configure({ delete_version_after: '0s' });
    expect((await kv('POST', 'undelete/app', { versions: [1] })).status).toBe(204);
    expect((await metadata('app')).versions['1'].deletion_time).toBe('');
    await expectLive('app', 1, { v: 1 });

    // A delete in the meantime takes effect now, not when the version was due to expire.
    await configure({ delete_version_after: '1h' });
    expect((await write('app', { v: 2 })).deletion_time).toBe(inSeconds(3600));
    expect((await kv('DELETE', 'data/app')).status).toBe(204);
    await expectDeleted('app', 2, new Date(Date.now()).toISOString());
  });

  it('answers 400 to a malformed duration and changes nothing', async () => {
    await configure({ delete_version_after: '1m', max_versions: 4 });
    await setSecret('app', { delete_version_after: '30s', max_versions: 3 });
    const config = (await kv('GET', 'config')).body.data;
    const meta = await metadata('app');

    // Malformed in Vault too; the last is longer than Vault (Go) can hold.
    const bad: unknown[] = ['soon', '1x', '5 minutes', 'h', true, {}, [], '9999999999h'];
    for (const value of bad) {
      const label = JSON.stringify(value);
      expectError(await kv('POST', 'config', { delete_version_after: value, max_versions: 9 }), 400, /delete_version_after/);
      expectError(await kv('POST', 'metadata/app', { delete_version_after: value, max_versions: 9 }), 400, /delete_version_after/);
      expectError(await kv('POST', 'metadata/new', { delete_version_after: value }), 400, /delete_version_after/);
      expect((await kv('GET', 'config')).body.data, label).toEqual(config);
      expect(await metadata('app'), label).toEqual(meta);
      expect((await kv('GET', 'metadata/new')).status, label).toBe(404);
    }
    // Only the mount takes a negative duration (to turn the setting off); a secret's may not be negative.
    for (const value of ['-1s', -5, '-soon']) {
      expectError(await kv('POST', 'metadata/app', { delete_version_after: value }), 400, /delete_version_after/);
    }
    expectError(await kv('POST', 'config', { delete_version_after: '-soon' }), 400, /delete_version_after/);
    expect(await metadata('app')).toEqual(meta);
    expect((await kv('GET', 'config')).body.data).toEqual(config);
  });

  it('answers 404 to a patch of a destroyed version, as to a deleted one', async () => {
    await write('app', { v: 1 });
    expect((await kv('POST', 'destroy/app', { versions: [1] })).status).toBe(204);
    expect((await kv('PATCH', 'data/app', { data: { w: 2 } })).status).toBe(404);
    expect((await metadata('app')).current_version).toBe(1);
  });
});
