import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, runCli, type ServerProcess, startServerProcess } from './support/process.js';
import { call } from './support/service.js';

function bash(script: string, cwd: string, env: Record<string, string>): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-euo', 'pipefail', '-c', script], {
      cwd,
      env: { ...process.env, ...env, PATH: `${join(ROOT, 'scripts')}:${process.env.PATH}` },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code: code ?? -1, out }));
  });
}

describe('operator rekey: the seed tutorial, as a shell script', () => {
  let server: ServerProcess | undefined;
  afterAll(async () => {
    await server?.kill();
  });

  it('runs the tutorial commands with vault replaced by keyward', async () => {
    const fresh = await startServerProcess();
    server = fresh.server;
    const dir = fresh.dir;
    const env = { KEYWARD_ADDR: server.url, VAULT_ADDR: '', KEYWARD_TOKEN: '', VAULT_TOKEN: '' };
    const init = await call(server.url, 'PUT', 'sys/init', { body: { secret_shares: 5, secret_threshold: 3 } });
    const keys: string[] = init.body.keys_base64;
    for (const k of keys.slice(0, 3)) await call(server.url, 'PUT', 'sys/unseal', { body: { key: k } });
    await call(server.url, 'PUT', 'secret/app', { token: init.body.root_token, body: { v: 'x' } });
    await writeFile(join(dir, 'keys.txt'), keys.join('\n'));

    const script = `
keyward operator rekey -init -key-shares=3 -key-threshold=2 -format=json | jq -r ".nonce" > nonce.txt
keyward operator rekey -status
KEY1=$(sed -n 1p keys.txt); KEY2=$(sed -n 2p keys.txt); KEY3=$(sed -n 3p keys.txt)
keyward operator rekey -nonce=$(cat nonce.txt) "$KEY1"
keyward operator rekey -nonce=$(cat nonce.txt) "$KEY2"
keyward operator rekey -nonce=$(cat nonce.txt) "$KEY3"
`;
    const run = await bash(script, dir, env);
    expect(run.code, run.out).toBe(0);
    expect(run.out).toMatch(/Nonce\s+[0-9a-f-]{36}/);
    expect(run.out).toMatch(/Started\s+true/);
    expect(run.out).toMatch(/Rekey Progress\s+0\/3/);
    expect(run.out).toMatch(/New Shares\s+3/);
    expect(run.out).toMatch(/New Threshold\s+2/);
    expect(run.out).toMatch(/Rekey Progress\s+2\/3/);
    const newKeys = [...run.out.matchAll(/^Key (\d): (\S+)$/gm)].map((m) => m[2]!);
    expect(newKeys).toHaveLength(3);
    expect(run.out).toMatch(/Operation nonce: [0-9a-f-]{36}/);
    expect(run.out).toMatch(/key threshold of 2[\s\S]*at least 2 of these keys/);
    expect((await call(server.url, 'GET', 'sys/seal-status')).body).toMatchObject({ t: 2, n: 3, sealed: false });

    // The new keys unseal through the CLI; an old one no longer does.
    await call(server.url, 'PUT', 'sys/seal', { token: init.body.root_token });
    await runCli(['operator', 'unseal', keys[0]!], env);
    expect((await runCli(['operator', 'unseal', keys[1]!], env)).code).toBe(1);
    await runCli(['operator', 'unseal', newKeys[0]!], env);
    expect((await runCli(['operator', 'unseal', newKeys[2]!], env)).stdout).toMatch(/Sealed\s+false/);

    // Misuse through the CLI: wrong nonce and usage errors.
    const started = await runCli(['operator', 'rekey', '-init', '-key-shares=2', '-key-threshold=2'], env);
    expect(started.code).toBe(0);
    const wrong = await runCli(['operator', 'rekey', '-nonce=not-the-nonce', newKeys[0]!], env);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/incorrect nonce/);
    expect((await runCli(['operator', 'rekey', '-init', '-cancel'], env)).code).toBe(2);
    expect((await runCli(['operator', 'rekey', '-cancel'], env)).stdout).toMatch(/Canceled/);
    expect((await runCli(['operator', 'rekey', '-cancel'], env)).code).toBe(0);
  });
});
