import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FaultPlan } from '../src/pkcs11/fault-injection.js';
import { call, initAndUnseal, type InProcess, startInProcess } from './support/service.js';
import { sideChannel } from './support/softhsm.js';

const FAULTS: Array<{ name: string; plan: (at: number) => FaultPlan }> = [
  ...['CKR_SESSION_HANDLE_INVALID', 'CKR_OBJECT_HANDLE_INVALID', 'CKR_DEVICE_ERROR', 'CKR_GENERAL_ERROR', 'CKR_CRYPTOKI_NOT_INITIALIZED'].map((ckr) => ({
    name: ckr,
    plan: (at: number) => ({ at, ckr }),
  })),
  { name: 'C_Finalize behind our back', plan: (at: number) => ({ at, finalize: true as const }) },
];

describe('HSM fault injection: every PKCS#11 call of reads, writes, rotate (also after a session loss) and rekey, broken in turn', () => {
  let kw: InProcess;
  let base: string;
  let root: string;
  let shares: string[];
  const expected = new Map<string, unknown>();
  /** Cases whose fault fired. */
  let tried = 0;

  const token = () => kw.service.token;

  /** After a case: the service answers without help, every value reads back, and the shares in hand unseal. */
  async function healthy(where: string): Promise<void> {
    for (const [path, value] of expected) {
      const r = await call(base, 'GET', path, { token: root });
      expect(r.status, `${where}: ${path}`).toBe(200);
      expect(r.body.data, `${where}: ${path}`).toEqual(value);
    }
    expect((await call(base, 'GET', 'sys/seal-status')).body.sealed, where).toBe(false);
  }

  /** Runs `op` with every PKCS#11 call recorded; returns the names of the calls it made. */
  async function recorded(op: () => Promise<{ status: number }>, after: (ok: boolean) => Promise<void>): Promise<string[]> {
    const recorder = token().injectFaultsForTesting({ countOnly: true })!;
    const res = await op();
    token().injectFaultsForTesting(undefined);
    expect(res.status).toBeLessThan(300);
    await after(true);
    return recorder.functions;
  }

  /**
   * Runs `op` once per PKCS#11 call it makes, breaking that call with each fault; returns how many calls it makes.
   * A fault recovered from leaves stale key handles that the next op unwraps again, so every case starts after an
   * unfaulted run of the op, then `prepare`: the token is then in the same state and the op makes the same calls every time.
   */
  async function sweep(
    opName: string,
    op: () => Promise<{ status: number }>,
    after: (ok: boolean) => Promise<void>,
    prepare: () => void = () => undefined,
  ): Promise<number> {
    await recorded(op, after);
    prepare();
    const reference = await recorded(op, after);
    expect(reference.length, opName).toBeGreaterThan(0);
    for (const fault of FAULTS) {
      for (let at = 1; at <= reference.length; at++) {
        const where = `${opName}, ${fault.name} at call ${at}/${reference.length} (${reference[at - 1]})`;
        await recorded(op, after);
        prepare();
        const injector = token().injectFaultsForTesting(fault.plan(at))!;
        const res = await op();
        token().injectFaultsForTesting(undefined);
        // The fault hit the call this case names, after the same calls as the reference run.
        expect(injector.functions.slice(0, at - 1), where).toEqual(reference.slice(0, at - 1));
        expect(injector.firedAt, where).toBe(reference[at - 1]);
        tried++;
        // Either it worked, or it failed as a server-side fault with a message; never a 4xx blaming the client.
        expect(res.status < 300 || res.status >= 500, `${where}: ${res.status} ${JSON.stringify(res)}`).toBe(true);
        await after(res.status < 300);
        await healthy(where);
      }
    }
    return reference.length;
  }

  beforeAll(async () => {
    // Hundreds of share requests in a few seconds: lift the per-client key-share rate limit.
    kw = await startInProcess('file', {}, { quorumRateLimit: { burst: 1e9, perSecond: 1e9 } });
    base = kw.service.url;
    ({ keys: shares, root } = await initAndUnseal(base, 3, 2));
    for (let i = 0; i < 3; i++) {
      await call(base, 'PUT', `secret/v${i}`, { token: root, body: { i } });
      expected.set(`secret/v${i}`, { i });
    }
  });
  afterAll(() => kw.service.close());

  it('recovers from every fault, loses nothing, and leaves rotate and rekey whole', async () => {
    const counts: Record<string, number> = {};
    counts.read = await sweep('read', () => call(base, 'GET', 'secret/v1', { token: root }), async () => undefined);

    let n = 0;
    counts.write = await sweep(
      'write',
      async () => {
        const path = `secret/w${n}`;
        const res = await call(base, 'PUT', path, { token: root, body: { n } });
        if (res.status < 300) expected.set(path, { n });
        n++;
        return res;
      },
      async () => undefined,
    );

    let term = (await call(base, 'GET', 'sys/key-status', { token: root })).body.term as number;
    const rotate = () => call(base, 'POST', 'sys/rotate', { token: root });
    const rotated = async (ok: boolean) => {
      const now = (await call(base, 'GET', 'sys/key-status', { token: root })).body.term;
      // Completed (one term more) or left as it was, nothing in between.
      expect(now).toBe(ok ? term + 1 : term);
      term = now;
    };
    counts.rotate = await sweep('rotate', rotate, rotated);
    // With its sessions closed behind its back, a rotate climbs the recovery ladder (new session, login, the seal
    // key found again, the root key unwrapped again) before it completes: each of those calls is broken in turn too.
    const { p11, slot } = sideChannel(kw.token);
    counts.rotateAfterSessionLoss = await sweep('rotate after its sessions were closed', rotate, rotated, () => p11.C_CloseAllSessions(slot));

    counts.rekey = await sweep(
      'rekey',
      async () => {
        const init = await call(base, 'PUT', 'sys/rekey/init', { body: { secret_shares: 3, secret_threshold: 2 } });
        await call(base, 'PUT', 'sys/rekey/update', { body: { key: shares[0], nonce: init.body.nonce } });
        const done = await call(base, 'PUT', 'sys/rekey/update', { body: { key: shares[1], nonce: init.body.nonce } });
        if (done.status < 300) shares = done.body.keys;
        // The switch follows the reply: the seal status waits for it, so its calls are this op's too. A fault
        // there leaves the rekey pending, and the new shares in hand finish it at the unseal below.
        await call(base, 'GET', 'sys/seal-status');
        return done;
      },
      async () => {
        await call(base, 'DELETE', 'sys/rekey/init');
        // Exactly the shares we hold (old ones after a failure, new ones after success) unseal.
        expect((await call(base, 'PUT', 'sys/seal', { token: root })).status).toBe(204);
        for (const key of shares.slice(1, 3)) await call(base, 'PUT', 'sys/unseal', { body: { key } });
      },
    );

    console.log(`HSM fault injection: ${tried} cases (${FAULTS.length} faults × PKCS#11 calls: ${JSON.stringify(counts)}), 0 failures`);
    // The calls each op makes, so the number of cases is exact: a change here changes what the sweep covers.
    expect(counts).toEqual({ read: 2, write: 2, rotate: 6, rotateAfterSessionLoss: 15, rekey: 19 });
    expect(tried).toBe(FAULTS.length * 44);
  }, 600_000);
});
