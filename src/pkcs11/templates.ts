import pkcs11js from 'pkcs11js';

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
export function wrappableKeyTemplate(value?: Buffer): pkcs11js.Template {
  return [
    ...secretAes,
    ...(value ? [{ type: pkcs11js.CKA_VALUE, value }] : [{ type: pkcs11js.CKA_VALUE_LEN, value: 32 }]),
    { type: pkcs11js.CKA_TOKEN, value: false },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: true },
    { type: pkcs11js.CKA_ENCRYPT, value: true },
    { type: pkcs11js.CKA_DECRYPT, value: true },
  ];
}

/** The working copy of a root or term key: a session object that can encrypt and decrypt and nothing else. */
export function workingKeyTemplate(): pkcs11js.Template {
  return [
    ...secretAes,
    { type: pkcs11js.CKA_TOKEN, value: false },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_ENCRYPT, value: true },
    { type: pkcs11js.CKA_DECRYPT, value: true },
  ];
}
