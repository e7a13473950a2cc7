// Timing CCE- on CUDA at benchmark sizes: inputs are generated on the GPU (a hash-based generator, so
// gigabyte-sized index tensors need no upload), the step is zero dC + forward + backward, timed with events
// after warm-up, rotating between two input sets so the L2 cache does not flatter.
import { type CceOptions, byItemRefusal } from '../../dsl/cce.js';
import { type Schedule, fitProblem } from '../../dsl/schedule.js';
import { negativeRows } from '../philox.js';
import { fixedScale } from '../fixed.js';
import type { DevicePtr } from './driver.js';
import { type CompiledKernel, type CudaRuntime, buildCubin, cudaByItem, problemScalars } from './run.js';
import { type ByItemKernel, reduceSchedule } from '../byitem.js';

const GEN_SOURCE = `
__device__ __forceinline__ unsigned ccekit_hash(unsigned x) {
  x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16; return x;
}
__device__ __forceinline__ unsigned short ccekit_f2h(float f) { unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
__device__ __forceinline__ unsigned short ccekit_f2bf(float f) { unsigned u = __float_as_uint(f); u += 0x7fffu + ((u >> 16) & 1u); return (unsigned short)(u >> 16); }
// Normal(0, scale) values via Box-Muller from two hashed uniforms; kind 0 f32, 1 f16, 2 bf16.
extern "C" __global__ void gen_normal(void* out, long long n, unsigned seed, float scale, int kind) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    unsigned a = ccekit_hash((unsigned)i * 2u + seed * 0x9e3779b9u), b = ccekit_hash(a ^ ((unsigned)(i >> 32) + 0x632be5abu));
    float u1 = ((a >> 8) + 1u) * (1.0f / 16777217.0f), u2 = (b >> 8) * (1.0f / 16777216.0f);
    float z = sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2) * scale;
    if (kind == 0) ((float*)out)[i] = z;
    else if (kind == 1) ((unsigned short*)out)[i] = ccekit_f2h(z);
    else ((unsigned short*)out)[i] = ccekit_f2bf(z);
  }
}
// Uniform integers in [0, hi).
extern "C" __global__ void gen_index(int* out, long long n, unsigned seed, int hi) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    unsigned a = ccekit_hash((unsigned)i ^ ccekit_hash(seed + (unsigned)(i >> 32) * 0x85ebca6bu));
    out[i] = (int)(((unsigned long long)a * (unsigned)hi) >> 32);
  }
}
// Deterministic dC: int64 fixed point (units of 1/scale) to fp32.
extern "C" __global__ void fixed_to_float(float* out, const long long* in, long long n, float inv_scale) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    out[i] = (float)in[i] * inv_scale;
}
`;
/** Box-Muller above draws |z| ≤ sqrt(−2·ln(1/16777217)) < 5.8 standard deviations. */
const GEN_MAX_SIGMAS = 5.8;

export interface BenchProblem {
  N: number;
  V: number;
  K: number;
  D: number;
  /** Negatives shared by groups of rows: the index tensor is [G, K]. */
  shareRows?: number;
}

export interface BenchTiming {
  ms: number;
  p20: number;
  p80: number;
  fwdMs: number;
  bwdMs: number;
  samples: number[];
  /** Device memory the step allocates beyond inputs (E, C, targets, negatives) and gradients (dE, dC). */
  extraBytes: number;
  schedule: Schedule;
  /** Registers a thread: the separate passes (fwd, bwd), the fused step's one kernel (fused), or by item its forward (fwd) and reduction (bwd). */
  registers: { fwd: number; bwd: number } | { fused: number };
  /** With repeatCheck: elements of dC that differ between two runs on the same inputs. */
  dCDiffer?: number;
  /** dC by item: ms of each kernel kind in one step timed launch by launch, the reduction's schedule, chunks of rows. */
  byItemMs?: Record<string, number>;
  reduceSchedule?: Schedule;
  chunks?: number;
  packed?: boolean;
}

export class CudaBench {
  private gen?: { normal: unknown; index: unknown; fixed: unknown };
  constructor(readonly rt: CudaRuntime) {}

  private generators() {
    if (!this.gen) {
      const { cubin } = buildCubin(this.rt.nvrtc, GEN_SOURCE, 'ccekit_gen', this.rt.cuda.info.arch);
      const m = this.rt.cuda.loadModule(cubin);
      this.gen = { normal: this.rt.cuda.getFunction(m, 'gen_normal'), index: this.rt.cuda.getFunction(m, 'gen_index'), fixed: this.rt.cuda.getFunction(m, 'fixed_to_float') };
    }
    return this.gen;
  }
  fillNormal(ptr: DevicePtr, n: number, seed: number, scale: number, dtype: 'f32' | 'f16' | 'bf16'): void {
    const g = this.generators();
    const kind = dtype === 'f32' ? 0 : dtype === 'f16' ? 1 : 2;
    this.rt.cuda.launch(g.normal, [4096, 1, 1], [256, 1, 1], 0, [new BigUint64Array([ptr]), new BigInt64Array([BigInt(n)]), new Uint32Array([seed]), new Float32Array([scale]), new Int32Array([kind])], 'gen_normal');
  }
  fillIndex(ptr: DevicePtr, n: number, seed: number, hi: number): void {
    const g = this.generators();
    this.rt.cuda.launch(g.index, [4096, 1, 1], [256, 1, 1], 0, [new BigUint64Array([ptr]), new BigInt64Array([BigInt(n)]), new Uint32Array([seed]), new Int32Array([hi])], 'gen_index');
  }

