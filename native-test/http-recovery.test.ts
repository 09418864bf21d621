import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, type InProcess, startInProcess } from './support/service.js';
import { sideChannel } from './support/softhsm.js';

describe('token recovery while unsealed, with no new unseal', () => {
  let kw: InProcess;
  let base: string;
  let root: string;

  beforeAll(async () => {
    kw = await startInProcess('file');
    base = kw.service.url;
    const init = await call(base, 'PUT', 'sys/init', { body: { secret_shares: 3, secret_threshold: 2 } });
    root = init.body.root_token;
    for (const key of init.body.keys.slice(0, 2)) await call(base, 'PUT', 'sys/unseal', { body: { key } });
    expect((await call(base, 'PUT', 'secret/app', { token: root, body: { v: 'before' } })).status).toBe(204);
  });
  afterAll(() => kw.service.close());

  it('survives its sessions being closed behind its back', async () => {
    const { p11, slot } = sideChannel(kw.token);
    p11.C_CloseAllSessions(slot);
    const read = await call(base, 'GET', 'secret/app', { token: root });
    expect(read.status).toBe(200);
    expect(read.body.data).toEqual({ v: 'before' });
    expect((await call(base, 'GET', 'sys/seal-status')).body.sealed).toBe(false);
  });

  it('survives the module being finalized behind its back', async () => {
    const { p11 } = sideChannel(kw.token);
    p11.C_Finalize();
    expect((await call(base, 'PUT', 'secret/app', { token: root, body: { v: 'after' } })).status).toBe(204);
    expect((await call(base, 'GET', 'secret/app', { token: root })).body.data).toEqual({ v: 'after' });
    expect((await call(base, 'GET', 'sys/seal-status')).body.sealed).toBe(false);
  });
});
