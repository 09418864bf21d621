import { endianness } from 'node:os';
import pkcs11js from 'pkcs11js';
import { asTokenError } from './errors.js';

/** Handles of up to `max` objects matching `template`. */
export function findObjects(p11: pkcs11js.PKCS11, s: Buffer, template: pkcs11js.Template, max = 10): Buffer[] {
  p11.C_FindObjectsInit(s, template);
  try {
    return p11.C_FindObjects(s, max);
  } finally {
    p11.C_FindObjectsFinal(s);
  }
}

/** An attribute's value, or undefined when the object has no such attribute. */
export function optionalAttribute(p11: pkcs11js.PKCS11, s: Buffer, handle: Buffer, type: number): Buffer | undefined {
  try {
    return p11.C_GetAttributeValue(s, handle, [{ type }])[0]?.value as Buffer | undefined;
  } catch (err) {
    if (asTokenError(err, 'C_GetAttributeValue').ckr === 'CKR_ATTRIBUTE_TYPE_INVALID') return undefined;
    throw err;
  }
}

/** A CK_BBOOL attribute; an object without it has it false. */
export function flag(p11: pkcs11js.PKCS11, s: Buffer, handle: Buffer, type: number): boolean {
  return optionalAttribute(p11, s, handle, type)?.[0] === 1;
}

/** A CK_ULONG attribute (native width and byte order), or undefined when the object has none. */
export function ulong(p11: pkcs11js.PKCS11, s: Buffer, handle: Buffer, type: number): number | undefined {
  const value = optionalAttribute(p11, s, handle, type);
  if (!value) return undefined;
  const le = endianness() === 'LE';
  return value.length === 8 ? Number(le ? value.readBigUInt64LE(0) : value.readBigUInt64BE(0)) : le ? value.readUInt32LE(0) : value.readUInt32BE(0);
}
