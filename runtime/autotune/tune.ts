// The autotuner, over any backend: enumerate schedules from the DSL's schedule space, prune by the device's
// capability record and compile report (spills), reject any candidate whose result disagrees with the float64
// reference, time the survivors with the one step at the real problem size (runtime/bench.ts), store the winner
// in the tuning DB keyed by the device (CUDA card and driver, or WebGPU adapter).
import { type CceOptions, optionsKey } from '../../dsl/cce.js';
import { type DeviceCaps } from '../../codegen/target.js';
import { type Pow2, type Schedule, type VecWidth, fitD, fitProblem } from '../../codegen/schedule.js';
import { type Backend, type CompiledKernel, type DeviceBuffer, driveAsync, driveSync } from '../backend.js';
import { type BenchProblem, type BenchTiming, benchStep } from '../bench.js';
import { gpuTolerance, relErr } from '../check.js';
import { referenceCce } from '../cpu/reference.js';
import { type StepSchedules, WARMUP_MS, defaultSchedules } from '../defaults.js';
import { kernelSpec } from '../kernels.js';
import { randomProblem } from '../random.js';
import { cceStep } from '../step.js';
import { type TuneCandidate, type TuneEntry, type TuneKey, type TuningDb, bucket } from './db.js';

/** SIMT schedules worth timing for a vector length D: 16-byte (or 8-byte) accesses, 128 or 256 threads. */
export function candidateSchedules(
  D: number, dtype: 'f32' | 'f16' | 'bf16', caps: DeviceCaps, first: Schedule,
): Schedule[] {
  const out: Schedule[] = [];
  const seen = new Set<string>([JSON.stringify(first)]);
  const vecs = (dtype === 'f32' ? [4, 2] : [8, 4]).filter((v) => D % v === 0);
  for (const vec of vecs.length ? vecs : [1])
    for (const lanes of [32, 16, 8, 4])
      for (const threads of [128, 256])
        for (const samplesPerStep of [2, 4, 8] as const) {
          if (lanes * vec > D && lanes > 4) continue; // idle lanes
          const rows = threads / lanes;
          if (rows > 256 || threads > caps.maxInvocations) continue;
          const s0 = {
            rows: rows as Pow2, lanes: lanes as Pow2, vec: vec as VecWidth, dChunks: 1 as Pow2, samplesPerStep,
          };
          const s = fitD({ ...s0, stages: 1 }, D);
          if (s.dChunks > 4) continue;
          const k = JSON.stringify(s);
          if (!seen.has(k)) seen.add(k), out.push(s);
        }
  // The backend's default is always a candidate, first.
  return [first, ...out];
}

export interface TuneResult {
  /** The stored (or cached) entry; null where the backend's default step beat every single schedule. */
  entry: TuneEntry | null;
  cacheHit: boolean;
  /** ms of the default step where its passes have schedules of their own (WebGPU), timed as a baseline. */
  defaultMs?: number;
}

export interface TuneOptions {
  repeats?: number;
  finalists?: number;
  progress?: (line: string) => void;
}

type AnyBackend = Backend<DeviceBuffer, CompiledKernel>;

export function tuneKey(b: Pick<AnyBackend, 'identity'>, p: BenchProblem, o: CceOptions): TuneKey {
  const kernel = o.mode === 'sampled' ? 'cce_minus' : 'ce_full';
  return { device: { ...b.identity }, kernel, dtype: o.dtype, options: optionsKey(o), bucket: bucket(p) };
}

const defaultsFor = (b: Pick<AnyBackend, 'kind' | 'caps'>, p: BenchProblem, o: CceOptions): StepSchedules =>
  defaultSchedules(b.kind, {
    D: p.D, dtype: o.dtype, shared: o.mode === 'sampled' && !!o.share, byItem: false,
    subgroupSize: b.caps.subgroupSize,
  });

/** The schedule to use for a problem: the tuning DB's if it has one, else the backend's default. */
export function scheduleFor(
  b: Pick<AnyBackend, 'identity' | 'kind' | 'caps'>, db: TuningDb | undefined, p: BenchProblem, o: CceOptions,
): { schedule: Schedule; tuned: boolean } {
  // In-kernel sampling shares the memory pattern of index-tensor sampling, and the deterministic dC that of
  // float atomics: fall back to those entries.
  const fallbacks: CceOptions[] = [o, ...(o.deterministic ? [{ ...o, deterministic: undefined }] : [])]
    .flatMap((x) => (x.negatives === 'philox' ? [x, { ...x, negatives: 'tensor' as const }] : [x]));
  const e = fallbacks.map((x) => db?.get(tuneKey(b, p, x))).find((x) => x !== undefined);
  return e ? { schedule: fitD(e.schedule, p.D), tuned: true } : { schedule: defaultsFor(b, p, o).fwd, tuned: false };
}

