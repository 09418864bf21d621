import pkcs11js from 'pkcs11js';

/**
 * Test-only: which PKCS#11 call to break and how. Calls are counted from when the plan is set;
 * the `at`-th one either throws the given CKR (as the module would) or finalizes the module
 * first and then runs, so it and what follows meet a module that is gone.
 */
export type FaultPlan = { at: number; ckr: string } | { at: number; finalize: true } | { countOnly: true };

const CKR_CODES: Record<string, number> = {
  CKR_GENERAL_ERROR: 0x05,
  CKR_DEVICE_ERROR: 0x30,
  CKR_OBJECT_HANDLE_INVALID: 0x82,
  CKR_SESSION_HANDLE_INVALID: 0xb3,
  CKR_CRYPTOKI_NOT_INITIALIZED: 0x190,
};

export class FaultInjector {
  calls = 0;
  /** The name of every call, in order: what a counting run made, for faulted runs to be compared with. */
  readonly functions: string[] = [];
  /** The PKCS#11 function the plan broke, once it has: a plan whose op made fewer calls never fires. */
  firedAt: string | undefined;

  constructor(readonly plan: FaultPlan) {}

  /** The module with every C_* call counted and, at the planned one, broken. */
  wrap(p11: pkcs11js.PKCS11): pkcs11js.PKCS11 {
    return new Proxy(p11, {
      get: (target, prop, receiver) => {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof prop !== 'string' || !prop.startsWith('C_') || typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          this.calls++;
          this.functions.push(prop);
          const plan = this.plan;
          if ('at' in plan && this.calls === plan.at) {
            this.firedAt = prop;
            if ('finalize' in plan) {
              try {
                target.C_Finalize();
              } catch {
                // Already finalized.
              }
            } else {
              const code = CKR_CODES[plan.ckr] ?? 0x05;
              throw new pkcs11js.Pkcs11Error(`${plan.ckr}:${code}`, code, prop);
            }
          }
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  }
}
