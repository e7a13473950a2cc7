// The compiler driver: DSL kernel + schedule + target → source, through the one lowering.
import { CAPS, type DeviceCaps, type Schedule } from '../dsl/schedule.js';
import type { Kernel } from './ir.js';
import { type LoweredKernel, type LowerOptions, lower } from './lower.js';
import type { Emitted, TargetName } from '../targets/common.js';
import { emitCuda } from '../targets/cuda/emit.js';
import { emitTriton } from '../targets/triton/emit.js';
import { emitWgsl } from '../targets/wgsl/emit.js';

/** Bumped whenever generated code changes meaning; part of every cache / tuning key. */
export const CODEGEN_VERSION = '0.1.0';

export const EMITTERS: Record<TargetName, (lk: LoweredKernel, version: string) => Emitted> = {
  wgsl: emitWgsl,
  cuda: emitCuda,
  triton: emitTriton,
};

export function compileKernel(k: Kernel, schedule: Schedule, target: TargetName, caps: DeviceCaps = CAPS[target], opts: LowerOptions = {}): Emitted & { lowered: LoweredKernel } {
  const lowered = lower(k, schedule, caps, opts);
  return { ...EMITTERS[target](lowered, CODEGEN_VERSION), lowered };
}
