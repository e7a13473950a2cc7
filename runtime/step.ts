// The one CCE- step on any Backend (runtime/backend.ts): compile the plan's kernels (runtime/plan.ts), upload,
// timed repeats, the checked run on poisoned outputs, readback and the result. Written once as generators, driven
// synchronously (CPU, CUDA) or asynchronously (WebGPU).
import type { Schedule } from '../codegen/schedule.js';
import { type Backend, type CompiledKernel, type DeviceBuffer, driveAsync, driveSync } from './backend.js';
import { runByItemChunks } from './byitem.js';
import type { StepSchedules } from './defaults.js';
import { fixedToFloat } from './fixed.js';
import { type ByItemPass, type PassName, kernelSpec } from './kernels.js';
import {
  type KernelTiming, type RunOptions, type StepPlan, type StepResult, optionsFor, planStep, reduceLoss,
} from './plan.js';
import { samplerInputs } from './philox.js';
import type { CceProblem } from './problem.js';

export * from './plan.js';

/** A plan compiled and allocated on a backend: enqueue its launches as often as needed. */
export interface PreparedStep<B extends DeviceBuffer, K extends CompiledKernel> {
  plan: StepPlan;
  kernels: K[];
  buffers: Record<string, B>;
  /**
   * Clear dC and launch every pass once; `over` replaces buffers (rotating input sets). Marks: 'split' around
   * the first pass and the rest, 'each' around every launch (the passes launched are returned, in order).
   */
  enqueue(over?: Record<string, B>, marks?: 'split' | 'each'): PassName[];
  free(): void;
}

/** Compile a plan's kernels and allocate its buffers; inputs with data are uploaded. */
export function* prepareStep<B extends DeviceBuffer, K extends CompiledKernel>(
  b: Backend<B, K>, p: Pick<CceProblem, 'N' | 'K' | 'V'>, plan: StepPlan,
): Generator<unknown, PreparedStep<B, K>, unknown> {
  const kernels: K[] = [];
  for (const spec of plan.kernels) kernels.push((yield b.compile(spec)) as K);
  const bufs: Record<string, B> = {};
  const free = () => {
    for (const x of Object.values(bufs)) b.free(x);
  };
  try {
    for (const x of plan.buffers) {
      bufs[x.name] = b.alloc(x.name, x.dtype, x.length);
      if (x.data && x.length) b.upload(bufs[x.name]!, x.data);
    }
  } catch (e) {
    free();
    throw e;
  }
  const byPass = new Map(kernels.map((k) => [k.spec.pass, k]));
  const enqueue = (over?: Record<string, B>, marks?: 'split' | 'each'): PassName[] => {
    const all = over ? { ...bufs, ...over } : bufs;
    const launched: PassName[] = [];
    const launch = (k: K, rows: number, bb: Record<string, B>, sc: Record<string, number>) => {
      if (marks === 'each') b.mark();
      b.launch(k, rows, bb, sc);
      if (marks === 'each') b.mark();
      launched.push(k.spec.pass);
    };
    if (all.dC) b.fill(all.dC, 0);
    if (marks === 'split') b.mark();
    launch(kernels[0]!, p.N, all, plan.scalars);
    if (marks === 'split') b.mark();
    if (plan.kind === 'separate') launch(kernels[1]!, p.N, all, plan.scalars);
    if (plan.byItem) {
      const levels = plan.byItem.levels;
      const ops = {
        launch: (pass: ByItemPass, rows: number, bb: Record<string, B>, sc: Record<string, number>) =>
          launch(byPass.get(pass)!, rows, bb, sc),
        clear: (x: B, n: number) => b.fill(x, 0, n),
      };
      const scan = {
        local: levels.map((_, i) => all[`scan_local${i}`]!),
        totals: levels.map((_, i) => all[`scan_totals${i}`]!),
      };
      const pairs = { counts: all.counts!, ...scan, rows: all.pair_rows!, items: all.pair_items! };
      runByItemChunks(ops, p, plan.byItem, { ...pairs, inputs: all }, plan.scalars);
    }
    if (marks === 'split') b.mark();
    return launched;
  };
  return { plan, kernels, buffers: bufs, enqueue, free };
}

/**
 * Untimed steps (at least two, and for `warmupMs`), then `repeats` timed ones: [first pass, the rest] ms each.
 * `over(r)` gives the buffers of repeat r (rotating input sets).
 */
export function* timeSteps<B extends DeviceBuffer, K extends CompiledKernel>(
  b: Backend<B, K>, st: PreparedStep<B, K>, repeats: number, warmupMs = 0, warmups = 2,
  over?: (r: number) => Record<string, B> | undefined,
): Generator<unknown, number[][], unknown> {
  const warmEnd = performance.now() + warmupMs;
  for (let r = 0; r < warmups || performance.now() < warmEnd; r++) {
    st.enqueue(over?.(r));
    yield b.sync();
  }
  const samples: number[][] = [];
  for (let r = 0; r < repeats; r++) {
    st.enqueue(over?.(r), 'split');
    samples.push((yield b.elapsed()) as number[]);
  }
  return samples;
}

