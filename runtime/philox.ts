import { drawsPerCall } from '../dsl/sampling.js';
import type { CceProblem } from './problem.js';

// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), written out plainly:
// the host-side twin of the in-kernel sampler (dsl/sampling.ts). Kernels and this code must agree bit for bit.

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two u32 values. */
export function mulhi32(a: number, b: number): number {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const lo = a0 * b0;
  const mid1 = a1 * b0 + (lo >>> 16);
  const mid2 = a0 * b1 + (mid1 & 0xffff);
  return (a1 * b1 + (mid1 >>> 16) + (mid2 >>> 16)) >>> 0;
}

export function philox4x32(counter: readonly number[], key: readonly number[]): [number, number, number, number] {
  let [c0, c1, c2, c3] = counter.map((x) => x >>> 0) as [number, number, number, number];
  let [k0, k1] = key.map((x) => x >>> 0) as [number, number];
  for (let r = 0; r < 10; r++) {
    if (r > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = mulhi32(M0, c0), lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi32(M1, c2), lo1 = Math.imul(M1, c2) >>> 0;
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
  }
  return [c0, c1, c2, c3];
}

/** Walker alias table of a distribution q over V items: u32 acceptance thresholds and alias items. */
export interface AliasTable {
  /** Accept column v when the second random word x1 < threshold[v]; 0xffffffff means always. */
  threshold: Uint32Array;
  alias: Int32Array;
}

/** Vose's construction of the alias table (float64), thresholds scaled to u32. */
export function buildAlias(q: ArrayLike<number>): AliasTable {
  const V = q.length;
  let total = 0;
  for (let v = 0; v < V; v++) total += q[v]!;
  const scaled = Float64Array.from({ length: V }, (_, v) => (q[v]! / total) * V);
  const small: number[] = [];
  const large: number[] = [];
  scaled.forEach((p, v) => (p < 1 ? small : large).push(v));
  const prob = new Float64Array(V);
  const alias = new Int32Array(V);
  for (let v = 0; v < V; v++) alias[v] = v;
  while (small.length && large.length) {
    const s = small.pop()!;
    const l = large.pop()!;
    prob[s] = scaled[s]!;
    alias[s] = l;
    scaled[l] = scaled[l]! + scaled[s]! - 1;
    (scaled[l]! < 1 ? small : large).push(l);
  }
  for (const v of [...small, ...large]) prob[v] = 1;
  const threshold = new Uint32Array(V);
  for (let v = 0; v < V; v++)
    threshold[v] = prob[v]! >= 1 ? 0xffffffff : Math.min(0xfffffffe, Math.floor(prob[v]! * 2 ** 32));
  return { threshold, alias };
}

/**
 * The negatives a kernel draws in-kernel (dsl/sampling.ts): slot j of row i from the words of
 * Philox(counter [j / P, i, stream, 0], key [seed_lo, seed_hi]): P = 4 uniform draws a call (word j mod 4), or
 * P = 1 through the alias table (words 0 and 1); stream 1 draws the negatives of row groups (shared negatives;
 * i is then the group).
 */
export function philoxNegatives(
  N: number,
  K: number,
  V: number,
  seed: number,
  alias?: AliasTable,
  stream = 0,
): Int32Array {
  const out = new Int32Array(N * K);
  const key = [seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0];
  const P = drawsPerCall(!!alias);
  for (let i = 0; i < N; i++) {
    let x: number[] = [];
    for (let j = 0; j < K; j++) {
      const w = j % P;
      if (w === 0) x = philox4x32([j / P, i, stream, 0], key); // one call for P consecutive slots

      const col = mulhi32(x[w]!, V);
      const keep = !alias || alias.threshold[col] === 0xffffffff || x[w + 1]! < alias.threshold[col]!;
      out[i * K + j] = keep ? col : alias.alias[col]!;
    }
  }
  return out;
}

/**
 * The problem with its negatives written out per row [N, K] (for the reference): those the kernels draw
 * (philoxSeed), and a shared group's negatives repeated for each of its rows (shareRows).
 */
export function materializeNegatives(p: CceProblem): CceProblem {
  if (p.mode !== 'sampled' || (p.philoxSeed === undefined && p.shareRows === undefined)) return p;
  // In-batch groups keep shareRows (the reference reads the groups' targets from it).
  const keep = p.inBatch === 'group' ? { shareRows: p.shareRows } : { shareRows: undefined };
  if (p.K === 0) return { ...p, negatives: new Int32Array(0), philoxSeed: undefined, ...keep };
  const alias = p.itemProbs && p.philoxSeed !== undefined ? buildAlias(p.itemProbs) : undefined;
  const rows = p.shareRows ? Math.ceil(p.N / p.shareRows) : p.N;
  const drawn = p.philoxSeed !== undefined
    ? philoxNegatives(rows, p.K, p.V, p.philoxSeed, alias, p.shareRows ? 1 : 0)
    : p.negatives!;
  if (!p.shareRows) return { ...p, negatives: drawn, philoxSeed: undefined };
  const perRow = new Int32Array(p.N * p.K);
  for (let i = 0; i < p.N; i++) {
    const g = Math.floor(i / p.shareRows) * p.K;
    perRow.set(drawn.subarray(g, g + p.K), i * p.K);
  }
  return { ...p, negatives: perRow, philoxSeed: undefined, ...keep };
}

/** Groups of rows that share negatives (the first dimension of a shared negatives tensor); N without sharing. */
export function negativeRows(p: Pick<CceProblem, 'N' | 'shareRows'>): number {
  return p.shareRows ? Math.ceil(p.N / p.shareRows) : p.N;
}

/** Kernel inputs of the in-kernel sampler: the seed split in two u32 words, the alias table for a given q. */
export function samplerInputs(
  p: CceProblem,
): { seed_lo: number; seed_hi: number; V2: number; alias?: Uint32Array } {
  const seed = p.philoxSeed ?? 0;
  const t = p.itemProbs && p.philoxSeed !== undefined ? buildAlias(p.itemProbs) : undefined;
  const seedHi = Math.floor(seed / 2 ** 32) >>> 0;
  return { seed_lo: seed >>> 0, seed_hi: seedHi, V2: 2 * p.V, alias: t && interleaveAlias(t) };
}

/** The kernels' layout of an alias table: [threshold, alias item] per item, as u32 words. */
export function interleaveAlias(t: AliasTable): Uint32Array {
  const out = new Uint32Array(2 * t.threshold.length);
  for (let v = 0; v < t.threshold.length; v++) {
    out[2 * v] = t.threshold[v]!;
    out[2 * v + 1] = t.alias[v]!;
  }
  return out;
}
