import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { combine } from '../src/crypto/shamir.js';
import { AES_KEY, openStoredEntry, termKeysInClear, type Unwrapping, unwrapInClear } from './support/barrier-in-clear.js';
import { scanProcessMemory, spellingsOf } from './support/process-memory.js';
import { type FreshServer, startServerProcess } from './support/process.js';
import { call } from './support/service.js';

const CKK_EC_EDWARDS = 0x40;
const UNWRAP_AS: Record<string, Unwrapping> = {
  'aes256-gcm96': AES_KEY,
  hmac: { template: [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET }], secretAttributes: [pkcs11js.CKA_VALUE] },
  'ecdsa-p256': { template: [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_EC }], secretAttributes: [pkcs11js.CKA_VALUE] },
  'rsa-2048': {
    template: [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_RSA }],
    secretAttributes: [pkcs11js.CKA_PRIVATE_EXPONENT, pkcs11js.CKA_PRIME_1, pkcs11js.CKA_PRIME_2],
  },
  ed25519: { template: [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: CKK_EC_EDWARDS }], secretAttributes: [pkcs11js.CKA_VALUE] },
};

interface StoredPolicy {
  type: string;
  versions: Record<string, { key?: string; hmac_key?: string }>;
}

/**
 * A keyward server process with transit keys of every type, each used; its whole memory read
 * through /proc/PID/mem. Forbidden: every transit key's secret (the AES and HMAC key values, the
 * EC and Ed25519 private scalars, the RSA private exponent and primes), raw or in hex or base64.
 * The secrets are found as an attacker with the shares and the HSM PIN finds them: the stored
 * key policies decrypted with the term keys, their K-wrapped blobs unwrapped as extractable.
 */
describe('transit keys in the memory of a running server process', () => {
  let fresh: FreshServer;
  let base: string;
  let root: string;
  let shares: string[];

  beforeAll(async () => {
    fresh = await startServerProcess();
    base = fresh.server.url;
    const init = await call(base, 'PUT', 'sys/init', { body: { secret_shares: 3, secret_threshold: 2 } });
    shares = init.body.keys;
    root = init.body.root_token;
    for (const key of shares.slice(0, 2)) await call(base, 'PUT', 'sys/unseal', { body: { key } });
    expect((await call(base, 'POST', 'sys/mounts/transit', { token: root, body: { type: 'transit' } })).status).toBe(204);
  }, 60_000);
  afterAll(async () => {
    await fresh?.server.kill();
  });

  it('holds no transit key material, only K-wrapped blobs, after every key type was made, rotated and used', async () => {
    const post = (path: string, body: unknown = {}) => call(base, 'POST', `transit/${path}`, { token: root, body });
    const input = Buffer.from('memory test input').toString('base64');
    const types = Object.keys(UNWRAP_AS);
    for (const type of types) {
      const created = await post(`keys/${type}`, { type });
      if (type === 'ed25519' && created.status === 400) continue; // the token offers no EdDSA
      expect(created.status, JSON.stringify(created.body)).toBe(200);
      expect((await post(`keys/${type}/rotate`)).status).toBe(200);
      expect((await post(`hmac/${type}`, { input })).status).toBe(200);
      if (type === 'aes256-gcm96') {
        const enc = await post(`encrypt/${type}`, { plaintext: input });
        expect((await post(`decrypt/${type}`, { ciphertext: enc.body.data.ciphertext })).body.data.plaintext).toBe(input);
        expect((await post(`datakey/wrapped/${type}`)).status).toBe(200);
      } else if (type !== 'hmac') {
        const sig = await post(`sign/${type}`, { input });
        expect((await post(`verify/${type}`, { input, signature: sig.body.data.signature })).body.data.valid).toBe(true);
      }
    }

    const rootKey = combine(shares.slice(0, 2).map((s) => Buffer.from(s, 'hex')));
    const terms = termKeysInClear(fresh.token, fresh.dir, rootKey);
    const uuid = (await call(base, 'GET', 'sys/mounts', { token: root })).body.data['transit/'].uuid as string;
    const secrets = new Map<string, Buffer>();
    const controls = new Map<string, Buffer>();
    for (const name of types) {
      let stored: StoredPolicy;
      try {
        stored = JSON.parse(openStoredEntry(fresh.dir, terms, `logical/${uuid}/policy/${name}`).toString('utf8')) as StoredPolicy;
      } catch {
        continue; // ed25519 where the token has no EdDSA: never made
      }
      for (const [version, v] of Object.entries(stored.versions)) {
        // The blobs are in the server's memory (its storage cache holds them encrypted, its key cache wrapped): a control that the scan sees.
        const blobs: Array<[string, string | undefined, Unwrapping]> = [
          ['key', v.key, UNWRAP_AS[stored.type]!],
          ['hmac key', v.hmac_key, UNWRAP_AS.hmac!],
        ];
        for (const [what, blob, as] of blobs) {
          if (!blob) continue;
          const parts = unwrapInClear(fresh.token, [Buffer.from(blob, 'base64')], as)[0]!;
          expect(parts.every((p) => p.length >= 16)).toBe(true);
          parts.forEach((p, i) => spellingsOf(`${name} v${version} ${what} part ${i}`, p).forEach((bytes, label) => secrets.set(label, bytes)));
        }
      }
    }
    // At least AES, HMAC, ECDSA and RSA keys, two versions each, every blob in four spellings.
    expect(secrets.size).toBeGreaterThanOrEqual(56);
    controls.set('root token', Buffer.from(root));
    const result = scanProcessMemory(fresh.server.child.pid!, new Map([...controls, ...secrets]));
    const found = new Set(result.hits.map((h) => h.needle));
    expect(found, `the scan did not see the root token in ${result.bytesScanned} bytes`).toContain('root token');
    expect(
      result.hits
        .filter((h) => secrets.has(h.needle))
        .map((h) => `${h.needle} at 0x${h.address.toString(16)} in ${h.mapping}`)
        .join('\n'),
    ).toBe('');
  }, 180_000);
});