/** The value at fraction `at` of the sorted samples (NaN for none). */
export const quantile = (xs: number[], at: number): number =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(at * xs.length))] ?? NaN;
export const median = (xs: number[]): number => quantile(xs, 0.5);

/**
 * One step on a backend, as a generator (driveSync / driveAsync run it): compile the plan's kernels, allocate
 * and upload, time `repeats` steps, then the checked run on poisoned outputs, and read the result back.
 */
export function* cceStep<B extends DeviceBuffer, K extends CompiledKernel>(
  b: Backend<B, K>,
  p: CceProblem,
  o: RunOptions,
  defaults: StepSchedules,
): Generator<unknown, StepResult, unknown> {
  const plan = planStep(p, o, b.caps, defaults);
  const st = yield* prepareStep(b, p, plan);
  const bufs = st.buffers;
  try {
    const samples = o.repeats ? yield* timeSteps(b, st, o.repeats, o.warmupMs) : [];
    for (const x of plan.buffers) if (x.poison !== undefined) b.fill(bufs[x.name]!, x.poison);
    st.enqueue();
    yield b.sync();

    const read = function* (name: string): Generator<unknown, Float64Array, unknown> {
      return (yield b.read(bufs[name]!)) as Float64Array;
    };
    const rowLoss = yield* read('loss');
    const separate = plan.kind === 'separate';
    const lse = separate ? yield* read('lse') : new Float64Array(0);
    const kAccepted = !separate ? new Int32Array(0)
      : p.mode === 'sampled' ? ((yield b.read(bufs.kacc!)) as Int32Array) : new Int32Array(p.N);
    const dE = yield* read('dE');
    let dC: Float64Array = new Float64Array(0);
    if (bufs.dC) {
      const raw = yield b.read(bufs.dC);
      dC = raw instanceof BigInt64Array ? fixedToFloat(raw, plan.dCScale) : (raw as Float64Array);
    }
    const passes = plan.kernels.map((k) => k.pass);
    const names = st.kernels.map((k) => k.kernel.name);
    const timings: KernelTiming[] = !samples.length ? [] : [0, 1].slice(0, passes.length > 1 ? 2 : 1).map((i) => ({
      kernel: i ? names.slice(1).join(' + ') : names[0]!,
      ms: median(samples.map((x) => x[i]!)),
      samples: samples.map((x) => x[i]!),
      method: b.timing,
    }));
    return {
      loss: reduceLoss(p, rowLoss, plan.nValid), rowLoss, lse, kAccepted, nValid: plan.nValid, dE, dC,
      device: b.device, passes, timings, schedule: plan.schedule,
      bwdSchedule: plan.bwdSchedule ?? plan.reduceSchedule ?? plan.schedule,
    };
  } finally {
    st.free();
  }
}

/** A step on a synchronous backend (CPU, CUDA). */
export function runStepSync<B extends DeviceBuffer, K extends CompiledKernel>(
  b: Backend<B, K>, p: CceProblem, o: RunOptions, defaults: StepSchedules,
): StepResult {
  return driveSync(cceStep(b, p, o, defaults));
}

export function runStep<B extends DeviceBuffer, K extends CompiledKernel>(
  b: Backend<B, K>, p: CceProblem, o: RunOptions, defaults: StepSchedules,
): Promise<StepResult> {
  return driveAsync(cceStep(b, p, o, defaults));
}

/** The negatives the in-kernel sampler draws for a problem with philoxSeed, as a backend computes them. */
export function* samplesStep<B extends DeviceBuffer, K extends CompiledKernel>(
  b: Backend<B, K>, p: CceProblem, schedule: Schedule,
): Generator<unknown, Int32Array, unknown> {
  const k = (yield b.compile(kernelSpec('samples', optionsFor(p), schedule))) as K;
  const smp = samplerInputs(p);
  const bufs: Record<string, B> = {
    samples: b.alloc('samples', 'i32', p.N * p.K),
    alias_table: b.alloc('alias_table', 'u32', smp.alias?.length ?? 0),
  };
  try {
    if (smp.alias) b.upload(bufs.alias_table!, smp.alias);
    b.launch(k, p.N, bufs, { N: p.N, D: p.D, V: p.V, K: p.K, V2: smp.V2, seed_lo: smp.seed_lo, seed_hi: smp.seed_hi });
    yield b.sync();
    return (yield b.read(bufs.samples!)) as Int32Array;
  } finally {
    for (const x of Object.values(bufs)) b.free(x);
  }
}
