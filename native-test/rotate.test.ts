import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, expectError, initAndUnseal, type InProcess, restartInProcess, startInProcess } from './support/service.js';

describe('rotate against SoftHSM2', () => {
  let kw: InProcess;
  let base: string;
  let root: string;
  let keys: string[];
  let clock = Date.now();
  const now = () => clock;

  const term = async (): Promise<number> => (await call(base, 'GET', 'sys/key-status', { token: root })).body.term;
  const uuidOfSecret = () => kw.service.core.mounts.resolve('secret/x')!.uuid;
  const rawTermOf = async (path: string): Promise<number> => (await kw.service.storage.get(`logical/${uuidOfSecret()}/${path}`))!.readUInt32BE(0);

  beforeAll(async () => {
    kw = await startInProcess('file', { rotationCheckMs: 50 }, { now });
    base = kw.service.url;
    ({ keys, root } = await initAndUnseal(base));
  });
  afterAll(() => kw.service.close());

  it('rotates three times: new writes use the new term, every older value still reads', async () => {
    expect(await term()).toBe(1);
    for (let t = 1; t <= 4; t++) {
      expect((await call(base, 'PUT', `secret/t${t}`, { token: root, body: { written: `under term ${t}` } })).status).toBe(204);
      expect(await rawTermOf(`t${t}`)).toBe(t);
      if (t < 4) expect((await call(base, 'POST', 'sys/rotate', { token: root })).status).toBe(204);
    }
    const status = (await call(base, 'GET', 'sys/key-status', { token: root })).body;
    expect(status.term).toBe(4);
    expect(status.data.term).toBe(4);
    expect(status.install_time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    expect(status.encryptions).toBeGreaterThanOrEqual(1);
    for (let t = 1; t <= 4; t++) expect((await call(base, 'GET', `secret/t${t}`, { token: root })).body.data.written).toBe(`under term ${t}`);

    await call(base, 'PUT', 'sys/seal', { token: root });
    for (const k of keys.slice(1, 3)) await call(base, 'PUT', 'sys/unseal', { body: { key: k } });
    expect(await term()).toBe(4);
    for (let t = 1; t <= 4; t++) expect((await call(base, 'GET', `secret/t${t}`, { token: root })).body.data.written).toBe(`under term ${t}`);
    const terms = (await call(base, 'GET', 'sys/rotate/terms', { token: root })).body.terms;
    expect(terms.map((x: { term: number; active: boolean }) => [x.term, x.active])).toEqual([
      [1, false],
      [2, false],
      [3, false],
      [4, true],
    ]);
  });

  it('keeps serving reads and writes while rotating', async () => {
    let stop = false;
    let failures = 0;
    const written: string[] = [];
    const client = (async () => {
      for (let i = 0; !stop; i++) {
        const put = await call(base, 'PUT', `secret/live/${i}`, { token: root, body: { i: String(i) } });
        if (put.status === 204) written.push(`secret/live/${i}`);
        else failures++;
        const get = await call(base, 'GET', `secret/live/${i}`, { token: root });
        if (get.status !== 200 || get.body.data.i !== String(i)) failures++;
      }
    })();
    for (let r = 0; r < 5; r++) {
      await new Promise((resolve) => setTimeout(resolve, 30));
      expect((await call(base, 'POST', 'sys/rotate', { token: root })).status).toBe(204);
    }
    stop = true;
    await client;
    expect(failures).toBe(0);
    expect(written.length).toBeGreaterThan(5);
    for (const path of written) expect((await call(base, 'GET', path, { token: root })).status).toBe(200);
    expect(await term()).toBe(9);
  });

  it('refuses bad rotation settings and unauthorized rotation, changing nothing', async () => {
    const before = (await call(base, 'GET', 'sys/rotate/config', { token: root })).body.data;
    expect(before).toEqual({ max_operations: 3_865_470_566, interval: '0s', enabled: true });
    const t = await term();
    expectError(await call(base, 'POST', 'sys/rotate/config', { token: root, body: { max_operations: 'lots' } }), 400, /max_operations must be a whole number/);
    expectError(await call(base, 'POST', 'sys/rotate/config', { token: root, body: { max_operations: 5 } }), 400, /between 1000000 and 3865470566/);
    expectError(await call(base, 'POST', 'sys/rotate/config', { token: root, body: { max_operations: 4_000_000_000 } }), 400, /between 1000000 and 3865470566/);
    expectError(await call(base, 'POST', 'sys/rotate/config', { token: root, body: { interval: '1h' } }), 400, /at least 24h/);
    expectError(await call(base, 'POST', 'sys/rotate/config', { token: root, body: { interval: 'soon' } }), 400, /duration/);
    expectError(await call(base, 'POST', 'sys/rotate/config', { token: root, body: { enabled: 'maybe' } }), 400, /true or false/);
    expectError(await call(base, 'POST', 'sys/rotate'), 403, /permission denied/);
    expectError(await call(base, 'POST', 'sys/rotate', { token: 'hvs.not-a-token' }), 403, /permission denied/);
    expectError(await call(base, 'POST', 'sys/rotate/prune', { token: root }), 400, /cannot prune: term 1 protects \d+ values?.*rewrap/);
    expect((await call(base, 'GET', 'sys/rotate/config', { token: root })).body.data).toEqual(before);
    expect(await term()).toBe(t);
  });

  it('rotates automatically after an interval (injected clock), counted in a metric', async () => {
    const t = await term();
    expect((await call(base, 'POST', 'sys/rotate/config', { token: root, body: { interval: '24h' } })).status).toBe(204);
    await kw.service.core.checkRotation();
    expect(await term()).toBe(t);
    // The active term was installed by sys/rotate at real time, after the clock started: count from now.
    clock = Date.now() + 24 * 3600 * 1000 + 1000;
    await waitFor(async () => (await term()) === t + 1);
    const metrics = await fetch(`${base}/v1/sys/metrics`, { headers: { 'X-Vault-Token': root } }).then((r) => r.text());
    expect(metrics).toMatch(/keyward_barrier_auto_rotations_total\{reason="interval"\} 1/);
  });

  it('rotates automatically past max_operations', async () => {
    const t = await term();
    expect((await call(base, 'POST', 'sys/rotate/config', { token: root, body: { max_operations: 1_000_000, interval: 0 } })).status).toBe(204);
    // A million encryptions under the active term, straight through the barrier (HTTP would only add time).
    expect((await call(base, 'PUT', 'secret/before-limit', { token: root, body: { v: 'w' } })).status).toBe(204);
    const plaintext = Buffer.from('{"v":"x"}');
    for (let i = 0; i < 1_000_000; i++) kw.service.core.barrier.encrypt('logical/bulk/x', plaintext);
    // Past the limit, writes still succeed; the check (every 50 ms here) may rotate before or after this one.
    expect((await call(base, 'PUT', 'secret/past-limit', { token: root, body: { v: 'x' } })).status).toBe(204);
    await waitFor(async () => (await term()) === t + 1);
    expect(await rawTermOf('before-limit')).toBe(t);
    expect((await call(base, 'GET', 'secret/before-limit', { token: root })).body.data).toEqual({ v: 'w' });
    expect((await call(base, 'GET', 'secret/past-limit', { token: root })).body.data).toEqual({ v: 'x' });
    await call(base, 'PUT', 'secret/after-limit', { token: root, body: { v: 'y' } });
    expect(await rawTermOf('after-limit')).toBe(t + 1);
    const metrics = await fetch(`${base}/v1/sys/metrics`, { headers: { 'X-Vault-Token': root } }).then((r) => r.text());
    expect(metrics).toMatch(/keyward_barrier_auto_rotations_total\{reason="max_operations"\} 1/);
  }, 180_000);

  it('enabled=false stops both triggers, and the setting survives a restart', async () => {
    expect((await call(base, 'POST', 'sys/rotate/config', { token: root, body: { interval: '24h' } })).status).toBe(204);
    expect((await call(base, 'POST', 'sys/rotate/config', { token: root, body: { enabled: false } })).status).toBe(204);
    expect((await call(base, 'GET', 'sys/rotate/config', { token: root })).body.data).toEqual({ max_operations: 1_000_000, interval: '24h0m0s', enabled: false });
    const t = await term();
    clock += 72 * 3600 * 1000;
    const plaintext = Buffer.from('x');
    for (let i = 0; i < 1_000_001; i++) kw.service.core.barrier.encrypt('logical/bulk/x', plaintext);
    await kw.service.core.checkRotation();
    await new Promise((r) => setTimeout(r, 200));
    expect(await term()).toBe(t);

    await kw.service.close();
    kw.service = await restartInProcess(kw, { now });
    base = kw.service.url;
    for (const k of keys.slice(0, 2)) await call(base, 'PUT', 'sys/unseal', { body: { key: k } });
    expect((await call(base, 'GET', 'sys/rotate/config', { token: root })).body.data.enabled).toBe(false);
    await kw.service.core.checkRotation();
    expect(await term()).toBe(t);
  }, 180_000);
});

async function waitFor(cond: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}
