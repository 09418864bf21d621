// The HTTP KV v2 read floor: a bare fastify route that does the token work keyward does per KV v2
// read and nothing else, then returns byte for byte the JSON keyward returned. Per request, two
// AES-256-GCM decryptions (C_DecryptInit + C_Decrypt each), of ciphertexts the sizes of keyward's
// stored metadata and version entries for the secret, with their storage paths as AAD, on an
// AES-256 session-object key in a logged-in read-write session on the same SoftHSM2 token,
// synchronously on the event loop: keyward's path on an in-process module.
//
//
// With --essentials it is a calibration rather than a floor: the same route doing, besides, only
// what any key service must do on such a read: look the client's token up by its HMAC, decode the
// two decrypted entries (JSON documents of the same sizes) and encode the reply from them. Its
// ratio to the floor shows how much of the floor's throughput that work alone costs.
//
// node floor-server.mjs <port> <payload.json> <entries.json> <pkcs11 lib> <token label> [--essentials]
//   entries.json: [{ "path": storage path (the AAD), "sealedBytes": ciphertext ‖ tag length }, ...]
//   the user PIN comes in FLOOR_PIN, the client token (--essentials) in FLOOR_TOKEN; SoftHSM2
//   reads SOFTHSM2_CONF from the environment.
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import pkcs11js from 'pkcs11js';

const [port, payloadFile, entriesFile, lib, tokenLabel, mode] = process.argv.slice(2);
const essentials = mode === '--essentials';
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

// Sealed once at start under the key: plaintexts of the entries' sizes (random bytes, or for
// --essentials JSON documents: the metadata and the version's data), a nonce each.
const plaintexts = essentials ? entryDocuments(JSON.parse(payload).data) : entries.map(({ sealedBytes }) => randomBytes(sealedBytes - TAG_BYTES));
const sealed = entries.map(({ path, sealedBytes }, i) => {
  const iv = randomBytes(12);
  const plaintext = plaintexts[i];
  p11.C_EncryptInit(session, gcm(iv, Buffer.from(path)), key);
  const value = Buffer.from(p11.C_Encrypt(session, plaintext, Buffer.alloc(sealedBytes)));
  if (value.length !== sealedBytes) throw new Error(`sealed ${value.length} bytes, wanted ${sealedBytes}`);
  return { path, iv, value };
});

function decrypt({ path, iv, value }) {
  p11.C_DecryptInit(session, gcm(iv, Buffer.from(path)), key);
  return p11.C_Decrypt(session, value, Buffer.allocUnsafe(value.length));
}

function decryptAll() {
  for (const entry of sealed) decrypt(entry);
}
decryptAll(); // a tag failure here would make every figure meaningless

/** A metadata document listing the payload's version, padded to the stored metadata's size, and the version's data. */
function entryDocuments({ data, metadata }) {
  const version = Buffer.from(JSON.stringify(data));
  if (version.length !== entries[1].sealedBytes - TAG_BYTES) throw new Error(`the version entry holds ${entries[1].sealedBytes - TAG_BYTES} bytes, its data ${version.length}`);
  const { version: current, custom_metadata, ...versionMeta } = metadata;
  const doc = { current_version: current, custom_metadata, versions: { [current]: versionMeta }, pad: '' };
  doc.pad = 'x'.repeat(entries[0].sealedBytes - TAG_BYTES - Buffer.byteLength(JSON.stringify(doc)));
  return [Buffer.from(JSON.stringify(doc)), version];
}

const app = Fastify({ logger: false });
if (essentials) {
  const salt = randomBytes(32);
  const tokenHash = (token) => createHmac('sha256', salt).update(token ?? '').digest('hex');
  const tokens = new Map([[tokenHash(process.env.FLOOR_TOKEN), { policies: ['root'] }]]);
  app.get('/v1/kv/data/app', async (req, reply) => {
    if (!tokens.get(tokenHash(req.headers['x-vault-token']))) return reply.code(403).send({ errors: ['permission denied'] });
    const [meta, data] = sealed.map((entry) => JSON.parse(decrypt(entry).toString('utf8')));
    const { custom_metadata, current_version: version } = meta;
    const body = { request_id: randomUUID(), lease_id: '', renewable: false, lease_duration: 0, data: { data, metadata: { ...meta.versions[version], custom_metadata, version } }, wrap_info: null, warnings: null, auth: null, mount_type: 'kv' };
    return reply.type('application/json').send(JSON.stringify(body));
  });
} else {
  app.get('/v1/kv/data/app', async (_req, reply) => {
    decryptAll();
    return reply.type('application/json').send(payload);
  });
}
await app.listen({ host: '127.0.0.1', port: Number(port) });
console.log('ready');
