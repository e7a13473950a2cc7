// Timing the one CCE- step (runtime/step.ts) at benchmark sizes on any backend. Inputs are generated where they
// live: by the backend's own generator where it has one (CUDA: a hash-based kernel, so gigabyte-sized index
// tensors need no upload), else on the host and uploaded. Steps rotate between input sets so the L2 cache does not
// flatter; dC is cleared outside the timed passes.
import type { Schedule } from '../codegen/schedule.js';
import { type Backend, type BufferDType, type CompiledKernel, DTYPE_BYTES, type DeviceBuffer } from './backend.js';
import type { StepSchedules } from './defaults.js';
import { fixedScale } from './fixed.js';
import { encode } from './numeric.js';
import { type PassName } from './kernels.js';
import { type RunOptions, type StepShape, median, planShape, prepareStep, quantile, timeSteps } from './step.js';

export interface BenchProblem {
  N: number;
  V: number;
  K: number;
  D: number;
  /** Negatives shared by groups of rows: the index tensor is [G, K]. */
  shareRows?: number;
}

export interface BenchOptions extends Pick<RunOptions,
  'fused' | 'frozenC' | 'byItem' | 'deterministic' | 'pairBytes' | 'packPairs' | 'reduceSchedule' | 'schedule'> {
  dtype: 'f32' | 'f16' | 'bf16';
  negatives?: 'tensor' | 'philox';
  repeats?: number;
  warmup?: number;
  warmupMs?: number;
  /** Run the step twice on the same inputs and count the elements of dC that differ. */
  repeatCheck?: boolean;
  /** Input sets rotated between steps (default 2). */
  sets?: number;
  seed?: number;
}

export interface BenchTiming {
  ms: number;
  p20: number;
  p80: number;
  fwdMs: number;
  bwdMs: number;
  samples: number[];
  method: Backend['timing'];
  /** Device memory the step allocates beyond its inputs (E, C, targets, negatives) and gradients (dE, dC). */
  extraBytes: number;
  schedule: Schedule;
  bwdSchedule: Schedule;
  passes: PassName[];
  /** Registers a thread where the device reports them: the first pass and the last (or the one pass). */
  registers: { fwd: number; bwd: number } | { fused: number } | Record<string, never>;
  dCDiffer?: number;
  /** dC by item: ms of each pass in one step timed launch by launch, chunks of rows, packed pairs. */
  byItemMs?: Record<string, number>;
  reduceSchedule?: Schedule;
  chunks?: number;
  packed?: boolean;
}

/** What a generator fills a buffer with: Normal(0, scale) values, or uniform integers in [0, hi). */
export type Generated = { kind: 'normal'; seed: number; scale: number } | { kind: 'index'; seed: number; hi: number };

/** Both generators draw Box-Muller normals from 24-bit uniforms: |z| ≤ sqrt(−2·ln(1/16777217)) < 5.8 sigmas. */
export const GEN_MAX_SIGMAS = 5.8;

/** A device that fills its own buffers (runtime/cuda/generate.ts). */
export interface Generating<B> {
  generate(b: B, g: Generated): void;
}

const hash = (x: number) => {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
};

/** The host's generator, for backends without one: the same distributions, not the same values. */
export function hostGenerate(dtype: BufferDType, length: number, g: Generated): ArrayLike<number> {
  if (g.kind === 'index') {
    const out = new Int32Array(length);
    for (let i = 0; i < length; i++) out[i] = Math.floor((hash(i ^ hash(g.seed)) / 2 ** 32) * g.hi);
    return out;
  }
  const v = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    const a = hash(2 * i + Math.imul(g.seed, 0x9e3779b9));
    const b = hash(a ^ 0x632be5ab);
    const u1 = ((a >>> 8) + 1) / 16777217;
    const u2 = (b >>> 8) / 16777216;
    v[i] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2) * g.scale;
  }
  return dtype === 'f16' || dtype === 'bf16' ? encode(dtype, v) : v;
}

function generate<B extends DeviceBuffer>(b: Backend<B>, buf: B, g: Generated): void {
  const gen = (b as Partial<Generating<B>>).generate;
  if (gen) gen.call(b, buf, g);
  else b.upload(buf, hostGenerate(buf.dtype, buf.length, g));
}

const GRADIENTS = new Set(['E', 'C', 'targets', 'negatives', 'dE']);

