// Records the PKCS#11 calls an operation makes, by name, under keyward's Token and any raw loop
// alike: the token's own counting hook misses the calls its key release makes directly.
import pkcs11js from 'pkcs11js';

type NativeMethod = (...args: unknown[]) => unknown;

let installed = false;
let recording: string[] | undefined;

/**
 * Wraps every C_* method of pkcs11js's native class. pkcs11js copies the methods onto each
 * instance when it is made, so call this before anything in the process opens the module.
 */
export function installCallRecorder(): void {
  if (installed) return;
  installed = true;
  const native = Object.getPrototypeOf(pkcs11js.PKCS11.prototype) as Record<string, unknown>;
  for (const name of Object.getOwnPropertyNames(native)) {
    const method = native[name];
    if (!name.startsWith('C_') || typeof method !== 'function') continue;
    native[name] = function (this: unknown, ...args: unknown[]) {
      recording?.push(name);
      return (method as NativeMethod).apply(this, args);
    };
  }
}

/** The PKCS#11 calls `op` made, in order. */
export async function recordCalls(op: () => Promise<unknown>): Promise<string[]> {
  if (!installed) throw new Error('installCallRecorder() first');
  const calls: string[] = [];
  recording = calls;
  try {
    await op();
  } finally {
    recording = undefined;
  }
  if (calls.length === 0) throw new Error('no PKCS#11 calls recorded: was the module opened before installCallRecorder()?');
  return calls;
}
