import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RekeyResult } from '../src/core/rekey.js';
import { unsealsWith } from './support/crash-walk.js';
import { runCli } from './support/process.js';
import { call, initAndUnseal, type InProcess, restartInProcess, startInProcess } from './support/service.js';

/**
 * A rekey whose reply never left (the update is made on the core directly, so no reply goes out
 * and nothing switches): what operators see, and how either set of shares ends it.
 */
describe('a rekey awaiting completion', () => {
  let kw: InProcess;
  let base: string;
  let keys: string[];
  let root: string;

  /** Runs a rekey to 3 shares, threshold 2, up to the new shares, as if its reply had been lost. */
  async function rekeyWithoutReply(): Promise<RekeyResult> {
    const { nonce } = (await call(base, 'PUT', 'sys/rekey/init', { body: { secret_shares: 3, secret_threshold: 2 } })).body;
    const core = kw.service.core;
    await core.locked(() => core.rekey.update(keys[0], nonce));
    return (await core.locked(() => core.rekey.update(keys[1], nonce))) as RekeyResult;
  }

  const sealed = async () => expect((await call(base, 'PUT', 'sys/seal', { token: root })).status).toBe(204);

  beforeAll(async () => {
    kw = await startInProcess('file');
    base = kw.service.url;
    ({ keys, root } = await initAndUnseal(base, 2, 2));
    await call(base, 'PUT', 'secret/kept', { token: root, body: { v: 1 } });
  });
  afterAll(() => kw.service.close());

  it('is reported by seal-status, rekey status and the CLI, with its threshold, and blocks a new rekey', async () => {
    const done = await rekeyWithoutReply();
    const status = (await call(base, 'GET', 'sys/seal-status')).body;
    expect(status).toMatchObject({ t: 2, n: 2, rekey_pending: { nonce: done.nonce, t: 2, n: 3 } });
    expect((await call(base, 'GET', 'sys/rekey/init')).body).toMatchObject({ nonce: done.nonce, started: true, t: 2, n: 3, completion_pending: true });
    const cli = await runCli(['status'], { KEYWARD_ADDR: base });
    expect(cli.stdout).toContain(`rekey ${done.nonce} awaits completion: unseal with 2 of its 3 new shares to finish it`);
    expect((await runCli(['operator', 'rekey', '-status'], { KEYWARD_ADDR: base })).stdout).toMatch(/Completion Pending\s+the new shares were handed out; unseal with 2 of them/);
    const again = await call(base, 'PUT', 'sys/rekey/init', { body: { secret_shares: 3, secret_threshold: 2 } });
    expect(again.status).toBe(400);
    expect(again.body.errors[0]).toMatch(/awaits completion/);

    // The old shares still open it, and it stays pending across a restart.
    await sealed();
    expect(await unsealsWith(base, keys)).toBe(true);
    await kw.service.close();
    kw.service = await restartInProcess(kw);
    base = kw.service.url;
    expect((await call(base, 'GET', 'sys/seal-status')).body.rekey_pending).toMatchObject({ nonce: done.nonce });

    // The new shares open it too, at their own threshold, and finish the switch.
    expect(await unsealsWith(base, done.keys.slice(1, 3))).toBe(true);
    const after = (await call(base, 'GET', 'sys/seal-status')).body;
    expect(after).toMatchObject({ sealed: false, t: 2, n: 3 });
    expect(after.rekey_pending).toBeUndefined();
    expect((await call(base, 'GET', 'secret/kept', { token: root })).body.data).toEqual({ v: 1 });
    await sealed();
    expect(await unsealsWith(base, keys)).toBe(false);
    expect(await unsealsWith(base, done.keys.slice(0, 2))).toBe(true);
    keys = done.keys;
  });

  it('is discarded only with a sudo token; the old shares stay the only ones', async () => {
    const done = await rekeyWithoutReply();
    const anonymous = await call(base, 'DELETE', 'sys/rekey/init');
    expect(anonymous.status).toBe(403);
    expect((await call(base, 'GET', 'sys/seal-status')).body.rekey_pending).toMatchObject({ nonce: done.nonce });
    expect((await call(base, 'DELETE', 'sys/rekey/init', { token: root })).status).toBe(204);
    expect((await call(base, 'GET', 'sys/seal-status')).body.rekey_pending).toBeUndefined();
    await sealed();
    expect(await unsealsWith(base, done.keys.slice(0, 2))).toBe(false);
    expect(await unsealsWith(base, keys.slice(0, 2))).toBe(true);
  });
});
