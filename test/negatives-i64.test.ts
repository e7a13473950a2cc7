// An int64 negatives tensor read as it is (CceOptions.negativesDtype 'i64'): every kernel that reads the index
// tensor takes the low 32-bit word of each little-endian int64 element. The compiled kernels run on the CPU
// executor with the int64 tensor handed over as its i32 words, against the float64 reference on fresh random
// inputs at odd sizes: per-row and shared negatives, negatives equal to the target, ignored rows, the split,
// fused, forward + dE and by-item kernels, deterministic dC. Outputs are poisoned before every launch.
import { describe, expect, it } from 'vitest';
import type { Kernel } from '../codegen/ir.js';
import { compileKernel } from '../targets/registry.js';
import { lower } from '../codegen/lower.js';
import {
  cceCountPairs, cceFillPairs, cceReduceByItem, scanAdd, scanBlocks,
} from '../dsl/byitem.js';
import { COUNTER_SCHEDULE } from '../codegen/schedule.js';
import { type CceOptions, cceBackward, cceForward, cceFused, cceFusedDE, optionsKey } from '../dsl/cce.js';
import { CAPS } from '../targets/registry.js';
import { DEFAULT_SCHEDULE, type Schedule } from '../codegen/schedule.js';
import { DslError } from '../dsl/values.js';
import {
  type ByItemBuffers, type ByItemOps, byItemPlan, reduceScheduleFor, runByItemChunks,
} from '../runtime/byitem.js';
import { relErr } from '../runtime/check.js';
import { compileJs } from '../targets/js/emit.js';
import { referenceCce } from '../runtime/cpu/reference.js';
import {
  optionsFor, problemDims, reduceLoss, scheduleForProblem, upstreamGradient,
} from '../runtime/cpu/run.js';
import { fixedToFloat, runDCScale } from '../runtime/fixed.js';
import { decode } from '../runtime/numeric.js';
import { CceInputError, type CceProblem, checkSizes, logQ } from '../runtime/problem.js';
import { samplerInputs } from '../runtime/philox.js';
import { type ProblemCase, caseName, caseProblem } from './support/cases.js';

type Path = 'split' | 'fused' | 'frozen' | 'byItem';

interface Case extends ProblemCase {
  path: Path;
  deterministic?: boolean;
  S?: Schedule['samplesPerStep'];
  /** dC by item: bytes of the pair buffers (several chunks). */
  pairBytes?: number;
}

const CASES: Case[] = [
  { N: 1, D: 1, V: 2, K: 1, dtype: 'f32', reduction: 'mean', path: 'split' },
  { N: 37, D: 13, V: 11, K: 9, dtype: 'f16', reduction: 'none', path: 'split', S: 2 },
  { N: 129, D: 57, V: 97, K: 33, dtype: 'bf16', reduction: 'sum', path: 'split', popularity: true, S: 8 },
  { N: 70, D: 3, V: 29, K: 21, dtype: 'f32', reduction: 'mean', path: 'fused', S: 4 },
  { N: 53, D: 19, V: 41, K: 7, dtype: 'f32', reduction: 'sum', path: 'fused', deterministic: true },
  { N: 61, D: 9, V: 23, K: 13, dtype: 'bf16', reduction: 'mean', path: 'frozen', popularity: true },
  { N: 45, D: 7, V: 31, K: 11, dtype: 'f32', reduction: 'none', path: 'split', share: 16 },
  { N: 97, D: 33, V: 53, K: 40, dtype: 'f16', reduction: 'mean', path: 'fused', share: 32, popularity: true, S: 16 },
  { N: 77, D: 5, V: 19, K: 17, dtype: 'f32', reduction: 'sum', path: 'fused', share: 16, deterministic: true, S: 8 },
  { N: 50, D: 11, V: 37, K: 9, dtype: 'f32', reduction: 'mean', path: 'frozen', share: 16 },
  { N: 83, D: 17, V: 13, K: 15, dtype: 'f32', reduction: 'mean', path: 'byItem', pairBytes: 8 * 15 * 9 },
  { N: 41, D: 6, V: 300, K: 27, dtype: 'f16', reduction: 'sum', path: 'byItem', popularity: true },
];

