// The autotuner: enumerate schedules from the DSL's schedule space, prune by the device capability record
// and the compile report (spills), reject any candidate whose result disagrees with the float64 reference,
// time the survivors on the real problem size (two rotating input sets), store the winner in the tuning DB.
import { lower } from '../../codegen/lower.js';
import { type CceOptions, optionsKey } from '../../dsl/cce.js';
import { type DeviceCaps, type Pow2, type Schedule, type VecWidth, fitD, fitProblem, heuristicSchedule } from '../../dsl/schedule.js';
import { cceBackward, cceForward } from '../../dsl/cce.js';
import { gpuTolerance, relErr } from '../check.js';
import { referenceCce } from '../cpu/reference.js';
import { randomProblem } from '../random.js';
import type { CudaBench, BenchProblem } from '../cuda/bench.js';
import { type CudaRuntime, runCceCuda } from '../cuda/run.js';
import { type TuneCandidate, type TuneEntry, type TuneKey, type TuningDb, bucket } from './db.js';

/** SIMT schedules worth timing for a vector length D: 16-byte (or 8-byte) accesses, 128 or 256 threads. */
export function candidateSchedules(D: number, dtype: 'f32' | 'f16' | 'bf16', caps: DeviceCaps): Schedule[] {
  const out: Schedule[] = [];
  const seen = new Set<string>();
  const vecs = (dtype === 'f32' ? [4, 2] : [8, 4]).filter((v) => D % v === 0);
  for (const vec of vecs.length ? vecs : [1])
    for (const lanes of [32, 16, 8, 4])
      for (const threads of [128, 256])
        for (const samplesPerStep of [2, 4, 8] as const) {
          if (lanes * vec > D && lanes > 4) continue; // idle lanes
          const rows = threads / lanes;
          if (rows > 256 || threads > caps.maxInvocations) continue;
          const s = fitD({ rows: rows as Pow2, lanes: lanes as Pow2, vec: vec as VecWidth, dChunks: 1, samplesPerStep, stages: 1 }, D);
          if (s.dChunks > 4) continue;
          const k = JSON.stringify(s);
          if (!seen.has(k)) seen.add(k), out.push(s);
        }
  // The heuristic default is always a candidate, first.
  const h = heuristicSchedule(D, dtype);
  return [h, ...out.filter((s) => JSON.stringify(s) !== JSON.stringify(h))];
}

export interface TuneResult {
  entry: TuneEntry;
  cacheHit: boolean;
}

export interface TuneOptions {
  repeats?: number;
  finalists?: number;
  progress?: (line: string) => void;
}

export function tuneKey(rt: CudaRuntime, p: BenchProblem, o: CceOptions): TuneKey {
  const info = rt.cuda.info;
  return { device: { name: info.name, arch: info.arch, driver: String(info.driverVersion) }, kernel: o.mode === 'sampled' ? 'cce_minus' : 'ce_full', dtype: o.dtype, options: optionsKey(o), bucket: bucket(p) };
}

/** The schedule to use for a problem: the tuning DB's if it has one, else the heuristic default. */
export function scheduleFor(rt: CudaRuntime, db: TuningDb | undefined, p: BenchProblem, o: CceOptions): { schedule: Schedule; tuned: boolean } {
  // In-kernel sampling shares the memory pattern of index-tensor sampling, and the deterministic dC that of
  // float atomics: fall back to those entries.
  const fallbacks: CceOptions[] = [o, ...(o.deterministic ? [{ ...o, deterministic: undefined }] : [])].flatMap((x) => (x.negatives === 'philox' ? [x, { ...x, negatives: 'tensor' as const }] : [x]));
  const e = fallbacks.map((x) => db?.get(tuneKey(rt, p, x))).find((x) => x !== undefined);
  return e ? { schedule: fitD(e.schedule, p.D), tuned: true } : { schedule: heuristicSchedule(p.D, o.dtype), tuned: false };
}

