import { afterAll, describe, expect, it } from 'vitest';
import { type ServerProcess, spawnServer, startServerProcess } from './support/process.js';
import { call } from './support/service.js';

describe('full lifecycle over HTTP against a server process', () => {
  let server: ServerProcess | undefined;
  afterAll(async () => {
    await server?.kill();
  });

  it('init 5/3 → unseal → kv → seal → 503 → unseal with other shares → restart → unseal → data intact', async () => {
    const fresh = await startServerProcess();
    server = fresh.server;
    const { token, port, config } = fresh;
    const base = server.url;

    expect((await call(base, 'GET', 'sys/init')).body).toEqual({ initialized: false });
    const init = await call(base, 'PUT', 'sys/init', { body: { secret_shares: 5, secret_threshold: 3 } });
    expect(init.status).toBe(200);
    const { keys, keys_base64: keysB64, root_token: root } = init.body as { keys: string[]; keys_base64: string[]; root_token: string };
    expect(keys).toHaveLength(5);
    expect(keysB64).toHaveLength(5);
    expect(new Set(keys).size).toBe(5);
    expect(Buffer.from(keysB64[0]!, 'base64').toString('hex')).toBe(keys[0]);
    expect(root).toMatch(/^hvs\./);

    let status = (await call(base, 'GET', 'sys/seal-status')).body;
    expect(status).toMatchObject({ type: 'shamir', initialized: true, sealed: true, t: 3, n: 5, progress: 0 });
    expect((await call(base, 'GET', 'sys/health')).status).toBe(503);

    expect((await call(base, 'PUT', 'sys/unseal', { body: { key: keys[0] } })).body).toMatchObject({ sealed: true, progress: 1 });
    // A repeated share does not count twice.
    expect((await call(base, 'PUT', 'sys/unseal', { body: { key: keys[0] } })).body).toMatchObject({ sealed: true, progress: 1 });
    expect((await call(base, 'POST', 'sys/unseal', { body: { key: keysB64[1] } })).body).toMatchObject({ sealed: true, progress: 2 });
    status = (await call(base, 'PUT', 'sys/unseal', { body: { key: keys[2] } })).body;
    expect(status).toMatchObject({ sealed: false, progress: 0, t: 3, n: 5 });
    expect(status.cluster_id).toMatch(/^[0-9a-f-]{36}$/);
    expect((await call(base, 'GET', 'sys/health')).status).toBe(200);

    expect((await call(base, 'PUT', 'secret/app/db', { token: root, body: { password: 'hunter2', user: 'app' } })).status).toBe(204);
    const read = await call(base, 'GET', 'secret/app/db', { token: root });
    expect(read.status).toBe(200);
    expect(read.body.data).toEqual({ password: 'hunter2', user: 'app' });
    expect((await call(base, 'GET', 'secret/app?list=true', { token: root })).body.data).toEqual({ keys: ['db'] });

    expect((await call(base, 'PUT', 'sys/seal', { token: root })).status).toBe(204);
    const sealedRead = await call(base, 'GET', 'secret/app/db', { token: root });
    expect(sealedRead.status).toBe(503);
    expect(sealedRead.body.errors[0]).toMatch(/sealed/);

    for (const k of [keys[2], keys[3]]) expect((await call(base, 'PUT', 'sys/unseal', { body: { key: k } })).body.sealed).toBe(true);
    expect((await call(base, 'PUT', 'sys/unseal', { body: { key: keys[4] } })).body.sealed).toBe(false);
    expect((await call(base, 'GET', 'secret/app/db', { token: root })).body.data).toEqual({ password: 'hunter2', user: 'app' });

    expect(await server.stop()).toBe(0);
    server = await spawnServer(config, token, port);
    expect((await call(base, 'GET', 'sys/seal-status')).body).toMatchObject({ initialized: true, sealed: true, t: 3, n: 5 });
    expect((await call(base, 'GET', 'secret/app/db', { token: root })).status).toBe(503);
    for (const k of [keysB64[4], keys[1]]) await call(base, 'PUT', 'sys/unseal', { body: { key: k } });
    expect((await call(base, 'PUT', 'sys/unseal', { body: { key: keys[3] } })).body.sealed).toBe(false);
    expect((await call(base, 'GET', 'secret/app/db', { token: root })).body.data).toEqual({ password: 'hunter2', user: 'app' });
  });
});
