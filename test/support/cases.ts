// Random CCE- problems described by a few fields, for the numerics suites: fresh seeds every run, ignored rows,
// collisions (per-row negatives), drawn negatives (Philox) or an index tensor, popularity q, shared groups.
import { expect } from 'vitest';
import { relErr } from '../../runtime/check.js';
import type { ReferenceResult } from '../../runtime/cpu/reference.js';
import type { CceResult } from '../../runtime/cpu/run.js';
import type { FloatDType } from '../../runtime/numeric.js';
import type { CceProblem, Reduction } from '../../runtime/problem.js';
import { randomProblem } from '../../runtime/random.js';

/** A run against the float64 reference: loss, row losses, lse and accepted counts within tl, dE and dC within tg. */
export function expectClose(got: CceResult, ref: ReferenceResult, tl: number, tg: number): void {
  const l = (x: number | Float64Array) => (typeof x === 'number' ? [x] : x);
  expect(relErr(l(got.loss), l(ref.loss))).toBeLessThan(tl);
  expect(relErr(got.rowLoss, ref.rowLoss)).toBeLessThan(tl);
  if (got.lse.length) expect(relErr(got.lse, ref.lse)).toBeLessThan(tl);
  if (got.kAccepted.length) expect(Array.from(got.kAccepted)).toEqual(Array.from(ref.kAccepted));
  expect(relErr(got.dE, ref.dE)).toBeLessThan(tg);
  expect(relErr(got.dC, ref.dC)).toBeLessThan(tg);
}

export interface ProblemCase {
  N: number;
  D: number;
  V: number;
  K: number;
  dtype: FloatDType;
  reduction: Reduction;
  mode?: 'full';
  /** Rows per group sharing negatives. */
  share?: number;
  philox?: boolean;
  popularity?: boolean;
  /** Standard deviation of E and C (large: the running max of the online softmax moves). */
  scale?: number;
}

export const freshSeed = (): number => Math.floor(Math.random() * 1e9);

export function caseProblem(c: ProblemCase, o: { ignoreFraction?: number; collisionRate?: number } = {}): CceProblem {
  const p = randomProblem({
    N: c.N, D: c.D, V: c.V, K: c.K, dtype: c.dtype, seed: freshSeed(), mode: c.mode, scale: c.scale, popularity: c.popularity, shareRows: c.share,
    ignoreFraction: o.ignoreFraction ?? (c.N > 1 ? 0.1 : 0), collisionRate: o.collisionRate ?? 0.1,
  });
  return { ...p, reduction: c.reduction, ...(c.philox ? { negatives: undefined, philoxSeed: freshSeed() } : {}) };
}

export const caseName = (c: ProblemCase): string =>
  `${c.mode ?? 'sampled'} N=${c.N} D=${c.D} V=${c.V} K=${c.K} ${c.dtype} ${c.reduction}${c.share ? ` R=${c.share}` : ''}${c.philox ? ' philox' : ''}${c.popularity ? ' q' : ''}${c.scale ? ' large logits' : ''}`;