/** The int64 tensor of `ids` as a framework holds it, seen as i32 words (little-endian: low word first). */
function int64Words(ids: Int32Array): Int32Array {
  const words = new Int32Array(BigInt64Array.from(ids, (x) => BigInt(x)).buffer);
  // The test is only meaningful where the low word comes first.
  expect(words[0]).toBe(ids[0]);
  return words;
}

const cpuSchedule = (c: Case): Schedule => ({
  rows: (c.share ? (c.N % 2 ? c.share : c.share / 4) : 4) as Schedule['rows'],
  lanes: 4, vec: 1, dChunks: 4, samplesPerStep: c.S ?? 2, stages: 1,
});
const reduceSchedule: Schedule = { rows: 2, lanes: 4, vec: 1, dChunks: 1, samplesPerStep: 1, stages: 1 };

type Buffers = Record<string, Int32Array | Uint32Array | Float64Array | BigInt64Array>;
const run = (kernel: Kernel, s: Schedule, b: Buffers, sc: Record<string, number>, rows: number): void =>
  compileJs(lower(kernel, s, CAPS.cpu))(b, sc, Math.ceil(rows / s.rows));

/** The kernels of one path with options `o` on problem `p`, negatives handed over as `negatives` (i32 words). */
function runPath(p: CceProblem, c: Case, o: CceOptions, negatives: Int32Array, gradOutput: number | Float64Array) {
  const s = scheduleForProblem(cpuSchedule(c), p, CAPS.cpu);
  const { nValid, gradScale, dloss } = upstreamGradient(p, gradOutput);
  const smp = samplerInputs(p);
  const scalars = {
    ...problemDims(p), K2: 2 * p.K, ignore_index: p.ignoreIndex, logq_uniform: -Math.log(p.V - 1),
    grad_scale: gradScale, dC_scale: runDCScale(p, o, gradScale, dloss), seed_lo: smp.seed_lo, seed_hi: smp.seed_hi,
  };
  const inputs = { E: decode(p.dtype, p.E), C: decode(p.dtype, p.C), targets: p.targets, negatives, logq: logQ(p) };
  const loss = new Float64Array(p.N).fill(NaN);
  const lse = new Float64Array(p.N).fill(NaN);
  const kacc = new Int32Array(p.N).fill(-1);
  const dE = new Float64Array(p.N * p.D).fill(NaN);
  const dCacc = o.deterministic ? new BigInt64Array(p.V * p.D) : new Float64Array(p.V * p.D);
  if (c.path === 'split') {
    run(cceForward(o), s, { ...inputs, loss, lse, kacc }, scalars, p.N);
    run(cceBackward(o), s, { ...inputs, lse, kacc, dloss, dE, dC: dCacc }, scalars, p.N);
  } else if (c.path === 'fused') run(cceFused(o), s, { ...inputs, loss, dE, dC: dCacc }, scalars, p.N);
  else if (c.path === 'frozen') run(cceFusedDE(o), s, { ...inputs, loss, dE }, scalars, p.N);
  else {
    const lseK = new Float64Array(p.N).fill(NaN);
    const dC = dCacc as Float64Array;
    run(cceFusedDE(o, true), s, { ...inputs, loss, dE, lse_k: lseK, dC }, scalars, p.N);
    const plan = byItemPlan(p, c.pairBytes);
    const buffers: ByItemBuffers<Int32Array | Float64Array | Uint32Array> = {
      counts: new Int32Array(p.V),
      local: plan.levels.map((l) => new Int32Array(l.n)),
      totals: plan.levels.map((l) => new Int32Array(l.blocks)),
      rows: plan.packed ? new Uint32Array(plan.capacity) : new Int32Array(plan.capacity),
      items: new Int32Array(plan.packed ? 0 : plan.capacity),
      inputs: { ...inputs, lse_k: lseK, dC },
    };
    const rs = reduceScheduleFor(reduceSchedule, p.D);
    // The passes after the forward, by either name a runtime gives them.
    const passes: Record<string, () => [Kernel, Schedule]> = {
      count: () => [cceCountPairs(o), COUNTER_SCHEDULE],
      scan: () => [scanBlocks(), COUNTER_SCHEDULE],
      scanAdd: () => [scanAdd(), COUNTER_SCHEDULE],
      fill: () => [cceFillPairs(o, plan.packed), COUNTER_SCHEDULE],
      reduce: () => [cceReduceByItem(o, plan.packed), rs],
    };
    Object.assign(passes, {
      count_pairs: passes.count, scan_blocks: passes.scan, scan_add: passes.scanAdd, fill_pairs: passes.fill,
      dc_by_item: passes.reduce,
    });
    const ops: ByItemOps<Int32Array | Float64Array | Uint32Array> = {
      launch: (k: string, rows, bufs, sc) => {
        const [kernel, schedule] = passes[k]!();
        run(kernel, schedule, bufs, sc, rows);
      },
      clear: (b, n) => b.fill(0, 0, n),
    };
    runByItemChunks(ops, p, plan, buffers, scalars);
  }
  const dC = dCacc instanceof BigInt64Array ? fixedToFloat(dCacc, scalars.dC_scale) : dCacc;
  return { loss: reduceLoss(p, loss, nValid), rowLoss: loss, lse, kacc, dE, dC };
}

