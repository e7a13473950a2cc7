// The plan of one CCE- step, as data: from (problem, options, device caps, default schedules) which passes run
// (one rule table), their schedules, buffers (dtype, length, role, poison) and scalars. runtime/step.ts runs a
// plan on any backend.
import type { CceOptions } from '../dsl/cce.js';
import type { ScalarFn } from '../dsl/scalarfn.js';
import { type Schedule, checkScheduleForD, fitProblem } from '../codegen/schedule.js';
import type { DeviceCaps } from '../codegen/target.js';
import type { BufferDType, TimerMethod } from './backend.js';
import { type ByItemPlan, byItemPlan, reduceScheduleFor } from './byitem.js';
import type { ReferenceResult } from './cpu/reference.js';
import type { StepSchedules } from './defaults.js';
import { runDCScale } from './fixed.js';
import { type KernelSpec, type PassName, kernelSpec } from './kernels.js';
import { negativeRows, samplerInputs } from './philox.js';
import { type CceProblem, logQ, logQBatch, validateProblem } from './problem.js';

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
  /** Mean / sum, item embeddings without a gradient: forward and dE in one sweep; dC, lse, counts not returned. */
  frozenC?: boolean;
  /**
   * Mean / sum, per-row sampled negatives: dC reduced by item (dsl/byitem.ts) instead of one float atomic per
   * pair: the forward with dE in one sweep, then per chunk of rows count, scan, fill and reduce. lse and the
   * accepted counts are not returned.
   */
  byItem?: boolean;
  /** dC by item: bytes of the pair buffers (sets the chunk of rows; default BY_ITEM_PAIR_BYTES). */
  pairBytes?: number;
  /** dC by item: false keeps two i32 words a pair; a number sets the item bits of packed entries (tests). */
  packPairs?: boolean | number;
  /** dC by item: the reduction's schedule (default from runtime/defaults.ts). */
  reduceSchedule?: Schedule;
  /** Deterministic: the fixed-point scale (a power of two; default from the bound of |dC|, runtime/fixed.ts). */
  dCScale?: number;
  /** Timed repetitions of the step after the warm-up and before the checked run (0: none). */
  repeats?: number;
  /** Untimed steps last at least this long before the timed ones (clocks ramping up from idle). */
  warmupMs?: number;
}

/** What every backend returns: the reference's result shape (float64 values). */
export type CceResult = ReferenceResult;

export interface KernelTiming {
  kernel: string;
  /** Median over repeats, milliseconds. */
  ms: number;
  samples: number[];
  method: TimerMethod;
}

export interface StepResult extends CceResult {
  device: string;
  /** The passes the step ran, in order (runtime/kernels.ts names). */
  passes: PassName[];
  /** Median ms of the first pass, and of the passes after it (absent with one pass). */
  timings: KernelTiming[];
  schedule: Schedule;
  /** The backward's schedule (separate passes) or the by-item reduction's; the schedule otherwise. */
  bwdSchedule: Schedule;
}

export type StepKind = 'separate' | 'fused' | 'frozen' | 'byItem';

/** The rule table: the passes of each kind of step, and the outputs they write. */
export const STEP_RULES: Record<StepKind, { passes: readonly PassName[]; outputs: readonly string[] }> = {
  separate: { passes: ['forward', 'backward'], outputs: ['loss', 'lse', 'kacc', 'dE', 'dC'] },
  fused: { passes: ['fused'], outputs: ['loss', 'dE', 'dC'] },
  frozen: { passes: ['fused_de'], outputs: ['loss', 'dE'] },
  byItem: {
    passes: ['fused_de_by_item', 'count_pairs', 'scan_blocks', 'scan_add', 'fill_pairs', 'dc_by_item'],
    outputs: ['loss', 'dE', 'lse_k', 'dC'],
  },
};

