// Emitting a set of CCE- kernel variants for one target: sources plus a manifest the runtimes read
// (kernel names, parameters and bindings, schedule, dtypes, launch geometry).
import { type CceOptions, cceBackward, cceForward, cceFused } from '../dsl/cce.js';
import { CAPS, type DeviceCaps, type Schedule, warps } from '../dsl/schedule.js';
import { sharedBytes } from './lower.js';
import { CODEGEN_VERSION, compileKernel } from './compile.js';
import type { ParamDoc, TargetName } from '../targets/common.js';

export const EXT: Record<TargetName, string> = { wgsl: 'wgsl', cuda: 'cu', triton: 'py' };

export interface ManifestKernel {
  file: string;
  entry: string;
  pass: 'forward' | 'backward' | 'fused';
  options: { mode: string; dtype: string; sampling: string; grad: string; negatives?: string; transform?: string; correction?: string };
  schedule: Schedule;
  launch: { rowsPerProgram: number; threadsPerProgram: number; warps: number; blockD: number; sharedBytes: number; maxD: number };
  parameters: ParamDoc[];
}

export interface Manifest {
  generator: string;
  version: string;
  target: TargetName;
  device: string;
  kernels: ManifestKernel[];
}

/** File-name tag of a variant: sampling (or full), dtype, upstream-gradient kind. */
export function variantTag(o: CceOptions): string {
  return [o.mode === 'full' ? 'full' : o.sampling, o.mode === 'sampled' && o.negatives === 'philox' ? 'philox' : '', o.dtype, o.grad === 'perRow' ? 'rowgrad' : ''].filter(Boolean).join('_');
}

export function emitVariants(target: TargetName, variants: readonly CceOptions[], schedule: Schedule, caps: DeviceCaps = CAPS[target]): { files: Map<string, string>; manifest: Manifest } {
  const files = new Map<string, string>();
  const kernels: ManifestKernel[] = [];
  for (const o of variants) {
    // The fused kernel serves scalar upstream gradients (mean / sum).
    for (const pass of o.grad === 'scalar' ? (['forward', 'backward', 'fused'] as const) : (['forward', 'backward'] as const)) {
      if (pass === 'forward' && o.grad === 'perRow' && variants.some((v) => v !== o && variantTag({ ...v, grad: 'perRow' }) === variantTag(o) && v.grad === 'scalar')) continue;
      const k = pass === 'forward' ? cceForward(o, schedule) : pass === 'backward' ? cceBackward(o, schedule) : cceFused(o, schedule);
      const out = compileKernel(k, schedule, target, caps);
      const file = `${k.name}__${variantTag(pass === 'forward' ? { ...o, grad: 'scalar' } : o)}.${EXT[target]}`;
      files.set(file, out.source);
      kernels.push({
        file,
        entry: out.entry,
        pass,
        options: { mode: o.mode, dtype: o.dtype, sampling: o.sampling, grad: o.grad, negatives: o.mode === 'sampled' ? o.negatives ?? 'tensor' : undefined, transform: o.transform?.origin, correction: o.correction?.origin },
        schedule,
        launch: {
          rowsPerProgram: schedule.rows,
          threadsPerProgram: out.lowered.invocations,
          warps: warps(schedule),
          blockD: out.lowered.blockD,
          sharedBytes: sharedBytes(out.lowered, caps),
          maxD: out.lowered.blockD,
        },
        parameters: out.parameters,
      });
    }
  }
  return { files, manifest: { generator: 'ccekit', version: CODEGEN_VERSION, target, device: caps.name, kernels } };
}

/** Every variant of one dtype: sampled (uniform, given q) and full CE, scalar and per-row upstream gradients. */
export function allVariants(dtype: CceOptions['dtype'], extra: Partial<CceOptions> = {}): CceOptions[] {
  const out: CceOptions[] = [];
  for (const [mode, sampling, negatives] of [['sampled', 'uniform', 'tensor'], ['sampled', 'given', 'tensor'], ['sampled', 'uniform', 'philox'], ['sampled', 'given', 'philox'], ['full', 'uniform', 'tensor']] as const)
    for (const grad of ['scalar', 'perRow'] as const) out.push({ mode, sampling, negatives, grad, dtype, ...extra });
  return out;
}
