// The HTTP KV v2 read floor: a bare fastify route that does the token work keyward does per KV v2
// read and nothing else, then returns byte for byte the JSON keyward returned. Per request, two
// AES-256-GCM decryptions (C_DecryptInit + C_Decrypt each), of ciphertexts the sizes of keyward's
// stored metadata and version entries for the secret, with their storage paths as AAD, on an
// AES-256 session-object key in a logged-in read-write session on the same SoftHSM2 token,
// synchronously on the event loop: keyward's path on an in-process module.
//
// node floor-server.mjs <port> <payload.json> <entries.json> <pkcs11 lib> <token label>
//   entries.json: [{ "path": storage path (the AAD), "sealedBytes": ciphertext ‖ tag length }, ...]
//   the user PIN comes in FLOOR_PIN; SoftHSM2 reads SOFTHSM2_CONF from the environment.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import pkcs11js from 'pkcs11js';

const [port, payloadFile, entriesFile, lib, tokenLabel] = process.argv.slice(2);
// Plain JavaScript, as bare-server.mjs, so nothing but the route's own work is measured.
const payload = readFileSync(payloadFile, 'utf8');
const entries = JSON.parse(readFileSync(entriesFile, 'utf8'));
const TAG_BYTES = 16;

const p11 = new pkcs11js.PKCS11();
p11.load(lib);
p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === tokenLabel);
if (!slot) throw new Error(`no token labelled "${tokenLabel}"`);
const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
p11.C_Login(session, pkcs11js.CKU_USER, process.env.FLOOR_PIN);
// The attributes of keyward's working keys (src/pkcs11/templates.ts), generated rather than unwrapped.
const key = p11.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
  { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
  { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
  { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
  { type: pkcs11js.CKA_TOKEN, value: false },
  { type: pkcs11js.CKA_PRIVATE, value: true },
  { type: pkcs11js.CKA_SENSITIVE, value: true },
  { type: pkcs11js.CKA_EXTRACTABLE, value: false },
  { type: pkcs11js.CKA_ENCRYPT, value: true },
  { type: pkcs11js.CKA_DECRYPT, value: true },
]);
const gcm = (iv, aad) => ({ mechanism: pkcs11js.CKM_AES_GCM, parameter: { type: pkcs11js.CK_PARAMS_GCM, iv, ivBits: 96, aad, tagBits: TAG_BYTES * 8 } });

// Sealed once at start under the key: random plaintexts of the entries' sizes, a nonce each.
const sealed = entries.map(({ path, sealedBytes }) => {
  const iv = randomBytes(12);
  const plaintext = randomBytes(sealedBytes - TAG_BYTES);
  p11.C_EncryptInit(session, gcm(iv, Buffer.from(path)), key);
  const value = Buffer.from(p11.C_Encrypt(session, plaintext, Buffer.alloc(sealedBytes)));
  if (value.length !== sealedBytes) throw new Error(`sealed ${value.length} bytes, wanted ${sealedBytes}`);
  return { path, iv, value };
});

function decryptAll() {
  for (const { path, iv, value } of sealed) {
    p11.C_DecryptInit(session, gcm(iv, Buffer.from(path)), key);
    p11.C_Decrypt(session, value, Buffer.allocUnsafe(value.length));
  }
}
decryptAll(); // a tag failure here would make every figure meaningless

const app = Fastify({ logger: false });
app.get('/v1/kv/data/app', async (_req, reply) => {
  decryptAll();
  return reply.type('application/json').send(payload);
});
await app.listen({ host: '127.0.0.1', port: Number(port) });
console.log('ready');
