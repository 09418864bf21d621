import { afterAll } from 'vitest';
import { initAndUnseal, type InProcess, startInProcess } from './support/service.js';
import { describeTransit } from './support/transit-suite.js';

let kw: InProcess | undefined;
let clock = Date.now();

describeTransit('SoftHSM2', async () => {
  kw = await startInProcess('file', {}, { now: () => clock });
  const base = kw.service.url;
  const { root } = await initAndUnseal(base, 1, 1);
  return { base, root, advance: (ms) => (clock += ms), token: kw.token };
});

afterAll(async () => kw?.service.close());
