import { randomBytes } from 'node:crypto';
import autocannon from 'autocannon';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Core } from '../src/core/core.js';
import { DEFAULT_PKCS11_LIB } from '../src/pkcs11/module.js';
import { provisionSoftHsmToken } from '../src/pkcs11/softhsm.js';
import { Token, type TokenConfig } from '../src/pkcs11/token.js';
import { InmemBackend } from '../src/storage/inmem.js';

/** A throwaway SoftHSM2 token for one benchmark process (SoftHSM reads SOFTHSM2_CONF at C_Initialize). */
export async function benchToken(): Promise<{ config: TokenConfig; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'keyward-bench-'));
  const pin = randomBytes(6).toString('hex');
  const hsm = await provisionSoftHsmToken(dir, 'bench', pin, randomBytes(6).toString('hex'));
  process.env.SOFTHSM2_CONF = hsm.confPath;
  return {
    config: { lib: DEFAULT_PKCS11_LIB, tokenLabel: 'bench', pin, keyLabel: 'keyward-seal' },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** An initialized, unsealed Core on inmem storage; returns it with its shares. */
export async function unsealedCore(token: Token, shares = 3, threshold = 2): Promise<{ core: Core; keys: string[] }> {
  const core = new Core({ storage: new InmemBackend(), token, generateKey: true, log: pino({ level: 'silent' }) });
  const init = await core.init(shares, threshold);
  const keys = init.keys.map((k) => k.toString('hex'));
  for (const k of keys.slice(0, threshold)) await core.unseal(k, false);
  return { core, keys };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Wall-clock and CPU milliseconds (of every thread in this process, garbage collection included) summed over timed runs. */
export class Elapsed {
  wallMs = 0;
  cpuMs = 0;

  async time(op: () => unknown): Promise<void> {
    const wallStart = performance.now();
    const cpuStart = process.cpuUsage();
    await op();
    const cpu = process.cpuUsage(cpuStart);
    this.cpuMs += (cpu.user + cpu.system) / 1000;
    this.wallMs += performance.now() - wallStart;
  }
}

/** How long the HTTP benches load a server, BENCH_HTTP_SECONDS (5 by default). */
export const HTTP_SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 5);

/** Waits until `url` answers at all (any status), polling every `pollMs`. */
export async function waitForHttp(url: string, timeoutMs = 30_000, pollMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await fetch(url)).status < 600) return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${url} never answered`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }
}

/** An autocannon load of `seconds` (HTTP_SECONDS by default). */
export function load(opts: autocannon.Options, seconds = HTTP_SECONDS): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => autocannon({ duration: seconds, ...opts }, (err, res) => (err ? reject(err) : resolve(res))));
}
