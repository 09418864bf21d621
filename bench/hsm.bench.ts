// keyward on a network-like HSM: KV v2 read and write at 1, 10 and 50 connections against keyward
// processes whose PKCS#11 module is the HSM emulator (native-test/hsm-emulator, docs/HSM.md) at
// 0, 250 and 1000 µs per call, each row against the lower of
//   (a) the physical limit: calls in flight (max_parallel, or fewer when the connections' requests
//       cannot have that many in flight) each holding a session for one round trip, so
//       in flight / (calls per request × round trip), with the calls per request counted by the
//       emulator around a known number of requests; and
//   (b) the same operation, at the same connections, in the same run, on keyward using SoftHSM2
//       directly with its default config (in-process, so on the event loop).
// During every load a separate client on its own thread asks `/v1/sys/health` 100 times a second,
// open loop, and its p99 goes in the row's note with keyward's CPU time per request: a PKCS#11
// call that blocks the event loop shows up there. Plus keyward on SoftHSM2 with the default config
// against max_parallel = 0 (the synchronous path), which the default must pick for an in-process
// module.
//
// Every server runs on inmem storage, so the token is the only slow thing on the path, and all of
// them run for the whole bench, idle while another is loaded. For each connection count and
// operation, half of the in-process loads run before the emulated ones and half after, so drift
// in the machine's load between them lands on both sides. Each load lasts BENCH_HTTP_SECONDS (5).
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import autocannon from 'autocannon';
import { HsmEmulator, type Pkcs11Function } from '../native-test/support/hsm-emulator.js';
import { report } from './result.js';
import { benchToken, HTTP_SECONDS as SECONDS, load, waitForHttp } from './support.js';

const CONNECTIONS = [1, 10, 50];
/**
 * Enough probes in a 5 s load (about 500) that their p99 is a percentile: at 20 a second the
 * nearest-rank p99 of 98 probes was their maximum, one scheduling hiccup. 100 GETs a second are
 * under 2% of any load measured here.
 */
const HEALTH_PER_SECOND = 100;
const POOL = 32;
const root = join(import.meta.dirname, '..');

interface Dispatch {
  mode: 'event-loop' | 'session-pool';
  roundTripUs: number;
  maxParallel: number;
}

interface Server {
  label: string;
  url: string;
  token: string;
  child: ChildProcess;
  emu?: HsmEmulator;
  latencyUs: number;
  dispatch?: Dispatch;
  /** PKCS#11 calls per request, from the emulator's counters. */
  calls?: { read: number; write: number; readDetail: string; writeDetail: string };
  /** Next unused secret name for writes: every write creates a new secret, so each costs the same. */
  written: number;
}

interface Measured {
  /** 2xx responses per second: failures never count as throughput. */
  rate: number;
  failed: number;
  total: number;
  p99: number;
  healthP99: number;
  healthCount: number;
  /** Every probe's latency, in ms. */
  health: number[];
  /** Health answers other than 200, or connection errors. */
  healthNotOk: number;
  /** Calls per 2xx response during the load (emulator servers only). */
  callsPerRequest?: number;
  /** keyward's CPU time (all its threads) per 2xx response, in µs. */
  cpuUsPerRequest: number;
}

/** CPU seconds (user + system, every thread) a process has used, from /proc (clock ticks of 10 ms). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Two measurements of the same thing as one: requests and durations add up. */
function combine(a: Measured, b: Measured, aSeconds: number, bSeconds: number): Measured {
  const ok = (m: Measured, sec: number) => m.rate * sec;
  const okTotal = ok(a, aSeconds) + ok(b, bSeconds);
  return {
    rate: okTotal / (aSeconds + bSeconds),
    failed: a.failed + b.failed,
    total: a.total + b.total,
    /** autocannon gives percentiles, not samples: the higher of the two. */
    p99: Math.max(a.p99, b.p99),
    healthP99: p99([...a.health, ...b.health]),
    healthCount: a.healthCount + b.healthCount,
    health: [...a.health, ...b.health],
    healthNotOk: a.healthNotOk + b.healthNotOk,
    cpuUsPerRequest: (a.cpuUsPerRequest * ok(a, aSeconds) + b.cpuUsPerRequest * ok(b, bSeconds)) / Math.max(1, okTotal),
  };
}

