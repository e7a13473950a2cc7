// CCE- on CUDA: emitted CUDA C++ → NVRTC (cubin for the device's arch, cached on disk) → driver launches.
// Same API as the CPU and WebGPU runtimes; outputs are poisoned before each checked run.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CODEGEN_VERSION } from '../../codegen/compile.js';
import type { Kernel } from '../../codegen/ir.js';
import { type LoweredKernel, checkKernelForD, lower } from '../../codegen/lower.js';
import { type CceOptions, cceBackward, cceForward, cceFused, cceFusedDE, optionsKey } from '../../dsl/cce.js';
import { type Schedule, exactD, heuristicSchedule } from '../../dsl/schedule.js';
import { emitCuda } from '../../targets/cuda/emit.js';
import { type CceProblem, logQ, validateProblem } from '../problem.js';
import { samplerInputs } from '../philox.js';
import { fixedToFloat, runDCScale } from '../fixed.js';
import {
  type ByItemKernel, type ByItemPlan, byItemKernel, byItemPlan, reduceSchedule, reduceScheduleFor, runByItemChunks,
} from '../byitem.js';
import { type CceResult, type RunOptions, byItemUnsupported, optionsFor, problemDims, reduceLoss, scheduleForProblem, upstreamGradient } from '../cpu/run.js';
import { Cuda, type DevicePtr, type KernelAttributes } from './driver.js';
import { loadNvrtc, type Nvrtc } from './nvrtc.js';

export const NAN_BITS = 0x7fc00000;

export function cacheDir(): string {
  return process.env.CCEKIT_CACHE ?? join(homedir(), '.cache', 'ccekit');
}

export interface CompiledKernel {
  kernel: Kernel;
  lowered: LoweredKernel;
  fn: unknown;
  attrs: KernelAttributes;
  source: string;
  fromDiskCache: boolean;
}

/**
 * Compile (or load from the on-disk cache) a module; the key is source hash + arch + NVRTC version + options.
 * `exactD`: D equals the kernel's BLOCK_D, compiled without element guards (CCEKIT_EXACT_D).
 */
export function buildCubin(nvrtc: Nvrtc, source: string, name: string, arch: string, exactD = false): { cubin: Buffer; key: string; fromDiskCache: boolean } {
  const [major, minor] = nvrtc.version;
  const vecAtomics = major > 12 || (major === 12 && minor >= 1) ? 1 : 0; // red.global.add.v4.f32 needs PTX ISA 8.1
  const options = [`--gpu-architecture=${arch}`, '-default-device', '--std=c++17', `-DCCEKIT_VEC_ATOMICS=${vecAtomics}`, ...(exactD ? ['-DCCEKIT_EXACT_D'] : [])];
  const key = createHash('sha256').update([CODEGEN_VERSION, arch, nvrtc.version.join('.'), options.join(' '), source].join('\0')).digest('hex').slice(0, 32);
  const dir = join(cacheDir(), 'cuda');
  const file = join(dir, `${key}.cubin`);
  try {
    return { cubin: readFileSync(file), key, fromDiskCache: true };
  } catch {
    // not cached yet
  }
  const { cubin } = nvrtc.compileCubin(source, `${name}.cu`, options);
  mkdirSync(dir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, cubin);
  renameSync(tmp, file);
  return { cubin, key, fromDiskCache: false };
}

export class CudaRuntime {
  private readonly kernels = new Map<string, CompiledKernel>();
  constructor(
    readonly cuda: Cuda,
    readonly nvrtc: Nvrtc,
  ) {}

  static open(): CudaRuntime | null {
    const cuda = Cuda.open();
    if (!cuda) return null;
    const nvrtc = loadNvrtc();
    if (!nvrtc) throw new Error('CUDA: a GPU was found but no NVRTC library (libnvrtc.so.13 / .12 / .11.2); set CUDA_HOME');
    return new CudaRuntime(cuda, nvrtc);
  }

  get name(): string {
    return this.cuda.info.name;
  }