const caseOf = (c: Case) => `${caseName(c)} ${c.path}${c.deterministic ? ' det' : ''} S=${c.S ?? 2}`;

describe('int64 negatives read as their low words: compiled kernels (CPU executor) vs float64 reference', () => {
  for (const c of CASES)
    it(caseOf(c), () => {
      const p = caseProblem(c, { ignoreFraction: c.N > 1 ? 0.15 : 0, collisionRate: 0.2 });
      const gradOutput = p.reduction === 'none' ? Float64Array.from({ length: p.N }, () => Math.random() + 0.5) : 1.5;
      const o: CceOptions = { ...optionsFor(p, c), negativesDtype: 'i64' };
      const got = runPath(p, c, o, int64Words(p.negatives!), gradOutput);
      const ref = referenceCce(p, { gradOutput });
      if (c.N > 1 && !c.share) {
        // The problem has negatives equal to their row's target and ignored rows, which the kernels must skip.
        const hits = p.negatives!.filter((n, at) => n === p.targets[Math.floor(at / p.K)]).length;
        expect(hits).toBeGreaterThan(0);
        expect(ref.nValid).toBeLessThan(p.N);
      }
      const l = (x: number | Float64Array) => (typeof x === 'number' ? [x] : x);
      expect(relErr(l(got.loss), l(ref.loss))).toBeLessThan(1e-10);
      expect(relErr(got.rowLoss, ref.rowLoss)).toBeLessThan(1e-10);
      expect(relErr(got.dE, ref.dE)).toBeLessThan(1e-10);
      if (c.path === 'split') {
        expect(relErr(got.lse, ref.lse)).toBeLessThan(1e-10);
        expect(Array.from(got.kacc)).toEqual(Array.from(ref.kAccepted));
      }
      if (c.path !== 'frozen') expect(relErr(got.dC, ref.dC)).toBeLessThan(c.deterministic ? 1e-9 : 1e-10);
    });

  it('reads the low word of each element: the same slots as i32 give the same results, the high words never', () => {
    const c: Case = { N: 29, D: 5, V: 17, K: 6, dtype: 'f32', reduction: 'sum', path: 'split' };
    const p = caseProblem(c, { collisionRate: 0.2 });
    const words = int64Words(p.negatives!);
    // High words that a reader of the wrong word would take for items (out of range: caught as NaN or a mismatch).
    for (let i = 1; i < words.length; i += 2) words[i] = 0x7fff0000 + i;
    const o32 = optionsFor(p, c);
    const wide = runPath(p, c, { ...o32, negativesDtype: 'i64' }, words, 1.5);
    const narrow = runPath(p, c, o32, p.negatives!, 1.5);
    expect(Array.from(wide.rowLoss)).toEqual(Array.from(narrow.rowLoss));
    expect(Array.from(wide.dE)).toEqual(Array.from(narrow.dE));
    expect(Array.from(wide.dC)).toEqual(Array.from(narrow.dC));
  });
});