export function tune(rt: CudaRuntime, bench: CudaBench, db: TuningDb, p: BenchProblem, o: CceOptions, opts: TuneOptions = {}): TuneResult {
  const key = tuneKey(rt, p, o);
  const hit = db.get(key);
  const log = opts.progress ?? (() => {});
  if (hit) {
    log(`cache hit: ${JSON.stringify(hit.schedule)} ${hit.ms.toFixed(3)} ms`);
    return { entry: hit, cacheHit: true };
  }
  const caps = rt.cuda.caps();
  // Shared negatives: a program's rows must lie in one group (fitShare); duplicates after fitting drop out.
  const share = o.mode === 'sampled' ? o.share : undefined;
  const fit = (s: Schedule) => fitProblem(s, p.D, caps, share);
  const all = [...new Map(candidateSchedules(p.D, o.dtype, caps).map((s) => [JSON.stringify(fit(s)), fit(s)])).values()];
  // A small problem with the same D and dtype, against the float64 reference.
  const small0 = { ...randomProblem({ N: 97, V: 1031, K: 37, D: p.D, dtype: o.dtype, seed: 7, collisionRate: 0.1, ignoreFraction: 0.1, shareRows: share }), reduction: 'mean' as const };
  const small = o.mode === 'sampled' && o.negatives === 'philox' ? { ...small0, negatives: undefined, philoxSeed: 77 } : small0;
  const ref = referenceCce(small);
  const tol = gpuTolerance(o.dtype);
  const candidates: TuneCandidate[] = [];
  const alive: Schedule[] = [];
  all.forEach((s, i) => {
    const tag = `[${i + 1}/${all.length}] ${JSON.stringify(s)}`;
    try {
      lower(cceForward(o, s), s, caps);
      lower(cceBackward(o, s), s, caps);
      const f = rt.kernel('fwd', o, s, p.D);
      const b = rt.kernel('bwd', o, s, p.D);
      if (f.attrs.localBytes > 0 || b.attrs.localBytes > 0) throw new Error(`spills (local memory ${f.attrs.localBytes} / ${b.attrs.localBytes} bytes)`);
      const got = runCceCuda(rt, small, { schedule: s });
      const err = Math.max(relErr(got.loss, ref.loss), relErr(got.dE, ref.dE) / (tol.grad / tol.loss), relErr(got.dC, ref.dC) / (tol.grad / tol.loss));
      if (!(err <= tol.loss)) throw new Error(`disagrees with the reference (error ${err.toExponential(2)})`);
      alive.push(s);
    } catch (e) {
      const note = (e as Error).message.split('\n')[0]!;
      candidates.push({ schedule: s, ms: null, note });
      log(`${tag} rejected: ${note}`);
    }
  });
  if (!alive.length) throw new Error(`tune: no candidate schedule works for ${JSON.stringify(p)}`);
  const inputs = bench.inputs({ ...p, shareRows: share }, o.dtype, 11, 2, o.mode === 'full' || o.negatives !== 'philox');
  try {
    const first = alive.map((s, i) => {
      const t = bench.time(p, o, s, { repeats: opts.repeats ?? 5, warmup: 1, inputs });
      log(`[${i + 1}/${alive.length}] ${JSON.stringify(s)} ${t.ms.toFixed(3)} ms (regs ${Object.values(t.registers).join('/')})`);
      return { s, t };
    });
    first.sort((a, b) => a.t.ms - b.t.ms);
    const finals = first.slice(0, opts.finalists ?? 3).map(({ s }) => ({ s, t: bench.time(p, o, s, { repeats: 15, warmup: 2, inputs }) }));
    finals.sort((a, b) => a.t.ms - b.t.ms);
    const best = finals[0]!;
    for (const { s, t } of first) {
      const fin = finals.find((f) => f.s === s);
      candidates.push({ schedule: s, ms: (fin ?? { t }).t.ms });
    }
    log(`best ${JSON.stringify(best.s)} ${best.t.ms.toFixed(3)} ms (p20 ${best.t.p20.toFixed(3)}, p80 ${best.t.p80.toFixed(3)})`);
    db.put({ key, schedule: best.s, ms: best.t.ms, p20: best.t.p20, p80: best.t.p80, candidates });
    return { entry: db.get(key)!, cacheHit: false };
  } finally {
    inputs.release();
  }
}
