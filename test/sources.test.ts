// Candidate sources (dsl/sources/): in-batch candidates (all rows' targets, or each group's), mixed (in-batch plus
// drawn negatives, each part with its own q) and positions (loss rows reading rows of E), through the compiled
// kernels on the CPU executor and WebGPU (lavapipe in CI), against the float64 reference on fresh random
// inputs at odd sizes; and the schedule-free IR: no kernel nor IR key depends on a schedule field.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lower } from '../codegen/lower.js';
import type { Schedule } from '../codegen/schedule.js';
import { type CceOptions, optionsKey } from '../dsl/cce.js';
import { PASS_NAMES, passKernel } from '../dsl/passes.js';
import { referenceCce } from '../runtime/cpu/reference.js';
import { runCceCpu } from '../runtime/cpu/run.js';
import { kernelSpec } from '../runtime/kernels.js';
import { type CceProblem, validateProblem } from '../runtime/problem.js';
import { randomProblem } from '../runtime/random.js';
import { releaseWebgpu, type WebgpuContext } from '../runtime/webgpu/device.js';
import { runCceWebgpu } from '../runtime/webgpu/run.js';
import { CAPS, compileKernel } from '../targets/registry.js';
import { type ProblemCase, expectClose, freshSeed } from './support/cases.js';
import { WEBGPU_ADAPTER, skipTest, testWebgpu } from './support/toolchains.js';

/** K: drawn negatives per row (0: in-batch only). */
interface Case extends ProblemCase {
  inBatch?: 'batch' | 'group';
  /** Targets from a Zipf q given as the in-batch candidates' frequencies. */
  freq?: boolean;
  share?: 16 | 32 | 64;
  /** Rows of E (positions). */
  NE?: number;
  fused?: boolean;
  S?: Schedule['samplesPerStep'];
}

const CASES: Case[] = [
  { N: 1, D: 1, V: 2, K: 0, dtype: 'f32', reduction: 'mean', inBatch: 'batch' },
  { N: 37, D: 13, V: 11, K: 0, dtype: 'f32', reduction: 'none', inBatch: 'batch', S: 2 },
  { N: 70, D: 9, V: 23, K: 0, dtype: 'f16', reduction: 'sum', inBatch: 'batch', freq: true, fused: true, S: 4 },
  { N: 53, D: 17, V: 19, K: 0, dtype: 'bf16', reduction: 'mean', inBatch: 'group', share: 16, freq: true, S: 8 },
  { N: 45, D: 7, V: 31, K: 5, dtype: 'f32', reduction: 'none', inBatch: 'batch', philox: true, S: 2 },
  { N: 81, D: 33, V: 57, K: 9, dtype: 'f16', reduction: 'mean', inBatch: 'batch', share: 16, philox: true, S: 16 },
  { N: 40, D: 5, V: 29, K: 6, dtype: 'f32', reduction: 'sum', inBatch: 'group', share: 32, popularity: true },
  { N: 66, D: 12, V: 41, K: 7, dtype: 'bf16', reduction: 'mean', inBatch: 'batch', freq: true, popularity: true },
  { N: 29, D: 11, V: 50, K: 13, dtype: 'f32', reduction: 'none', NE: 61 },
  { N: 57, D: 20, V: 90, K: 8, dtype: 'f16', reduction: 'mean', NE: 100, philox: true, fused: true, S: 8 },
  { N: 31, D: 6, V: 17, K: 0, dtype: 'f32', reduction: 'mean', NE: 47, inBatch: 'batch' },
  { N: 48, D: 10, V: 60, K: 5, dtype: 'bf16', reduction: 'sum', NE: 50, inBatch: 'batch', share: 16, philox: true },
];