/** Upstream gradient as the kernels take it: a scale (mean: g / n_valid; sum: g) and per-row values (none). */
export function upstreamGradient(
  p: CceProblem,
  g: number | Float64Array | undefined,
): { nValid: number; gradScale: number; dloss: Float64Array } {
  let nValid = 0;
  for (let i = 0; i < p.N; i++) if (p.targets[i] !== p.ignoreIndex) nValid++;
  if (p.reduction !== 'none' && g instanceof Float64Array) {
    throw new Error('gradOutput: a scalar for reduction mean / sum');
  }
  const gs = typeof g === 'number' ? g : 1;
  const scales = { mean: nValid > 0 ? gs / nValid : 0, sum: gs, none: 1 };
  const perRow = g instanceof Float64Array ? g : new Float64Array(p.N).fill(gs);
  return { nValid, gradScale: scales[p.reduction], dloss: p.reduction === 'none' ? perRow : new Float64Array(1) };
}

/** The reduced loss from per-row losses. */
export function reduceLoss(p: CceProblem, rowLoss: Float64Array, nValid: number): number | Float64Array {
  if (p.reduction === 'none') return rowLoss.slice();
  let sum = 0;
  for (let i = 0; i < p.N; i++) sum += rowLoss[i]!;
  if (p.reduction === 'sum') return sum;
  return nValid > 0 ? sum / nValid : 0;
}

export function optionsFor(
  p: StepShape,
  o: Pick<RunOptions, 'transform' | 'correction' | 'deterministic'> = {},
): CceOptions {
  return {
    mode: p.mode,
    dtype: p.dtype,
    sampling: p.itemProbs ? 'given' : 'uniform',
    negatives: p.philoxSeed !== undefined ? 'philox' : p.inBatch && p.K === 0 ? 'none' : 'tensor',
    ...(p.shareRows ? { share: p.shareRows } : {}),
    ...(p.mode === 'sampled' && p.inBatch
      ? { inBatch: p.inBatch, inBatchSampling: p.inBatchProbs ? 'given' as const : 'uniform' as const }
      : {}),
    ...(p.positions ? { positions: true } : {}),
    grad: p.reduction === 'none' ? 'perRow' : 'scalar',
    transform: o.transform,
    correction: o.correction,
    ...(o.deterministic ? { deterministic: true } : {}),
  };
}

/**
 * The schedule a problem runs with on a device (fitted to D and to the groups of shared negatives), checked
 * against D (checkScheduleForD) before any buffer is allocated.
 */
export function scheduleForProblem(
  s: Schedule, p: Pick<CceProblem, 'D' | 'shareRows' | 'inBatch' | 'K' | 'philoxSeed'>, caps: DeviceCaps,
): Schedule {
  // In-batch candidates of the whole batch are shared by any program's rows: fitted like groups of its rows.
  const onlyBatch = p.inBatch === 'batch' && p.K === 0;
  const fitted = fitProblem(s, p.D, caps, p.shareRows ?? (onlyBatch ? s.rows : undefined));
  checkScheduleForD(fitted, p.D);
  return fitted;
}

/** Size parameters of the kernels. */
export function problemDims(
  p: Pick<CceProblem, 'N' | 'D' | 'V' | 'K' | 'shareRows' | 'NE'>,
): Record<string, number> {
  return { N: p.N, D: p.D, V: p.V, K: p.K, K2: 2 * p.K, G: negativeRows(p), NE: p.NE ?? p.N };
}

/** Why a problem cannot take dC by item, or undefined. */
export function byItemUnsupported(p: StepShape, o: RunOptions): string | undefined {
  if (p.reduction === 'none') return 'needs a scalar upstream gradient (reduction mean or sum)';
  if (p.mode !== 'sampled' || p.shareRows || p.inBatch || p.positions) return 'is for per-row sampled negatives';
  if (o.deterministic) return 'sums runs of pairs in float registers: not deterministic';
  if (o.frozenC) return 'reduces dC, which an item table without a gradient (frozenC) does not need';
  return undefined;
}

