import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodeVault from 'node-vault';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './support/process.js';
import { type InProcess, startInProcess } from './support/service.js';

/** A throwaway CA and a server certificate for 127.0.0.1/localhost, made with openssl. */
async function certificates(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=keyward-test-ca');
  run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  await writeFile(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf');
  return { ca: join(dir, 'ca.crt'), cert: join(dir, 'server.crt'), key: join(dir, 'server.key') };
}

describe('TLS on the listener', () => {
  let kw: InProcess;
  let certs: { ca: string; cert: string; key: string };

  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kw-tls-'));
    certs = await certificates(dir);
    kw = await startInProcess('file', {
      listener: { address: '127.0.0.1:0', tlsDisable: false, tlsCertFile: certs.cert, tlsKeyFile: certs.key, tlsMinVersion: 'TLSv1.3' },
    });
  });
  afterAll(() => kw.service.close());

  it('serves the CLI and node-vault over TLS with the CA, and nothing else', async () => {
    const url = kw.service.url;
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const env = { KEYWARD_ADDR: url, KEYWARD_TOKEN: '', VAULT_ADDR: '', VAULT_TOKEN: '', KEYWARD_CACERT: '' };

    const noCa = await runCli(['status'], env);
    expect(noCa.code).toBe(1);
    expect(noCa.stderr).toMatch(/cannot reach .*(self-signed|unable to verify|certificate)/i);
    const withFlag = await runCli(['status', `-ca-cert=${certs.ca}`], env);
    expect(withFlag.code).toBe(2);
    expect(withFlag.stdout).toMatch(/Initialized\s+false/);
    expect((await runCli(['status'], { ...env, KEYWARD_CACERT: certs.ca })).code).toBe(2);
    expect((await runCli(['status', '-tls-skip-verify'], env)).code).toBe(2);

    const vault = nodeVault({ endpoint: url, noCustomHTTPVerbs: true, requestOptions: { ca: await readFile(certs.ca, 'utf8') } });
    const init = await vault.init({ secret_shares: 1, secret_threshold: 1 });
    expect((await vault.unseal({ key: init.keys[0] })).sealed).toBe(false);
    vault.token = init.root_token;
    await vault.write('secret/tls', { v: 'over tls' });
    expect((await vault.read('secret/tls')).data).toEqual({ v: 'over tls' });

    // Plain HTTP to the TLS port gets no answer.
    await expect(fetch(url.replace('https:', 'http:') + '/v1/sys/health')).rejects.toThrow();
    // tls_min_version = tls13: a TLS 1.2 client cannot connect.
    const port = Number(new URL(url).port);
    const outcome = await new Promise<string>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port, maxVersion: 'TLSv1.2', ca: [], rejectUnauthorized: false }, () => {
        socket.end();
        resolve('connected');
      });
      socket.on('error', (err) => resolve(err.message));
    });
    expect(outcome).toMatch(/version|alert/i);
  });
});