  /** A CCE- kernel for schedule `s`; `D`, where given, specializes it when it equals the schedule's BLOCK_D (no element guards). */
  kernel(which: 'fwd' | 'bwd' | 'fused' | 'fusedDE' | 'fusedDEByItem', o: CceOptions, s: Schedule, D?: number): CompiledKernel {
    return this.compiled(`${which}|${JSON.stringify(s)}|${optionsKey(o)}`, D, () => ({
      kernel: which === 'fwd' ? cceForward(o, s) : which === 'bwd' ? cceBackward(o, s) : which === 'fused' ? cceFused(o, s) : cceFusedDE(o, s, which === 'fusedDEByItem'),
      schedule: s,
    }));
  }

  /** A kernel of dC by item (runtime/byitem.ts); `s` is the problem's schedule; `D` as for kernel(). */
  byItem(k: ByItemKernel, o: CceOptions, s: Schedule, packed = false, D?: number): CompiledKernel {
    return this.compiled(`byItem|${k}|${packed}|${JSON.stringify(s)}|${optionsKey(o)}`, D, () => byItemKernel(k, o, s, packed));
  }

  private compiled(key0: string, D: number | undefined, make: () => { kernel: Kernel; schedule: Schedule }): CompiledKernel {
    const key = `${key0}|${D ?? ''}`;
    const hit = this.kernels.get(key);
    if (hit) return hit;
    const { kernel, schedule: s } = make();
    const lowered = lower(kernel, s, this.cuda.caps());
    checkKernelForD(lowered, D);
    const { source } = emitCuda(lowered, CODEGEN_VERSION);
    const exact = exactD(s, D);
    let built = buildCubin(this.nvrtc, source, kernel.name, this.cuda.info.arch, exact);
    let module: unknown;
    try {
      module = this.cuda.loadModule(built.cubin);
    } catch (e) {
      if (!built.fromDiskCache) throw e;
      // A corrupt or stale cache entry: drop it and rebuild once.
      rmSync(join(cacheDir(), 'cuda', `${built.key}.cubin`), { force: true });
      built = buildCubin(this.nvrtc, source, kernel.name, this.cuda.info.arch, exact);
      module = this.cuda.loadModule(built.cubin);
    }
    const fn = this.cuda.getFunction(module, kernel.name);
    const c: CompiledKernel = { kernel, lowered, fn, attrs: this.cuda.attributes(fn), source, fromDiskCache: built.fromDiskCache };
    this.kernels.set(key, c);
    return c;
  }

  /** Launch over the rows of a problem; buffers and scalars by parameter name. */
  launch(k: CompiledKernel, rows: number, buffers: Record<string, DevicePtr>, scalars: Record<string, number>): void {
    const { kernel, lowered } = k;
    const params: ArrayBufferView[] = [];
    for (const p of kernel.params) {
      if (p.kind === 'tensor') {
        const ptr = buffers[p.name];
        if (ptr === undefined) throw new Error(`${kernel.name}: no buffer for ${p.name}`);
        params.push(new BigUint64Array([ptr]));
      } else {
        const v = scalars[p.name];
        if (v === undefined) throw new Error(`${kernel.name}: no value for ${p.name}`);
        params.push(p.type === 'f32' ? new Float32Array([v]) : p.type === 'u32' ? new Uint32Array([v]) : new Int32Array([v]));
      }
    }
    for (const d of kernel.dims) {
      const v = scalars[d];
      if (v === undefined) throw new Error(`${kernel.name}: no value for dimension ${d}`);
      params.push(new Int32Array([v]));
    }
    checkKernelForD(lowered, scalars[kernel.vecDim]);
    const programs = Math.ceil(rows / lowered.schedule.rows);
    this.cuda.launch(k.fn, [programs, 1, 1], [lowered.invocations, 1, 1], 0, params, kernel.name);
  }
}

export interface CudaRunOptions extends RunOptions {
  repeats?: number;
}
export interface CudaTiming {
  kernel: string;
  ms: number;
  samples: number[];
}
export interface CudaResult extends CceResult {
  device: string;
  schedule: Schedule;
  timings: CudaTiming[];
}

