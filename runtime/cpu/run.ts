// CPU runtime: runs the compiled CCE- kernels (IR → lowering → JS, float64) on a problem; the same API
// the GPU runtimes offer. Outputs are poisoned (NaN / −1) before each launch so unwritten values show.
import { type CceOptions, cceBackward, cceForward, cceFused, cceFusedDE, optionsKey } from '../../dsl/cce.js';
import type { ScalarFn } from '../../dsl/scalarfn.js';
import {
  CAPS, DEFAULT_SCHEDULE, type DeviceCaps, type Schedule, checkScheduleForD, exactD, fitProblem,
} from '../../dsl/schedule.js';
import { checkKernelForD, lower } from '../../codegen/lower.js';
import { decode } from '../numeric.js';
import { type CceProblem, logQ, validateProblem } from '../problem.js';
import { compileJs, type CpuKernelFn } from './jsgen.js';
import type { ReferenceResult } from './reference.js';
import { negativeRows, samplerInputs } from '../philox.js';
import { fixedToFloat, runDCScale } from '../fixed.js';
import type { Kernel } from '../../codegen/ir.js';
import {
  type ByItemBuffers, type ByItemOps, byItemKernel, byItemPlan, reduceSchedule, reduceScheduleFor, runByItemChunks,
} from '../byitem.js';

export interface RunOptions {
  schedule?: Schedule;
  transform?: ScalarFn;
  correction?: ScalarFn;
  /** Upstream gradient: a scalar for mean / sum (default 1), per row for none (default ones). */
  gradOutput?: number | Float64Array;
  /** Mean / sum: forward and backward in one fused kernel (lse and the accepted count are not returned). */
  fused?: boolean;
  /** dC in int64 fixed point with integer atomics: bit-identical from run to run (runtime/fixed.ts). */
  deterministic?: boolean;
  /**
   * Mean / sum with item embeddings that need no gradient: forward and dE in one sweep (cceFusedDE); dC, lse
   * and the accepted counts are not returned (empty arrays).
   */
  frozenC?: boolean;
  /**
   * Mean / sum, per-row sampled negatives: dC reduced by item (dsl/byitem.ts) instead of one float atomic per
   * pair — the forward with dE in one sweep, then per chunk of rows count, scan, fill and reduce. lse and the
   * accepted counts are not returned (the forward keeps lse + log k for the reduction).
   */
  byItem?: boolean;
  /** dC by item: bytes of the pair buffers (sets the chunk of rows; default BY_ITEM_PAIR_BYTES). */
  pairBytes?: number;
  /** dC by item: false keeps two i32 words per pair where one packed u32 would fit; a number sets the item bits of packed entries (tests). */
  packPairs?: boolean | number;
  /** dC by item: the reduction's schedule (default reduceSchedule(D)). */
  reduceSchedule?: Schedule;
  /** Deterministic: the fixed-point scale (a power of two; default from the bound of |dC|, runtime/fixed.ts). */
  dCScale?: number;
}

/** What every runtime returns: the reference's result shape (float64 values). */
export type CceResult = ReferenceResult;

/** Upstream gradient as the kernels take it: a scale (mean: g / n_valid; sum: g) and per-row values (none). */
export function upstreamGradient(p: CceProblem, g: number | Float64Array | undefined): { nValid: number; gradScale: number; dloss: Float64Array } {
  let nValid = 0;
  for (let i = 0; i < p.N; i++) if (p.targets[i] !== p.ignoreIndex) nValid++;
  if (p.reduction !== 'none' && g instanceof Float64Array) throw new Error('gradOutput: a scalar for reduction mean / sum');
  const gs = typeof g === 'number' ? g : 1;
  const gradScale = p.reduction === 'mean' ? (nValid > 0 ? gs / nValid : 0) : p.reduction === 'sum' ? gs : 1;
  const dloss = p.reduction === 'none' ? (g instanceof Float64Array ? g : new Float64Array(p.N).fill(gs)) : new Float64Array(1);
  return { nValid, gradScale, dloss };
}

/** The reduced loss from per-row losses. */
export function reduceLoss(p: CceProblem, rowLoss: Float64Array, nValid: number): number | Float64Array {
  if (p.reduction === 'none') return rowLoss.slice();
  let sum = 0;
  for (let i = 0; i < p.N; i++) sum += rowLoss[i]!;
  return p.reduction === 'sum' ? sum : nValid > 0 ? sum / nValid : 0;
}

