// One thread of the session pool (session-pool.ts): it runs AES-GCM and signing calls on the session it is
// given, so that a network HSM's round trips block this thread and not the event loop. It shares
// the process's PKCS#11 module (C_Initialize answers ALREADY_INITIALIZED), its login and its key
// handles. Plain JavaScript so that it runs in a bare worker under tsx, vitest and the compiled
// dist/ alike; it depends on nothing but pkcs11js.
//
// A call is written into one of the thread's two SharedArrayBuffer mailboxes (CALL_LAYOUT in
// session-pool.ts); the thread sleeps in Atomics.wait on its bell, runs the call, writes the outcome
// back and marks it done. It rings the pool's doorbell (one message) only if nobody rang since the pool last
// looked: under load one message reports many calls. It never returns to an event loop, and
// nothing is allocated or copied across threads per call: waking an idle event loop, transferring
// a buffer and sending a message for every call cost more CPU than the call itself.
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { receiveMessageOnPort, workerData } from 'node:worker_threads';
import pkcs11js from 'pkcs11js';

const WORDS = 8;
const HANDLES_AT = 32;
const DATA_AT = 48;
const TAG_BYTES = 16;
const STATE_CALL = 1;
const STATE_DONE = 2;
const MESSAGE_READY = 1;
const MESSAGE_DOORBELL = 0;
const OP_ENCRYPT = 1;
const OP_SIGN = 3;
const OP_NEW_MAILBOX = 0x100;
const STATUS_OK = 0;
const STATUS_FAILED = 1;
const STATUS_TAG_FAILURE = 2;
const TAG_FAILURES = new Set([pkcs11js.CKR_GENERAL_ERROR, pkcs11js.CKR_ENCRYPTED_DATA_INVALID, pkcs11js.CKR_ENCRYPTED_DATA_LEN_RANGE]);
// A zero-length Buffer.alloc(0) reaches the module as NULL; a zero-length view of a real buffer does not.
const EMPTY = Buffer.alloc(1).subarray(0, 0);

const { port, lib, nice } = workerData;
// Below the event loop's priority: under full load the threads' wake-ups must not starve the loop,
// which serves health checks and lease renewals. Linux names a thread's id in /proc/thread-self.
if (nice) {
  try {
    setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), nice);
  } catch {
    // Elsewhere the threads keep the process's priority.
  }
}
const doorbell = new Int32Array(workerData.doorbell);
const p11 = new pkcs11js.PKCS11();
p11.load(lib);
try {
  p11.C_Initialize(workerData.initializeOptions);
} catch (err) {
  if (err.code !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw err;
}

/** A mailbox's views: its header words, its bytes, and the handles at their fixed places. */
function lane(sab) {
  const bytes = Buffer.from(sab);
  return {
    words: new Int32Array(sab, 0, WORDS),
    bytes,
    session: bytes.subarray(HANDLES_AT, HANDLES_AT + 8),
    key: bytes.subarray(HANDLES_AT + 8, HANDLES_AT + 16),
  };
}
const lanes = workerData.mailboxes.map(lane);
const bell = new Int32Array(workerData.bell);

function sessionAlive(session) {
  try {
    p11.C_GetSessionInfo(session);
    return true;
  } catch {
    return false;
  }
}

/** The mechanism of a signing call: its number, and CK_RSA_PKCS_PSS_PARAMS when `params` holds them (encodeSignParameters). */
function signMechanism(type, params) {
  if (!params.length) return { mechanism: type };
  return { mechanism: type, parameter: { type: pkcs11js.CK_PARAMS_RSA_PSS, hashAlg: params.readUInt32LE(0), mgf: params.readUInt32LE(4), saltLen: params.readUInt32LE(8) } };
}

/** Runs the call in a lane's mailbox and writes its outcome (status, output length, CKR, where it failed). */
function run({ words, bytes, session, key }) {
  const op = words[1];
  const ivAt = DATA_AT;
  const aadAt = ivAt + words[2];
  const inAt = aadAt + words[3];
  const outAt = inAt + words[4];
  const iv = bytes.subarray(ivAt, aadAt);
  const aad = bytes.subarray(aadAt, inAt);
  const input = bytes.subarray(inAt, outAt);
  const out = bytes.subarray(outAt, outAt + words[5]);
  let inOperation = false;
  try {
    if (op === OP_SIGN) {
      // iv holds the mechanism's parameters; the signature (or HMAC) goes to out.
      p11.C_SignInit(session, signMechanism(words[6] >>> 0, iv), key);
      inOperation = true;
      words[5] = p11.C_Sign(session, input.length ? input : EMPTY, out).length;
    } else {
      const mechanism = {
        mechanism: pkcs11js.CKM_AES_GCM,
        parameter: { type: pkcs11js.CK_PARAMS_GCM, iv, ivBits: iv.length * 8, aad, tagBits: TAG_BYTES * 8 },
      };
      if (op === OP_ENCRYPT) {
        p11.C_EncryptInit(session, mechanism, key);
        inOperation = true;
        words[5] = p11.C_Encrypt(session, input.length ? input : EMPTY, out).length;
      } else {
        p11.C_DecryptInit(session, mechanism, key);
        inOperation = true;
        words[5] = p11.C_Decrypt(session, input, out).length;
      }
    }
    words[1] = STATUS_OK;
  } catch (err) {
    const code = typeof err.code === 'number' ? err.code : -1;
    words[1] = op !== OP_ENCRYPT && op !== OP_SIGN && inOperation && TAG_FAILURES.has(code) && sessionAlive(session) ? STATUS_TAG_FAILURE : STATUS_FAILED;
    words[6] = code;
    words[7] = inOperation ? 1 : 0;
  }
  // The plaintext of an encryption is not left behind in the mailbox.
  if (op === OP_ENCRYPT) input.fill(0);
}

port.postMessage(MESSAGE_READY);
// The two lanes are filled and run in turn, so calls run in the order they were given; the pool
// fills the second while the first runs, and the thread goes on to it without sleeping.
let next = 0;
for (;;) {
  const rung = Atomics.load(bell, 0);
  let current = lanes[next];
  if (Atomics.load(current.words, 0) !== STATE_CALL) {
    // Asleep is said before sleeping: a call given after the look above changes word 0, and the
    // wait then returns at once, whether or not the pool saw this flag and notified.
    Atomics.store(bell, 1, 1);
    Atomics.wait(bell, 0, rung);
    Atomics.store(bell, 1, 0);
    continue;
  }
  // A mailbox sent with the call (the old one says so) replaces the lane's before the call is read.
  if (current.words[1] & OP_NEW_MAILBOX) {
    current = lanes[next] = lane(receiveMessageOnPort(port).message);
    if (Atomics.load(current.words, 0) !== STATE_CALL) throw new Error('a new mailbox arrived without its call');
  }
  run(current);
  Atomics.store(current.words, 0, STATE_DONE);
  if (Atomics.exchange(doorbell, 0, 1) === 0) port.postMessage(MESSAGE_DOORBELL);
  next ^= 1;
}
