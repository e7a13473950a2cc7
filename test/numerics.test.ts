// The compiled kernels (DSL → IR → lowering → float64 JS executor) against the independent plain float64
// reference, on fresh random inputs at odd sizes, across schedules, dtypes, reductions and features.
import { relErr } from '../runtime/check.js';
import { describe, expect, it } from 'vitest';
import { compileScalarFunction } from '../dsl/frontend.js';
import type { Schedule } from '../codegen/schedule.js';
import { runCceCpu, type CceResult } from '../runtime/cpu/run.js';
import { referenceCce, type ReferenceResult } from '../runtime/cpu/reference.js';
import type { FloatDType } from '../runtime/numeric.js';
import type { Reduction } from '../runtime/problem.js';
import { randomProblem } from '../runtime/random.js';

const SCHEDULES: Schedule[] = [
  { rows: 4, lanes: 32, vec: 1, dChunks: 8, samplesPerStep: 4, stages: 2 },
  { rows: 1, lanes: 1, vec: 1, dChunks: 1, samplesPerStep: 1, stages: 1 },
  { rows: 8, lanes: 4, vec: 2, dChunks: 2, samplesPerStep: 8, stages: 3 },
  { rows: 2, lanes: 16, vec: 4, dChunks: 1, samplesPerStep: 16, stages: 1 },
  { rows: 16, lanes: 2, vec: 1, dChunks: 4, samplesPerStep: 2, stages: 4 },
];


function expectClose(got: CceResult, ref: ReferenceResult, tol = 1e-10): void {
  const l1 = typeof got.loss === 'number' ? [got.loss] : got.loss;
  const l2 = typeof ref.loss === 'number' ? [ref.loss] : ref.loss;
  expect(relErr(l1, l2)).toBeLessThan(tol);
  expect(relErr(got.rowLoss, ref.rowLoss)).toBeLessThan(tol);
  expect(relErr(got.lse, ref.lse)).toBeLessThan(tol);
  expect(relErr(got.dE, ref.dE)).toBeLessThan(tol);
  expect(relErr(got.dC, ref.dC)).toBeLessThan(tol);
  expect(got.nValid).toBe(ref.nValid);
}

const NS = [1, 7, 513];
const DS = [1, 3, 64, 257];
const KS = [1, 5, 1000];
const DTYPES: FloatDType[] = ['f32', 'f16', 'bf16'];
const REDUCTIONS: Reduction[] = ['mean', 'sum', 'none'];

describe('sampled CCE-: compiled kernels vs plain float64 reference', () => {
  // Every (N, D, K) of the grid once; dtype, reduction, schedule and features rotate through the cases.
  let c = 0;
  for (const N of NS)
    for (const D of DS)
      for (const K of KS) {
        const idx = c++;
        const dtype = DTYPES[idx % 3];
        const reduction = REDUCTIONS[Math.floor(idx / 3) % 3];
        const schedule = SCHEDULES[idx % SCHEDULES.length];
        const popularity = idx % 4 === 1;
        // Keep the largest cases cheap enough for CI: the executor is bounds-checked JS.
        if (N === 513 && K === 1000 && D > 64) continue;
        it(`N=${N} D=${D} K=${K} ${dtype} ${reduction}${popularity ? ' popularity-q' : ''} rows=${schedule.rows} lanes=${schedule.lanes} vec=${schedule.vec} S=${schedule.samplesPerStep}`, () => {
          const V = popularity ? 97 : 61 + idx * 13;
          const p = {
            ...randomProblem({ N, D, V, K, dtype, seed: 1000 + idx * 7 + Date.now() % 1000, collisionRate: 0.15, ignoreFraction: N > 1 ? 0.2 : 0, popularity }),
            reduction,
          };
          const gradOutput = reduction === 'none' ? Float64Array.from({ length: N }, (_, i) => 0.5 + (i % 5) * 0.25) : 0.75;
          expectClose(runCceCpu(p, { schedule, gradOutput }), referenceCce(p, { gradOutput }));
        });
      }

  it('N=513 D=257 K=1000 (largest case, f16, mean)', () => {
    const p = randomProblem({ N: 513, D: 257, V: 4099, K: 1000, dtype: 'f16', seed: Date.now() % 100000, collisionRate: 0.01, ignoreFraction: 0.1 });
    expectClose(runCceCpu(p), referenceCce(p));
  });

  it('rows whose every negative collides have zero loss and gradient', () => {
    const p = randomProblem({ N: 7, D: 3, V: 11, K: 5, dtype: 'f32', seed: 3, collisionRate: 1 });
    const r = runCceCpu(p);
    for (let i = 0; i < p.N; i++) {
      expect(r.kAccepted[i]).toBe(0);
      expect(r.rowLoss[i]).toBe(0);
    }
    expect(relErr(r.dE, new Float64Array(r.dE.length))).toBe(0);
    expectClose(r, referenceCce(p));
  });

  it('ignored rows leave the mean and get no gradient', () => {
    const p = randomProblem({ N: 33, D: 5, V: 40, K: 9, dtype: 'f32', seed: 11, ignoreFraction: 0.5 });
    const r = runCceCpu(p);
    const ref = referenceCce(p);
    expectClose(r, ref);
    expect(r.nValid).toBeLessThan(33);
    for (let i = 0; i < p.N; i++)
      if (p.targets[i] === p.ignoreIndex) {
        expect(r.rowLoss[i]).toBe(0);
        for (let d = 0; d < p.D; d++) expect(r.dE[i * p.D + d]).toBe(0);
      }
  });

  it('a wrong kernel is caught: perturbing the executor output breaks the comparison', () => {
    const p = randomProblem({ N: 7, D: 3, V: 50, K: 5, dtype: 'f32', seed: 5 });
    const r = runCceCpu(p);
    r.dC[r.dC.findIndex((x) => x !== 0)] *= 1.001;
    expect(() => expectClose(r, referenceCce(p))).toThrow();
  });
});

