import { readFile } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { KEYRING_PATH, TokenBarrier } from '../src/barrier/barrier.js';
import { SealedError, UnknownTermError } from '../src/barrier/errors.js';
import { IntegrityError } from '../src/pkcs11/errors.js';
import { Token } from '../src/pkcs11/token.js';
import { FileBackend } from '../src/storage/file.js';
import { freshProcessToken } from './support/softhsm.js';

describe('TokenBarrier on SoftHSM2 and file storage', () => {
  let token: Token;
  let dir: string;
  let storage: FileBackend;
  let barrier: TokenBarrier;
  let rootBlob: Buffer;

  beforeAll(async () => {
    const t = await freshProcessToken();
    token = new Token(t.config);
    token.ensureSealKey(true);
    dir = await mkdtemp(join(tmpdir(), 'kw-barrier-'));
    storage = await FileBackend.open(dir);
    barrier = new TokenBarrier(storage, token);
    const root = token.importKey(Buffer.alloc(32, 9));
    rootBlob = root.blob;
    await barrier.initialize(root, [{ kind: 'put', path: 'init/extra', value: Buffer.from('written at init') }]);
    token.releaseKey(root);
    expect(barrier.sealed).toBe(true);
    await barrier.unseal(token.loadKey(rootBlob));
  });

  it('stores term ‖ 0x02 ‖ nonce ‖ ciphertext ‖ tag, never the plaintext', async () => {
    const plaintext = 'the-plaintext-marker-0123456789';
    await barrier.put('logical/abc/secret', Buffer.from(plaintext));
    const onDisk = await readFile(join(dir, 'data', 'logical', 'abc', '_secret'));
    expect(onDisk.readUInt32BE(0)).toBe(1);
    expect(onDisk[4]).toBe(0x02);
    expect(onDisk.length).toBe(4 + 1 + 12 + plaintext.length + 16);
    expect(onDisk.includes(Buffer.from(plaintext))).toBe(false);
    expect((await barrier.get('logical/abc/secret'))?.toString()).toBe(plaintext);
    expect((await barrier.get('init/extra'))?.toString()).toBe('written at init');
  });

  it('refuses a value copied to another path with an integrity error, never garbage', async () => {
    await barrier.put('a/original', Buffer.from('value'));
    await storage.put('a/copy', (await storage.get('a/original'))!);
    await expect(barrier.get('a/copy')).rejects.toThrow(IntegrityError);
  });

  it('refuses a flipped ciphertext bit and an unknown term', async () => {
    await barrier.put('a/x', Buffer.from('value'));
    const raw = (await storage.get('a/x'))!;
    const flipped = Buffer.from(raw);
    flipped[20]! ^= 1;
    await storage.put('a/x', flipped);
    await expect(barrier.get('a/x')).rejects.toThrow(IntegrityError);
    const otherTerm = Buffer.from(raw);
    otherTerm.writeUInt32BE(7, 0);
    await storage.put('a/x', otherTerm);
    await expect(barrier.get('a/x')).rejects.toThrow(new UnknownTermError(7).message);
  });

  it('keeps the keyring encrypted under the root key (term 0)', async () => {
    const keyring = (await storage.get(KEYRING_PATH))!;
    expect(keyring.readUInt32BE(0)).toBe(0);
    expect(keyring.toString('latin1')).not.toContain('install_time');
    const wrongRoot = token.importKey(Buffer.alloc(32, 1));
    const other = new TokenBarrier(storage, token);
    await expect(other.unseal(wrongRoot)).rejects.toThrow(IntegrityError);
  });

  it('counts encryptions under the active term and persists them with the keyring', async () => {
    const before = barrier.activeKey().encryptions;
    for (let i = 0; i < 10; i++) await barrier.put(`count/${i}`, Buffer.from('v'));
    expect(barrier.activeKey().encryptions).toBe(before + 10);
    await barrier.seal();
    await expect(barrier.get('count/1')).rejects.toThrow(SealedError);
    await barrier.unseal(token.loadKey(rootBlob));
    expect(barrier.activeKey().encryptions).toBe(before + 10);
  });
});
