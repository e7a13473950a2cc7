// Forward + dE in one sweep (cceFusedDE, for item embeddings without a gradient): dE rides along the online
// softmax with the running-max rescale. Compared with the float64 reference on fresh random inputs at odd sizes
// (per-row, drawn, popularity q, shared negatives as tile contractions, full CE, a logit transform, logits
// large enough that the running max moves), and the emitted kernels sweep the candidates once and scatter nothing.
import { describe, expect, it } from 'vitest';
import { cceFused, cceFusedDE, type CceOptions } from '../dsl/cce.js';
import { CAPS } from '../targets/registry.js';
import { type Schedule } from '../codegen/schedule.js';
import { compileKernel } from '../targets/registry.js';
import { compileScalarFunction } from '../dsl/frontend.js';
import { relErr } from '../runtime/check.js';
import { runCceCpu } from '../runtime/cpu/run.js';
import { referenceCce } from '../runtime/cpu/reference.js';
import type { CceProblem } from '../runtime/problem.js';
import { type ProblemCase, caseName, caseProblem } from './support/cases.js';

interface Case extends ProblemCase {
  reduction: 'mean' | 'sum';
  S: Schedule['samplesPerStep'];
}
const CASES: Case[] = [
  { N: 1, D: 1, V: 2, K: 1, dtype: 'f32', reduction: 'mean', S: 1 },
  { N: 37, D: 13, V: 50, K: 9, dtype: 'f16', reduction: 'sum', S: 4 },
  { N: 129, D: 64, V: 301, K: 77, dtype: 'bf16', reduction: 'mean', popularity: true, S: 8 },
  { N: 70, D: 33, V: 1031, K: 40, dtype: 'f32', reduction: 'sum', philox: true, S: 2, scale: 3 },
  { N: 97, D: 31, V: 211, K: 21, dtype: 'f16', reduction: 'mean', share: 16, philox: true, S: 8 },
  { N: 50, D: 57, V: 97, K: 33, dtype: 'f32', reduction: 'sum', share: 32, S: 16, scale: 3 },
  { N: 41, D: 19, V: 123, K: 0, dtype: 'bf16', reduction: 'mean', mode: 'full', S: 4 },
];
const name = (c: Case) => `${caseName(c)} S=${c.S}`;
const problemOf = (c: Case): CceProblem => caseProblem(c, { collisionRate: c.share ? 0 : 0.1 });
const schedule = (c: Case): Schedule => ({ rows: c.share ? 8 : 4, lanes: 4, vec: 1, dChunks: 4, samplesPerStep: c.S, stages: 1 });

describe('forward + dE in one sweep (CPU executor) vs the float64 reference', () => {
  for (const c of CASES)
    it(name(c), () => {
      const p = problemOf(c);
      const ref = referenceCce(p, { gradOutput: 1.5 });
      const got = runCceCpu(p, { gradOutput: 1.5, frozenC: true, schedule: schedule(c) });
      expect(relErr(got.rowLoss, ref.rowLoss)).toBeLessThan(1e-10);
      expect(relErr(got.dE, ref.dE)).toBeLessThan(1e-10);
      expect(got.dC.length).toBe(0);
    });

  it('a soft-capped logit (transform): f\'(raw) weighs each candidate, per row and shared', () => {
    const cap = 20;
    const softcap = compileScalarFunction((x: number) => cap * Math.tanh(x / cap), { constants: { cap } });
    const transform = { f: (x: number) => 20 * Math.tanh(x / 20), df: (x: number) => 1 - Math.tanh(x / 20) ** 2 };
    for (const share of [undefined, 16]) {
      const q = caseProblem({ N: 50, D: 19, V: 120, K: 13, dtype: 'f32', reduction: 'sum', share, scale: 3 });
      const ref = referenceCce(q, { transform, gradOutput: 0.75 });
      const got = runCceCpu(q, { transform: softcap, frozenC: true, gradOutput: 0.75, schedule: schedule({ share, S: 4 } as Case) });
      expect(relErr(got.dE, ref.dE)).toBeLessThan(1e-10);
    }
  });
});

describe('emitted forward + dE kernels', () => {
  const o: CceOptions = { mode: 'sampled', dtype: 'f16', sampling: 'uniform', negatives: 'philox', grad: 'scalar' };
  const s: Schedule = { rows: 4, lanes: 32, vec: 4, dChunks: 2, samplesPerStep: 2, stages: 1 };
  it('sweep the candidates once (the two-sweep fused kernel twice) and have no dC', () => {
    const k = cceFusedDE(o);
    expect(k.params.some((p) => p.name === 'dC')).toBe(false);
    const sweeps = (src: string) => (src.match(/for \(int kk\w* = /g) ?? []).length;
    const body = (src: string) => src.slice(src.indexOf('extern "C"'));
    const one = body(compileKernel(k, s, 'cuda', CAPS.cuda).source);
    const two = body(compileKernel(cceFused(o), s, 'cuda', CAPS.cuda).source);
    expect(one).not.toMatch(/atomicAdd|ccekit_red/);
    expect([sweeps(one), sweeps(two)]).toEqual([1, 2]);
  });
  it('the shared version accumulates dE as a tile contraction (tl.dot in Triton)', () => {
    const t: Schedule = { rows: 64, lanes: 1, vec: 1, dChunks: 16, samplesPerStep: 32, stages: 2 };
    const src = compileKernel(cceFusedDE({ ...o, share: 64 }), t, 'triton', CAPS.triton).source;
    expect(src).toMatch(/dE_online = .*tl\.dot/);
    expect(src).not.toMatch(/atomic_add/);
  });
});
