// Deterministic dC: int64 fixed point (CceOptions.deterministic). The kernels add round(v·scale) with integer
// atomics; integer sums do not depend on the order of the adds, so dC is bit-identical from run to run.
// Here: the scale (a power of two, from a bound of |dC|) and the conversion back to float.
import type { CceProblem } from './problem.js';
import { decode } from './numeric.js';

/** Headroom for |f'| of a logit transform, whose derivative has no general bound (identity: 1). */
export const TRANSFORM_HEADROOM = 1024;

/**
 * The fixed-point scale for a bound of |dC|. Every element of dC is Σ_i g_i·Σ_j coef_ij·e_id with
 * Σ_j |coef_ij| ≤ 2·max|f'| (softmax probabilities sum to 1, the target's coefficient is p0 − 1), so
 * |dC| ≤ 2·Σ|g|·max|E|·max|f'|. That bound maps to 2^62: a final sum never leaves the int64 range (sums that
 * wrap on the way are still exact modulo 2^64), and one unit is 2^−62 of the bound.
 */
export function fixedScale(maxAbsE: number, sumAbsG: number, transform: boolean): number {
  const bound = 2 * maxAbsE * sumAbsG * (transform ? TRANSFORM_HEADROOM : 1);
  if (!(bound > 0) || !Number.isFinite(bound)) return 1;
  return 2 ** Math.max(-126, Math.min(127, 62 - Math.ceil(Math.log2(bound))));
}

/** max|E| of a problem's hidden states. */
export function maxAbs(p: Pick<CceProblem, 'dtype' | 'E'>): number {
  const e = decode(p.dtype, p.E);
  let m = 0;
  for (let i = 0; i < e.length; i++) m = Math.max(m, Math.abs(e[i]!));
  return m;
}

/**
 * Σ|g_i| over the rows that count: |gradScale|·n_valid for a scalar upstream gradient, Σ|dloss_i·gradScale|
 * per row.
 */
export function sumAbsGrad(
  p: Pick<CceProblem, 'N' | 'targets' | 'ignoreIndex' | 'reduction'>,
  gradScale: number,
  dloss: ArrayLike<number>,
): number {
  let s = 0;
  for (let i = 0; i < p.N; i++)
    if (p.targets[i] !== p.ignoreIndex) s += Math.abs(p.reduction === 'none' ? dloss[i]! * gradScale : gradScale);
  return s;
}

/**
 * The dC_scale a run passes to its kernels: 1 with float atomics; deterministic, the caller's scale or the one
 * the problem's bound gives.
 */
export function runDCScale(
  p: CceProblem,
  o: { deterministic?: boolean; dCScale?: number; transform?: unknown },
  gradScale: number,
  dloss: ArrayLike<number>,
): number {
  if (!o.deterministic) return 1;
  return o.dCScale ?? fixedScale(maxAbs(p), sumAbsGrad(p, gradScale, dloss), !!o.transform);
}

/** int64 fixed point (units of 1/scale) → float64. */
export function fixedToFloat(words: BigInt64Array, scale: number): Float64Array {
  const out = new Float64Array(words.length);
  for (let i = 0; i < words.length; i++) out[i] = Number(words[i]!) / scale;
  return out;
}
