// Barrier put+get through the token against the raw pkcs11js encrypt+decrypt loop on the same
// key (the hardware limit) and node:crypto AES-256-GCM (the software limit), measured in one run.
import { createCipheriv, createDecipheriv, randomBytes, randomFillSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import { TokenBarrier } from '../src/barrier/barrier.js';
import { DEFAULT_PKCS11_LIB, findSlot } from '../src/pkcs11/module.js';
import { provisionSoftHsmToken } from '../src/pkcs11/softhsm.js';
import { Token } from '../src/pkcs11/token.js';
import { InmemBackend } from '../src/storage/inmem.js';

const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 1500);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SIZES = (process.env.BENCH_SIZES ?? '64,1024,65536').split(',').map(Number);

async function opsPerSecond(fn: () => unknown | Promise<unknown>): Promise<number> {
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ROUND_MS) {
    await fn();
    n++;
    if ((n & 15) === 0) now = performance.now();
  }
  return n / ((performance.now() - start) / 1000);
}

/** Alternates the contenders round by round and keeps each one's best round, so drift hits all alike. */
async function compare(contenders: Record<string, () => unknown | Promise<unknown>>): Promise<Record<string, number>> {
  const best: Record<string, number> = {};
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, fn] of Object.entries(contenders)) best[name] = Math.max(best[name] ?? 0, await opsPerSecond(fn));
  }
  return best;
}

const dir = await mkdtemp(join(tmpdir(), 'keyward-bench-'));
const hsm = await provisionSoftHsmToken(dir, 'bench', '1234', '5678');
process.env.SOFTHSM2_CONF = hsm.confPath;
const cfg = { lib: DEFAULT_PKCS11_LIB, tokenLabel: 'bench', pin: '1234', keyLabel: 'keyward-seal' };
const token = new Token(cfg);
token.ensureSealKey(true);
const storage = new InmemBackend();
const barrier = new TokenBarrier(storage, token);
const root = token.importKey(randomBytes(32));
await barrier.initialize(root, []);
await barrier.unseal(token.loadKey(root.blob));

// The raw loop uses its own session on a working copy of the same term key.
const termKey = token.loadKey(barrier.terms()[0]!.wrapped);
const p11 = new pkcs11js.PKCS11();
p11.load(DEFAULT_PKCS11_LIB);
const session = p11.C_OpenSession(findSlot(p11, cfg), pkcs11js.CKF_SERIAL_SESSION);
const softKey = randomBytes(32);

console.log(`barrier put+get vs raw PKCS#11 loop (SoftHSM2, ${ROUNDS} rounds of ${ROUND_MS} ms, best round)`);
console.log('size     raw pkcs11 ops/s   barrier ops/s   barrier/raw   node:crypto ops/s   barrier/node:crypto');
for (const size of SIZES) {
  const value = randomBytes(size);
  const path = 'logical/bench/value';
  const aad = Buffer.from(path);
  const iv = Buffer.alloc(12);
  const out = Buffer.alloc(size + 16);
  const back = Buffer.alloc(size + 16);
  const gcm = () => ({
    mechanism: pkcs11js.CKM_AES_GCM,
    parameter: { type: pkcs11js.CK_PARAMS_GCM, iv: randomFillSync(iv), ivBits: 96, aad, tagBits: 128 } as pkcs11js.GcmParams,
  });
  const result = await compare({
    raw: () => {
      const mech = gcm();
      p11.C_EncryptInit(session, mech, termKey.handle!);
      const ct = p11.C_Encrypt(session, value, out);
      p11.C_DecryptInit(session, mech, termKey.handle!);
      p11.C_Decrypt(session, ct, back);
    },
    barrier: async () => {
      await barrier.put(path, value);
      await barrier.get(path);
    },
    node: () => {
      randomFillSync(iv);
      const c = createCipheriv('aes-256-gcm', softKey, iv).setAAD(aad);
      const ct = Buffer.concat([c.update(value), c.final()]);
      const tag = c.getAuthTag();
      const d = createDecipheriv('aes-256-gcm', softKey, iv).setAAD(aad).setAuthTag(tag);
      Buffer.concat([d.update(ct), d.final()]);
    },
  });
  const f = (n: number) => Math.round(n).toLocaleString('en-US');
  console.log(
    `${String(size).padEnd(8)} ${f(result.raw!).padStart(17)}   ${f(result.barrier!).padStart(13)}   ${(result.barrier! / result.raw!).toFixed(2).padStart(11)}   ${f(result.node!).padStart(17)}   ${(result.barrier! / result.node!).toFixed(2).padStart(19)}`,
  );
}

p11.C_CloseSession(session);
token.disconnect();
await rm(dir, { recursive: true, force: true });