  fixedToFloat(out: DevicePtr, acc: DevicePtr, n: number, scale: number): void {
    const g = this.generators();
    this.rt.cuda.launch(g.fixed, [4096, 1, 1], [256, 1, 1], 0, [new BigUint64Array([out]), new BigUint64Array([acc]), new BigInt64Array([BigInt(n)]), new Float32Array([1 / scale])], 'fixed_to_float');
  }

  /**
   * Allocate and fill two input sets; returns a release function. Deterministic: dC is also accumulated in an
   * int64 buffer (counted as extra memory) and converted into the fp32 dC at the end of the step.
   */
  inputs(p: BenchProblem, dtype: 'f32' | 'f16' | 'bf16', seed: number, sets = 2, withNegatives = true, deterministic = false) {
    const cu = this.rt.cuda;
    const el = dtype === 'f32' ? 4 : 2;
    const owned: DevicePtr[] = [];
    const alloc = (bytes: number) => {
      const ptr = cu.malloc(bytes);
      owned.push(ptr);
      return ptr;
    };
    const scale = 2 / Math.sqrt(p.D);
    const C = alloc(p.V * p.D * el);
    this.fillNormal(C, p.V * p.D, seed, scale, dtype);
    const perSet = Array.from({ length: sets }, (_, s) => {
      const E = alloc(p.N * p.D * el);
      const targets = alloc(p.N * 4);
      const negRows = negativeRows(p);
      const negatives = withNegatives ? alloc(negRows * p.K * 4) : 0n;
      this.fillNormal(E, p.N * p.D, seed + 101 + s, scale, dtype);
      this.fillIndex(targets, p.N, seed + 202 + s, p.V);
      if (withNegatives) this.fillIndex(negatives, negRows * p.K, seed + 303 + s, p.V);
      return { E, targets, negatives };
    });
    const dE = alloc(p.N * p.D * 4);
    const dC = alloc(p.V * p.D * 4);
    const baseline = cu.allocated;
    const dCfixed = deterministic ? alloc(p.V * p.D * 8) : undefined;
    const loss = alloc(p.N * 4);
    const lse = alloc(p.N * 4);
    const kacc = alloc(p.N * 4);
    const lseK = alloc(p.N * 4);
    const logq = alloc(4);
    const dloss = alloc(4);
    cu.synchronize('input generation');
    // mean reduction: Σ|g| = 1; |E| ≤ GEN_MAX_SIGMAS·scale.
    const dCScale = fixedScale(GEN_MAX_SIGMAS * scale, 1, false);
    return { C, sets: perSet, dE, dC, dCfixed, dCScale, loss, lse, kacc, lseK, logq, dloss, extraBytes: cu.allocated - baseline, release: () => owned.forEach((x) => cu.free(x)) };
  }

