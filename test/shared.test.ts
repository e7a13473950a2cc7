// Row-tile-shared negatives: each group of R rows (one program) shares K negatives. The tile kernels (candidate
// axis, contractions) run through the untile pass on the CPU executor and WGSL, and are compared with the
// float64 reference on the same negatives written out per row, on fresh random inputs at odd sizes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cceBackward, cceForward, cceFused, type CceOptions } from '../dsl/cce.js';
import { KernelBuilder } from '../dsl/builder.js';
import { mm, reduceCands, type Val } from '../dsl/values.js';
import type { Schedule } from '../codegen/schedule.js';
import { CAPS } from '../targets/registry.js';
import { lower } from '../codegen/lower.js';
import { sizeCandidates } from '../codegen/candidates.js';
import { untile } from '../codegen/untile.js';
import { forEachExpr, TILE_SCOPES } from '../codegen/ir.js';
import { verifyKernel } from '../codegen/verify.js';
import { emitTriton } from '../targets/triton/emit.js';
import { compileScalarFunction } from '../dsl/frontend.js';
import { runCceCpu } from '../runtime/cpu/run.js';
import { referenceCce } from '../runtime/cpu/reference.js';
import { materializeNegatives, philoxNegatives } from '../runtime/philox.js';
import type { FloatDType } from '../runtime/numeric.js';
import { type CceProblem, type Reduction, validateProblem } from '../runtime/problem.js';
import { randomProblem } from '../runtime/random.js';
import { type ProblemCase, caseName, caseProblem, expectClose } from './support/cases.js';
import { releaseWebgpu, type WebgpuContext } from '../runtime/webgpu/device.js';
import { runCceWebgpu } from '../runtime/webgpu/run.js';
import { WEBGPU_ADAPTER, skipTest, testWebgpu } from './support/toolchains.js';

const seed = () => Math.floor(Math.random() * 1e9);

interface Case extends ProblemCase {
  share: 16 | 32 | 64;
  fused?: boolean;
  S?: Schedule['samplesPerStep'];
}

const CASES: Case[] = [
  { N: 1, D: 1, V: 2, K: 1, dtype: 'f32', reduction: 'mean', share: 16 },
  { N: 37, D: 13, V: 50, K: 9, dtype: 'f16', reduction: 'none', share: 16, S: 2 },
  { N: 300, D: 64, V: 1031, K: 100, dtype: 'bf16', reduction: 'sum', share: 64, philox: true, S: 8 },
  { N: 129, D: 57, V: 97, K: 33, dtype: 'f32', reduction: 'mean', share: 32, popularity: true, S: 16 },
  { N: 70, D: 3, V: 300, K: 21, dtype: 'f16', reduction: 'mean', share: 16, fused: true, S: 4 },
  { N: 200, D: 31, V: 211, K: 37, dtype: 'bf16', reduction: 'none', share: 64, popularity: true, philox: true, S: 1 },
  { N: 97, D: 33, V: 400, K: 40, dtype: 'f32', reduction: 'sum', share: 32, philox: true, fused: true, S: 16 },
];

const problemOf = (c: Case): CceProblem => caseProblem(c, { ignoreFraction: c.N > 1 ? 0.15 : 0 });
const gradOf = (p: CceProblem) => (p.reduction === 'none' ? Float64Array.from({ length: p.N }, (_, i) => 0.5 + (i % 4)) : 1.5);
const name = (c: Case) => `${caseName(c)}${c.fused ? ' fused' : ''} S=${c.S ?? 4}`;
// Programs of a whole group, or of a part of one (its rows then gather the same candidates in several programs).
const scheduleOf = (c: Case): Schedule => ({ rows: (c.N % 2 ? c.share : c.share / 4) as Schedule['rows'], lanes: 4, vec: 1, dChunks: 1, samplesPerStep: c.S ?? 4, stages: 1 });

describe('shared negatives: problem and reference', () => {
  it('a group shares its negatives; the reference sees them repeated per row', () => {
    const p = randomProblem({ N: 45, D: 3, V: 97, K: 7, dtype: 'f32', seed: seed(), shareRows: 16 });
    expect(p.negatives!.length).toBe(3 * 7);
    validateProblem(p);
    const rows = materializeNegatives(p).negatives!;
    expect(rows.length).toBe(45 * 7);
    for (let i = 0; i < 45; i++) expect(Array.from(rows.subarray(i * 7, i * 7 + 7))).toEqual(Array.from(p.negatives!.subarray(Math.floor(i / 16) * 7, Math.floor(i / 16) * 7 + 7)));
    expect(() => validateProblem({ ...p, negatives: new Int32Array(45 * 7) })).toThrow(/negatives: length 315 does not match G\*K/);
    expect(() => validateProblem({ ...p, shareRows: 24 })).toThrow(/shareRows: must be 16, 32, 64 or 128/);
  });

  it('drawn shared negatives come from their own Philox stream (not the per-row draws of row g)', () => {
    const own = philoxNegatives(4, 50, 1000, 99, undefined, 1);
    const perRow = philoxNegatives(4, 50, 1000, 99);
    expect(Array.from(own)).not.toEqual(Array.from(perRow));
    const q = { ...randomProblem({ N: 40, D: 2, V: 1000, K: 50, dtype: 'f32', seed: 1, shareRows: 16 }), negatives: undefined, philoxSeed: 99 };
    expect(Array.from(materializeNegatives(q).negatives!.subarray(16 * 50, 17 * 50))).toEqual(Array.from(own.subarray(50, 100)));
  });
});

