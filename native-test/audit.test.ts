import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeWithOtp } from '../src/core/generate-root.js';
import { runCli } from './support/process.js';
import { call, initAndUnseal, type InProcess, startInProcess } from './support/service.js';

describe('audit log', () => {
  let kw: InProcess;
  let base: string;
  let dir: string;
  let rootToken: string;

  beforeAll(async () => {
    kw = await startInProcess('file');
    base = kw.service.url;
    dir = await mkdtemp(join(tmpdir(), 'kw-audit-'));
  });
  afterAll(() => kw.service.close());

  it('records every request and response of a full lifecycle with no secret in plaintext', async () => {
    const { keys, root } = await initAndUnseal(base, 3, 2);
    const log = join(dir, 'audit.log');
    const env = { KEYWARD_ADDR: base, KEYWARD_TOKEN: root, VAULT_ADDR: '', VAULT_TOKEN: '', HOME: dir };
    expect((await runCli(['audit', 'enable', 'file', `file_path=${log}`], env)).stdout).toMatch(/Enabled the file audit device at: file\//);
    expect((await runCli(['audit', 'list'], env)).stdout).toContain(log);

    const secret = 'correct-horse-battery-staple-4711';
    await call(base, 'PUT', 'secret/db', { token: root, body: { password: secret } });
    expect((await call(base, 'GET', 'secret/db', { token: root })).body.data.password).toBe(secret);
    const child = (await call(base, 'POST', 'auth/token/create', { token: root, body: { policies: ['default'] } })).body.auth.client_token;
    await call(base, 'GET', 'auth/token/lookup-self', { token: child });
    expect((await call(base, 'POST', 'sys/rotate', { token: root })).status).toBe(204);
    const rekey = await call(base, 'PUT', 'sys/rekey/init', { body: { secret_shares: 3, secret_threshold: 2 } });
    let done;
    for (const key of keys.slice(0, 2)) done = await call(base, 'PUT', 'sys/rekey/update', { body: { key, nonce: rekey.body.nonce } });
    const newKeys: string[] = done!.body.keys;
    const gen = await call(base, 'PUT', 'sys/generate-root/attempt', {});
    let last;
    for (const key of newKeys.slice(0, 2)) last = await call(base, 'PUT', 'sys/generate-root/update', { body: { key, nonce: gen.body.nonce } });
    const newRoot = decodeWithOtp(last!.body.encoded_token, gen.body.otp);
    rootToken = newRoot;
    await call(base, 'PUT', 'sys/seal', { token: root });
    for (const key of newKeys.slice(1, 3)) await call(base, 'PUT', 'sys/unseal', { body: { key } });
    await call(base, 'GET', 'secret/db', { token: newRoot });
    await call(base, 'GET', 'secret/db', { token: 'hvs.not-a-real-token' });
    // The console's files are not API requests: loading them leaves no audit line.
    for (const page of ['/', '/ui/', '/ui/status']) await (await fetch(`${base}${page}`)).arrayBuffer();

    const text = await readFile(log, 'utf8');
    const lines = text.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.length).toBeGreaterThan(20);
    const denied = lines.find((l) => l.type === 'response' && l.response.status === 403);
    expect(denied.request).toMatchObject({ path: 'secret/db', operation: 'read', remote_address: '127.0.0.1' });
    expect(lines.filter((l) => /(^|\/)ui(\/|$)|^\/$/.test(l.request.path))).toEqual([]);
    const write = lines.find((l) => l.type === 'request' && l.request.path === 'secret/db' && l.request.operation === 'update');
    expect(write.auth.policies).toEqual(['root']);
    expect(write.request.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(write.time).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(write.request.data.password).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);

    const forbidden = [secret, root, child, newRoot, kw.token.config.pin, ...keys, ...newKeys];
    for (const k of [...keys, ...newKeys]) forbidden.push(Buffer.from(k, 'hex').toString('base64'));
    for (const value of forbidden) expect(text.includes(value), `audit log contains ${value.slice(0, 8)}…`).toBe(false);

    const hash = (await call(base, 'POST', 'sys/audit-hash/file', { token: newRoot, body: { input: secret } })).body.hash;
    expect(hash).toBe(write.request.data.password);
    expect(text.split('\n').filter((l) => l.includes(hash)).length).toBeGreaterThanOrEqual(2);
  });

  it('refuses requests when every audit device fails to write', async () => {
    const refusedOpen = await call(base, 'PUT', 'sys/audit/nowhere', { token: rootToken, body: { type: 'file', options: { file_path: '/nonexistent-dir/audit.log' } } });
    expect(refusedOpen.status).toBe(400);
    expect(refusedOpen.body.errors[0]).toMatch(/cannot open audit file/);
    // /dev/full opens but every write fails (ENOSPC). With one working device left, requests go on.
    expect((await call(base, 'PUT', 'sys/audit/full', { token: rootToken, body: { type: 'file', options: { file_path: '/dev/full' } } })).status).toBe(204);
    expect((await call(base, 'GET', 'secret/db', { token: rootToken })).status).toBe(200);
    // Disabling the working device takes effect, but its own reply can then be audited nowhere: 500.
    const disabled = await call(base, 'DELETE', 'sys/audit/file', { token: rootToken });
    expect(disabled.status).toBe(500);
    expect(kw.service.core.audit.list().map((d) => d.path)).toEqual(['full/']);
    // Now every device fails: requests are refused rather than served unaudited, and nothing is written.
    const refused = await call(base, 'GET', 'secret/db', { token: rootToken });
    expect(refused.status).toBe(500);
    expect(refused.body.errors[0]).toMatch(/audit log write failed on every enabled device.*ENOSPC/);
    expect((await call(base, 'PUT', 'secret/unaudited', { token: rootToken, body: { v: 1 } })).status).toBe(500);
    const uuid = kw.service.core.mounts.resolve('secret/x')!.uuid;
    expect(await kw.service.storage.list(`logical/${uuid}/`)).not.toContain('unaudited');
  });
});
