// Transit: encrypt (64 B) and ECDSA P-256 sign over HTTP against the raw token loop, in-process
// (SoftHSM2) and on the HSM emulator at 1 ms per call (against its physical limit, as
// hsm.bench.ts); encryption by batch_input of 1,000 against the same (the issue's targets: 0.7 of
// the raw loop in-process, 0.6 of the physical limit on the emulator); and one batch_input of 100
// against 100 single requests on one connection.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import { CALLER_IV_ENCRYPTIONS, HsmEmulator } from '../native-test/support/hsm-emulator.js';
import { TokenBarrier } from '../src/barrier/barrier.js';
import { BarrierView } from '../src/barrier/view.js';
import { TransitEngine } from '../src/engines/transit/engine.js';
import { DEFAULT_PKCS11_LIB, findSlot } from '../src/pkcs11/module.js';
import { Token } from '../src/pkcs11/token.js';
import { InmemBackend } from '../src/storage/inmem.js';
import { report } from './result.js';
import { benchToken, load, median, waitForHttp } from './support.js';

const root = join(import.meta.dirname, '..');
const RAW_SECONDS = 3;
const POOL = 32;
const PLAINTEXT = randomBytes(64).toString('base64');
const INPUT = randomBytes(64);

interface Server {
  label: string;
  url: string;
  token: string;
  child: ChildProcess;
  emu?: HsmEmulator;
}

const { config, cleanup } = await benchToken();
const dir = await mkdtemp(join(tmpdir(), 'keyward-transit-bench-'));
const basePort = 19900 + Math.floor(Math.random() * 300);
const servers: Server[] = [];

/** A keyward process on inmem storage, initialized, unsealed, with transit keys `enc` (AES) and `signer` (ECDSA P-256). */
async function startServer(label: string, emu?: HsmEmulator): Promise<Server> {
  const port = basePort + servers.length;
  const hcl = join(dir, `${servers.length}.hcl`);
  await writeFile(
    hcl,
    `storage "inmem" {}\nseal "pkcs11" {\n  token_label = "${config.tokenLabel}"\n  generate_key = true\n${emu ? `  max_parallel = ${POOL}\n` : ''}}\nlistener "tcp" {\n  address = "127.0.0.1:${port}"\n  tls_disable = true\n}\nlog_level = "warn"\n`,
  );
  const child = spawn(join(root, 'scripts/keyward'), ['server', `-config=${hcl}`], { env: { ...process.env, KEYWARD_HSM_PIN: config.pin, ...emu?.env() }, stdio: 'ignore' });
  const server: Server = { label, url: `http://127.0.0.1:${port}`, token: '', child, emu };
  servers.push(server);
  await waitForHttp(`${server.url}/v1/sys/seal-status`, 60_000, 50);
  const init = (await send(server, 'PUT', 'sys/init', { secret_shares: 1, secret_threshold: 1 })) as { keys: string[]; root_token: string };
  server.token = init.root_token;
  await send(server, 'PUT', 'sys/unseal', { key: init.keys[0] });
  await send(server, 'POST', 'sys/mounts/transit', { type: 'transit' });
  await send(server, 'POST', 'transit/keys/enc', {});
  await send(server, 'POST', 'transit/keys/signer', { type: 'ecdsa-p256' });
  return server;
}

