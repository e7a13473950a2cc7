/**
 * Numeric helpers: conversions between float64 numbers and the storage formats
 * ccekit supports (float32, IEEE binary16, bfloat16).
 *
 * All conversions to 16-bit formats first round the input to float32 (the value a
 * float32 tensor would hold), then round that float32 value to nearest-even.
 */

export type FloatDType = 'f32' | 'f16' | 'bf16';

export const FLOAT_DTYPES: readonly FloatDType[] = ['f32', 'f16', 'bf16'];

export function isFloatDType(x: unknown): x is FloatDType {
  return x === 'f32' || x === 'f16' || x === 'bf16';
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Bit pattern (uint32) of the float32 value nearest to x. */
export function f32Bits(x: number): number {
  scratchF32[0] = x;
  return scratchU32[0]!;
}

/** Float32 value with the given uint32 bit pattern. */
export function bitsToF32(bits: number): number {
  scratchU32[0] = bits >>> 0;
  return scratchF32[0]!;
}

/** IEEE binary16 bit pattern of x (rounded to float32 first), round-to-nearest-even. */
export function f32ToF16Bits(x: number): number {
  const bits = f32Bits(x);
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;

  if (exp === 0xff) {
    // Inf or NaN; NaN becomes a quiet NaN keeping the top payload bits.
    return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  }

  const e = exp - 127 + 15; // biased binary16 exponent
  if (e >= 31) return sign | 0x7c00; // far above the largest finite half

  if (e >= 1) {
    // Normal half: keep 10 mantissa bits, round on the 13 dropped bits.
    let half = (e << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half += 1; // carry may reach exponent / inf
    return sign | half;
  }

  // Subnormal half (or zero). Value = m * 2^(e - 38) with m the 24-bit significand;
  // the subnormal unit is 2^-24, so the half mantissa is m >> (14 - e).
  if (e < -10) return sign; // below half of the smallest subnormal (or exactly zero / f32 subnormal)
  const m = mant | 0x800000;
  const shift = 14 - e; // 14..24
  let half = m >>> shift;
  const rest = m & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (rest > halfway || (rest === halfway && (half & 1) === 1)) half += 1; // may become the smallest normal
  return sign | half;
}

/** Float value (exactly representable in float32) of a binary16 bit pattern. */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/** bfloat16 bit pattern of x (rounded to float32 first), round-to-nearest-even. */
export function f32ToBf16Bits(x: number): number {
  const bits = f32Bits(x);
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) {
    return ((bits >>> 16) | 0x0040) & 0xffff; // quiet NaN
  }
  const lsb = (bits >>> 16) & 1;
  return ((bits + 0x7fff + lsb) >>> 16) & 0xffff; // overflow rounds into inf naturally
}

/** Float value of a bfloat16 bit pattern. */
export function bf16BitsToF32(b: number): number {
  return bitsToF32((b & 0xffff) << 16);
}

/** Value x has after being stored as dtype. */
export function roundTo(dtype: FloatDType, x: number): number {
  switch (dtype) {
    case 'f32':
      return Math.fround(x);
    case 'f16':
      return f16BitsToF32(f32ToF16Bits(x));
    case 'bf16':
      return bf16BitsToF32(f32ToBf16Bits(x));
    default:
      throw new Error(`unknown dtype ${String(dtype)}`);
  }
}

/** Storage array: Float32Array for f32, Uint16Array of bit patterns for f16/bf16. */
export function encode(dtype: FloatDType, values: ArrayLike<number>): Float32Array | Uint16Array {
  const n = values.length;
  switch (dtype) {
    case 'f32':
      return Float32Array.from(values);
    case 'f16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = f32ToF16Bits(values[i]!);
      return out;
    }
    case 'bf16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = f32ToBf16Bits(values[i]!);
      return out;
    }
    default:
      throw new Error(`unknown dtype ${String(dtype)}`);
  }
}

/** Decode a storage array into float64 values. */
export function decode(dtype: FloatDType, data: Float32Array | Uint16Array): Float64Array {
  const n = data.length;
  const out = new Float64Array(n);
  switch (dtype) {
    case 'f32':
      if (!(data instanceof Float32Array)) throw new Error('decode: f32 data must be a Float32Array');
      for (let i = 0; i < n; i++) out[i] = data[i]!;
      return out;
    case 'f16':
      if (!(data instanceof Uint16Array)) throw new Error('decode: f16 data must be a Uint16Array');
      for (let i = 0; i < n; i++) out[i] = f16BitsToF32(data[i]!);
      return out;
    case 'bf16':
      if (!(data instanceof Uint16Array)) throw new Error('decode: bf16 data must be a Uint16Array');
      for (let i = 0; i < n; i++) out[i] = bf16BitsToF32(data[i]!);
      return out;
    default:
      throw new Error(`unknown dtype ${String(dtype)}`);
  }
}
