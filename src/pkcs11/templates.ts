import pkcs11js from 'pkcs11js';
import { type AsymmetricKeyType, CKK_OF_KIND, curveOf, ED25519_PARAMS, KEY_TYPES, type KeyType, modulusBitsOf } from './key-types.js';

/** A session object (gone with its session) that only a logged-in user sees and nobody reads the secret of. */
const sensitiveSessionObject = [
  { type: pkcs11js.CKA_TOKEN, value: false },
  { type: pkcs11js.CKA_PRIVATE, value: true },
  { type: pkcs11js.CKA_SENSITIVE, value: true },
];

const secretAes = [
  { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
  { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
];

/** The seal key K: a token object that never leaves the HSM and only wraps, unwraps, encrypts and decrypts. */
export function sealKeyTemplate(label: string): pkcs11js.Template {
  return [
    ...secretAes,
    { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
    { type: pkcs11js.CKA_LABEL, value: label },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_ENCRYPT, value: true },
    { type: pkcs11js.CKA_DECRYPT, value: true },
    { type: pkcs11js.CKA_WRAP, value: true },
    { type: pkcs11js.CKA_UNWRAP, value: true },
  ];
}

/**
 * A key that exists only long enough to be wrapped by K: sensitive, but extractable so C_WrapKey
 * accepts it. It is destroyed right after, and the working copy is unwrapped non-extractable.
 */
export function wrappableKeyTemplate(): pkcs11js.Template {
  return [
    ...secretAes,
    { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
    ...sensitiveSessionObject,
    { type: pkcs11js.CKA_EXTRACTABLE, value: true },
    { type: pkcs11js.CKA_ENCRYPT, value: true },
    { type: pkcs11js.CKA_DECRYPT, value: true },
  ];
}

/**
 * A key entering the token by key transport (C_UnwrapKey with the transport key): like a
 * wrappable key, sensitive and extractable only so that K can wrap it, with its length taken from
 * what is unwrapped.
 */
export function transportedKeyTemplate(): pkcs11js.Template {
  return wrappableKeyTemplate().filter((a) => a.type !== pkcs11js.CKA_VALUE_LEN);
}

/** A key-encryption key entering by key transport: used only to wrap (the key-wrap known-answer test). */
export function transportedWrappingKeyTemplate(): pkcs11js.Template {
  return [
    ...secretAes,
    ...sensitiveSessionObject,
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_WRAP, value: true },
  ];
}

/** The public half of the key-transport pair: only its modulus and exponent are read, to encrypt to it in software. */
export function transportPublicTemplate(): pkcs11js.Template {
  return [
    { type: pkcs11js.CKA_TOKEN, value: false },
    { type: pkcs11js.CKA_WRAP, value: true },
    { type: pkcs11js.CKA_MODULUS_BITS, value: 2048 },
    { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
  ];
}

/** The private half: never leaves the token and can only unwrap. */
export function transportPrivateTemplate(): pkcs11js.Template {
  return [
    ...sensitiveSessionObject,
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_UNWRAP, value: true },
    { type: pkcs11js.CKA_DECRYPT, value: false },
  ];
}

/** The working copy of a root or term key: a session object that can encrypt and decrypt and nothing else. */
export function workingKeyTemplate(): pkcs11js.Template {
  return [
    ...secretAes,
    ...sensitiveSessionObject,
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_ENCRYPT, value: true },
    { type: pkcs11js.CKA_DECRYPT, value: true },
  ];
}

/**
 * The working copy of a key of `type` unwrapped from its blob: a session object, sensitive and
 * never extractable, that does what the type is for and nothing else (SoftHSM2 defaults a private
 * key's CKA_DECRYPT and CKA_UNWRAP to true: they are turned off here).
 */
export function workingTemplateOf(type: KeyType): pkcs11js.Template {
  const kind = KEY_TYPES[type].kind;
  if (kind === 'aes') return workingKeyTemplate();
  const common = [
    { type: pkcs11js.CKA_KEY_TYPE, value: CKK_OF_KIND[kind] },
    ...sensitiveSessionObject,
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_SIGN, value: true },
    { type: pkcs11js.CKA_DECRYPT, value: false },
    { type: pkcs11js.CKA_UNWRAP, value: false },
    { type: pkcs11js.CKA_DERIVE, value: false },
  ];
  if (kind !== 'hmac') return [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, ...common];
  // C_Sign computes an HMAC, C_Verify checks one.
  return [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    ...common,
    { type: pkcs11js.CKA_VERIFY, value: true },
    { type: pkcs11js.CKA_ENCRYPT, value: false },
    { type: pkcs11js.CKA_WRAP, value: false },
  ];
}

/** An HMAC key that exists only long enough to be wrapped by K, like wrappableKeyTemplate's AES key. */
export function wrappableHmacKeyTemplate(bytes: number): pkcs11js.Template {
  return [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
    { type: pkcs11js.CKA_VALUE_LEN, value: bytes },
    ...sensitiveSessionObject,
    { type: pkcs11js.CKA_EXTRACTABLE, value: true },
  ];
}

/** The public half of a generated key pair: its curve or size; it is read once, then destroyed. */
export function keyPairPublicTemplate(type: AsymmetricKeyType): pkcs11js.Template {
  const kind = KEY_TYPES[type].kind;
  const shape =
    kind === 'rsa'
      ? [
          { type: pkcs11js.CKA_MODULUS_BITS, value: modulusBitsOf(type) },
          { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
        ]
      : [{ type: pkcs11js.CKA_EC_PARAMS, value: kind === 'ed25519' ? ED25519_PARAMS : curveOf(type).params }];
  return [{ type: pkcs11js.CKA_TOKEN, value: false }, { type: pkcs11js.CKA_VERIFY, value: true }, ...shape];
}

/** The private half: sensitive, extractable only so that K can wrap it; destroyed right after. */
export function wrappablePrivateKeyTemplate(): pkcs11js.Template {
  return [
    ...sensitiveSessionObject,
    { type: pkcs11js.CKA_EXTRACTABLE, value: true },
    { type: pkcs11js.CKA_SIGN, value: true },
  ];
}

/** A public key brought into the token to verify a signature over a digest, then destroyed. */
export function verificationKeyTemplate(ckk: number, material: pkcs11js.Template): pkcs11js.Template {
  return [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: ckk },
    { type: pkcs11js.CKA_TOKEN, value: false },
    { type: pkcs11js.CKA_VERIFY, value: true },
    ...material,
  ];
}
