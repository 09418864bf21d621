import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, LISTENER_LIMITS } from '../src/config/config.js';
import { loadConfigFile, validateConfig } from '../src/config/load.js';

async function file(name: string, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kw-config-'));
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

const HCL = `
storage "file" {
  path = "/var/lib/keyward"
}

seal "pkcs11" {
  lib          = "/usr/lib/softhsm/libsofthsm2.so"
  token_label  = "prod"
  pin          = "1234"
  key_label    = "kw-seal"
  generate_key = true
}

listener "tcp" {
  address     = "0.0.0.0:8200"
  tls_disable = 1
}

api_addr  = "http://10.0.0.1:8200"
log_level = "warn"
`;

describe('config', () => {
  it('reads Vault-style HCL', async () => {
    const c = await loadConfigFile(await file('k.hcl', HCL), {});
    expect(c).toEqual({
      storage: { type: 'file', path: '/var/lib/keyward' },
      seal: { lib: '/usr/lib/softhsm/libsofthsm2.so', tokenLabel: 'prod', slot: undefined, pin: '1234', keyLabel: 'kw-seal', generateKey: true },
      listener: { address: '0.0.0.0:8200', tlsDisable: true, tlsCertFile: undefined, tlsKeyFile: undefined, tlsMinVersion: undefined, limits: LISTENER_LIMITS },
      apiAddr: 'http://10.0.0.1:8200',
      clusterAddr: undefined,
      nodeId: undefined,
      standbyRequests: 'forward',
      logLevel: 'warn',
      tokenTtls: { defaultTtl: 768 * 3600, maxTtl: 768 * 3600 },
    });
  });

  it('reads JSON with blocks as plain objects, and takes the PIN from the environment', async () => {
    const json = JSON.stringify({
      storage: { file: { path: '/d' } },
      seal: { pkcs11: { slot: 7 } },
      listener: { tcp: { address: '127.0.0.1:9000', tls_disable: true } },
    });
    const c = await loadConfigFile(await file('k.json', json), { KEYWARD_HSM_PIN: 'from-env' });
    expect(c.seal).toMatchObject({ slot: 7, pin: 'from-env', keyLabel: 'keyward-seal', generateKey: false, lib: '/usr/lib/softhsm/libsofthsm2.so' });
  });

  it('reads a postgresql storage block with its HA settings', async () => {
    const seal = { pkcs11: { token_label: 't', pin: 'p' } };
    const c = validateConfig({ storage: { postgresql: { connection_url: 'postgres://u@db/kw', table: 'kv', max_parallel: 4 } }, seal }, {});
    expect(c.storage).toEqual({ type: 'postgresql', connectionUrl: 'postgres://u@db/kw', table: 'kv', maxParallel: 4 });
    expect(validateConfig({ storage: { postgresql: {} }, seal }, { KEYWARD_PG_CONNECTION_URL: 'postgres://env/kw' }).storage.connectionUrl).toBe('postgres://env/kw');
    const ha = validateConfig({ storage: { postgresql: { ha_enabled: 'true', lock_ttl: '5s', upgrade_grace_period: '1m' } }, seal, node_id: 'n1' }, {});
    expect(ha.storage.ha).toEqual({ lockTtlMs: 5000, upgradeGraceMs: 60_000, upgradePollMs: 10_000 });
    expect(ha.nodeId).toBe('n1');
    expect(ha.standbyRequests).toBe('forward');
    expect(validateConfig({ storage: { postgresql: { ha_enabled: true } }, seal }, {}).storage.ha).toEqual({ lockTtlMs: 15_000, upgradeGraceMs: 120_000, upgradePollMs: 10_000 });
    expect(() => validateConfig({ storage: { postgresql: { lock_ttl: '5s' } }, seal }, {})).toThrow(/storage\.postgresql\.ha_enabled: lock_ttl .* only apply with ha_enabled = true/);
    expect(() => validateConfig({ storage: { postgresql: { ha_enabled: true, lock_ttl: '200ms' } }, seal }, {})).toThrow(/lock_ttl: must be at least 1s/);
    expect(() => validateConfig({ storage: { postgresql: {} }, seal, standby_requests: 'drop' }, {})).toThrow(/standby_requests: must be "forward" or "redirect"/);
    expect(() => validateConfig({ storage: { postgresql: { table: 'x; drop' } }, seal }, {})).toThrow(/storage\.postgresql\.table/);
  });

  it('takes max_parallel from the seal block, else KEYWARD_HSM_MAX_PARALLEL, else VAULT_HSM_MAX_PARALLEL; unset leaves it to the token', () => {
    const doc = (seal: Record<string, unknown>) => ({ storage: { file: { path: '/d' } }, seal: { pkcs11: { token_label: 't', pin: 'p', ...seal } } });
    expect(validateConfig(doc({}), {}).seal.maxParallel).toBeUndefined();
    expect(validateConfig(doc({ max_parallel: 32 }), { KEYWARD_HSM_MAX_PARALLEL: '8' }).seal.maxParallel).toBe(32);
    expect(validateConfig(doc({}), { KEYWARD_HSM_MAX_PARALLEL: '8', VAULT_HSM_MAX_PARALLEL: '4' }).seal.maxParallel).toBe(8);
    expect(validateConfig(doc({}), { VAULT_HSM_MAX_PARALLEL: '4' }).seal.maxParallel).toBe(4);
    expect(validateConfig(doc({ max_parallel: 0 }), {}).seal.maxParallel).toBe(0);
  });

  it('accepts mechanism only when it names AES-GCM, the one keyward encrypts with', () => {
    const doc = (seal: Record<string, unknown>) => ({ storage: { file: { path: '/d' } }, seal: { pkcs11: { token_label: 't', pin: 'p', ...seal } } });
    for (const mechanism of ['0x1087', '0X1087', 4231, '4231', 'CKM_AES_GCM', 'ckm_aes_gcm']) expect(() => validateConfig(doc({ mechanism }), {}), String(mechanism)).not.toThrow();
    expect(() => validateConfig(doc({}), { VAULT_HSM_MECHANISM: '0x1087' })).not.toThrow();
    for (const mechanism of ['0x0009', 'CKM_RSA_PKCS_OAEP', 'gcm', 9]) {
      expect(() => validateConfig(doc({ mechanism }), {}), String(mechanism)).toThrow(/^config: seal\.pkcs11\.mechanism: ".*" is not supported: keyward encrypts with AES-GCM only/);
    }
    expect(() => validateConfig(doc({}), { KEYWARD_HSM_MECHANISM: '0x1082' })).toThrow('config: seal.pkcs11.mechanism: "0x1082" is not supported');
  });

  it('takes library_parameters from the seal block, else KEYWARD_HSM_LIBRARY_PARAMETERS', () => {
    const doc = (seal: Record<string, unknown>) => ({ storage: { file: { path: '/d' } }, seal: { pkcs11: { token_label: 't', pin: 'p', ...seal } } });
    const nss = "configdir='sql:/var/lib/nss' certPrefix='' keyPrefix='' secmod='secmod.db' flags=";
    expect(validateConfig(doc({}), {}).seal.libraryParameters).toBeUndefined();
    expect(validateConfig(doc({ library_parameters: nss }), { KEYWARD_HSM_LIBRARY_PARAMETERS: 'other' }).seal.libraryParameters).toBe(nss);
    expect(validateConfig(doc({}), { KEYWARD_HSM_LIBRARY_PARAMETERS: nss }).seal.libraryParameters).toBe(nss);
    expect(() => validateConfig(doc({ library_parameters: ['x'] }), {})).toThrow('config: seal.pkcs11.library_parameters: must be a string');
  });

  it("takes Vault's default_lease_ttl and max_lease_ttl for tokens, 768h each unless set", () => {
    const doc = (top: Record<string, unknown>) => ({ storage: { file: { path: '/d' } }, seal: { pkcs11: { token_label: 't', pin: 'p' } }, ...top });
    expect(validateConfig(doc({}), {}).tokenTtls).toEqual({ defaultTtl: 768 * 3600, maxTtl: 768 * 3600 });
    expect(validateConfig(doc({ default_lease_ttl: '1h', max_lease_ttl: '24h' }), {}).tokenTtls).toEqual({ defaultTtl: 3600, maxTtl: 86_400 });
    expect(validateConfig(doc({ max_lease_ttl: '2h' }), {}).tokenTtls).toEqual({ defaultTtl: 7200, maxTtl: 7200 });
    expect(() => validateConfig(doc({ default_lease_ttl: '48h', max_lease_ttl: '24h' }), {})).toThrow('config: default_lease_ttl: must not exceed max_lease_ttl (86400s)');
    expect(() => validateConfig(doc({ max_lease_ttl: 'forever' }), {})).toThrow('config: max_lease_ttl: must be a positive duration');
  });

  it("takes the listener's timeouts and connection cap (Vault's http_* settings), with defaults", () => {
    const doc = (tcp: Record<string, unknown>) => ({ storage: { file: { path: '/d' } }, seal: { pkcs11: { token_label: 't', pin: 'p' } }, listener: { tcp: { address: '127.0.0.1:1', tls_disable: true, ...tcp } } });
    expect(validateConfig(doc({}), {}).listener.limits).toEqual(LISTENER_LIMITS);
    expect(LISTENER_LIMITS).toEqual({ readHeaderTimeoutMs: 10_000, readTimeoutMs: 30_000, idleTimeoutMs: 300_000, maxConnections: 512 });
    expect(validateConfig(doc({ http_read_header_timeout: '2s', http_read_timeout: '1m', http_idle_timeout: '90s', max_connections: 64 }), {}).listener.limits).toEqual({
      readHeaderTimeoutMs: 2000,
      readTimeoutMs: 60_000,
      idleTimeoutMs: 90_000,
      maxConnections: 64,
    });
    expect(() => validateConfig(doc({ http_read_header_timeout: '1m', http_read_timeout: '30s' }), {})).toThrow('config: listener.tcp.http_read_header_timeout: must not exceed http_read_timeout');
    expect(() => validateConfig(doc({ max_connections: 0 }), {})).toThrow('config: listener.tcp.max_connections: must be a positive integer');
    expect(() => validateConfig(doc({ http_idle_timeout: 'never' }), {})).toThrow('config: listener.tcp.http_idle_timeout: must be a positive duration');
  });

  it('takes iv_policy from the seal block, else KEYWARD_HSM_IV_POLICY; unset leaves it to a probe', () => {
    const doc = (seal: Record<string, unknown>) => ({ storage: { file: { path: '/d' } }, seal: { pkcs11: { token_label: 't', pin: 'p', ...seal } } });
    expect(validateConfig(doc({}), {}).seal.ivPolicy).toBeUndefined();
    expect(validateConfig(doc({ iv_policy: 'token' }), { KEYWARD_HSM_IV_POLICY: 'caller' }).seal.ivPolicy).toBe('token');
    expect(validateConfig(doc({}), { KEYWARD_HSM_IV_POLICY: 'caller' }).seal.ivPolicy).toBe('caller');
    expect(() => validateConfig(doc({ iv_policy: 'hsm' }), {})).toThrow('config: seal.pkcs11.iv_policy: must be "caller" or "token" (or left out, for a probe to decide), not "hsm"');
  });

  it('names the bad field', async () => {
    const cases: Array<[unknown, string]> = [
      [{ seal: { pkcs11: { token_label: 't', pin: 'p' } } }, 'config: storage: missing block'],
      [{ storage: { s3: {} }, seal: { pkcs11: { token_label: 't', pin: 'p' } } }, 'config: storage "s3": unsupported type'],
      [{ storage: { file: {} }, seal: { pkcs11: { token_label: 't', pin: 'p' } } }, 'config: storage.file.path: required'],
      [{ storage: { file: { path: '/d' } }, seal: { pkcs11: { token_label: 't' } } }, 'config: seal.pkcs11.pin: missing'],
      [{ storage: { file: { path: '/d' } }, seal: { pkcs11: { pin: 'p' } } }, 'config: seal.pkcs11.token_label:'],
      [{ storage: { file: { path: '/d' } }, seal: { pkcs11: { token_label: 't', pin: 'p', token_lable: 'x' } } }, 'config: seal.pkcs11.token_lable: unknown setting'],
      [{ storage: { file: { path: '/d' } }, seal: { pkcs11: { token_label: 't', pin: 'p', generate_key: 'yes' } } }, 'config: seal.pkcs11.generate_key: must be true or false'],
      [{ storage: { file: { path: '/d' } }, seal: { pkcs11: { token_label: 't', pin: 'p' } }, listener: { tcp: { address: 'nope' } } }, 'config: listener.tcp.address:'],
      [{ storage: { file: { path: '/d' } }, seal: { pkcs11: { token_label: 't', pin: 'p' } }, listener: { tcp: { address: '1.2.3.4:1' } } }, 'config: listener.tcp.tls_cert_file: required unless tls_disable = true'],
      [{ storage: { file: { path: '/d' } }, seal: { pkcs11: { token_label: 't', pin: 'p' } }, colour: 'blue' }, 'config: colour: unknown setting'],
      [{ storage: { file: { path: '/d' } }, seal: { pkcs11: { token_label: 't', pin: 'p', max_parallel: -1 } } }, 'config: seal.pkcs11.max_parallel: must be a non-negative integer'],
      [{ storage: { file: { path: '/d' } }, seal: { pkcs11: { token_label: 't', pin: 'p', max_parallel: 'many' } } }, 'config: seal.pkcs11.max_parallel: must be a non-negative integer'],
      [{ storage: { file: { path: '/d' } }, seal: { pkcs11: { token_label: 't', pin: 'p', max_parallel: 257 } } }, 'config: seal.pkcs11.max_parallel: at most 256'],
    ];
    for (const [doc, message] of cases) {
      let caught: unknown;
      try {
        validateConfig(doc, {});
      } catch (err) {
        caught = err;
      }
      expect(caught, message).toBeInstanceOf(ConfigError);
      expect((caught as Error).message).toContain(message);
    }
  });

  it('reports HCL syntax errors with the file position', async () => {
    await expect(loadConfigFile(await file('bad.hcl', 'storage "file" { path = }'), {})).rejects.toThrow(/bad\.hcl:1,.*invalid HCL|invalid HCL.*bad\.hcl:1/);
  });
});