/** Scalars every CCE- kernel may take, from a problem. */
export function problemScalars(p: Pick<CceProblem, 'N' | 'D' | 'V' | 'K' | 'ignoreIndex' | 'shareRows'>, gradScale: number): Record<string, number> {
  return { ...problemDims(p), V2: 2 * p.V, ignore_index: p.ignoreIndex, logq_uniform: -Math.log(p.V - 1), grad_scale: gradScale };
}

export function runCceCuda(rt: CudaRuntime, p: CceProblem, o: CudaRunOptions = {}): CudaResult {
  validateProblem(p);
  const opts = optionsFor(p, o);
  const s = scheduleForProblem(o.schedule ?? heuristicSchedule(p.D, p.dtype), p, rt.cuda.caps());
  const fwd = rt.kernel('fwd', opts, s, p.D);
  const bwd = rt.kernel('bwd', opts, s, p.D);
  const cu = rt.cuda;
  const owned: DevicePtr[] = [];
  const alloc = (bytes: number, data?: ArrayBufferView) => {
    const ptr = cu.malloc(bytes);
    owned.push(ptr);
    if (data && data.byteLength) cu.upload(ptr, data);
    return ptr;
  };
  try {
    const N = p.N;
    const up = upstreamGradient(p, o.gradOutput);
    const dCBytes = o.deterministic ? 8 : 4;
    const dCWords = (p.V * p.D * dCBytes) / 4;
    const { nValid, gradScale } = up;
    const dloss = new Float32Array(up.dloss);
    const lq = new Float32Array(logQ(p));
    const smp = samplerInputs(p);
    const b: Record<string, DevicePtr> = {
      E: alloc(p.E.byteLength, p.E),
      C: alloc(p.C.byteLength, p.C),
      targets: alloc(N * 4, p.targets),
      negatives: alloc((p.negatives?.length ?? 0) * 4, p.negatives),
      logq: alloc(lq.byteLength, lq),
      dloss: alloc(dloss.byteLength, dloss),
      loss: alloc(N * 4),
      lse: alloc(N * 4),
      kacc: alloc(N * 4),
      lse_k: alloc(N * 4),
      dE: alloc(N * p.D * 4),
      dC: alloc(p.V * p.D * dCBytes),
      alias_table: alloc(smp.alias ? p.V * 8 : 4, smp.alias),
    };
    const dCScale = runDCScale(p, o, gradScale, up.dloss);
    const scalars = { ...problemScalars(p, gradScale), dC_scale: dCScale, seed_lo: smp.seed_lo, seed_hi: smp.seed_hi, V2: smp.V2 };
    if (o.byItem) {
      const why = byItemUnsupported(p, o);
      if (why) throw new Error(`byItem: ${why}`);
    }
    const byItem = o.byItem ? cudaByItem(rt, opts, o.reduceSchedule ?? reduceSchedule(p.D), p, alloc, o.pairBytes, o.packPairs) : undefined;
    const fused = o.byItem ? rt.kernel('fusedDEByItem', opts, s, p.D) : o.frozenC ? rt.kernel('fusedDE', opts, s, p.D) : o.fused ? rt.kernel('fused', opts, s, p.D) : undefined;
    if (fused && p.reduction === 'none') throw new Error(`${o.frozenC ? 'frozenC' : 'fused'}: needs a scalar upstream gradient (reduction mean or sum)`);
    const step = () => {
      cu.fill32(b.dC, 0, dCWords);
      if (fused) {
        rt.launch(fused, N, b, scalars);
        byItem?.run(b, scalars);
        return;
      }
      rt.launch(fwd, N, b, scalars);
      rt.launch(bwd, N, b, scalars);
    };
    const timings: CudaTiming[] = [];
    if (o.repeats) {
      step();
      cu.synchronize('warm-up');
      const ev = [cu.event(), cu.event(), cu.event()];
      const samples: [number, number][] = [];
      for (let r = 0; r < o.repeats; r++) {
        cu.fill32(b.dC, 0, dCWords);
        cu.record(ev[0]);
        rt.launch(fwd, N, b, scalars);
        cu.record(ev[1]);
        rt.launch(bwd, N, b, scalars);
        cu.record(ev[2]);
        samples.push([cu.elapsed(ev[0], ev[1]), cu.elapsed(ev[1], ev[2])]);
      }
      ev.forEach((e) => cu.destroyEvent(e));
      const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
      timings.push({ kernel: fwd.kernel.name, ms: med(samples.map((x) => x[0])), samples: samples.map((x) => x[0]) });
      timings.push({ kernel: bwd.kernel.name, ms: med(samples.map((x) => x[1])), samples: samples.map((x) => x[1]) });
    }
    // The checked run: poison every output.
    cu.fill32(b.loss, NAN_BITS, N);
    cu.fill32(b.lse, NAN_BITS, N);
    cu.fill32(b.kacc, 0xffffffff, N);
    cu.fill32(b.dE, NAN_BITS, N * p.D);
    step();
    cu.synchronize('CCE- forward/backward');
    const f64 = (ptr: DevicePtr, n: number) => Float64Array.from(new Float32Array(cu.download(ptr, n * 4)));
    const rowLoss = f64(b.loss, N);
    // A fused run keeps lse and the accepted counts in registers: none are returned (dC by item keeps lse + log k).
    const lse = fused ? new Float64Array(0) : f64(b.lse, N);
    const kAccepted = fused ? new Int32Array(0) : p.mode === 'sampled' ? new Int32Array(cu.download(b.kacc, N * 4)) : new Int32Array(N);
    const dE = f64(b.dE, N * p.D);
    const dC = o.frozenC ? new Float64Array(0) : o.deterministic ? fixedToFloat(new BigInt64Array(cu.download(b.dC, p.V * p.D * 8)), dCScale) : f64(b.dC, p.V * p.D);
    const loss = reduceLoss(p, rowLoss, nValid);
    return { loss, rowLoss, lse, kAccepted, nValid, dE, dC, device: rt.name, schedule: s, timings };
  } finally {
    for (const ptr of owned) cu.free(ptr);
  }
}