export function optionsFor(p: CceProblem, o: Pick<RunOptions, 'transform' | 'correction' | 'deterministic'> = {}): CceOptions {
  return {
    mode: p.mode,
    dtype: p.dtype,
    sampling: p.itemProbs ? 'given' : 'uniform',
    negatives: p.philoxSeed !== undefined ? 'philox' : 'tensor',
    ...(p.shareRows ? { share: p.shareRows } : {}),
    grad: p.reduction === 'none' ? 'perRow' : 'scalar',
    transform: o.transform,
    correction: o.correction,
    ...(o.deterministic ? { deterministic: true } : {}),
  };
}

/**
 * The schedule a problem runs with on a device (fitted to D and to the groups of shared negatives), checked
 * against D (checkScheduleForD) before any buffer is allocated; every runtime takes its schedules from here.
 */
export function scheduleForProblem(s: Schedule, p: CceProblem, caps: DeviceCaps): Schedule {
  const fitted = fitProblem(s, p.D, caps, p.shareRows);
  checkScheduleForD(fitted, p.D);
  return fitted;
}

/** Size parameters of the kernels. */
export function problemDims(p: Pick<CceProblem, 'N' | 'D' | 'V' | 'K' | 'shareRows'>): Record<string, number> {
  return { N: p.N, D: p.D, V: p.V, K: p.K, G: negativeRows(p) };
}

/** Why a problem cannot take dC by item, or undefined. */
export function byItemUnsupported(p: CceProblem, o: RunOptions): string | undefined {
  if (p.reduction === 'none') return 'needs a scalar upstream gradient (reduction mean or sum)';
  if (p.mode !== 'sampled' || p.shareRows) return 'is for per-row sampled negatives';
  if (o.deterministic) return 'sums runs of pairs in float registers: not deterministic';
  if (o.frozenC) return 'reduces dC, which an item table without a gradient (frozenC) does not need';
  return undefined;
}

const cache = new Map<string, { fn: CpuKernelFn; schedule: Schedule }>();
/** `D`: the problem's vector length; where it equals the schedule's BLOCK_D the kernel drops its element guards, as on the GPUs. */
function compiled(key0: string, D: number, make: () => { kernel: Kernel; schedule: Schedule }): { fn: CpuKernelFn; schedule: Schedule } {
  const key = `${key0}|${D}`;
  let hit = cache.get(key);
  if (!hit) {
    const { kernel, schedule } = make();
    const lk = lower(kernel, schedule, CAPS.cpu, { exactD: exactD(schedule, D) });
    checkKernelForD(lk, D);
    hit = { fn: compileJs(lk), schedule };
    cache.set(key, hit);
  }
  return hit;
}
function kernelFor(which: 'fwd' | 'bwd' | 'fused' | 'fusedDE' | 'fusedDEByItem', opts: CceOptions, s: Schedule, D: number): CpuKernelFn {
  return compiled(`${which}|${JSON.stringify(s)}|${optionsKey(opts)}`, D, () => ({
    kernel: which === 'fwd' ? cceForward(opts, s) : which === 'bwd' ? cceBackward(opts, s) : which === 'fused' ? cceFused(opts, s) : cceFusedDE(opts, s, which === 'fusedDEByItem'),
    schedule: s,
  })).fn;
}