describe('negativesDtype in the options and the IR', () => {
  const base: CceOptions = { mode: 'sampled', dtype: 'f32', sampling: 'uniform', grad: 'scalar' };
  const s: Schedule = { rows: 4, lanes: 4, vec: 1, dChunks: 4, samplesPerStep: 2, stages: 1 };
  const negParam = (k: Kernel) => k.params.find((x) => x.name === 'negatives');

  it('is part of optionsKey only when i64', () => {
    expect(optionsKey({ ...base, negativesDtype: 'i32' })).toBe(optionsKey(base));
    expect(optionsKey({ ...base, negativesDtype: 'i64' })).not.toBe(optionsKey(base));
  });

  it('declares an i32 tensor [N, K2] ([G, K2] shared), K2 = 2·K; i32 keeps [N, K]', () => {
    expect(negParam(cceForward(base))).toMatchObject({ dtype: 'i32', shape: ['N', 'K'] });
    const wide = cceBackward({ ...base, negativesDtype: 'i64' });
    expect(negParam(wide)).toMatchObject({ dtype: 'i32', shape: ['N', 'K2'] });
    expect(wide.dims).toContain('K2');
    const shared = cceFused({ ...base, share: 16, negativesDtype: 'i64' });
    expect(negParam(shared)).toMatchObject({ dtype: 'i32', shape: ['G', 'K2'] });
    const o64: CceOptions = { ...base, negativesDtype: 'i64' };
    for (const k of [cceCountPairs(o64), cceFillPairs(o64), cceFillPairs(o64, true)])
      expect(negParam(k)).toMatchObject({ dtype: 'i32', shape: ['N', 'K2'] });
  });

  it('refuses i64 with drawn negatives, in full mode and an unknown dtype, naming negativesDtype', () => {
    const philox: CceOptions = { ...base, negatives: 'philox', negativesDtype: 'i64' };
    for (const make of [
      () => cceForward(philox),
      () => cceFused({ ...philox, share: 16 }),
      () => cceCountPairs(philox),
      () => cceReduceByItem(philox),
    ])
      expect(make).toThrow(/negativesDtype 'i64': negatives 'philox'/);
    const full: CceOptions = { ...base, mode: 'full', negativesDtype: 'i64' };
    expect(() => cceForward(full)).toThrow(DslError);
    expect(() => cceFusedDE(full)).toThrow(/negativesDtype 'i64': full mode/);
    const bad = { ...base, negativesDtype: 'u8' } as unknown as CceOptions;
    expect(() => cceBackward(bad)).toThrow(/negativesDtype: must be 'i32' or 'i64'/);
  });

  it('every target prints the i64 kernels: per-row, shared and by-item, K2 a size parameter', () => {
    const o64: CceOptions = { ...base, dtype: 'f16', negativesDtype: 'i64' };
    const shared: Schedule = { rows: 16, lanes: 4, vec: 4, dChunks: 2, samplesPerStep: 16, stages: 1 };
    const kernels: [Kernel, Schedule][] = [
      [cceForward(o64), DEFAULT_SCHEDULE],
      [cceBackward({ ...o64, grad: 'perRow' }), DEFAULT_SCHEDULE],
      [cceFused({ ...o64, share: 16 }), shared],
      [cceFusedDE(o64, true), DEFAULT_SCHEDULE],
      [cceCountPairs(o64), COUNTER_SCHEDULE],
      [cceFillPairs(o64, true), COUNTER_SCHEDULE],
    ];
    for (const target of ['wgsl', 'cuda', 'triton'] as const)
      for (const [k, ks] of kernels) {
        const src = compileKernel(k, ks, target, CAPS[target]).source;
        expect(src).toMatch(/\bK2\b/);
        // The load of the index tensor takes word 2·(row·K + slot): its index ends in a doubling.
        expect(src).toMatch(/negatives(\[| \+ ).*\* 2i?\)/);
      }
  });

  it('checkSizes counts int64 negatives as two words an element (N·K up to 2^30)', () => {
    // The last word a kernel reads is 2·(N·K − 1) + 1 = 2^31 − 1 at N·K = 2^30.
    const sizes = { N: 2 ** 15, V: 1000, D: 8, K: 2 ** 15 };
    expect(() => checkSizes({ ...sizes, negativesDtype: 'i64' })).not.toThrow();
    const over = { ...sizes, K: 2 ** 15 + 1 };
    expect(() => checkSizes(over)).not.toThrow();
    expect(() => checkSizes({ ...over, negativesDtype: 'i64' })).toThrow(CceInputError);
    expect(() => checkSizes({ ...over, negativesDtype: 'i64' }, { N: '--n' })).toThrow(/^--n: 2·N·K = 2147549184 /);
  });
});