/** The kind of step the options ask for; refuses combinations the kernels do not serve, naming the option. */
export function stepKind(p: StepShape, o: RunOptions): StepKind {
  if (o.byItem) {
    const why = byItemUnsupported(p, o);
    if (why) throw new Error(`byItem: ${why}`);
    return 'byItem';
  }
  const kind: StepKind = o.frozenC ? 'frozen' : o.fused ? 'fused' : 'separate';
  if (kind !== 'separate' && p.reduction === 'none') {
    throw new Error(`${o.frozenC ? 'frozenC' : 'fused'}: needs a scalar upstream gradient (reduction mean or sum)`);
  }
  return kind;
}

export interface BufferSpec {
  name: string;
  /** Inputs are uploaded, outputs read back, scratch is the step's own. */
  role: 'input' | 'output' | 'scratch';
  dtype: BufferDType;
  length: number;
  /** Host data uploaded once (inputs). */
  data?: ArrayLike<number>;
  /** Written before the checked run so unwritten values show (outputs). */
  poison?: number;
}

export interface StepPlan {
  kind: StepKind;
  options: CceOptions;
  schedule: Schedule;
  bwdSchedule?: Schedule;
  reduceSchedule?: Schedule;
  /** The step's kernels: its first pass, the backward (separate passes), dC by item's passes. */
  kernels: KernelSpec[];
  byItem?: ByItemPlan;
  buffers: BufferSpec[];
  scalars: Record<string, number>;
  nValid: number;
  dCScale: number;
}

/** What a plan needs of a problem: its sizes and kinds, no data (benchmarks generate their inputs on the device). */
export type StepShape = Pick<
  CceProblem, 'mode' | 'N' | 'D' | 'V' | 'K' | 'dtype' | 'shareRows' | 'philoxSeed' | 'reduction' | 'ignoreIndex'
  | 'inBatch' | 'NE'
> & { itemProbs?: unknown; inBatchProbs?: unknown; positions?: unknown };

/** Values of a plan that depend on the data: the upstream gradient, the fixed-point scale, the sampler's inputs. */
export interface StepDerived {
  nValid: number;
  gradScale: number;
  dlossLength: number;
  dCScale: number;
  seed_lo: number;
  seed_hi: number;
  V2: number;
  aliasLength: number;
  logqLength: number;
  logqBatchLength: number;
}

