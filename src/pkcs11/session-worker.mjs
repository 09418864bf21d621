// One thread of the session pool (session-pool.ts): it runs AES-GCM calls on the session it is
// given, so that a network HSM's round trips block this thread and not the event loop. It shares
// the process's PKCS#11 module (C_Initialize answers ALREADY_INITIALIZED), its login and its key
// handles. Plain JavaScript so that it runs in a bare worker under tsx, vitest and the compiled
// dist/ alike; it depends on nothing but pkcs11js.
import { parentPort, workerData } from 'node:worker_threads';
import pkcs11js from 'pkcs11js';

const TAG_BYTES = 16;
const TAG_FAILURES = new Set(['CKR_GENERAL_ERROR', 'CKR_ENCRYPTED_DATA_INVALID', 'CKR_ENCRYPTED_DATA_LEN_RANGE']);
// A zero-length Buffer.alloc(0) reaches the module as NULL; a zero-length view of a real buffer does not.
const EMPTY = Buffer.alloc(1).subarray(0, 0);

const p11 = new pkcs11js.PKCS11();
p11.load(workerData.lib);
try {
  p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
} catch (err) {
  if (!/CKR_CRYPTOKI_ALREADY_INITIALIZED/.test(String(err && err.message))) throw err;
}

function ckrOf(err) {
  const m = /CKR_[A-Z_0-9]+/.exec(String(err && err.message));
  return m ? m[0] : `CKR_0x${Number(err && err.code).toString(16)}`;
}

function sessionAlive(session) {
  try {
    p11.C_GetSessionInfo(session);
    return true;
  } catch {
    return false;
  }
}

/**
 * A request is one transferred ArrayBuffer: session handle (8) ‖ key handle (8) ‖ iv ‖ aad ‖ input,
 * with the lengths beside it. The reply transfers the output's own ArrayBuffer back.
 */
function run(m) {
  const buf = Buffer.from(m.data);
  let at = 0;
  const take = (n) => buf.subarray(at, (at += n));
  const session = take(8);
  const key = take(8);
  const iv = take(m.ivBytes);
  const aad = take(m.aadBytes);
  const input = take(buf.length - at);
  const mechanism = {
    mechanism: pkcs11js.CKM_AES_GCM,
    parameter: { type: pkcs11js.CK_PARAMS_GCM, iv, ivBits: iv.length * 8, aad, tagBits: TAG_BYTES * 8 },
  };
  let fn = m.encrypt ? 'C_EncryptInit' : 'C_DecryptInit';
  try {
    if (m.encrypt) {
      p11.C_EncryptInit(session, mechanism, key);
      fn = 'C_Encrypt';
      const out = Buffer.alloc(input.length + TAG_BYTES);
      const result = p11.C_Encrypt(session, input.length ? input : EMPTY, out);
      input.fill(0);
      return { id: m.id, out: out.buffer, length: result.length, offset: out.byteOffset };
    }
    p11.C_DecryptInit(session, mechanism, key);
    fn = 'C_Decrypt';
    // Never empty: a NULL output would turn C_Decrypt into a length query.
    const out = Buffer.alloc(Math.max(input.length, 1));
    const result = p11.C_Decrypt(session, input, out);
    return { id: m.id, out: out.buffer, length: result.length, offset: out.byteOffset };
  } catch (err) {
    const ckr = ckrOf(err);
    input.fill(0);
    const tagFailure = fn === 'C_Decrypt' && TAG_FAILURES.has(ckr) && sessionAlive(session);
    return { id: m.id, ckr, code: Number(err && err.code) || -1, fn, tagFailure };
  }
}

parentPort.on('message', (m) => {
  const reply = run(m);
  parentPort.postMessage(reply, reply.out ? [reply.out] : []);
});
parentPort.postMessage({ ready: true });