/** The tuner as a generator over any backend (tune / tuneAsync drive it). */
export function* tuneSteps(
  b: AnyBackend, db: TuningDb, p: BenchProblem, o: CceOptions, opts: TuneOptions = {},
): Generator<unknown, TuneResult, unknown> {
  const key = tuneKey(b, p, o);
  const hit = db.get(key);
  const log = opts.progress ?? (() => {});
  if (hit) {
    log(`cache hit: ${JSON.stringify(hit.schedule)} ${hit.ms.toFixed(3)} ms`);
    return { entry: hit, cacheHit: true };
  }
  const caps = b.caps;
  // Shared negatives: a program's rows must lie in one group (fitShare); duplicates after fitting drop out.
  const share = o.mode === 'sampled' ? o.share : undefined;
  const fit = (s: Schedule) => fitProblem(s, p.D, caps, share);
  const defaults = defaultsFor(b, p, o);
  const fitted = candidateSchedules(p.D, o.dtype, caps, defaults.fwd)
    .map((s) => [JSON.stringify(fit(s)), fit(s)] as const);
  const all = [...new Map(fitted).values()];
  // A small problem with the same D and dtype, against the float64 reference.
  const small0 = {
    ...randomProblem({
      N: 97, V: 1031, K: 37, D: p.D, dtype: o.dtype, seed: 7, collisionRate: 0.1, ignoreFraction: 0.1, shareRows: share,
    }),
    reduction: 'mean' as const,
  };
  const philox = o.mode === 'sampled' && o.negatives === 'philox';
  const small = philox ? { ...small0, negatives: undefined, philoxSeed: 77 } : small0;
  const ref = referenceCce(small);
  const tol = gpuTolerance(o.dtype);
  const candidates: TuneCandidate[] = [];
  const alive: Schedule[] = [];
  for (const [i, s] of all.entries()) {
    const tag = `[${i + 1}/${all.length}] ${JSON.stringify(s)}`;
    try {
      for (const pass of ['forward', 'backward'] as const) {
        const k = (yield b.compile(kernelSpec(pass, o, s, p.D))) as CompiledKernel;
        if (k.spillBytes) throw new Error(`spills (local memory ${k.spillBytes} bytes in the ${pass})`);
      }
      const got = yield* cceStep(b, small, { schedule: s, deterministic: o.deterministic }, defaults);
      const g = tol.grad / tol.loss;
      const err = Math.max(relErr(got.loss, ref.loss), relErr(got.dE, ref.dE) / g, relErr(got.dC, ref.dC) / g);
      if (!(err <= tol.loss)) throw new Error(`disagrees with the reference (error ${err.toExponential(2)})`);
      alive.push(s);
    } catch (e) {
      const note = (e as Error).message.split('\n')[0]!;
      candidates.push({ schedule: s, ms: null, note });
      log(`${tag} rejected: ${note}`);
    }
  }
  if (!alive.length) throw new Error(`tune: no candidate schedule works for ${JSON.stringify(p)}`);
  const bp = { ...p, shareRows: share };
  // The first timing warms the device up for as long as its kind needs (clocks ramping up from idle): the
  // candidates after it are timed on a warm device.
  let warmupMs = WARMUP_MS[b.kind];
  /** A step timed with schedule s for both passes, or (undefined) with the backend's default schedules. */
  const time = function* (
    s: Schedule | undefined, repeats: number, warmup: number,
  ): Generator<unknown, BenchTiming, unknown> {
    const negatives = philox ? 'philox' as const : 'tensor' as const;
    const t = yield* benchStep(b, bp, { dtype: o.dtype, negatives, deterministic: o.deterministic, schedule: s,
      repeats, warmup, warmupMs, seed: 11 }, defaults);
    warmupMs = 0;
    return t;
  };
  const first: { s: Schedule; t: BenchTiming }[] = [];
  for (const [i, s] of alive.entries()) {
    const t = yield* time(s, opts.repeats ?? 5, 1);
    const regs = Object.values(t.registers).join('/');
    log(`[${i + 1}/${alive.length}] ${JSON.stringify(s)} ${t.ms.toFixed(3)} ms (regs ${regs})`);
    first.push({ s, t });
  }
  first.sort((x, y) => x.t.ms - y.t.ms);
  const finals: { s: Schedule; t: BenchTiming }[] = [];
  for (const { s } of first.slice(0, opts.finalists ?? 3)) finals.push({ s, t: yield* time(s, 15, 2) });
  finals.sort((x, y) => x.t.ms - y.t.ms);
  const best = finals[0]!;
  // One schedule serves both passes of a tuned step; where the default step gives each pass its own (WebGPU's
  // forward and backward), it is the baseline a tuned schedule must beat to be stored.
  if (JSON.stringify(fit(defaults.fwd)) !== JSON.stringify(fit(defaults.bwd))) {
    const base = yield* time(undefined, 15, 2);
    if (base.ms <= best.t.ms) {
      log(`default step (forward ${JSON.stringify(base.schedule)}, backward ${JSON.stringify(base.bwdSchedule)}) ` +
        `${base.ms.toFixed(3)} ms beats the best single schedule (${best.t.ms.toFixed(3)} ms): nothing stored`);
      return { entry: null, cacheHit: false, defaultMs: base.ms };
    }
  }
  for (const { s, t } of first) candidates.push({ schedule: s, ms: (finals.find((f) => f.s === s) ?? { t }).t.ms });
  const { ms, p20, p80 } = best.t;
  log(`best ${JSON.stringify(best.s)} ${ms.toFixed(3)} ms (p20 ${p20.toFixed(3)}, p80 ${p80.toFixed(3)})`);
  db.put({ key, schedule: best.s, ms, p20, p80, candidates });
  return { entry: db.get(key)!, cacheHit: false };
}

/** Tune on a synchronous backend (CUDA, CPU). */
export function tune(b: AnyBackend, db: TuningDb, p: BenchProblem, o: CceOptions, opts: TuneOptions = {}): TuneResult {
  return driveSync(tuneSteps(b, db, p, o, opts));
}

/** Tune on any backend (WebGPU answers asynchronously). */
export function tuneAsync(
  b: AnyBackend, db: TuningDb, p: BenchProblem, o: CceOptions, opts: TuneOptions = {},
): Promise<TuneResult> {
  return driveAsync(tuneSteps(b, db, p, o, opts));
}