/** The plan of one step; every schedule is fitted and checked against D before anything is compiled. */
export function planShape(
  p: StepShape, o: RunOptions, caps: DeviceCaps, defaults: StepSchedules, d: StepDerived,
): StepPlan {
  const kind = stepKind(p, o);
  const options = optionsFor(p, o);
  const s = scheduleForProblem(o.schedule ?? (kind === 'fused' ? defaults.fused : defaults.fwd), p, caps);
  const bwdS = kind !== 'separate' ? undefined : o.schedule ? s : scheduleForProblem(defaults.bwd, p, caps);
  if (bwdS && bwdS.rows !== s.rows) {
    throw new Error('forward and backward schedules must have the same rows per program');
  }
  const reduceS = kind === 'byItem' ? reduceScheduleFor(o.reduceSchedule ?? defaults.reduce, p.D) : undefined;
  const [first, ...rest] = STEP_RULES[kind].passes;
  const kernels = [kernelSpec(first!, options, s, p.D)];
  if (bwdS) kernels.push(kernelSpec('backward', options, bwdS, p.D));
  const plan = kind === 'byItem' ? byItemPlan(p, o.pairBytes, o.packPairs) : undefined;
  if (plan) for (const pass of rest) kernels.push(kernelSpec(pass, options, reduceS!, p.D, plan.packed));
  const scalars: Record<string, number> = {
    ...problemDims(p), ignore_index: p.ignoreIndex, logq_uniform: -Math.log(p.V - 1),
    logq_batch_uniform: -Math.log(p.V - 1), grad_scale: d.gradScale,
    dC_scale: d.dCScale, seed_lo: d.seed_lo, seed_hi: d.seed_hi, V2: d.V2,
  };
  const { N, D, V } = p;
  const NE = p.positions ? p.NE! : N;
  const input = (name: string, dtype: BufferDType, length: number): BufferSpec =>
    ({ name, dtype, length, role: 'input' });
  const drawn = p.mode === 'sampled' && p.philoxSeed !== undefined;
  const buffers: BufferSpec[] = [
    input('E', p.dtype, NE * D),
    input('C', p.dtype, V * D),
    input('targets', 'i32', N),
    input('negatives', 'i32', p.mode === 'sampled' && !drawn ? negativeRows(p) * p.K : 0),
    input('logq', 'f32', d.logqLength),
    input('alias_table', 'u32', d.aliasLength),
    input('dloss', 'f32', d.dlossLength),
    input('logq_batch', 'f32', d.logqBatchLength),
    input('positions', 'i32', p.positions ? N : 0),
  ];
  const out = (name: string, dtype: BufferDType, length: number, poison?: number): BufferSpec =>
    ({ name, dtype, length, role: name === 'lse_k' ? 'scratch' : 'output', poison });
  const outputs: Record<string, BufferSpec> = {
    loss: out('loss', 'f32', N, NaN),
    lse: out('lse', 'f32', N, NaN),
    kacc: out('kacc', 'i32', N, -1),
    lse_k: out('lse_k', 'f32', N, NaN),
    // With positions dE rows no position names stay as filled: zero (the gradient of rows without a loss).
    dE: out('dE', 'f32', NE * D, p.positions ? 0 : NaN),
    dC: out('dC', o.deterministic ? 'i64' : 'f32', V * D),
  };
  buffers.push(...STEP_RULES[kind].outputs.map((n) => outputs[n]!));
  if (plan) {
    const scratch = (name: string, dtype: BufferDType, length: number) =>
      buffers.push({ name, dtype, length, role: 'scratch' });
    scratch('counts', 'i32', V);
    plan.levels.forEach((l, i) => {
      scratch(`scan_local${i}`, 'i32', l.n);
      scratch(`scan_totals${i}`, 'i32', l.blocks);
    });
    scratch('pair_rows', plan.packed ? 'u32' : 'i32', plan.capacity);
    scratch('pair_items', 'i32', plan.packed ? 0 : plan.capacity);
  }
  return {
    kind, options, schedule: s, bwdSchedule: bwdS, reduceSchedule: reduceS, kernels, byItem: plan, buffers, scalars,
    nValid: d.nValid, dCScale: d.dCScale,
  };
}

/** The plan of a step on a problem with its data: the inputs' buffers carry the data to upload. */
export function planStep(p: CceProblem, o: RunOptions, caps: DeviceCaps, defaults: StepSchedules): StepPlan {
  validateProblem(p);
  const up = upstreamGradient(p, o.gradOutput);
  const smp = samplerInputs(p);
  const lq = logQ(p);
  const derived: StepDerived = {
    nValid: up.nValid, gradScale: up.gradScale, dlossLength: up.dloss.length,
    dCScale: runDCScale(p, o, up.gradScale, up.dloss), seed_lo: smp.seed_lo, seed_hi: smp.seed_hi, V2: smp.V2,
    aliasLength: smp.alias?.length ?? 0, logqLength: lq.length,
    logqBatchLength: p.inBatchProbs ? p.V : 0,
  };
  const plan = planShape(p, o, caps, defaults, derived);
  const data: Record<string, ArrayLike<number> | undefined> = {
    E: p.E, C: p.C, targets: p.targets, negatives: p.negatives, logq: lq, alias_table: smp.alias, dloss: up.dloss,
    logq_batch: p.inBatchProbs ? logQBatch(p) : undefined, positions: p.positions,
  };
  for (const b of plan.buffers) if (b.role === 'input') b.data = data[b.name];
  return plan;
}
