// The CUDA backend: emitted CUDA C++ → NVRTC (a cubin for the device's arch, cached on disk) → driver launches.
// It holds no step logic (runtime/step.ts); outputs are poisoned by the step before each checked run.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CODEGEN_VERSION } from '../../codegen/version.js';
import { checkKernelForD, lower } from '../../codegen/lower.js';
import { emitCuda } from '../../targets/cuda/emit.js';
import type { Backend, BufferDType, CompiledKernel, DeviceBuffer, ReadData } from '../backend.js';
import { DTYPE_BYTES, NAN_BITS, fillWord, readDataOf, storageOf } from '../backend.js';
import { stepDefaults } from '../defaults.js';
import { type KernelSpec, KernelCache, buildKernel } from '../kernels.js';
import type { CceProblem } from '../problem.js';
import { type RunOptions, type StepResult, runStepSync } from '../step.js';
import type { Generated, Generating } from '../bench.js';
import { Cuda, type DevicePtr, type KernelAttributes } from './driver.js';
import { CudaGenerator } from './generate.js';
import { loadNvrtc, type Nvrtc } from './nvrtc.js';

export { NAN_BITS };

export function cacheDir(): string {
  return process.env.CCEKIT_CACHE ?? join(homedir(), '.cache', 'ccekit');
}

export interface CudaKernel extends CompiledKernel {
  fn: unknown;
  attrs: KernelAttributes;
  source: string;
  fromDiskCache: boolean;
}

export interface CudaBuffer extends DeviceBuffer {
  ptr: DevicePtr;
}

/**
 * Compile (or load from the on-disk cache) a module; the key is source hash + arch + NVRTC version + options.
 * `exactD`: D equals the kernel's BLOCK_D, compiled without element guards (CCEKIT_EXACT_D).
 */
