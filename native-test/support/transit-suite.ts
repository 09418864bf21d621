import { spawnSync } from 'node:child_process';
import { constants, createHash, createPublicKey, type KeyObject, verify } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { call, expectError, type Reply } from './service.js';
import { DEFAULT_PKCS11_LIB } from '../../src/pkcs11/module.js';
import type { TestToken } from './softhsm.js';

export interface TransitServer {
  base: string;
  root: string;
  /** Moves the server's clock forward. */
  advance: (ms: number) => void;
  /** The SoftHSM2 token behind the server, where an operator makes keys with pkcs11-tool. */
  token: TestToken;
}

/** OpenSC's pkcs11-tool on the token, as an operator makes keys at a key ceremony (SoftHSM2 directly, as the emulator forwards to it). */
function pkcs11Tool(token: TestToken, ...args: string[]): void {
  const r = spawnSync('pkcs11-tool', ['--module', DEFAULT_PKCS11_LIB, '--token-label', token.config.tokenLabel!, '--login', '--pin', token.config.pin, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pkcs11-tool ${args.join(' ')} failed: ${r.stderr}`);
}

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
/** The bytes after `vault:v<n>:`. */
const body = (versioned: string, encoding: BufferEncoding = 'base64') => Buffer.from(versioned.split(':')[2]!, encoding);

/**
 * Vault's transit API end to end over HTTP against a keyward whose token is given by `start`:
 * every result checked by an independent party (node:crypto verifies signatures with the public
 * keys keyward publishes; known digests), and every refusal a 400 with a message.
 */
export function describeTransit(label: string, start: () => Promise<TransitServer>): void {
  describe(`transit on ${label}`, () => {
    let s: TransitServer;
    const post = (path: string, b: unknown = {}) => call(s.base, 'POST', `transit/${path}`, { token: s.root, body: b });
    const get = (path: string) => call(s.base, 'GET', `transit/${path}`, { token: s.root });
    const ok = (r: Reply) => {
      expect(r.status, JSON.stringify(r.body)).toBeLessThan(300);
      return r.body?.data;
    };
    const publicKey = async (name: string, version = 1): Promise<KeyObject> => createPublicKey((ok(await get(`keys/${name}`)).keys[String(version)] as { public_key: string }).public_key);

    beforeAll(async () => {
      s = await start();
      expect((await call(s.base, 'POST', 'sys/mounts/transit', { token: s.root, body: { type: 'transit' } })).status).toBe(204);
    }, 60_000);

    it('creates an AES key and reports it as Vault does, without key material', async () => {
      const created = ok(await post('keys/app'));
      expect(created).toMatchObject({ name: 'app', type: 'aes256-gcm96', latest_version: 1, min_decryption_version: 1, min_encryption_version: 0, exportable: false, supports_encryption: true, supports_signing: false });
      const read = ok(await get('keys/app'));
      expect(Object.keys(read.keys)).toEqual(['1']);
      expect(typeof read.keys['1']).toBe('number');
      expect(JSON.stringify(read)).not.toMatch(/blob|hmac_key|"key"/);
      expect(ok(await call(s.base, 'GET', 'transit/keys?list=true', { token: s.root })).keys).toContain('app');
    });

    it('encrypts and decrypts, binding associated data, and refuses a tampered ciphertext', async () => {
      const enc = ok(await post('encrypt/app', { plaintext: b64('the secret'), associated_data: b64('order-7') }));
      expect(enc.ciphertext).toMatch(/^vault:v1:[A-Za-z0-9+/]+=*$/);
      expect(enc.key_version).toBe(1);
      const dec = ok(await post('decrypt/app', { ciphertext: enc.ciphertext, associated_data: b64('order-7') }));
      expect(Buffer.from(dec.plaintext, 'base64').toString()).toBe('the secret');
      expectError(await post('decrypt/app', { ciphertext: enc.ciphertext, associated_data: b64('order-8') }), 400, /message authentication failed/);
      const raw = body(enc.ciphertext);
      raw[raw.length - 1]! ^= 1;
      expectError(await post('decrypt/app', { ciphertext: `vault:v1:${raw.toString('base64')}` }), 400, /message authentication failed/);
      expectError(await post('decrypt/app', { ciphertext: 'not-a-ciphertext' }), 400, /vault:v1/);
      expectError(await post('decrypt/app', { ciphertext: 'vault:v1:AAAA' }), 400, /too short/);
      expectError(await post('encrypt/app', { plaintext: 'not base64!' }), 400, /base64/);
      expectError(await post('encrypt/app', {}), 400, /missing plaintext/);
      // Two encryptions of one plaintext differ (a fresh nonce each).
      const again = ok(await post('encrypt/app', { plaintext: b64('the secret'), associated_data: b64('order-7') }));
      expect(again.ciphertext).not.toBe(enc.ciphertext);
      const empty = ok(await post('encrypt/app', { plaintext: '' }));
      expect(ok(await post('decrypt/app', { ciphertext: empty.ciphertext })).plaintext).toBe('');
    });

    it('creates a missing key on encrypt, as Vault does', async () => {
      expect((await get('keys/upserted')).status).toBe(404);
      const enc = ok(await post('encrypt/upserted', { plaintext: b64('x') }));
      expect(enc.ciphertext).toMatch(/^vault:v1:/);
      expect(ok(await get('keys/upserted')).type).toBe('aes256-gcm96');
      expectError(await post('encrypt/upserted-rsa', { plaintext: b64('x'), type: 'rsa-2048' }), 400, /must be of type aes256-gcm96/);
      expect((await get('keys/upserted-rsa')).status).toBe(404);
    });

    it('rotates: old ciphertexts still decrypt, rewrap moves them to the latest version, min_decryption_version and trim retire the old', async () => {
      ok(await post('keys/rot'));
      const v1 = ok(await post('encrypt/rot', { plaintext: b64('one') })).ciphertext as string;
      const rotated = ok(await post('keys/rot/rotate'));
      expect(rotated.latest_version).toBe(2);
      const v2 = ok(await post('encrypt/rot', { plaintext: b64('two') }));
      expect(v2.ciphertext).toMatch(/^vault:v2:/);
      expect(Buffer.from(ok(await post('decrypt/rot', { ciphertext: v1 })).plaintext, 'base64').toString()).toBe('one');
      const rewrapped = ok(await post('rewrap/rot', { ciphertext: v1 }));
      expect(rewrapped.ciphertext).toMatch(/^vault:v2:/);
      expect(Buffer.from(ok(await post('decrypt/rot', { ciphertext: rewrapped.ciphertext })).plaintext, 'base64').toString()).toBe('one');
      // An older version may still be chosen for encryption until min_encryption_version says otherwise.
      expect(ok(await post('encrypt/rot', { plaintext: b64('old'), key_version: 1 })).ciphertext).toMatch(/^vault:v1:/);
      expectError(await post('keys/rot/config', { min_decryption_version: 3 }), 400, /greater than the latest/);
      ok(await post('keys/rot/config', { min_decryption_version: 2, min_encryption_version: 2 }));
      expectError(await post('decrypt/rot', { ciphertext: v1 }), 400, /disallowed by policy/);
      expectError(await post('encrypt/rot', { plaintext: b64('old'), key_version: 1 }), 400, /minimum encryption key version/);
      expectError(await post('keys/rot/trim', { min_available_version: 3 }), 400, /greater than min_decryption_version/);
      const trimmed = ok(await post('keys/rot/trim', { min_available_version: 2 }));
      expect(Object.keys(trimmed.keys)).toEqual(['2']);
      expect(trimmed.min_available_version).toBe(2);
      expectError(await post('keys/rot/config', { min_decryption_version: 1 }), 400, /trimmed/);
      expect(Buffer.from(ok(await post('decrypt/rot', { ciphertext: rewrapped.ciphertext })).plaintext, 'base64').toString()).toBe('one');
    });

    it('answers a batch of 1,000 items in order, each bad item with its own error and the status 400', async () => {
      const items = Array.from({ length: 1000 }, (_, i) => ({ plaintext: b64(`item ${i}`), reference: `r${i}` }));
      const enc = await post('encrypt/app', { batch_input: items });
      expect(enc.status).toBe(200);
      const results = enc.body.data.batch_results as Array<{ ciphertext: string; reference: string }>;
      expect(results).toHaveLength(1000);
      expect(results.map((r) => r.reference)).toEqual(items.map((i) => i.reference));
      const dec = ok(await post('decrypt/app', { batch_input: results.map((r) => ({ ciphertext: r.ciphertext })) }));
      expect(dec.batch_results.map((r: { plaintext: string }) => Buffer.from(r.plaintext, 'base64').toString())).toEqual(items.map((_, i) => `item ${i}`));
      const mixed = await post('decrypt/app', { batch_input: [{ ciphertext: results[0]!.ciphertext }, { ciphertext: 'vault:v1:garbage!' }, 'not an object'] });
      expect(mixed.status).toBe(400);
      const [good, bad, notObject] = mixed.body.data.batch_results;
      expect(Buffer.from(good.plaintext, 'base64').toString()).toBe('item 0');
      expect(bad.error).toMatch(/base64/);
      expect(notObject.error).toMatch(/object/);
      const partial = await post('decrypt/app', { partial_failure_response_code: 207, batch_input: [{ ciphertext: results[1]!.ciphertext }, { ciphertext: 'x' }] });
      expect(partial.status).toBe(207);
      expectError(await post('encrypt/app', { batch_input: 'nope' }), 400, /batch_input must be a list/);
    });

    it('makes data keys with the token RNG, sealed under the key', async () => {
      const plain = ok(await post('datakey/plaintext/app', { bits: 256 }));
      expect(Buffer.from(plain.plaintext, 'base64')).toHaveLength(32);
      expect(ok(await post('decrypt/app', { ciphertext: plain.ciphertext })).plaintext).toBe(plain.plaintext);
      const wrapped = ok(await post('datakey/wrapped/app', { bits: 512 }));
      expect(wrapped.plaintext).toBeUndefined();
      expect(Buffer.from(ok(await post('decrypt/app', { ciphertext: wrapped.ciphertext })).plaintext, 'base64')).toHaveLength(64);
      expectError(await post('datakey/plaintext/app', { bits: 100 }), 400, /bits/);
      expectError(await post('datakey/cleartext/app'), 400, /plaintext\/:name or datakey\/wrapped/);
    });

    for (const type of ['ecdsa-p256', 'ecdsa-p384'] as const) {
      it(`signs with ${type} in the token; node:crypto verifies (DER and JWS, whole and prehashed), keyward verifies and rejects tampering`, async () => {
        const name = `sig-${type}`;
        ok(await post(`keys/${name}`, { type }));
        const key = await publicKey(name);
        expect(key.asymmetricKeyDetails?.namedCurve).toBe(type === 'ecdsa-p256' ? 'prime256v1' : 'secp384r1');
        const input = b64('a message to sign');
        for (const hash of ['sha2-256', 'sha2-384', 'sha2-512'] as const) {
          const nodeHash = hash.replace('sha2-', 'sha');
          const sig = ok(await post(`sign/${name}/${hash}`, { input }));
          expect(sig.signature).toMatch(/^vault:v1:/);
          expect(verify(nodeHash, Buffer.from('a message to sign'), { key, dsaEncoding: 'der' }, body(sig.signature))).toBe(true);
          expect(ok(await post(`verify/${name}/${hash}`, { input, signature: sig.signature })).valid).toBe(true);
          expect(ok(await post(`verify/${name}/${hash}`, { input: b64('another message'), signature: sig.signature })).valid).toBe(false);
          const digest = createHash(nodeHash).update('a message to sign').digest();
          const pre = ok(await post(`sign/${name}`, { input: digest.toString('base64'), hash_algorithm: hash, prehashed: true }));
          expect(verify(nodeHash, Buffer.from('a message to sign'), { key, dsaEncoding: 'der' }, body(pre.signature))).toBe(true);
          const digestInput = { input: digest.toString('base64'), hash_algorithm: hash, prehashed: true };
          expect(ok(await post(`verify/${name}`, { ...digestInput, signature: pre.signature })).valid).toBe(true);
          expect(ok(await post(`verify/${name}`, { ...digestInput, signature: sig.signature })).valid).toBe(true);
          expect(ok(await post(`verify/${name}`, { ...digestInput, input: createHash(nodeHash).update('another').digest('base64'), signature: pre.signature })).valid).toBe(false);
        }
        const jws = ok(await post(`sign/${name}`, { input, marshaling_algorithm: 'jws' }));
        expect(jws.signature).toMatch(/^vault:v1:[A-Za-z0-9_-]+$/);
        expect(body(jws.signature, 'base64url')).toHaveLength(type === 'ecdsa-p256' ? 64 : 96);
        expect(verify('sha256', Buffer.from('a message to sign'), { key, dsaEncoding: 'ieee-p1363' }, body(jws.signature, 'base64url'))).toBe(true);
        expect(ok(await post(`verify/${name}`, { input, signature: jws.signature, marshaling_algorithm: 'jws' })).valid).toBe(true);
        expectError(await post(`sign/${name}`, { input: b64('x'), prehashed: true }), 400, /digest of 32 bytes/);
        expectError(await post(`sign/${name}`, { input, hash_algorithm: 'md5' }), 400, /unsupported hash_algorithm/);
      });
    }

    it('signs with RSA-2048 in PSS and PKCS#1 v1.5; node:crypto verifies each', async () => {
      ok(await post('keys/rsa', { type: 'rsa-2048' }));
      const key = await publicKey('rsa');
      expect(key.asymmetricKeyDetails?.modulusLength).toBe(2048);
      const message = Buffer.from('rsa message');
      for (const hash of ['sha2-256', 'sha2-512'] as const) {
        const nodeHash = hash.replace('sha2-', 'sha');
        const pss = ok(await post(`sign/rsa/${hash}`, { input: b64(message), signature_algorithm: 'pss' }));
        expect(verify(nodeHash, message, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, body(pss.signature))).toBe(true);
        const hashSalt = ok(await post(`sign/rsa/${hash}`, { input: b64(message), salt_length: 'hash' }));
        expect(verify(nodeHash, message, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: nodeHash === 'sha256' ? 32 : 64 }, body(hashSalt.signature))).toBe(true);
        const v15 = ok(await post(`sign/rsa/${hash}`, { input: b64(message), signature_algorithm: 'pkcs1v15' }));
        expect(verify(nodeHash, message, { key, padding: constants.RSA_PKCS1_PADDING }, body(v15.signature))).toBe(true);
        expect(ok(await post(`verify/rsa/${hash}`, { input: b64(message), signature: v15.signature, signature_algorithm: 'pkcs1v15' })).valid).toBe(true);
        expect(ok(await post(`verify/rsa/${hash}`, { input: b64(message), signature: pss.signature })).valid).toBe(true);
        expect(ok(await post(`verify/rsa/${hash}`, { input: b64('other'), signature: pss.signature })).valid).toBe(false);
      }
      expectError(await post('sign/rsa', { input: b64(message), signature_algorithm: 'raw' }), 400, /signature_algorithm/);
      expectError(await post('encrypt/rsa', { plaintext: b64('x') }), 400, /does not support encryption/);
    }, 60_000);

    it('signs with Ed25519 where the token offers EdDSA', async () => {
      const created = await post('keys/ed', { type: 'ed25519' });
      if (created.status === 400) {
        // SoftHSM2 offers EdDSA but cannot wrap an Ed25519 private key: such keys can only be managed keys there.
        expect(created.body.errors.join(' ')).toMatch(/does not offer EdDSA|cannot wrap ed25519 private keys.*managed key/);
        return;
      }
      const key = await publicKey('ed');
      expect(key.asymmetricKeyType).toBe('ed25519');
      const sig = ok(await post('sign/ed', { input: b64('ed message') }));
      expect(verify(null, Buffer.from('ed message'), key, body(sig.signature))).toBe(true);
      expect(ok(await post('verify/ed', { input: b64('ed message'), signature: sig.signature })).valid).toBe(true);
      expect(ok(await post('verify/ed', { input: b64('ed massage'), signature: sig.signature })).valid).toBe(false);
      expectError(await post('sign/ed', { input: b64('x'), prehashed: true }), 400, /prehashed is not allowed/);
    });

    it('computes HMACs in the token with each version\'s HMAC key, and verifies them', async () => {
      ok(await post('keys/mac', { type: 'hmac' }));
      const input = b64('mac me');
      const a = ok(await post('hmac/mac', { input }));
      expect(a.hmac).toMatch(/^vault:v1:/);
      expect(body(a.hmac)).toHaveLength(32);
      expectError(await post('keys/short', { type: 'hmac', key_size: 32 }), 400, /key_size must be/);
      expect(ok(await post('keys/long', { type: 'hmac', key_size: 128 })).type).toBe('hmac');
      expect(ok(await post('hmac/mac', { input })).hmac).toBe(a.hmac);
      expect(body(ok(await post('hmac/mac/sha2-512', { input })).hmac)).toHaveLength(64);
      expect(ok(await post('verify/mac', { input, hmac: a.hmac })).valid).toBe(true);
      expect(ok(await post('verify/mac', { input: b64('mac you'), hmac: a.hmac })).valid).toBe(false);
      // Any key type has an HMAC key per version: the AES key's differs from the hmac key's.
      const aes = ok(await post('hmac/app', { input }));
      expect(aes.hmac).not.toBe(a.hmac);
      ok(await post('keys/mac/rotate'));
      const v2 = ok(await post('hmac/mac', { input }));
      expect(v2.hmac).toMatch(/^vault:v2:/);
      expect(ok(await post('verify/mac', { input, hmac: a.hmac })).valid).toBe(true);
      expectError(await post('encrypt/mac', { plaintext: input }), 400, /does not support encryption/);
      expectError(await post('sign/mac', { input }), 400, /does not support signing/);
    });

    it('hashes and makes random bytes', async () => {
      expect(ok(await post('hash', { input: b64('hello') })).sum).toBe(createHash('sha256').update('hello').digest('hex'));
      expect(ok(await post('hash/sha2-512', { input: b64('hello'), format: 'base64' })).sum).toBe(createHash('sha512').update('hello').digest('base64'));
      expect(ok(await post('hash/sha3-256', { input: b64('hello') })).sum).toBe(createHash('sha3-256').update('hello').digest('hex'));
      expectError(await post('hash/md5', { input: b64('hello') }), 400, /unsupported algorithm/);
      expect(Buffer.from(ok(await post('random/16', {})).random_bytes, 'base64')).toHaveLength(16);
      expect(ok(await post('random', { bytes: 8, format: 'hex' })).random_bytes).toMatch(/^[0-9a-f]{16}$/);
      expect(ok(await post('random/seal/4', { format: 'hex' })).random_bytes).toMatch(/^[0-9a-f]{8}$/);
      expectError(await post('random/0'), 400, /bytes must be/);
      expectError(await post('random/moon/4'), 400, /unsupported source/);
    });

    it('refuses what would take keys out of the HSM or ignore a request, and deletes only when allowed', async () => {
      expectError(await post('keys/x', { exportable: true }), 400, /never leave the HSM/);
      expectError(await post('keys/x', { allow_plaintext_backup: true }), 400, /never leave the HSM/);
      expectError(await post('keys/x', { derived: true }), 400, /derived keys/);
      expectError(await post('keys/x', { type: 'chacha20-poly1305' }), 400, /unsupported key type/);
      expectError(await post('keys/x', { type: 'aes256-gcm96', auto_rotate_period: '10m' }), 400, /at least 1h/);
      expectError(await post('keys/bad name'), 400, /invalid key name/);
      expectError(await post('encrypt/app/extra', { plaintext: b64('x') }), 404, /no handler for route "encrypt\/app\/extra"/);
      expectError(await post('sign/rsa/sha2-256/extra', { input: b64('x') }), 404, /no handler/);
      expect((await get('keys/x')).status).toBe(404);
      expectError(await get('export/encryption-key/app'), 400, /never leave the HSM/);
      expectError(await get('backup/app'), 400, /never leave the HSM/);
      expectError(await post('encrypt/app', { plaintext: b64('x'), context: b64('ctx') }), 400, /not derived/);
      expectError(await post('keys/app/config', { exportable: true }), 400, /never leave the HSM/);
      expectError(await call(s.base, 'DELETE', 'transit/keys/app', { token: s.root }), 400, /deletion is not allowed/);
      ok(await post('keys/gone'));
      ok(await post('keys/gone/config', { deletion_allowed: true }));
      expect((await call(s.base, 'DELETE', 'transit/keys/gone', { token: s.root })).status).toBe(204);
      expect((await get('keys/gone')).status).toBe(404);
      expectError(await post('decrypt/gone', { ciphertext: 'vault:v1:AAAA' }), 404, /not found/);
    });

    it('uses keys an operator made in the HSM in place (by label or id), never rotating or destroying them', async () => {
      pkcs11Tool(s.token, '--keygen', '--key-type', 'AES:32', '--sensitive', '--label', 'ceremony-aes');
      pkcs11Tool(s.token, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'ceremony-ec', '--id', 'c0ffee01');
      pkcs11Tool(s.token, '--keypairgen', '--key-type', 'EC:edwards25519', '--label', 'ceremony-ed', '--id', 'c0ffee02');
      pkcs11Tool(s.token, '--keygen', '--key-type', 'AES:32', '--extractable', '--label', 'ceremony-extractable');

      const aes = ok(await post('keys/byok-aes', { managed_key_label: 'ceremony-aes' }));
      expect(aes).toMatchObject({ type: 'aes256-gcm96', managed_key_label: 'ceremony-aes', latest_version: 1 });
      const enc = ok(await post('encrypt/byok-aes', { plaintext: b64('held by the HSM') }));
      expect(Buffer.from(ok(await post('decrypt/byok-aes', { ciphertext: enc.ciphertext })).plaintext, 'base64').toString()).toBe('held by the HSM');
      expectError(await post('keys/byok-aes/rotate'), 400, /rotate it in the HSM/);
      expectError(await post('keys/byok-aes/config', { auto_rotate_period: '24h' }), 400, /cannot rotate it/);
      expectError(await post('hmac/byok-aes', { input: b64('x') }), 400, /no HMAC key/);

      ok(await post('keys/byok-ec', { type: 'ecdsa-p256', managed_key_id: 'C0FFEE01' }));
      const ecKey = await publicKey('byok-ec');
      const sig = ok(await post('sign/byok-ec', { input: b64('ceremony') }));
      expect(verify('sha256', Buffer.from('ceremony'), { key: ecKey, dsaEncoding: 'der' }, body(sig.signature))).toBe(true);

      // Ed25519, which SoftHSM2 cannot wrap and so cannot be a generated key there, works as a managed one.
      ok(await post('keys/byok-ed', { type: 'ed25519', managed_key_label: 'ceremony-ed' }));
      const edKey = await publicKey('byok-ed');
      expect(edKey.asymmetricKeyType).toBe('ed25519');
      const edSig = ok(await post('sign/byok-ed', { input: b64('ceremony') }));
      expect(verify(null, Buffer.from('ceremony'), edKey, body(edSig.signature))).toBe(true);
      expect(ok(await post('verify/byok-ed', { input: b64('ceremony'), signature: edSig.signature })).valid).toBe(true);

      expectError(await post('keys/byok-wrong', { type: 'rsa-2048', managed_key_label: 'ceremony-ec' }), 400, /is of type ecdsa-p256.*type=ecdsa-p256/);
      expectError(await post('keys/byok-none', { managed_key_label: 'no such object' }), 400, /holds no private or secret key with label "no such object"/);
      expectError(await post('keys/byok-x', { managed_key_label: 'ceremony-extractable' }), 400, /extractable/);
      expectError(await post('keys/byok-both', { managed_key_label: 'ceremony-aes', managed_key_id: '01' }), 400, /not both/);
      expect((await get('keys/byok-wrong')).status).toBe(404);

      // Deleting the transit key leaves the HSM object: a new transit key finds it again.
      ok(await post('keys/byok-aes/config', { deletion_allowed: true }));
      expect((await call(s.base, 'DELETE', 'transit/keys/byok-aes', { token: s.root })).status).toBe(204);
      ok(await post('keys/byok-again', { managed_key_label: 'ceremony-aes' }));
      expect(Buffer.from(ok(await post('decrypt/byok-again', { ciphertext: enc.ciphertext })).plaintext, 'base64').toString()).toBe('held by the HSM');
    });

    it('rotates a key by itself once its auto_rotate_period has passed (checked at use)', async () => {
      const created = ok(await post('keys/auto', { auto_rotate_period: '1h' }));
      expect(created.auto_rotate_period).toBe(3600);
      const before = ok(await post('encrypt/auto', { plaintext: b64('x') }));
      expect(before.key_version).toBe(1);
      s.advance(3_599_000);
      expect(ok(await post('encrypt/auto', { plaintext: b64('x') })).key_version).toBe(1);
      s.advance(2_000);
      expect(ok(await post('encrypt/auto', { plaintext: b64('x') })).key_version).toBe(2);
      expect(ok(await get('keys/auto')).latest_version).toBe(2);
      expect(Buffer.from(ok(await post('decrypt/auto', { ciphertext: before.ciphertext })).plaintext, 'base64').toString()).toBe('x');
      ok(await post('keys/auto/config', { auto_rotate_period: 0 }));
      s.advance(7_200_000);
      expect(ok(await post('encrypt/auto', { plaintext: b64('x') })).key_version).toBe(2);
    });
  });
}