/** A timed step at a benchmark size (mean reduction, every row counted, uniform q) on generated inputs. */
export function* benchStep<B extends DeviceBuffer, K extends CompiledKernel>(
  b: Backend<B, K>, bp: BenchProblem, o: BenchOptions, defaults: StepSchedules,
): Generator<unknown, BenchTiming, unknown> {
  const seed = o.seed ?? 1;
  const philox = o.negatives === 'philox';
  const shape: StepShape = {
    mode: 'sampled', ...bp, dtype: o.dtype, reduction: 'mean', ignoreIndex: -100,
    ...(philox ? { philoxSeed: 12345 } : {}),
  };
  const scale = 2 / Math.sqrt(bp.D);
  const plan = planShape(shape, o, b.caps, defaults, {
    nValid: bp.N, gradScale: 1 / bp.N, dlossLength: 1, dCScale: fixedScale(GEN_MAX_SIGMAS * scale, 1, false),
    seed_lo: 12345, seed_hi: 0, V2: 2 * bp.V, aliasLength: 0, logqLength: 0, logqBatchLength: 0,
  });
  const st = yield* prepareStep(b, bp, plan);
  const sets: Record<string, B>[] = [];
  try {
    const per = ['E', 'targets', 'negatives'];
    for (let s = 0; s < (o.sets ?? 2); s++) {
      const set: Record<string, B> = {};
      for (const n of per) {
        const spec = plan.buffers.find((x) => x.name === n)!;
        set[n] = s === 0 ? st.buffers[n]! : b.alloc(`${n}${s}`, spec.dtype, spec.length);
      }
      generate(b, set.E!, { kind: 'normal', seed: seed + 101 + s, scale });
      generate(b, set.targets!, { kind: 'index', seed: seed + 202 + s, hi: bp.V });
      if (set.negatives!.length) generate(b, set.negatives!, { kind: 'index', seed: seed + 303 + s, hi: bp.V });
      sets.push(set);
    }
    generate(b, st.buffers.C!, { kind: 'normal', seed, scale });
    const over = (r: number) => sets[r % sets.length];
    const samples = yield* timeSteps(b, st, o.repeats ?? 20, o.warmupMs ?? 0, o.warmup ?? 3, over);
    const total = samples.map(([f, r]) => f! + r!);
    const q = quantile;
    let dCDiffer: number | undefined;
    if (o.repeatCheck && st.buffers.dC) {
      const runs: ArrayLike<number | bigint>[] = [];
      for (let i = 0; i < 2; i++) {
        st.enqueue(sets[0]);
        yield b.sync();
        runs.push((yield b.read(st.buffers.dC)) as ArrayLike<number | bigint>);
      }
      dCDiffer = 0;
      for (let i = 0; i < runs[0]!.length; i++) if (!Object.is(runs[0]![i], runs[1]![i])) dCDiffer++;
    }
    let byItemMs: Record<string, number> | undefined;
    if (plan.byItem) {
      const launched = st.enqueue(sets[0], 'each');
      const ms = (yield b.elapsed()) as number[];
      byItemMs = {};
      launched.forEach((pass, i) => (byItemMs![pass] = (byItemMs![pass] ?? 0) + ms[2 * i]!));
    }
    const extraBytes = plan.buffers
      .filter((x) => !GRADIENTS.has(x.name) && !(x.name === 'dC' && x.dtype === 'f32'))
      .reduce((a, x) => a + x.length * DTYPE_BYTES[x.dtype], 0);
    const regs = st.kernels.map((k) => k.registers);
    let registers: BenchTiming['registers'] = {};
    if (regs[0] !== undefined) registers = regs.length === 1 ? { fused: regs[0] } : { fwd: regs[0], bwd: regs.at(-1)! };
    return {
      ms: q(total, 0.5), p20: q(total, 0.2), p80: q(total, 0.8),
      fwdMs: median(samples.map((x) => x[0]!)), bwdMs: median(samples.map((x) => x[1]!)), samples: total,
      method: b.timing, extraBytes, schedule: plan.schedule,
      bwdSchedule: plan.bwdSchedule ?? plan.reduceSchedule ?? plan.schedule, passes: plan.kernels.map((k) => k.pass),
      registers, dCDiffer,
      ...(plan.byItem ? {
        byItemMs, reduceSchedule: plan.reduceSchedule, chunks: Math.ceil(bp.N / plan.byItem.chunkRows),
        packed: plan.byItem.packed,
      } : {}),
    };
  } finally {
    for (const set of sets.slice(1)) for (const x of Object.values(set)) b.free(x);
    st.free();
  }
}
