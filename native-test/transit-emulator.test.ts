import { afterAll } from 'vitest';
import type { SealConfigBlock } from '../src/config/config.js';
import { HsmEmulator } from './support/hsm-emulator.js';
import { initAndUnseal, type InProcess, startInProcess } from './support/service.js';
import { describeTransit } from './support/transit-suite.js';

let kw: InProcess | undefined;
let emu: HsmEmulator | undefined;
let clock = Date.now();

// The emulator forwards to SoftHSM2 with a round trip before every call and a session cap, so
// transit's calls go through a session pool as on a network HSM.
describeTransit('the HSM emulator (200 µs per call, max_parallel 4, 8 sessions)', async () => {
  emu = (await HsmEmulator.create({ latencyUs: 200, maxSessions: 8 })).useInProcess();
  kw = await startInProcess('inmem', { seal: { lib: emu.lib, maxParallel: 4 } as SealConfigBlock }, { now: () => clock });
  const base = kw.service.url;
  const { root } = await initAndUnseal(base, 1, 1);
  return { base, root, advance: (ms) => (clock += ms), token: kw.token };
});

afterAll(async () => {
  await kw?.service.close();
  emu?.close();
});