  /** Median fwd+bwd time of a schedule on a generated problem. */
  time(p: BenchProblem, o: CceOptions, schedule: Schedule, opts: { repeats?: number; warmup?: number; seed?: number; inputs?: ReturnType<CudaBench['inputs']>; fused?: boolean; frozenC?: boolean; byItem?: boolean; pairBytes?: number; packPairs?: boolean; reduceSchedule?: Schedule; repeatCheck?: boolean } = {}): BenchTiming {
    const s = fitProblem(schedule, p.D, this.rt.cuda.caps(), o.mode === 'sampled' ? o.share : undefined);
    // frozenC: item embeddings without a gradient, forward + dE in one sweep (no dC to clear or scatter).
    // byItem: the forward with dE in one sweep, then dC by item (runtime/byitem.ts) as the timed "backward".
    const refusal = opts.byItem ? (opts.frozenC ? 'a frozen item table has no dC to reduce' : byItemRefusal(o)) : undefined;
    if (refusal) throw new Error(`byItem: ${refusal}`);
    const fused: CompiledKernel | undefined = opts.byItem ? this.rt.kernel('fusedDEByItem', o, s, p.D) : opts.frozenC ? this.rt.kernel('fusedDE', o, s, p.D) : opts.fused ? this.rt.kernel('fused', o, s, p.D) : undefined;
    // The separate passes only where the step runs them.
    const [fwd, bwd] = fused ? [undefined, undefined] : [this.rt.kernel('fwd', o, s, p.D), this.rt.kernel('bwd', o, s, p.D)];
    const cu = this.rt.cuda;
    const own = !opts.inputs;
    const inp = opts.inputs ?? this.inputs(p, o.dtype, opts.seed ?? 1, 2, o.negatives !== 'philox', o.deterministic);
    const extra: DevicePtr[] = [];
    const before = cu.allocated;
    const allocExtra = (bytes: number) => (extra.push(cu.malloc(bytes)), extra[extra.length - 1]!);
    const byItem = opts.byItem ? cudaByItem(this.rt, o, opts.reduceSchedule ?? reduceSchedule(p.D), p, allocExtra, opts.pairBytes, opts.packPairs) : undefined;
    const byItemBytes = cu.allocated - before;
    if (o.deterministic && !inp.dCfixed) throw new Error('deterministic: the inputs have no fixed-point dC buffer');
    try {
      const scalars = { ...problemScalars({ ...p, ignoreIndex: -100, shareRows: o.mode === 'sampled' ? o.share : undefined }, 1 / p.N), dC_scale: inp.dCScale, seed_lo: 12345, seed_hi: 0 };
      const acc = o.deterministic ? inp.dCfixed! : inp.dC;
      const buffers = (set: number): Record<string, DevicePtr> => ({ ...inp.sets[set % inp.sets.length]!, alias_table: inp.logq, C: inp.C, dE: inp.dE, dC: acc, loss: inp.loss, lse: inp.lse, kacc: inp.kacc, lse_k: inp.lseK, logq: inp.logq, dloss: inp.dloss });
      const ev = [cu.event(), cu.event(), cu.event()];
      const total: number[] = [];
      const f: number[] = [];
      const b: number[] = [];
      const step = (bufs: Record<string, DevicePtr>) => {
        if (!opts.frozenC) cu.fill32(acc, 0, p.V * p.D * (o.deterministic ? 2 : 1));
        if (fused) this.rt.launch(fused, p.N, bufs, scalars);
        else this.rt.launch(fwd!, p.N, bufs, scalars);
        cu.record(ev[1]);
        if (byItem) byItem.run(bufs, scalars);
        else if (!fused) this.rt.launch(bwd!, p.N, bufs, scalars);
        if (o.deterministic && !opts.frozenC) this.fixedToFloat(inp.dC, acc, p.V * p.D, inp.dCScale);
      };
      const reps = opts.repeats ?? 20;
      const warm = opts.warmup ?? 3;
      for (let r = 0; r < warm + reps; r++) {
        const bufs = buffers(r);
        cu.record(ev[0]);
        step(bufs);
        cu.record(ev[2]);
        const t01 = cu.elapsed(ev[0], ev[1]);
        const t12 = cu.elapsed(ev[1], ev[2]);
        if (r >= warm) {
          f.push(t01);
          b.push(t12);
          total.push(t01 + t12);
        }
      }
      // Repeatability: the same inputs twice; how many elements of dC differ between the two runs.
      let dCDiffer: number | undefined;
      if (opts.repeatCheck) {
        const runs = [0, 1].map(() => {
          step(buffers(0));
          cu.synchronize('repeat check');
          return new Uint32Array(cu.download(inp.dC, p.V * p.D * 4));
        });
        dCDiffer = 0;
        for (let i = 0; i < runs[0]!.length; i++) if (runs[0]![i] !== runs[1]![i]) dCDiffer++;
      }
      // dC by item: one more step with each launch timed on its own (synchronizing), for the breakdown.
      let byItemMs: Record<string, number> | undefined;
      if (byItem) {
        const prof = new Map<ByItemKernel, number>();
        cu.fill32(acc, 0, p.V * p.D);
        this.rt.launch(fused!, p.N, buffers(0), scalars);
        byItem.run(buffers(0), scalars, prof);
        cu.synchronize('by-item breakdown');
        byItemMs = Object.fromEntries(prof);
      }
      ev.forEach((e) => cu.destroyEvent(e));
      const q = (xs: number[], at: number) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(at * xs.length))]!;
      return {
        ms: q(total, 0.5),
        p20: q(total, 0.2),
        p80: q(total, 0.8),
        fwdMs: q(f, 0.5),
        bwdMs: q(b, 0.5),
        samples: total,
        extraBytes: inp.extraBytes + byItemBytes,
        schedule: s,
        registers: byItem ? { fwd: fused!.attrs.registers, bwd: this.rt.byItem('reduce', o, byItem.schedule, byItem.plan.packed, p.D).attrs.registers } : fused ? { fused: fused.attrs.registers } : { fwd: fwd!.attrs.registers, bwd: bwd!.attrs.registers },
        ...(byItem ? { byItemMs, reduceSchedule: byItem.schedule, chunks: Math.ceil(p.N / byItem.plan.chunkRows), packed: byItem.plan.packed } : {}),
        dCDiffer,
      };
    } finally {
      extra.forEach((x) => cu.free(x));
      if (own) inp.release();
    }
  }
}
