import { randomFillSync, randomInt } from 'node:crypto';
import { add, div, mul } from './gf256.js';

/** Raised for inputs Shamir cannot work with; the message says what to fix. */
export class ShamirError extends Error {
  override readonly name = 'ShamirError';
}

export const MAX_PARTS = 255;

/**
 * A zero-filled Buffer for secret bytes, with a backing store of its own outside V8's heap.
 * A small Buffer.alloc lives inside the heap, where the garbage collector copies it when it
 * moves objects and native code (pkcs11js) copies it out when it asks for its address; either
 * leaves a copy behind that a later fill(0) cannot reach. An ArrayBuffer's store never moves.
 */
export function secretBuffer(bytes: number): Buffer {
  return Buffer.from(new ArrayBuffer(bytes));
}

/**
 * Splits `secret` into `parts` shares, any `threshold` of which rebuild it. Layout is Vault's:
 * each share is the polynomial values for every secret byte followed by one x-coordinate byte;
 * x-coordinates are distinct and random in 1..255.
 */
export function split(secret: Uint8Array, parts: number, threshold: number): Buffer[] {
  if (!Number.isInteger(parts) || !Number.isInteger(threshold)) throw new ShamirError('parts and threshold must be integers');
  if (parts < threshold) throw new ShamirError('parts cannot be less than threshold');
  if (parts > MAX_PARTS) throw new ShamirError(`parts cannot exceed ${MAX_PARTS}`);
  if (threshold < 2) throw new ShamirError('threshold must be at least 2');
  if (threshold > MAX_PARTS) throw new ShamirError(`threshold cannot exceed ${MAX_PARTS}`);
  if (secret.length === 0) throw new ShamirError('cannot split an empty secret');

  const xs = distinctXCoordinates(parts);
  const shares = xs.map((x) => {
    const share = secretBuffer(secret.length + 1);
    share[secret.length] = x;
    return share;
  });
  const coefficients = secretBuffer(threshold);
  for (let i = 0; i < secret.length; i++) {
    coefficients[0] = secret[i]!;
    // Filled in place: with a share, these coefficients give the secret byte away.
    randomFillSync(coefficients, 1);
    for (let p = 0; p < parts; p++) shares[p]![i] = evaluate(coefficients, xs[p]!);
  }
  coefficients.fill(0);
  return shares;
}

/** Rebuilds the secret from shares made by `split`. Too few shares give a wrong secret, not an error. */
export function combine(shares: readonly Uint8Array[]): Buffer {
  if (shares.length < 2) throw new ShamirError('less than two parts cannot be used to reconstruct the secret');
  const length = shares[0]!.length;
  if (length < 2) throw new ShamirError('parts must be at least two bytes');
  if (shares.some((s) => s.length !== length)) throw new ShamirError('all parts must be the same length');

  const xs = shares.map((s) => s[length - 1]!);
  if (new Set(xs).size !== xs.length) throw new ShamirError('duplicate part detected');
  if (xs.includes(0)) throw new ShamirError('a part has x-coordinate 0, which no valid part has');

  const secret = secretBuffer(length - 1);
  const ys = new Array<number>(shares.length);
  for (let i = 0; i < length - 1; i++) {
    for (let p = 0; p < shares.length; p++) ys[p] = shares[p]![i]!;
    secret[i] = interpolateAtZero(xs, ys);
  }
  ys.fill(0);
  return secret;
}

function distinctXCoordinates(parts: number): number[] {
  const all = Array.from({ length: MAX_PARTS }, (_, i) => i + 1);
  for (let i = all.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all.slice(0, parts);
}

/** Horner's rule for the polynomial with the given coefficients (constant term first). */
function evaluate(coefficients: Uint8Array, x: number): number {
  let y = 0;
  for (let i = coefficients.length - 1; i >= 0; i--) y = add(mul(y, x), coefficients[i]!);
  return y;
}

/** Lagrange interpolation of the points (xs, ys) evaluated at x = 0. */
function interpolateAtZero(xs: readonly number[], ys: readonly number[]): number {
  let result = 0;
  for (let i = 0; i < xs.length; i++) {
    let basis = 1;
    for (let j = 0; j < xs.length; j++) {
      if (i === j) continue;
      // (0 - x_j) / (x_i - x_j); subtraction is addition in characteristic 2.
      basis = mul(basis, div(xs[j]!, add(xs[i]!, xs[j]!)));
    }
    result = add(result, mul(ys[i]!, basis));
  }
  return result;
}
