// The backend list: every device a CCE- step runs on, opened by kind, with one way to run a step on it.
import type { Backend, BackendKind, CompiledKernel, DeviceBuffer } from './backend.js';
import { cpuBackend } from './cpu/run.js';
import { WARMUP_MS, stepDefaults } from './defaults.js';
import type { CceProblem } from './problem.js';
import { type RunOptions, type StepResult, runStep } from './step.js';

export type AnyBackend = Backend<DeviceBuffer, CompiledKernel>;

export interface Device {
  kind: BackendKind;
  backend: AnyBackend;
  /** One line naming the device and how the kernels reach it. */
  line: string;
  /** A software adapter (lavapipe): the kernels run on the CPU, slower than the CPU executor. */
  software: boolean;
  close(): void;
}

export class DeviceError extends Error {}

/** A device of a kind, or null where this machine has none (`required`: a DeviceError naming it instead). */
export async function openDevice(kind: BackendKind, required = false): Promise<Device | null> {
  const none = (why: string) => {
    if (required) throw new DeviceError(`--device ${kind}: ${why}`);
    return null;
  };
  if (kind === 'cpu') {
    const line = 'cpu (float64 executor of the compiled kernels)';
    return { kind, backend: cpuBackend, line, software: false, close: () => {} };
  }
  if (kind === 'cuda') {
    const { CudaRuntime } = await import('./cuda/run.js');
    const rt = CudaRuntime.open();
    if (!rt) return none('no CUDA driver or device found (libcuda.so.1)');
    const nvrtc = rt.nvrtc.version.join('.');
    const line = `cuda: ${rt.name} (${rt.cuda.info.arch}, driver ${rt.cuda.info.driverVersion}, NVRTC ${nvrtc})`;
    return { kind, backend: rt, line, software: false, close: () => {} };
  }
  const { acquireWebgpu, releaseWebgpu } = await import('./webgpu/device.js');
  const { webgpuBackend } = await import('./webgpu/run.js');
  const ctx = await acquireWebgpu();
  if (!ctx) return none('no WebGPU adapter found (on Linux Dawn needs a Vulkan driver: Mesa lavapipe or a GPU driver)');
  const line = `webgpu: ${ctx.name} (Dawn)`;
  return { kind, backend: webgpuBackend(ctx), line, software: ctx.software, close: () => releaseWebgpu(ctx) };
}

/** One step on a device with its default schedules (RunOptions override them). */
export function runOn(d: Pick<Device, 'kind' | 'backend'>, p: CceProblem, o: RunOptions = {}): Promise<StepResult> {
  const warmupMs = o.warmupMs ?? (o.repeats ? WARMUP_MS[d.kind] : 0);
  return runStep(d.backend, p, { ...o, warmupMs }, stepDefaults(d.backend, p, o));
}
