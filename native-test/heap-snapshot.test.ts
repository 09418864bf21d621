import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { combine } from '../src/crypto/shamir.js';
import { type ServerProcess, startServerProcess } from './support/process.js';
import { call } from './support/service.js';

async function waitForSnapshot(dir: string): Promise<string> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const name = (await readdir(dir)).find((f) => f.endsWith('.heapsnapshot'));
    if (name) {
      const text = await readFile(join(dir, name), 'utf8');
      try {
        JSON.parse(text);
        return text;
      } catch {
        // still being written
      }
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('no heap snapshot was written');
}

describe('no copy of the root key in the server heap after unseal', () => {
  let server: ServerProcess | undefined;
  afterAll(async () => {
    await server?.kill();
  });

  it('searches a heap snapshot of the unsealed server for the root key rebuilt from the shares', async () => {
    // The snapshot is written to the server's working directory.
    const fresh = await startServerProcess({ env: { NODE_OPTIONS: '--heapsnapshot-signal=SIGUSR2' }, runInDir: true });
    server = fresh.server;
    const dir = fresh.dir;
    const base = server.url;

    const init = await call(base, 'PUT', 'sys/init', { body: { secret_shares: 5, secret_threshold: 3 } });
    const keys: string[] = init.body.keys;
    for (const key of keys.slice(0, 3)) await call(base, 'PUT', 'sys/unseal', { body: { key } });
    const status = (await call(base, 'GET', 'sys/seal-status')).body;
    expect(status.sealed).toBe(false);
    await call(base, 'PUT', 'secret/a', { token: init.body.root_token, body: { v: 'x' } });
    expect((await call(base, 'GET', 'secret/a', { token: init.body.root_token })).status).toBe(200);

    server.child.kill('SIGUSR2');
    const snapshot = await waitForSnapshot(dir);

    const rootKey = combine(keys.slice(1, 4).map((k) => Buffer.from(k, 'hex')));
    expect(rootKey.length).toBe(32);
    // The search works: a string the server does hold is found.
    expect(snapshot).toContain(status.cluster_id);
    expect(snapshot).not.toContain(rootKey.toString('hex'));
    expect(snapshot).not.toContain(rootKey.toString('base64'));
    expect(snapshot).not.toContain(rootKey.toString('base64url'));
    expect(Buffer.from(snapshot, 'utf8').includes(rootKey)).toBe(false);
  });
});
