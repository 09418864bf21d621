// Arithmetic in GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1, written without
// tables or data-dependent branches so share bytes do not leak through timing.

export function add(a: number, b: number): number {
  return a ^ b;
}

export function mul(a: number, b: number): number {
  let r = 0;
  for (let i = 7; i >= 0; i--) {
    // r = r*x (reducing by 0x1B when the top bit falls out), then add a if bit i of b is set.
    r = ((-((b >> i) & 1) & a) ^ (-(r >> 7) & 0x1b) ^ (r << 1)) & 0xff;
  }
  return r;
}

/** a^254 = a^-1 for a ≠ 0 (and 0 for 0). */
export function inverse(a: number): number {
  let result = 1;
  let base = a;
  for (let e = 254; e > 0; e >>= 1) {
    const m = mul(result, base);
    result = e & 1 ? m : result;
    base = mul(base, base);
  }
  return result;
}

export function div(a: number, b: number): number {
  if (b === 0) throw new RangeError('division by zero in GF(2^8)');
  return mul(a, inverse(b));
}