export function buildCubin(
  nvrtc: Nvrtc, source: string, name: string, arch: string, exactD = false,
): { cubin: Buffer; key: string; fromDiskCache: boolean } {
  const [major, minor] = nvrtc.version;
  const vecAtomics = major > 12 || (major === 12 && minor >= 1) ? 1 : 0; // red.global.add.v4.f32: PTX ISA 8.1
  const options = [
    `--gpu-architecture=${arch}`, '-default-device', '--std=c++17', `-DCCEKIT_VEC_ATOMICS=${vecAtomics}`,
    ...(exactD ? ['-DCCEKIT_EXACT_D'] : []),
  ];
  const key = createHash('sha256')
    .update([CODEGEN_VERSION, arch, nvrtc.version.join('.'), options.join(' '), source].join('\0'))
    .digest('hex').slice(0, 32);
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

export class CudaRuntime implements Backend<CudaBuffer, CudaKernel>, Generating<CudaBuffer> {
  readonly kind = 'cuda' as const;
  readonly timing = 'cuda-events' as const;
  private readonly kernels = new KernelCache<CudaKernel>();
  private marks: unknown[] = [];
  private gen?: CudaGenerator;
  constructor(
    readonly cuda: Cuda,
    readonly nvrtc: Nvrtc,
  ) {}

  static open(): CudaRuntime | null {
    const cuda = Cuda.open();
    if (!cuda) return null;
    const nvrtc = loadNvrtc();
    if (!nvrtc) {
      throw new Error('CUDA: a GPU was found but no NVRTC library (libnvrtc.so.13 / .12 / .11.2); set CUDA_HOME');
    }
    return new CudaRuntime(cuda, nvrtc);
  }

  get name(): string {
    return this.cuda.info.name;
  }
  get device(): string {
    return this.cuda.info.name;
  }
  get caps() {
    return this.cuda.caps();
  }
  get identity() {
    const info = this.cuda.info;
    return { name: info.name, arch: info.arch, driver: String(info.driverVersion) };
  }

  compile(spec: KernelSpec): CudaKernel {
    return this.kernels.get(spec, () => {
      const kernel = buildKernel(spec);
      const lowered = lower(kernel, spec.schedule, this.cuda.caps());
      checkKernelForD(lowered, spec.D);
      const { source } = emitCuda(lowered, CODEGEN_VERSION);
      const arch = this.cuda.info.arch;
      let built = buildCubin(this.nvrtc, source, kernel.name, arch, spec.exactD);
      let module: unknown;
      try {
        module = this.cuda.loadModule(built.cubin);
      } catch (e) {
        if (!built.fromDiskCache) throw e;
        // A corrupt or stale cache entry: drop it and rebuild once.
        rmSync(join(cacheDir(), 'cuda', `${built.key}.cubin`), { force: true });
        built = buildCubin(this.nvrtc, source, kernel.name, arch, spec.exactD);
        module = this.cuda.loadModule(built.cubin);
      }
      const fn = this.cuda.getFunction(module, kernel.name);
      const attrs = this.cuda.attributes(fn);
      return { spec, kernel, lowered, fn, attrs, source, fromDiskCache: built.fromDiskCache, registers: attrs.registers,
        spillBytes: attrs.localBytes };
    });
  }

  alloc(name: string, dtype: BufferDType, length: number): CudaBuffer {
    return { name, dtype, length, ptr: this.cuda.malloc(Math.max(4, length * DTYPE_BYTES[dtype])) };
  }
  upload(b: CudaBuffer, data: ArrayLike<number> | ArrayLike<bigint>): void {
    this.cuda.upload(b.ptr, storageOf(b.dtype, data));
  }
  fill(b: CudaBuffer, value: number, count = b.length): void {
    this.cuda.fill32(b.ptr, fillWord(b.dtype, value), (count * DTYPE_BYTES[b.dtype]) / 4);
  }

  /** Launch over the rows of a problem; buffers and scalars by parameter name. */
  launch(k: CudaKernel, rows: number, buffers: Record<string, CudaBuffer>, scalars: Record<string, number>): void {
    const { kernel, lowered } = k;
    const params: ArrayBufferView[] = [];
    for (const p of kernel.params) {
      if (p.kind === 'tensor') {
        const b = buffers[p.name];
        if (b === undefined) throw new Error(`${kernel.name}: no buffer for ${p.name}`);
        params.push(new BigUint64Array([b.ptr]));
      } else {
        const v = scalars[p.name];
        if (v === undefined) throw new Error(`${kernel.name}: no value for ${p.name}`);
        const T = p.type === 'f32' ? Float32Array : p.type === 'u32' ? Uint32Array : Int32Array;
        params.push(new T([v]));
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

  mark(): void {
    const e = this.cuda.event();
    this.cuda.record(e);
    this.marks.push(e);
  }
  elapsed(): number[] {
    const ms = this.marks.slice(1).map((e, i) => this.cuda.elapsed(this.marks[i], e));
    this.marks.forEach((e) => this.cuda.destroyEvent(e));
    this.marks = [];
    return ms;
  }
  sync(): void {
    this.cuda.synchronize('CCE- step');
  }
  read(b: CudaBuffer, count = b.length): ReadData {
    return readDataOf(b.dtype, this.cuda.download(b.ptr, count * DTYPE_BYTES[b.dtype]));
  }
  free(b: CudaBuffer): void {
    this.cuda.free(b.ptr);
  }
  /** Benchmark inputs filled on the device (runtime/bench.ts). */
  generate(b: CudaBuffer, g: Generated): void {
    this.gen ??= new CudaGenerator(
      this.cuda, (src, name) => buildCubin(this.nvrtc, src, name, this.cuda.info.arch).cubin,
    );
    this.gen.fill(b.ptr, b.dtype, b.length, g);
  }
}

export type CudaRunOptions = RunOptions;
export type CudaResult = StepResult;

export function runCceCuda(rt: CudaRuntime, p: CceProblem, o: CudaRunOptions = {}): CudaResult {
  return runStepSync(rt, p, o, stepDefaults(rt, p, o));
}
