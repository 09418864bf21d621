// One thread of the session pool (session-pool.ts): it runs AES-GCM calls on the session it is
// given, so that a network HSM's round trips block this thread and not the event loop. It shares
// the process's PKCS#11 module (C_Initialize answers ALREADY_INITIALIZED), its login and its key
// handles. Plain JavaScript so that it runs in a bare worker under tsx, vitest and the compiled
// dist/ alike; it depends on nothing but pkcs11js.
//
// It never returns to an event loop: it sleeps in Atomics.wait until the pool raises its flag,
// then takes its call with receiveMessageOnPort. Waking an idle event loop for every call cost
// about a third more CPU per call. The call format is CALL_LAYOUT in session-pool.ts.
import { receiveMessageOnPort, workerData } from 'node:worker_threads';
import pkcs11js from 'pkcs11js';

const TAG_BYTES = 16;
const OP_ENCRYPT = 1;
const STATUS_OK = 0;
const STATUS_FAILED = 1;
const STATUS_TAG_FAILURE = 2;
const TAG_FAILURES = new Set([pkcs11js.CKR_GENERAL_ERROR, pkcs11js.CKR_ENCRYPTED_DATA_INVALID, pkcs11js.CKR_ENCRYPTED_DATA_LEN_RANGE]);
// A zero-length Buffer.alloc(0) reaches the module as NULL; a zero-length view of a real buffer does not.
const EMPTY = Buffer.alloc(1).subarray(0, 0);

const { port, flag, lib } = workerData;
const wake = new Int32Array(flag);
const p11 = new pkcs11js.PKCS11();
p11.load(lib);
try {
  p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
} catch (err) {
  if (err.code !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw err;
}

function sessionAlive(session) {
  try {
    p11.C_GetSessionInfo(session);
    return true;
  } catch {
    return false;
  }
}

/** Runs the call described in `ab` and writes the outcome into its header and output area. */
function run(ab) {
  const header = new Int32Array(ab, 0, 8);
  const [op, ivBytes, aadBytes, inBytes] = header;
  const bytes = Buffer.from(ab);
  let at = 32;
  const take = (n) => bytes.subarray(at, (at += n));
  const session = take(8);
  const key = take(8);
  const iv = take(ivBytes);
  const aad = take(aadBytes);
  const input = take(inBytes);
  const out = take(inBytes + TAG_BYTES);
  const mechanism = {
    mechanism: pkcs11js.CKM_AES_GCM,
    parameter: { type: pkcs11js.CK_PARAMS_GCM, iv, ivBits: iv.length * 8, aad, tagBits: TAG_BYTES * 8 },
  };
  let inOperation = false;
  try {
    if (op === OP_ENCRYPT) {
      p11.C_EncryptInit(session, mechanism, key);
      inOperation = true;
      header[4] = p11.C_Encrypt(session, input.length ? input : EMPTY, out).length;
    } else {
      p11.C_DecryptInit(session, mechanism, key);
      inOperation = true;
      header[4] = p11.C_Decrypt(session, input, out).length;
    }
    header[0] = STATUS_OK;
  } catch (err) {
    const code = typeof err.code === 'number' ? err.code : -1;
    header[0] = op !== OP_ENCRYPT && inOperation && TAG_FAILURES.has(code) && sessionAlive(session) ? STATUS_TAG_FAILURE : STATUS_FAILED;
    header[5] = code;
    header[6] = inOperation ? 1 : 0;
  }
  // The plaintext of an encryption is not left behind in this thread's copy.
  if (op === OP_ENCRYPT) input.fill(0);
}

port.postMessage('ready');
for (;;) {
  Atomics.wait(wake, 0, 0);
  Atomics.store(wake, 0, 0);
  for (let call = receiveMessageOnPort(port); call; call = receiveMessageOnPort(port)) {
    run(call.message);
    port.postMessage(call.message, [call.message]);
  }
}