/**
 * dC by item on CUDA: the plan's buffers (from `alloc`) and a run() that launches the chunks after the forward
 * (fusedDEByItem) wrote lse, kacc and the targets' terms.
 */
export function cudaByItem(
  rt: CudaRuntime,
  o: CceOptions,
  reduce: Schedule,
  p: Pick<CceProblem, 'N' | 'K' | 'V' | 'D'>,
  alloc: (bytes: number) => DevicePtr,
  pairBytes?: number,
  packPairs: boolean | number = true,
): {
  plan: ByItemPlan;
  schedule: Schedule;
  /** `profile`: each launch timed with events (synchronizing), its ms added under its kernel. */
  run: (inputs: Record<string, DevicePtr>, scalars: Record<string, number>, profile?: Map<ByItemKernel, number>) => void;
} {
  const plan = byItemPlan(p, pairBytes, packPairs);
  const s = reduceScheduleFor(reduce, p.D);
  const bufs = {
    counts: alloc(p.V * 4),
    local: plan.levels.map((l) => alloc(l.n * 4)),
    totals: plan.levels.map((l) => alloc(l.blocks * 4)),
    rows: alloc(plan.capacity * 4),
    items: plan.packed ? 0n : alloc(plan.capacity * 4),
  };
  const ops = (profile?: Map<ByItemKernel, number>) => ({
    launch: (k: ByItemKernel, rows: number, buffers: Record<string, DevicePtr>, scalars: Record<string, number>) => {
      if (!profile) return rt.launch(rt.byItem(k, o, s, plan.packed, p.D), rows, buffers, scalars);
      const [a, b] = [rt.cuda.event(), rt.cuda.event()];
      rt.cuda.record(a);
      rt.launch(rt.byItem(k, o, s, plan.packed, p.D), rows, buffers, scalars);
      rt.cuda.record(b);
      profile.set(k, (profile.get(k) ?? 0) + rt.cuda.elapsed(a, b));
      rt.cuda.destroyEvent(a);
      rt.cuda.destroyEvent(b);
    },
    clear: (ptr: DevicePtr, n: number) => rt.cuda.fill32(ptr, 0, n),
  });
  return { plan, schedule: s, run: (inputs, scalars, profile) => runByItemChunks(ops(profile), p, plan, { ...bufs, inputs }, scalars) };
}