describe('full-catalog CE from the same blocks', () => {
  for (const [N, D, V, dtype, reduction] of [
    [1, 1, 2, 'f32', 'mean'],
    [7, 3, 61, 'bf16', 'sum'],
    [513, 64, 257, 'f16', 'none'],
    [33, 257, 101, 'f32', 'mean'],
  ] as const)
    it(`N=${N} D=${D} V=${V} ${dtype} ${reduction}`, () => {
      const p = { ...randomProblem({ N, D, V, K: 0, dtype, seed: N * 31 + D, mode: 'full', ignoreFraction: N > 1 ? 0.2 : 0 }), reduction };
      SCHEDULES.slice(0, 3).forEach((schedule) => expectClose(runCceCpu(p, { schedule }), referenceCce(p)));
    });
});

describe('user scalar functions compiled by ts-morph', () => {
  it('soft-capped logits (transform) match the reference, gradients included', () => {
    const cap = 2.5;
    const transform = compileScalarFunction((x: number) => cap * Math.tanh(x / cap), { constants: { cap } });
    const p = randomProblem({ N: 29, D: 17, V: 80, K: 13, dtype: 'f32', seed: 9, collisionRate: 0.1, scale: 1.5 });
    const ref = referenceCce(p, { transform: { f: (x) => cap * Math.tanh(x / cap), df: (x) => 1 - Math.tanh(x / cap) ** 2 } });
    expectClose(runCceCpu(p, { transform }), ref);
  });

  it('a custom sampling correction (half logQ) with popularity q', () => {
    const correction = compileScalarFunction((lq: number) => -0.5 * lq);
    const p = randomProblem({ N: 19, D: 8, V: 70, K: 11, dtype: 'bf16', seed: 4, popularity: true });
    expectClose(runCceCpu(p, { correction }), referenceCce(p, { correction: (lq) => -0.5 * lq }));
  });
});

describe('fused forward + backward (scalar upstream gradient)', () => {
  for (const [mode, reduction, philox, dtype] of [['sampled', 'mean', false, 'f32'], ['sampled', 'sum', true, 'bf16'], ['full', 'mean', false, 'f16']] as const)
    it(`${mode} ${reduction}${philox ? ' in-kernel negatives' : ''} ${dtype}: loss, dE, dC equal the reference and the two-kernel path`, () => {
      const base = randomProblem({ N: 41, D: 19, V: 97, K: mode === 'full' ? 0 : 23, dtype, seed: Date.now() % 1000, collisionRate: 0.1, ignoreFraction: 0.2, mode, popularity: philox });
      const p = { ...base, reduction, ...(philox ? { negatives: undefined, philoxSeed: 99 } : {}) };
      const ref = referenceCce(p, { gradOutput: 0.5 });
      const fused = runCceCpu(p, { fused: true, gradOutput: 0.5, schedule: SCHEDULES[2] });
      expect(relErr([fused.loss as number], [ref.loss as number])).toBeLessThan(1e-10);
      expect(relErr(fused.rowLoss, ref.rowLoss)).toBeLessThan(1e-10);
      expect(relErr(fused.dE, ref.dE)).toBeLessThan(1e-10);
      expect(relErr(fused.dC, ref.dC)).toBeLessThan(1e-10);
    });
  it('refuses reduction none', () => {
    const p = { ...randomProblem({ N: 3, D: 2, V: 9, K: 2, dtype: 'f32', seed: 1 }), reduction: 'none' as const };
    expect(() => runCceCpu(p, { fused: true })).toThrow(/fused: needs a scalar upstream gradient/);
  });
});
