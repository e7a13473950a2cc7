// The CPU backend: the lowered kernels printed as JavaScript (float64) and run on typed arrays. Float buffers hold
// float64 values (f16 / bf16 inputs decoded on upload), so it is the executable spec of every lowered kernel.
import { checkKernelForD, lower } from '../../codegen/lower.js';
import { CAPS } from '../../targets/registry.js';
import type { Backend, BufferDType, CompiledKernel, DeviceBuffer, ReadData } from '../backend.js';
import { stepDefaults } from '../defaults.js';
import { type KernelSpec, KernelCache, buildKernel } from '../kernels.js';
import { decode } from '../numeric.js';
import type { CceProblem } from '../problem.js';
import { type RunOptions, type StepResult, runStepSync } from '../step.js';
import { type CpuKernelFn, compileJs } from '../../targets/js/emit.js';

export type { CceResult, RunOptions } from '../step.js';
export {
  byItemUnsupported, optionsFor, problemDims, reduceLoss, scheduleForProblem, upstreamGradient,
} from '../step.js';

interface CpuBuffer extends DeviceBuffer {
  data: Float64Array | Int32Array | Uint32Array | BigInt64Array;
}
interface CpuKernel extends CompiledKernel {
  fn: CpuKernelFn;
}

const make = (dtype: BufferDType, n: number): CpuBuffer['data'] =>
  dtype === 'i32' ? new Int32Array(n) : dtype === 'u32' ? new Uint32Array(n)
    : dtype === 'i64' ? new BigInt64Array(n) : new Float64Array(n);

const kernels = new KernelCache<CpuKernel>();

export const cpuBackend: Backend<CpuBuffer, CpuKernel> = {
  kind: 'cpu',
  timing: 'wall-clock',
  device: 'cpu (float64 executor)',
  caps: CAPS.cpu,
  identity: { name: 'cpu', arch: 'js-float64', driver: 'ccekit' },
  compile(spec: KernelSpec): CpuKernel {
    return kernels.get(spec, () => {
      const kernel = buildKernel(spec);
      const lowered = lower(kernel, spec.schedule, CAPS.cpu, { exactD: spec.exactD });
      checkKernelForD(lowered, spec.D);
      return { spec, kernel, lowered, fn: compileJs(lowered) };
    });
  },
  alloc: (name, dtype, length) => ({ name, dtype, length, data: make(dtype, length) }),
  upload(b, data) {
    if (b.dtype === 'f16' || b.dtype === 'bf16') (b.data as Float64Array).set(decode(b.dtype, data as Uint16Array));
    else (b.data as Float64Array).set(data as ArrayLike<number>);
  },
  fill(b, value, count) {
    if (b.data instanceof BigInt64Array) b.data.fill(BigInt(value), 0, count);
    else b.data.fill(value, 0, count);
  },
  launch(k, rows, buffers, scalars) {
    const data = Object.fromEntries(Object.entries(buffers).map(([n, b]) => [n, b.data]));
    k.fn(data, scalars, Math.ceil(rows / k.lowered.schedule.rows));
  },
  ...wallClock(),
  sync: () => undefined,
  read: (b, count): ReadData => b.data.slice(0, count ?? b.length) as ReadData,
  free: () => undefined,
};

/** Marks and elapsed times by the host clock, for backends whose launches finish before they return. */
function wallClock(): Pick<Backend, 'mark' | 'elapsed'> {
  let marks: number[] = [];
  return {
    mark: () => void marks.push(performance.now()),
    elapsed: () => {
      const out = marks.slice(1).map((t, i) => t - marks[i]!);
      marks = [];
      return out;
    },
  };
}

export function runCceCpu(p: CceProblem, o: RunOptions = {}): StepResult {
  return runStepSync(cpuBackend, p, o, stepDefaults(cpuBackend, p, o));
}
