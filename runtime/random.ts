/**
 * Seeded pseudo-random numbers and a random CCE- problem generator for tests and
 * benchmarks. Deterministic for a given seed on every platform.
 */
import { encode, isFloatDType, type FloatDType } from './numeric.js';
import { CceInputError, type CceProblem, checkSizes } from './problem.js';

/**
 * Small seeded generator: a 32-bit Weyl sequence passed through an avalanche
 * mixer (xor-shift / multiply rounds). Two outputs make one 53-bit double.
 */
export class Rng {
  private state: number;
  private spare: number | null = null;

  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new Error(`Rng: seed must be finite, got ${seed}`);
    const s = Math.floor(Math.abs(seed));
    const lo = s >>> 0;
    const hi = Math.floor(s / 2 ** 32) >>> 0;
    this.state = (lo ^ Math.imul(hi, 0x27d4eb2f) ^ (seed < 0 ? 0x5bd1e995 : 0)) >>> 0;
    // Warm up so that nearby seeds diverge immediately.
    this.nextU32();
    this.nextU32();
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    const a = this.nextU32() >>> 5; // 27 bits
    const b = this.nextU32() >>> 6; // 26 bits
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`Rng.int: n must be a positive integer, got ${n}`);
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const u1 = 1 - this.next(); // (0, 1]
    const u2 = this.next();
    const r = Math.sqrt(-2 * Math.log(u1));
    const a = 2 * Math.PI * u2;
    this.spare = r * Math.sin(a);
    return r * Math.cos(a);
  }
}

export interface GenOptions {
  N: number;
  D: number;
  V: number;
  K: number;
  dtype: FloatDType;
  seed: number;
  mode?: 'sampled' | 'full';
  /** Share of rows whose target is ignoreIndex. */
  ignoreFraction?: number;
  /** Probability that a negative slot is forced to equal the row's target. */
  collisionRate?: number;
  /** Draw negatives from a Zipf-like q and set itemProbs. */
  popularity?: boolean;
  /** Standard deviation of the entries of E and C; default 2/sqrt(D). */
  scale?: number;
  /** Negatives shared by groups of this many rows ([G, K]); collisions hit one row of the group. */
  shareRows?: number;
  /** In-batch candidates (all rows' targets, or each group's); K = 0: no drawn negatives. */
  inBatch?: 'batch' | 'group';
  /** Targets drawn from a Zipf-like q that is also given as inBatchProbs (their item frequencies). */
  inBatchPopularity?: boolean;
  /** Rows of E: loss rows read N distinct random positions of NE rows. */
  NE?: number;
}

export const DEFAULT_IGNORE_INDEX = -100;

/**
 * Random problem with values rounded to dtype. Uniform negatives are drawn from
 * the V-1 non-target items (q = 1/(V-1)); popularity negatives are drawn from a
 * Zipf-like q over all items (a draw equal to the target is a natural collision).
 * Reduction is 'mean' and ignoreIndex -100; spread the result to change them. Sizes and options are checked
 * (checkSizes) before anything is allocated: CceInputError names the first bad one.
 */
