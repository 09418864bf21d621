import { createPublicKey, type KeyObject } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { CKK_OF_KIND, curveOf, type AsymmetricKeyType, type Curve, KEY_TYPES, KeyRequestError, typeOfModulus, typeOfNamedCurve } from './key-types.js';
import { rsaPublicKey } from './key-transport.js';
import { optionalAttribute } from './objects.js';

const ED25519_KEY_BYTES = 32;
const OCTET_STRING = 0x04;
const UNCOMPRESSED_POINT = 0x04;

/**
 * The public key of a token object of `type` (a public key, or a private key whose module exposes
 * it), from CKA_EC_POINT or CKA_MODULUS and CKA_PUBLIC_EXPONENT; undefined when the object has none.
 */
export function readPublicKey(p11: pkcs11js.PKCS11, s: Buffer, handle: Buffer, type: AsymmetricKeyType): KeyObject | undefined {
  const kind = KEY_TYPES[type].kind;
  if (kind === 'rsa') {
    const modulus = optionalAttribute(p11, s, handle, pkcs11js.CKA_MODULUS);
    const exponent = optionalAttribute(p11, s, handle, pkcs11js.CKA_PUBLIC_EXPONENT);
    return modulus?.length && exponent?.length ? rsaPublicKey(modulus, exponent) : undefined;
  }
  const ecPoint = optionalAttribute(p11, s, handle, pkcs11js.CKA_EC_POINT);
  if (!ecPoint?.length) return undefined;
  return kind === 'ed25519' ? ed25519PublicKey(ecPoint) : ecPublicKey(curveOf(type), ecPoint);
}

function ecPublicKey(curve: Curve, ecPoint: Buffer): KeyObject {
  const point = pointOf(ecPoint, 1 + 2 * curve.fieldBytes);
  if (point[0] !== UNCOMPRESSED_POINT) throw new Error(`the token gave a compressed or unknown ${curve.jwk} point`);
  const coordinate = (i: number) => point.subarray(1 + i * curve.fieldBytes, 1 + (i + 1) * curve.fieldBytes).toString('base64url');
  return createPublicKey({ key: { kty: 'EC', crv: curve.jwk, x: coordinate(0), y: coordinate(1) }, format: 'jwk' });
}

function ed25519PublicKey(ecPoint: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: pointOf(ecPoint, ED25519_KEY_BYTES).toString('base64url') }, format: 'jwk' });
}

/**
 * The point in CKA_EC_POINT: PKCS#11 2.40 wraps it in a DER OCTET STRING, some modules give it bare.
 * The two differ in length (points here are under 128 bytes: a short-form DER length).
 */
function pointOf(ecPoint: Buffer, pointBytes: number): Buffer {
  if (ecPoint.length === pointBytes) return ecPoint;
  if (ecPoint.length === pointBytes + 2 && ecPoint[0] === OCTET_STRING && ecPoint[1] === pointBytes) return ecPoint.subarray(2);
  throw new Error(`CKA_EC_POINT of ${ecPoint.length} bytes is not a ${pointBytes}-byte point, bare or DER-wrapped`);
}

/** The key type of a public key keyward verifies with: one a transit key type makes. */
export function typeOfPublicKey(publicKey: KeyObject): AsymmetricKeyType {
  if (publicKey.type !== 'public') throw new KeyRequestError(`signatures are verified with a public key, not a ${publicKey.type} one`);
  const details = publicKey.asymmetricKeyDetails ?? {};
  const type = { ed25519: 'ed25519' as const, ec: typeOfNamedCurve(details.namedCurve), rsa: typeOfModulus(details.modulusLength) }[publicKey.asymmetricKeyType as 'ed25519' | 'ec' | 'rsa'];
  if (!type) {
    const what = [publicKey.asymmetricKeyType, details.namedCurve, details.modulusLength].filter((x) => x !== undefined).join(' ');
    throw new KeyRequestError(`keyward verifies ECDSA P-256 and P-384, RSA 2048, 3072 and 4096 and Ed25519 signatures, not ${what}`);
  }
  return type;
}

/** The PKCS#11 key type and attributes of a public-key object holding `publicKey` (EC and RSA), to verify with in the token. */
export function tokenPublicKey(type: AsymmetricKeyType, publicKey: KeyObject): { ckk: number; material: pkcs11js.Template } {
  const jwk = publicKey.export({ format: 'jwk' });
  const bytes = (field: string | undefined) => Buffer.from(field ?? '', 'base64url');
  const kind = KEY_TYPES[type].kind;
  if (kind === 'rsa') {
    return { ckk: CKK_OF_KIND.rsa, material: [{ type: pkcs11js.CKA_MODULUS, value: bytes(jwk.n) }, { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: bytes(jwk.e) }] };
  }
  if (kind !== 'ec') throw new Error(`${type} public keys are verified in software`);
  const point = Buffer.concat([Buffer.from([UNCOMPRESSED_POINT]), bytes(jwk.x), bytes(jwk.y)]);
  return {
    ckk: CKK_OF_KIND.ec,
    material: [
      { type: pkcs11js.CKA_EC_PARAMS, value: curveOf(type).params },
      { type: pkcs11js.CKA_EC_POINT, value: Buffer.concat([Buffer.from([OCTET_STRING, point.length]), point]) },
    ],
  };
}