async function send(s: Server, method: string, path: string, body: unknown): Promise<unknown> {
  const res = await fetch(`${s.url}/v1/${path}`, { method, headers: { 'Content-Type': 'application/json', ...(s.token ? { 'X-Vault-Token': s.token } : {}) }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${s.label}: ${path} answered ${res.status}: ${await res.text()}`);
  return res.json().catch(() => ({}));
}

const encryptBody = JSON.stringify({ plaintext: PLAINTEXT });
const signBody = JSON.stringify({ input: INPUT.toString('base64') });
const opts = (s: Server, path: string, body: string) => ({ url: `${s.url}/v1/transit/${path}`, method: 'POST' as const, headers: { 'Content-Type': 'application/json', 'X-Vault-Token': s.token }, body });

/** ops/s of `fn` run back to back for RAW_SECONDS (after a short warm-up). */
function rate(fn: () => void): number {
  for (let i = 0; i < 200; i++) fn();
  let ops = 0;
  const start = performance.now();
  while (performance.now() - start < RAW_SECONDS * 1000) {
    for (let i = 0; i < 50; i++) fn();
    ops += 50;
  }
  return (ops * 1000) / (performance.now() - start);
}

/**
 * The raw pkcs11js loop in this process, on its own logged-in session of the same token: AES-GCM
 * encryptions of the same size under an AES-256 session key, and CKM_ECDSA signatures of a
 * SHA-256 digest under a P-256 session key pair, as keyward's transit calls make them.
 */
function rawLoops(): { encrypt: number; sign: number } {
  const p11 = new pkcs11js.PKCS11();
  p11.load(DEFAULT_PKCS11_LIB);
  p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  const s = p11.C_OpenSession(findSlot(p11, config), pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  p11.C_Login(s, pkcs11js.CKU_USER, config.pin);
  try {
    const common = [
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    ];
    const aes = p11.C_GenerateKey(s, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
      { type: pkcs11js.CKA_ENCRYPT, value: true },
      ...common,
    ]);
    const pair = p11.C_GenerateKeyPair(
      s,
      { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN },
      [{ type: pkcs11js.CKA_TOKEN, value: false }, { type: pkcs11js.CKA_VERIFY, value: true }, { type: pkcs11js.CKA_EC_PARAMS, value: Buffer.from('06082a8648ce3d030107', 'hex') }],
      [{ type: pkcs11js.CKA_SIGN, value: true }, ...common],
    );
    const plaintext = Buffer.from(PLAINTEXT, 'base64');
    const out = Buffer.alloc(plaintext.length + 16);
    const iv = Buffer.alloc(12);
    let counter = 0;
    const encrypt = rate(() => {
      iv.writeUInt32BE(counter++ >>> 0, 8);
      p11.C_EncryptInit(s, { mechanism: pkcs11js.CKM_AES_GCM, parameter: { type: pkcs11js.CK_PARAMS_GCM, iv, ivBits: 96, aad: Buffer.alloc(0), tagBits: 128 } as pkcs11js.GcmParams }, aes);
      p11.C_Encrypt(s, plaintext, out);
    });
    const signature = Buffer.alloc(64);
    const sign = rate(() => {
      p11.C_SignInit(s, { mechanism: pkcs11js.CKM_ECDSA }, pair.privateKey);
      p11.C_Sign(s, createHash('sha256').update(INPUT).digest(), signature);
    });
    return { encrypt, sign };
  } finally {
    p11.C_CloseSession(s);
    p11.C_Finalize();
  }
}

/** PKCS#11 calls per request, counted by the emulator around 50 sequential requests. */
async function callsPer(s: Server, path: string, body: string): Promise<number> {
  const before = s.emu!.counts();
  for (let i = 0; i < 50; i++) await send(s, 'POST', `transit/${path}`, JSON.parse(body));
  const counted = Object.entries(s.emu!.callsSince(before)).filter(([counter]) => counter !== CALLER_IV_ENCRYPTIONS);
  return counted.reduce((sum, [, n]) => sum + (n ?? 0), 0) / 50;
}

/** Items per second encrypted by batch_input requests of `size` items, one after another on one connection, for `seconds`. */
async function batchItemsPerSecond(s: Server, size: number, seconds: number): Promise<{ rate: number; callsPerItem: number | undefined }> {
  const body = { batch_input: Array.from({ length: size }, () => ({ plaintext: PLAINTEXT })) };
  await send(s, 'POST', 'transit/encrypt/enc', body); // warm-up
  const before = s.emu?.counts();
  let items = 0;
  const start = performance.now();
  while (performance.now() - start < seconds * 1000) {
    await send(s, 'POST', 'transit/encrypt/enc', body);
    items += size;
  }
  const rate = (items * 1000) / (performance.now() - start);
  if (!before) return { rate, callsPerItem: undefined };
  const counted = Object.entries(s.emu!.callsSince(before)).filter(([counter]) => counter !== CALLER_IV_ENCRYPTIONS);
  return { rate, callsPerItem: counted.reduce((sum, [, n]) => sum + (n ?? 0), 0) / items };
}

/**
 * The engine without HTTP, in this process on SoftHSM2, as barrier.bench.ts measures the barrier:
 * items per second of transit encrypt by batch_input of 1,000 against the raw pkcs11js loop on a
 * second session with the same key (the working copy of the key's version 1), in interleaved
 * 250 ms slices so that load from elsewhere hits both alike.
 */
async function engineVsRawLoop(): Promise<{ engine: number; raw: number }> {
  const token = new Token(config);
  token.ensureSealKey(true);
  const barrier = new TokenBarrier(new InmemBackend(), token);
  const rootKey = token.importKey(randomBytes(32));
  await barrier.initialize(rootKey, []);
  await barrier.unseal(token.loadKey(rootKey.blob));
  const view = new BarrierView(barrier, 'logical/bench/');
  const engine = new TransitEngine(view, token, Date.now);
  const batch = { batch_input: Array.from({ length: 1000 }, () => ({ plaintext: PLAINTEXT })) };
  const encryptBatch = () => engine.handle({ operation: 'update', path: 'encrypt/enc', data: batch, query: {} });
  await encryptBatch();
  const stored = JSON.parse((await view.get('policy/enc'))!.toString('utf8')) as { versions: Record<string, { key: string }> };
  const key = token.loadKey(Buffer.from(stored.versions['1']!.key, 'base64'));
  const p11 = new pkcs11js.PKCS11();
  p11.load(config.lib);
  const session = p11.C_OpenSession(findSlot(p11, config), pkcs11js.CKF_SERIAL_SESSION);
  const plaintext = Buffer.from(PLAINTEXT, 'base64');
  const out = Buffer.alloc(plaintext.length + 16);
  const iv = Buffer.alloc(12);
  let counter = 0;
  const rawEncrypt = () => {
    iv.writeUInt32BE(counter++ >>> 0, 8);
    p11.C_EncryptInit(session, { mechanism: pkcs11js.CKM_AES_GCM, parameter: { type: pkcs11js.CK_PARAMS_GCM, iv, ivBits: 96, aad: Buffer.alloc(0), tagBits: 128 } as pkcs11js.GcmParams }, key.handle!);
    p11.C_Encrypt(session, plaintext, out);
  };
  const totals = { engine: { items: 0, ms: 0 }, raw: { items: 0, ms: 0 } };
  for (let round = 0; round < (RAW_SECONDS * 1000) / 250; round++) {
    let start = performance.now();
    while (performance.now() - start < 250) {
      await encryptBatch();
      totals.engine.items += 1000;
    }
    totals.engine.ms += performance.now() - start;
    start = performance.now();
    while (performance.now() - start < 250) {
      for (let i = 0; i < 100; i++) rawEncrypt();
      totals.raw.items += 100;
    }
    totals.raw.ms += performance.now() - start;
  }
  p11.C_CloseSession(session);
  token.disconnect();
  return { engine: (totals.engine.items * 1000) / totals.engine.ms, raw: (totals.raw.items * 1000) / totals.raw.ms };
}

/** Milliseconds for 100 items: one batch_input request, and 100 single requests one after another. */
async function batchVsSingles(s: Server): Promise<{ batch: number; singles: number }> {
  const items = Array.from({ length: 100 }, () => ({ plaintext: PLAINTEXT }));
  const batch: number[] = [];
  const singles: number[] = [];
  for (let round = 0; round < 12; round++) {
    let start = performance.now();
    await send(s, 'POST', 'transit/encrypt/enc', { batch_input: items });
    batch.push(performance.now() - start);
    start = performance.now();
    for (let i = 0; i < 100; i++) await send(s, 'POST', 'transit/encrypt/enc', { plaintext: PLAINTEXT });
    singles.push(performance.now() - start);
  }
  // The first two rounds warm the JIT and the connection; they are not counted.
  return { batch: median(batch.slice(2)), singles: median(singles.slice(2)) };
}

try {
  const inProcess = await startServer('SoftHSM2 in-process');
  const emulator = await startServer('emulator 1000 µs', await HsmEmulator.create({ latencyUs: 1000 }));
  const raw = rawLoops();

  for (const [op, path, body, rawRate] of [
    ['encrypt (64 B)', 'encrypt/enc', encryptBody, raw.encrypt],
    ['sign (ECDSA P-256, SHA-256)', 'sign/signer', signBody, raw.sign],
  ] as const) {
    const kw = await load({ ...opts(inProcess, path, body), connections: 10 });
    if (kw.non2xx || kw.errors) throw new Error(`transit ${op} failed: ${kw.non2xx} non-2xx, ${kw.errors} errors`);
    report({
      name: `transit ${op} over HTTP, SoftHSM2 in-process, 10 connections, vs the raw PKCS#11 loop`,
      value: kw.requests.average,
      baseline: rawRate,
      unit: 'ops/s',
      ratio: kw.requests.average / rawRate,
      note: `p99 ${kw.latency.p99} ms; the raw loop makes the same calls back to back on one session in one thread, with no HTTP`,
    });
    const calls = await callsPer(emulator, path, body);
    const limit = POOL / (calls * 0.001);
    const em = await load({ ...opts(emulator, path, body), connections: 50 });
    if (em.non2xx || em.errors) throw new Error(`transit ${op} on the emulator failed: ${em.non2xx} non-2xx, ${em.errors} errors`);
    report({
      name: `transit ${op} over HTTP, emulator 1000 µs/call, max_parallel ${POOL}, 50 connections, vs its physical limit`,
      value: em.requests.average,
      baseline: limit,
      unit: 'ops/s',
      ratio: em.requests.average / limit,
      note: `physical limit ${POOL} / (${calls.toFixed(2)} calls per request × 1 ms); a raw loop on one session would do ${Math.round(1000 / 2)}/s; p99 ${em.latency.p99} ms`,
    });
  }

  const inEngine = await engineVsRawLoop();
  report({
    name: 'transit encrypt (64 B) in the engine, batch_input of 1,000, SoftHSM2 in-process, vs the raw PKCS#11 loop on the same key',
    value: inEngine.engine,
    baseline: inEngine.raw,
    unit: 'items/s',
    ratio: inEngine.engine / inEngine.raw,
    target: { of: 'ratio', op: '≥', limit: 0.7 },
    note: 'one process, no HTTP, interleaved 250 ms slices; per item the engine also decodes the base64 plaintext, counts the encryption, picks the nonce and encodes the ciphertext',
  });
  const local = await batchItemsPerSecond(inProcess, 1000, RAW_SECONDS);
  report({
    name: 'transit encrypt (64 B) over HTTP by batch_input of 1,000, SoftHSM2 in-process, vs the raw PKCS#11 loop',
    value: local.rate,
    baseline: raw.encrypt,
    unit: 'items/s',
    ratio: local.rate / raw.encrypt,
    note: 'one request after another on one connection: the engine plus parsing and writing the JSON of 1,000 items',
  });
  const remote = await batchItemsPerSecond(emulator, 1000, RAW_SECONDS * 2);
  const remoteLimit = POOL / (remote.callsPerItem! * 0.001);
  report({
    name: `transit encrypt (64 B) by batch_input of 1,000, emulator 1000 µs/call, max_parallel ${POOL}, vs its physical limit`,
    value: remote.rate,
    baseline: remoteLimit,
    unit: 'items/s',
    ratio: remote.rate / remoteLimit,
    target: { of: 'ratio', op: '≥', limit: 0.6 },
    note: `physical limit ${POOL} / (${remote.callsPerItem!.toFixed(2)} calls per item × 1 ms), calls counted by the emulator; one request after another on one connection`,
  });

  const b = await batchVsSingles(inProcess);
  report({
    name: 'transit encrypt of 100 items: one batch_input request vs 100 single requests on one connection (SoftHSM2 in-process)',
    value: b.batch,
    baseline: b.singles,
    unit: 'ms',
    ratio: b.singles / b.batch,
    note: 'lower is better; ratio = baseline/value (how many times faster the batch is); median of 10 rounds',
  });
} finally {
  for (const s of servers) {
    s.child.kill('SIGTERM');
    s.emu?.close();
  }
  await rm(dir, { recursive: true, force: true });
  await cleanup();
}