export function randomProblem(o: GenOptions): CceProblem {
  const mode = o.mode ?? 'sampled';
  if (mode !== 'sampled' && mode !== 'full') {
    throw new CceInputError('mode', `must be 'sampled' or 'full', got ${String(mode)}`);
  }
  const shareRows = mode === 'sampled' ? o.shareRows : undefined;
  const inBatch = mode === 'sampled' ? o.inBatch : undefined;
  checkSizes({ N: o.N, V: o.V, K: mode === 'full' ? 0 : o.K, D: o.D, mode, shareRows, inBatch, NE: o.NE });
  if (o.NE !== undefined && o.NE < o.N) throw new CceInputError('NE', `must be at least N = ${o.N}, got ${o.NE}`);
  const { N, D, V, dtype } = o;
  if (!isFloatDType(dtype)) throw new CceInputError('dtype', `must be one of f32, f16, bf16, got ${String(dtype)}`);
  if (typeof o.seed !== 'number' || !Number.isFinite(o.seed)) {
    throw new CceInputError('seed', `must be a finite number, got ${String(o.seed)}`);
  }
  const K = mode === 'full' ? 0 : o.K;
  const ignoreFraction = o.ignoreFraction ?? 0;
  const collisionRate = o.collisionRate ?? 0;
  for (const [name, x] of [['ignoreFraction', ignoreFraction], ['collisionRate', collisionRate]] as const) {
    if (typeof x !== 'number' || !(x >= 0 && x <= 1)) {
      throw new CceInputError(name, `must be in [0, 1], got ${String(x)}`);
    }
  }
  const scale = o.scale ?? 2 / Math.sqrt(D);
  if (typeof scale !== 'number' || !Number.isFinite(scale) || scale < 0) {
    throw new CceInputError('scale', `must be a finite number >= 0, got ${String(scale)}`);
  }
  const ignoreIndex = DEFAULT_IGNORE_INDEX;
  const rng = new Rng(o.seed);

  const NE = o.NE ?? N;
  const e = new Float64Array(NE * D);
  for (let k = 0; k < e.length; k++) e[k] = rng.normal() * scale;
  const c = new Float64Array(V * D);
  for (let k = 0; k < c.length; k++) c[k] = rng.normal() * scale;

  const batchQ = o.inBatchPopularity ? zipf(rng, V) : undefined;
  const targets = new Int32Array(N);
  for (let i = 0; i < N; i++) {
    const item = batchQ ? sampleCdf(batchQ.cdf, rng.next()) : rng.int(V);
    targets[i] = ignoreFraction > 0 && rng.next() < ignoreFraction ? ignoreIndex : item;
  }
  let positions: Int32Array | undefined;
  if (o.NE !== undefined) {
    // N distinct rows of E, in a random order (a partial Fisher-Yates shuffle).
    const rows = Int32Array.from({ length: NE }, (_, r) => r);
    for (let i = 0; i < N; i++) {
      const j = i + rng.int(NE - i);
      [rows[i], rows[j]] = [rows[j]!, rows[i]!];
    }
    positions = rows.slice(0, N);
  }

  let itemProbs: Float64Array | undefined;
  let cdf: Float64Array | undefined;
  if (o.popularity) ({ q: itemProbs, cdf } = zipf(rng, V));

  let negatives: Int32Array | undefined;
  if (mode === 'sampled' && o.shareRows) {
    const R = o.shareRows;
    const G = Math.ceil(N / R);
    negatives = new Int32Array(G * K);
    for (let g = 0; g < G; g++)
      for (let j = 0; j < K; j++) {
        const t = targets[Math.min(N - 1, g * R + rng.int(R))]!;
        const collide = t !== ignoreIndex && collisionRate > 0 && rng.next() < collisionRate;
        negatives[g * K + j] = collide ? t : cdf !== undefined ? sampleCdf(cdf, rng.next()) : rng.int(V);
      }
  } else if (mode === 'sampled') {
    negatives = new Int32Array(N * K);
    for (let i = 0; i < N; i++) {
      const t = targets[i]!;
      const valid = t !== ignoreIndex;
      for (let j = 0; j < K; j++) {
        let n: number;
        if (valid && collisionRate > 0 && rng.next() < collisionRate) {
          n = t;
        } else if (cdf !== undefined) {
          n = sampleCdf(cdf, rng.next());
        } else if (valid) {
          n = rng.int(V - 1);
          if (n >= t) n += 1;
        } else {
          n = rng.int(V);
        }
        negatives[i * K + j] = n;
      }
    }
  }

  const problem: CceProblem = {
    mode,
    N,
    D,
    V,
    K,
    dtype,
    E: encode(dtype, e),
    C: encode(dtype, c),
    targets,
    ignoreIndex,
    reduction: 'mean',
  };
  if (negatives !== undefined) problem.negatives = negatives;
  if (mode === 'sampled' && o.shareRows) problem.shareRows = o.shareRows;
  if (itemProbs !== undefined) problem.itemProbs = itemProbs;
  if (inBatch) problem.inBatch = inBatch;
  if (batchQ) problem.inBatchProbs = batchQ.q;
  if (positions) Object.assign(problem, { positions, NE });
  return problem;
}

/** q(v) proportional to 1/(rank+1)^1.1, with ranks assigned by a random permutation; and its CDF. */
function zipf(rng: Rng, V: number): { q: Float64Array; cdf: Float64Array } {
  const rank = new Int32Array(V);
  for (let v = 0; v < V; v++) rank[v] = v;
  for (let v = V - 1; v > 0; v--) {
    const j = rng.int(v + 1);
    const tmp = rank[v]!;
    rank[v] = rank[j]!;
    rank[j] = tmp;
  }
  const q = new Float64Array(V);
  let total = 0;
  for (let v = 0; v < V; v++) {
    q[v] = 1 / Math.pow(rank[v]! + 1, 1.1);
    total += q[v]!;
  }
  const cdf = new Float64Array(V);
  let acc = 0;
  for (let v = 0; v < V; v++) {
    q[v] = q[v]! / total;
    acc += q[v]!;
    cdf[v] = acc;
  }
  return { q, cdf };
}

/** Smallest v with u < cdf[v] (last item if rounding leaves u above the total). */
function sampleCdf(cdf: Float64Array, u: number): number {
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (u < cdf[mid]!) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