const name = (c: Case) =>
  [`N=${c.N} D=${c.D} V=${c.V} K=${c.K} ${c.dtype} ${c.reduction}`, c.inBatch && `in-batch ${c.inBatch}`,
    c.freq && 'freq q', c.share && `R=${c.share}`, c.philox && 'philox', c.popularity && 'popularity',
    c.NE && `positions of ${c.NE}`, c.fused && 'fused', `S=${c.S ?? 4}`].filter(Boolean).join(' ');

function problemOf(c: Case): CceProblem {
  const p = randomProblem({
    N: c.N, D: c.D, V: c.V, K: c.K, dtype: c.dtype, seed: freshSeed(), shareRows: c.share, inBatch: c.inBatch,
    inBatchPopularity: c.freq, popularity: c.popularity, NE: c.NE, ignoreFraction: c.N > 1 ? 0.15 : 0,
    collisionRate: c.share ? 0 : 0.1,
  });
  const q = { ...p, reduction: c.reduction };
  return c.philox && c.K > 0 ? { ...q, negatives: undefined, philoxSeed: freshSeed() } : q;
}

const gradOf = (p: CceProblem) =>
  p.reduction === 'none' ? Float64Array.from({ length: p.N }, (_, i) => 0.5 + (i % 4)) : 1.5;
const scheduleOf = (c: Case): Schedule => ({
  rows: (c.share ? c.share / 4 : 4) as Schedule['rows'], lanes: 4, vec: 1, dChunks: 1, samplesPerStep: c.S ?? 4,
  stages: 1,
});

describe('candidate sources: problems and the reference', () => {
  it('in-batch candidates are the rows\' targets; duplicates of the target and ignored rows are not counted', () => {
    const p = randomProblem({ N: 30, D: 3, V: 5, K: 0, dtype: 'f32', seed: freshSeed(), inBatch: 'batch',
      ignoreFraction: 0.2 });
    validateProblem(p);
    const ref = referenceCce(p);
    for (let i = 0; i < p.N; i++) {
      const t = p.targets[i]!;
      const want = t === p.ignoreIndex ? 0 : [...p.targets].filter((n) => n !== p.ignoreIndex && n !== t).length;
      expect(ref.kAccepted[i]).toBe(want);
    }
  });

  it('refuses bad source inputs, naming the argument', () => {
    const p = randomProblem({ N: 20, D: 3, V: 9, K: 0, dtype: 'f32', seed: 1, inBatch: 'batch', NE: 25 });
    expect(() => validateProblem({ ...p, positions: Int32Array.from(p.positions!, (r, i) => (i ? r : p.positions![1]!)) }))
      .toThrow(/^positions: row \d+ at \[1\] is listed twice/);
    expect(() => validateProblem({ ...p, positions: new Int32Array(20).fill(30) })).toThrow(/^positions: row 30/);
    expect(() => validateProblem({ ...p, inBatch: 'group' })).toThrow(/^inBatch: 'group' needs shareRows/);
    expect(() => validateProblem({ ...p, inBatchProbs: new Float64Array(3) })).toThrow(/^inBatchProbs: length 3/);
    expect(() => validateProblem({ ...p, inBatch: undefined })).toThrow(/^K: must be an integer >= 1/);
    expect(() => validateProblem({ ...p, philoxSeed: 3 })).toThrow(/^K: K = 0/);
  });
});

describe('candidate sources: compiled kernels (CPU executor) vs float64 reference', () => {
  for (const c of CASES)
    it(name(c), () => {
      const p = problemOf(c);
      const gradOutput = c.fused ? 1.5 : gradOf(p);
      const got = runCceCpu(p, { schedule: scheduleOf(c), gradOutput, fused: c.fused });
      expectClose(got, referenceCce(p, { gradOutput }), 1e-10, 1e-10);
    });
});