const { config, cleanup } = await benchToken();
const dir = await mkdtemp(join(tmpdir(), 'keyward-hsm-bench-'));
const basePort = 19300 + Math.floor(Math.random() * 500);
const servers: Server[] = [];


/** Starts, initializes and unseals one keyward, mounts KV v2 at kv/ and writes kv/data/app. */
async function startServer(label: string, opts: { latencyUs?: number; maxParallel?: number }): Promise<Server> {
  const port = basePort + servers.length;
  const emu = opts.latencyUs === undefined ? undefined : await HsmEmulator.create({ latencyUs: opts.latencyUs });
  const hcl = join(dir, `${label.replace(/\W+/g, '-')}.hcl`);
  await writeFile(
    hcl,
    `storage "inmem" {}\nseal "pkcs11" {\n  token_label = "${config.tokenLabel}"\n  generate_key = true\n${opts.maxParallel === undefined ? '' : `  max_parallel = ${opts.maxParallel}\n`}}\nlistener "tcp" {\n  address = "127.0.0.1:${port}"\n  tls_disable = true\n}\nlog_level = "info"\n`,
  );
  const child = spawn(join(root, 'scripts/keyward'), ['server', `-config=${hcl}`], {
    env: { ...process.env, KEYWARD_HSM_PIN: config.pin, ...emu?.env() },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const server: Server = { label, url: `http://127.0.0.1:${port}`, token: '', child, emu, latencyUs: opts.latencyUs ?? 0, written: 0 };
  servers.push(server);
  // The token logs where its GCM calls run once, at its first connection.
  let logged = '';
  let tail = '';
  child.stderr!.on('data', (d: Buffer) => {
    tail = (tail + d.toString()).slice(-2000);
    if (server.dispatch) return;
    logged += d.toString();
    for (const line of logged.split('\n')) {
      if (!line.includes('PKCS#11 calls run on')) continue;
      const { mode, roundTripUs, maxParallel } = JSON.parse(line) as Dispatch;
      server.dispatch = { mode, roundTripUs, maxParallel };
    }
    logged = logged.slice(logged.lastIndexOf('\n') + 1);
  });
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`${label}: keyward exited with ${code}: ${tail}`))));
  exited.catch(() => undefined);
  await Promise.race([waitForHttp(`${server.url}/v1/sys/seal-status`, 60_000, 50), exited]);
  const put = async (path: string, body: unknown) => {
    const res = await fetch(`${server.url}/v1/${path}`, {
      method: path === 'sys/init' || path === 'sys/unseal' ? 'PUT' : 'POST',
      headers: { 'Content-Type': 'application/json', ...(server.token ? { 'X-Vault-Token': server.token } : {}) },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${label}: ${path} answered ${res.status}: ${await res.text()}`);
    return res.json().catch(() => ({}));
  };
  const init = (await put('sys/init', { secret_shares: 1, secret_threshold: 1 })) as { keys: string[]; root_token: string };
  server.token = init.root_token;
  await put('sys/unseal', { key: init.keys[0] });
  await put('sys/mounts/kv', { type: 'kv-v2' });
  await put('kv/data/app', { data: { username: 'app', password: 'x'.repeat(32), url: 'postgres://db.internal:5432/app' } });
  if (!server.dispatch) throw new Error(`${label}: keyward never logged where its PKCS#11 calls run`);
  return server;
}

const readOpts = (s: Server): autocannon.Options => ({ url: `${s.url}/v1/kv/data/app`, headers: { 'X-Vault-Token': s.token } });
const writeOpts = (s: Server): autocannon.Options => ({
  url: s.url,
  method: 'POST',
  headers: { 'Content-Type': 'application/json', 'X-Vault-Token': s.token },
  requests: [{ setupRequest: (req: autocannon.Request) => ({ ...req, path: `/v1/kv/data/w${s.written++}`, body: JSON.stringify({ data: { v: s.written } }) }) }],
});


const totalCalls = (calls: Partial<Record<Pkcs11Function, number>>) => Object.values(calls).reduce((a, b) => a + (b ?? 0), 0);
const describeCalls = (calls: Partial<Record<Pkcs11Function, number>>, n: number) =>
  Object.entries(calls)
    .map(([fn, count]) => `${fn} ${+(count! / n).toFixed(2)}`)
    .join(' + ');

/** Calls per KV v2 read and per write of a new secret, counted by the emulator around known numbers of sequential requests. */
async function countCalls(s: Server): Promise<void> {
  const emu = s.emu!;
  const get = () => fetch(`${s.url}/v1/kv/data/app`, { headers: { 'X-Vault-Token': s.token } }).then((r) => (r.ok ? r.arrayBuffer() : Promise.reject(new Error(`read answered ${r.status}`))));
  const post = () =>
    fetch(`${s.url}/v1/kv/data/w${s.written++}`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Vault-Token': s.token }, body: JSON.stringify({ data: { v: s.written } }) }).then((r) =>
      r.ok ? r.arrayBuffer() : Promise.reject(new Error(`write answered ${r.status}`)),
    );
  for (let i = 0; i < 10; i++) await get(); // the token's first requests look it up
  const n = 100;
  let before = emu.counts();
  for (let i = 0; i < n; i++) await get();
  const reads = emu.callsSince(before);
  before = emu.counts();
  for (let i = 0; i < n; i++) await post();
  const writes = emu.callsSince(before);
  s.calls = { read: totalCalls(reads) / n, write: totalCalls(writes) / n, readDetail: describeCalls(reads, n), writeDetail: describeCalls(writes, n) };
}

/**
 * An open-loop client on its own thread (so the load generator's event loop does not delay it):
 * one GET every 1/rate s whether or not the last one answered; a request still unanswered at the
 * end counts with the time it has waited so far.
 */
function healthProbe(url: string): { stop: () => Promise<{ latencies: number[]; notOk: number }> } {
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const http = require('node:http');
     const agent = new http.Agent({ keepAlive: true });
     const latencies = [];
     const open = new Set();
     let notOk = 0;
     const tick = setInterval(() => {
       const entry = { start: performance.now() };
       open.add(entry);
       const req = http.get(workerData.url, { agent }, (res) => {
         if (res.statusCode !== 200) notOk++;
         res.resume();
         res.on('end', () => { open.delete(entry); latencies.push(performance.now() - entry.start); });
       });
       req.on('error', () => { open.delete(entry); notOk++; latencies.push(performance.now() - entry.start); });
     }, 1000 / workerData.rate);
     parentPort.on('message', () => {
       clearInterval(tick);
       const now = performance.now();
       for (const e of open) latencies.push(now - e.start);
       parentPort.postMessage({ latencies, notOk });
       agent.destroy();
       parentPort.close();
     });`,
    { eval: true, workerData: { url, rate: HEALTH_PER_SECOND } },
  );
  return {
    stop: () =>
      new Promise((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
        worker.postMessage('stop');
      }),
  };
}

function p99(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.ceil(s.length * 0.99) - 1]!;
}

async function measure(s: Server, op: 'read' | 'write', connections: number, seconds = SECONDS): Promise<Measured> {
  const probe = healthProbe(`${s.url}/v1/sys/health`);
  const before = s.emu?.counts();
  const cpuBefore = cpuSeconds(s.child.pid!);
  const res = await load({ ...(op === 'read' ? readOpts(s) : writeOpts(s)), connections }, seconds);
  const cpu = cpuSeconds(s.child.pid!) - cpuBefore;
  const calls = before && totalCalls(s.emu!.callsSince(before));
  const health = await probe.stop();
  return {
    rate: res['2xx'] / res.duration,
    failed: res.non2xx + res.errors,
    total: res['2xx'] + res.non2xx + res.errors,
    p99: res.latency.p99,
    healthP99: p99(health.latencies),
    healthCount: health.latencies.length,
    health: health.latencies,
    healthNotOk: health.notOk,
    callsPerRequest: calls === undefined ? undefined : calls / Math.max(1, res['2xx']),
    cpuUsPerRequest: (cpu * 1e6) / Math.max(1, res['2xx']),
  };
}

const ms = (x: number) => `${x < 10 ? x.toFixed(1) : Math.round(x)} ms`;
const perSecond = (x: number) => `${Math.round(x).toLocaleString('en-US')}/s`;
const conns = (c: number) => `${c} connection${c > 1 ? 's' : ''}`;

function dispatchText(s: Server): string {
  const d = s.dispatch!;
  return d.mode === 'session-pool' ? `pool of ${d.maxParallel}` : 'event loop';
}

/**
 * PKCS#11 calls of one request that can be in flight at once: a read decrypts the metadata, then
 * the version it names; a write encrypts its version and metadata entries together.
 */
const CONCURRENT_CALLS = { read: 1, write: 2 } as const;

/**
 * The physical limit of a token that takes `latencyUs` per call: calls in flight, at most
 * max_parallel and at most what the connections' requests can have in flight, each holding a
 * session for one round trip.
 */
function physicalLimit(s: Server, op: 'read' | 'write', connections: number): { limit: number; text: string } {
  const calls = s.calls![op];
  if (s.latencyUs === 0) return { limit: Infinity, text: 'physical limit none at 0 µs' };
  const pool = Math.max(1, s.dispatch!.maxParallel);
  const parallel = Math.min(pool, connections * CONCURRENT_CALLS[op]);
  const limit = (parallel * 1e6) / (calls * s.latencyUs);
  const inFlight = parallel < pool ? `${parallel} in flight (${conns(connections)} × ${CONCURRENT_CALLS[op]})` : `${parallel}`;
  return { limit, text: `physical limit ${perSecond(limit)} = ${inFlight} / (${+calls.toFixed(2)} calls × ${s.latencyUs} µs)` };
}

try {
  // SoftHSM2 directly: the default config (which must choose the event loop) and max_parallel = 0.
  const inProcess = await startServer('SoftHSM2 default', {});
  const inProcessSync = await startServer('SoftHSM2 max_parallel 0', { maxParallel: 0 });
  const emulated = [
    await startServer('emulator 0 µs default', { latencyUs: 0 }),
    await startServer('emulator 0 µs max_parallel 32', { latencyUs: 0, maxParallel: POOL }),
    await startServer('emulator 250 µs max_parallel 32', { latencyUs: 250, maxParallel: POOL }),
    await startServer('emulator 1000 µs max_parallel 32', { latencyUs: 1000, maxParallel: POOL }),
  ];
  for (const s of emulated) await countCalls(s);
  for (const s of servers) {
    console.log(
      `${s.label}: ${dispatchText(s)} (connect round trip ${s.dispatch!.roundTripUs} µs)${s.calls ? `; per read ${s.calls.read} calls (${s.calls.readDetail}), per write of a new secret ${s.calls.write} (${s.calls.writeDetail})` : ''}`,
    );
    // Warm-up: the JIT, the token lookup and the pool's threads, untimed.
    await measure(s, 'read', 10, Math.min(1, SECONDS));
  }

  const half = SECONDS / 2;
  for (const connections of CONNECTIONS) {
    for (const op of ['read', 'write'] as const) {
      const what = `KV v2 ${op === 'read' ? 'read' : 'write (new secret)'}, ${conns(connections)}`;
      const first = await measure(inProcess, op, connections, half);
      let sync: Measured | undefined;
      if (op === 'read') sync = await measure(inProcessSync, op, connections, half);
      const results: Measured[] = [];
      for (const s of emulated) results.push(await measure(s, op, connections));
      if (op === 'read') sync = combine(sync!, await measure(inProcessSync, op, connections, half), half, half);
      const base = combine(first, await measure(inProcess, op, connections, half), half, half);
      const baseNote = `in-process ${perSecond(base.rate)} at ${Math.round(base.cpuUsPerRequest)} µs CPU per request, health p99 ${ms(base.healthP99)}${base.failed ? `, ${base.failed} of its ${base.total} failed` : ''}`;
      if (sync) {
        report({
          name: `SoftHSM2 in-process ${what}: default config (${dispatchText(inProcess)}) vs max_parallel = 0`,
          value: base.rate,
          baseline: sync.rate,
          unit: 'req/s',
          ratio: base.rate / sync.rate,
          target: { of: 'ratio', op: '≥', limit: 0.9 },
          note: `p99 ${ms(base.p99)} vs ${ms(sync.p99)}; health p99 ${ms(base.healthP99)} vs ${ms(sync.healthP99)}; failed ${base.failed + sync.failed}`,
        });
      }
      emulated.forEach((s, i) => {
        const m = results[i]!;
        const physical = physicalLimit(s, op, connections);
        const baseline = Math.min(physical.limit, base.rate);
        const targeted = op === 'read' && s.latencyUs === 1000 && connections >= POOL;
        const config = s.label.endsWith('default') ? `default config (${dispatchText(s)})` : `max_parallel ${s.dispatch!.maxParallel}`;
        report({
          name: `HSM emulator ${s.latencyUs} µs/call, ${config}: ${what} vs min(physical limit, in-process)`,
          value: m.rate,
          baseline,
          unit: 'req/s',
          ratio: m.rate / baseline,
          target: targeted ? { of: 'ratio', op: '≥', limit: 0.6 } : undefined,
          note: `${physical.text}; ${baseNote}; this: ${Math.round(m.cpuUsPerRequest)} µs CPU per request, health p99 ${ms(m.healthP99)} (${m.healthCount} probes${m.healthNotOk ? `, ${m.healthNotOk} not 200` : ''}), p99 ${ms(m.p99)}, ${m.failed} of ${m.total} failed, ${m.callsPerRequest!.toFixed(2)} calls per 2xx`,
        });
        if (!targeted) return;
        report({
          name: `HSM emulator ${s.latencyUs} µs/call, ${config}: /v1/sys/health p99 at ${HEALTH_PER_SECOND}/s during ${what}, vs in-process during the same load`,
          value: m.healthP99,
          baseline: base.healthP99,
          unit: 'ms',
          ratio: base.healthP99 / m.healthP99,
          target: { of: 'value', op: '≤', limit: 20 },
          note: `${m.healthCount} probes, ${m.healthNotOk} not 200; lower is better; ratio = baseline/value`,
        });
        report({
          name: `HSM emulator ${s.latencyUs} µs/call, ${config}: failed requests (non-2xx or errors) during ${what}`,
          value: m.failed,
          baseline: m.total,
          unit: 'requests',
          ratio: m.failed / Math.max(1, m.total),
          target: { of: 'value', op: '≤', limit: 0 },
          note: 'baseline is every request sent; ratio = failed/sent',
        });
      });
    }
  }
} finally {
  for (const s of servers) {
    s.child.kill('SIGTERM');
    s.emu?.close();
  }
  await Promise.all(servers.map((s) => (s.child.exitCode === null ? new Promise((r) => s.child.once('exit', r)) : undefined)));
  await rm(dir, { recursive: true, force: true });
  for (const s of servers) if (s.emu) await rm(dirname(s.emu.controlPath), { recursive: true, force: true });
  await cleanup();
}
