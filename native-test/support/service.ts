import { request } from 'node:http';
import { expect } from 'vitest';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { ServerConfig } from '../../src/config/config.js';
import { type ServiceOptions, startService, type Service } from '../../src/service.js';
import { freshProcessToken, type TestToken } from './softhsm.js';
import { call, type Reply } from './http.js';

export { call, type Reply };

export interface InProcess {
  service: Service;
  token: TestToken;
  dataDir: string;
  config: ServerConfig;
}

/** A keyward in this process on a fresh SoftHSM2 token, file storage and a free loopback port. */
export async function startInProcess(
  storage: 'file' | 'inmem' = 'file',
  extra: Partial<ServerConfig> = {},
  opts: ServiceOptions = {},
): Promise<InProcess> {
  const token = await freshProcessToken();
  const dataDir = await mkdtemp(join(tmpdir(), 'keyward-data-'));
  const config: ServerConfig = {
    storage: storage === 'file' ? { type: 'file', path: dataDir } : { type: 'inmem' },
    listener: { address: '127.0.0.1:0', tlsDisable: true },
    logLevel: 'silent',
    ...extra,
    // A seal given in `extra` only changes fields (the module's path, say) of the fresh token's.
    seal: { ...token.config, generateKey: true, ...extra.seal },
  };
  const service = await startService(config, pino({ level: 'silent' }), opts);
  return { service, token, dataDir, config };
}

/** Starts another service on the same token and storage (after the previous one was closed). */
export function restartInProcess(kw: InProcess, opts: ServiceOptions = {}): Promise<Service> {
  return startService(kw.config, pino({ level: 'silent' }), opts);
}

/** init with the given shares, unseal with the first `threshold`, return the shares and root token. */
export async function initAndUnseal(base: string, shares = 3, threshold = 2): Promise<{ keys: string[]; root: string }> {
  const init = await call(base, 'PUT', 'sys/init', { body: { secret_shares: shares, secret_threshold: threshold } });
  for (const key of init.body.keys.slice(0, threshold)) await call(base, 'PUT', 'sys/unseal', { body: { key } });
  return { keys: init.body.keys, root: init.body.root_token };
}


/** Asserts a Vault-style error reply: the status, and a message among `errors` matching `pattern`. */
export function expectError(reply: Reply, status: number, pattern: RegExp): void {
  expect(reply.status).toBe(status);
  expect(reply.body.errors.join(' ')).toMatch(pattern);
}

/** A request whose path is sent exactly as given (fetch would normalize dot segments away). */
export function rawPathRequest(base: string, method: string, path: string, token: string, body: string, contentType = 'application/json'): Promise<Reply> {
  const url = new URL(base);
  const headers: Record<string, string> = { 'Content-Type': contentType };
  if (token) headers['X-Vault-Token'] = token;
  return new Promise((resolve, reject) => {
    // A fresh connection each time: a server that closes after an error must not fail the next request.
    const req = request({ host: url.hostname, port: url.port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => {
        let parsed: unknown = text;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          // Not JSON (Prometheus text, say): keep the text.
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}
