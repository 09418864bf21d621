// Barrier put+get through the token against the raw pkcs11js encrypt+decrypt loop on the same
// key (the hardware limit) and node:crypto AES-256-GCM (the software limit), measured in one run.
import { createCipheriv, createDecipheriv, randomBytes, randomFillSync } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { TokenBarrier } from '../src/barrier/barrier.js';
import { DEFAULT_PKCS11_LIB, findSlot } from '../src/pkcs11/module.js';
import { Token } from '../src/pkcs11/token.js';
import { InmemBackend } from '../src/storage/inmem.js';
import { report } from './result.js';
import { benchToken } from './support.js';

const SLICE_MS = Number(process.env.BENCH_SLICE_MS ?? 100);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const SIZES = (process.env.BENCH_SIZES ?? '64,1024,65536').split(',').map(Number);

type Op = () => unknown | Promise<unknown>;

/** Runs `fn` for about `ms`; returns operations done and the time they took. */
async function slice(fn: Op, ms: number): Promise<{ ops: number; ms: number }> {
  let ops = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    await fn();
    ops++;
    if ((ops & 7) === 0) now = performance.now();
  }
  return { ops, ms: performance.now() - start };
}

/**
 * Interleaves the contenders in short slices (after a warm-up) so that CPU frequency changes and
 * noisy neighbours hit all of them alike; returns each one's ops/s over its slices.
 */
async function compare(contenders: Record<string, Op>): Promise<Record<string, number>> {
  for (const fn of Object.values(contenders)) await slice(fn, 300);
  const total: Record<string, { ops: number; ms: number }> = {};
  const rounds = Math.ceil((SECONDS * 1000) / SLICE_MS);
  for (let r = 0; r < rounds; r++) {
    for (const [name, fn] of Object.entries(contenders)) {
      const s = await slice(fn, SLICE_MS);
      const t = (total[name] ??= { ops: 0, ms: 0 });
      t.ops += s.ops;
      t.ms += s.ms;
    }
  }
  return Object.fromEntries(Object.entries(total).map(([name, t]) => [name, (t.ops * 1000) / t.ms]));
}

const { config: cfg, cleanup } = await benchToken();
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

console.log(`barrier put+get vs raw PKCS#11 loop (SoftHSM2, inmem storage, ${SECONDS} s each in interleaved ${SLICE_MS} ms slices)`);
console.log('size     raw pkcs11 ops/s   barrier ops/s   barrier/raw   node:crypto ops/s   barrier/node:crypto');
for (const size of SIZES) {
  const value = randomBytes(size);
  const path = 'logical/bench/value';
  const aad = Buffer.from(path);
  const iv = Buffer.alloc(12);
  const out = Buffer.alloc(size + 16);
  const back = Buffer.alloc(size + 16);
  // The raw loop's IV is a counter: the cheapest IV there is, so the raw loop is the limit.
  let counter = 0;
  const gcm = () => {
    iv.writeUInt32BE(counter++ >>> 0, 8);
    return {
      mechanism: pkcs11js.CKM_AES_GCM,
      parameter: { type: pkcs11js.CK_PARAMS_GCM, iv, ivBits: 96, aad, tagBits: 128 } as pkcs11js.GcmParams,
    };
  };
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
  report({ name: `barrier put+get ${size} B vs raw PKCS#11 loop`, value: result.barrier!, baseline: result.raw!, unit: 'ops/s', ratio: result.barrier! / result.raw!, target: { of: 'ratio', op: '≥', limit: 0.85 } });
  report({ name: `barrier put+get ${size} B vs node:crypto`, value: result.barrier!, baseline: result.node!, unit: 'ops/s', ratio: result.barrier! / result.node! });
  console.log(
    `${String(size).padEnd(8)} ${f(result.raw!).padStart(17)}   ${f(result.barrier!).padStart(13)}   ${(result.barrier! / result.raw!).toFixed(2).padStart(11)}   ${f(result.node!).padStart(17)}   ${(result.barrier! / result.node!).toFixed(2).padStart(19)}`,
  );
}

p11.C_CloseSession(session);
token.disconnect();
await cleanup();