export function runCceCpu(p: CceProblem, o: RunOptions = {}): CceResult {
  validateProblem(p);
  const opts = optionsFor(p, o);
  const s = scheduleForProblem(o.schedule ?? DEFAULT_SCHEDULE, p, CAPS.cpu);
  const programs = Math.ceil(p.N / s.rows);
  const E = decode(p.dtype, p.E);
  const C = decode(p.dtype, p.C);
  const lq = logQ(p);
  const dims = problemDims(p);
  const smp = samplerInputs(p);
  const scalars: Record<string, number> = { ...dims, ignore_index: p.ignoreIndex, logq_uniform: -Math.log(p.V - 1), seed_lo: smp.seed_lo, seed_hi: smp.seed_hi, V2: smp.V2 };
  const rowLoss = new Float64Array(p.N).fill(NaN);
  const lse = new Float64Array(p.N).fill(NaN);
  const kacc = new Int32Array(p.N).fill(-1);
  const lseK = new Float64Array(p.N).fill(NaN);
  const inputs = { E, C, targets: p.targets, negatives: p.negatives ?? new Int32Array(0), logq: lq, alias_table: smp.alias ?? new Uint32Array(0) };
  const { nValid, gradScale, dloss } = upstreamGradient(p, o.gradOutput);
  const dE = new Float64Array(p.N * p.D).fill(NaN);
  const dCScale = runDCScale(p, o, gradScale, dloss);
  const dCacc = o.deterministic ? new BigInt64Array(p.V * p.D) : new Float64Array(p.V * p.D);
  const dC = () => (dCacc instanceof BigInt64Array ? fixedToFloat(dCacc, dCScale) : dCacc);
  const bwdScalars = { ...scalars, grad_scale: gradScale, dC_scale: dCScale };
  if (o.byItem) {
    const why = byItemUnsupported(p, o);
    if (why) throw new Error(`byItem: ${why}`);
    kernelFor('fusedDEByItem', opts, s, p.D)({ ...inputs, loss: rowLoss, dE, lse_k: lseK, dC: dCacc }, bwdScalars, programs);
    const plan = byItemPlan(p, o.pairBytes, o.packPairs);
    const rs = reduceScheduleFor(o.reduceSchedule ?? reduceSchedule(p.D), p.D);
    const buffers: ByItemBuffers<Int32Array | Float64Array | Uint32Array> = {
      counts: new Int32Array(p.V),
      local: plan.levels.map((l) => new Int32Array(l.n)),
      totals: plan.levels.map((l) => new Int32Array(l.blocks)),
      rows: plan.packed ? new Uint32Array(plan.capacity) : new Int32Array(plan.capacity),
      items: new Int32Array(plan.packed ? 0 : plan.capacity),
      inputs: { ...inputs, lse_k: lseK, dC: dCacc as Float64Array },
    };
    const ops: ByItemOps<Int32Array | Float64Array | Uint32Array> = {
      launch: (k, rows, bufs, sc) => {
        const { fn, schedule } = compiled(`byItem|${k}|${plan.packed}|${JSON.stringify(rs)}|${optionsKey(opts)}`, p.D, () => byItemKernel(k, opts, rs, plan.packed));
        fn(bufs, sc, Math.ceil(rows / schedule.rows));
      },
      clear: (b, n) => b.fill(0, 0, n),
    };
    runByItemChunks(ops, p, plan, buffers, bwdScalars);
    return { loss: reduceLoss(p, rowLoss, nValid), rowLoss, lse: new Float64Array(0), kAccepted: new Int32Array(0), nValid, dE, dC: dC() };
  }
  if (o.frozenC) {
    if (p.reduction === 'none') throw new Error('frozenC: needs a scalar upstream gradient (reduction mean or sum)');
    kernelFor('fusedDE', opts, s, p.D)({ ...inputs, loss: rowLoss, dE }, bwdScalars, programs);
    return { loss: reduceLoss(p, rowLoss, nValid), rowLoss, lse: new Float64Array(0), kAccepted: new Int32Array(0), nValid, dE, dC: new Float64Array(0) };
  }
  if (o.fused) {
    if (p.reduction === 'none') throw new Error('fused: needs a scalar upstream gradient (reduction mean or sum)');
    kernelFor('fused', opts, s, p.D)({ ...inputs, loss: rowLoss, dE, dC: dCacc }, bwdScalars, programs);
    return { loss: reduceLoss(p, rowLoss, nValid), rowLoss, lse: new Float64Array(0), kAccepted: new Int32Array(0), nValid, dE, dC: dC() };
  }
  kernelFor('fwd', opts, s, p.D)({ ...inputs, loss: rowLoss, lse, kacc }, scalars, programs);
  kernelFor('bwd', opts, s, p.D)({ ...inputs, lse, kacc, dloss, dE, dC: dCacc }, bwdScalars, programs);
  return { loss: reduceLoss(p, rowLoss, nValid), rowLoss, lse, kAccepted: kacc, nValid, dE, dC: dC() };
}