describe('shared negatives: compiled tile kernels (untiled, CPU executor) vs float64 reference', () => {
  for (const c of CASES)
    it(name(c), () => {
      const p = problemOf(c);
      const gradOutput = c.fused ? 1.5 : gradOf(p);
      const got = runCceCpu(p, { schedule: scheduleOf(c), gradOutput, fused: c.fused });
      expectClose(got, referenceCce(p, { gradOutput }), 1e-10, 1e-10);
    });

  it('a soft-capped logit (transform) and its derivative through the contractions', () => {
    const cap = 20;
    const softcap = compileScalarFunction((x: number) => cap * Math.tanh(x / cap), { constants: { cap } });
    const q = randomProblem({ N: 50, D: 19, V: 120, K: 13, dtype: 'f32', seed: seed(), shareRows: 16, scale: 3 });
    const ref = referenceCce(q, { transform: { f: (x) => 20 * Math.tanh(x / 20), df: (x) => 1 - Math.tanh(x / 20) ** 2 } });
    expectClose(runCceCpu(q, { transform: softcap, schedule: scheduleOf({ share: 16, S: 8 } as Case) }), ref, 1e-10, 1e-10);
  });
});

describe('tile IR', () => {
  const o: CceOptions = { mode: 'sampled', dtype: 'f16', sampling: 'uniform', grad: 'scalar', negatives: 'philox', share: 64 };
  const s: Schedule = { rows: 64, lanes: 2, vec: 4, dChunks: 32, samplesPerStep: 32, stages: 2 };

  it('untile leaves no candidate-axis value; the result verifies', () => {
    for (const k of [cceForward(o), cceBackward({ ...o, grad: 'perRow' }), cceFused(o)]) {
      const u = untile(sizeCandidates(k, s.samplesPerStep));
      verifyKernel(u);
      forEachExpr(u.body, (e) => expect(TILE_SCOPES.has(e.s) || e.op === 'mm' || (e.op === 'reduce' && e.axis === 'c')).toBe(false));
    }
  });

  it('Triton keeps the tiles: contractions print as tl.dot (split hi/lo for probabilities)', () => {
    const src = emitTriton(lower(cceFused(o), s, CAPS.triton), 't').source;
    expect(src).toMatch(/BLOCK_C=32/);
    expect(src.match(/tl\.dot\(/g)!.length).toBe(6); // logits ×2 sweeps, dE hi+lo, dC hi+lo
    expect(src).toMatch(/tl\.trans\(coef\.to\(tl\.float16\)\)/);
  });

  it('rejects mixing rows, candidates and elements, contractions over rows outside atomics, and mismatched rows', () => {
    const kb = new KernelBuilder({ name: 'bad', doc: '', rowDim: 'N', vecDim: 'D', candAxis: true });
    const E = kb.input('E', 'f32', ['N', 'D'] as const);
    const C = kb.input('C', 'f32', ['V', 'D'] as const);
    const e = kb.loadRow(E, kb.row);
    const cc = kb.loadCandRows(C, kb.cidx);
    expect(e.add(cc).scope).toBe('tvec'); // per-row candidate rows: the untile pass unrolls them
    expect(() => mm(e, e, 'f32', [true, true])).toThrow(/not a tile contraction/);
    expect(() => reduceCands('sum', e)).toThrow(/tile or tvec value/);
    const t: Val<'f32'> = mm(e, cc, 'f32', [true, true]);
    expect(reduceCands('max', t).scope).toBe('row');
    const kb2 = new KernelBuilder({ name: 'bad2', doc: '', rowDim: 'N', vecDim: 'D', candAxis: true });
    const E2 = kb2.input('E', 'f32', ['N', 'D'] as const);
    const C2 = kb2.input('C', 'f32', ['V', 'D'] as const);
    const dC = kb2.accumulator('dC', ['V', 'D'] as const);
    const e2 = kb2.loadRow(E2, kb2.row);
    const t2 = mm(e2, kb2.loadCandRows(C2, kb2.cidx), 'f32', [true, true]);
    kb2.let('x', mm(t2, e2, 'f32', [false, true]));
    expect(() => verifyKernel(kb2.build())).toThrow(/contraction over rows \(tile·vec\) may only be the value of an atomicAdd/);
    void dC;
    expect(() => lower(cceFused(o), { ...s, rows: 128 })).toThrow(/rows = 128 per program must divide the 64 rows of a group/);
  });
});

describe('shared negatives on WebGPU (Dawn; lavapipe in CI)', () => {
  let ctx: WebgpuContext | null = null;
  beforeAll(async () => {
    ctx = await testWebgpu();
  });
  afterAll(() => ctx && releaseWebgpu(ctx));
  for (const c of [CASES[1]!, CASES[2]!, CASES[3]!, CASES[5]!])
    it(name(c), async (t) => {
      if (skipTest(t, WEBGPU_ADAPTER, !!ctx) || !ctx) return;
      const p = problemOf(c);
      const gradOutput = gradOf(p);
      const [tl, tg] = c.dtype === 'f32' ? [1e-5, 1e-4] : [1e-3, 1e-3];
      expectClose(await runCceWebgpu(ctx, p, { gradOutput }), referenceCce(p, { gradOutput }), tl, tg);
    });
});