describe('candidate sources on WebGPU (Dawn; lavapipe in CI)', () => {
  let ctx: WebgpuContext | null = null;
  beforeAll(async () => {
    ctx = await testWebgpu();
  });
  afterAll(() => ctx && releaseWebgpu(ctx));
  for (const c of [CASES[3]!, CASES[5]!, CASES[11]!])
    it(name(c), async (t) => {
      if (skipTest(t, WEBGPU_ADAPTER, !!ctx) || !ctx) return;
      const p = problemOf(c);
      const gradOutput = c.fused ? 1.5 : gradOf(p);
      const [tl, tg] = c.dtype === 'f32' ? [1e-5, 1e-4] : [1e-3, 1e-3];
      expectClose(await runCceWebgpu(ctx, p, { gradOutput, fused: c.fused }), referenceCce(p, { gradOutput }), tl, tg);
    });
});

describe('the schedule stays out of the algorithm', () => {
  const VARIANTS: CceOptions[] = [
    { mode: 'sampled', dtype: 'f16', sampling: 'uniform', grad: 'scalar', negatives: 'philox' },
    { mode: 'sampled', dtype: 'f32', sampling: 'given', grad: 'perRow', share: 64 },
    { mode: 'sampled', dtype: 'bf16', sampling: 'uniform', grad: 'scalar', negatives: 'none', inBatch: 'batch' },
    { mode: 'sampled', dtype: 'f16', sampling: 'uniform', grad: 'scalar', negatives: 'philox', inBatch: 'batch',
      share: 64, inBatchSampling: 'given', positions: true },
    { mode: 'full', dtype: 'f32', sampling: 'uniform', grad: 'scalar' },
  ];
  const SCHEDULES: Schedule[] = [
    { rows: 4, lanes: 32, vec: 1, dChunks: 8, samplesPerStep: 4, stages: 2 },
    { rows: 64, lanes: 2, vec: 4, dChunks: 32, samplesPerStep: 32, stages: 3 },
    { rows: 1, lanes: 8, vec: 2, dChunks: 1, samplesPerStep: 1, stages: 1 },
  ];

  it('kernel factories take the variant only, and the IR key is the same for every schedule', () => {
    for (const o of VARIANTS)
      for (const pass of ['forward', 'backward', 'fused', 'fused_de'] as const) {
        const k = passKernel(pass, o);
        const text = JSON.stringify(k);
        // No schedule field reaches the IR: its candidate loops step by a tile the lowering sets (0 here).
        expect(k.cands).toBeUndefined();
        for (const field of ['rows', 'lanes', 'vec', 'dChunks', 'samplesPerStep', 'stages'])
          expect(text).not.toContain(`"${field}":`);
        expect(text).toMatch(/"cands":true/);
        const keys = new Set(SCHEDULES.map((s) => kernelSpec(pass, o, s, 64).irKey));
        expect(keys.size).toBe(1);
        expect([...keys][0]).toContain(optionsKey(o));
        // Compiled keys differ (the lowering takes the schedule), and each lowering leaves the IR unchanged.
        expect(new Set(SCHEDULES.map((s) => kernelSpec(pass, o, s, 64).key)).size).toBe(SCHEDULES.length);
        for (const s of SCHEDULES.slice(0, 1)) lower(k, s, CAPS.cpu);
        expect(JSON.stringify(k)).toBe(text);
      }
    expect(PASS_NAMES).toContain('fused_de');
  });

  it('untiled, the four uniform slots of a tile share one Philox call (no call per slot)', () => {
    const o = VARIANTS[0]!;
    const k = passKernel('forward', o);
    const rounds = (S: Schedule['samplesPerStep']) => {
      const src = compileKernel(k, { ...SCHEDULES[0]!, samplesPerStep: S }, 'cuda', CAPS.cuda).source;
      return src.match(/__umulhi\(/g)!.length;
    };
    // A Philox call is 19 mulhi (two a round; one of round 0 multiplies a constant word and folds); the uniform
    // map adds one a slot.
    expect(rounds(1)).toBe(19 + 1);
    expect(rounds(2)).toBe(19 + 2);
    expect(rounds(4)).toBe(19 + 4);
    expect(rounds(8)).toBe(2 * 19 + 8);
  });
});
