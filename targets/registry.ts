// The targets ccekit compiles for, and the compiler driver: DSL kernel + schedule + target → source, through the
// one lowering. A new target is one record (codegen/target.ts) added to TARGETS (and to SOURCE_TARGETS when
// `ccekit emit` writes its files).
import type { Kernel } from '../codegen/ir.js';
import { type LoweredKernel, type LowerOptions, lower } from '../codegen/lower.js';
import type { DeviceCaps, Emitted, TargetRecord } from '../codegen/target.js';
import { CODEGEN_VERSION } from '../codegen/version.js';
import type { Schedule } from '../codegen/schedule.js';
import { cudaTarget } from './cuda/emit.js';
import { cpuTarget } from './js/emit.js';
import { tritonTarget } from './triton/emit.js';
import { wgslTarget } from './wgsl/emit.js';

/** The targets whose sources `ccekit emit` writes to files (and runtimes load), in the CLI's order. */
export const SOURCE_TARGETS = [wgslTarget, cudaTarget, tritonTarget] as const;
/** Every target: the source targets and the CPU executor (the JS printer, run in this process). */
export const TARGETS = [...SOURCE_TARGETS, cpuTarget] as const;

/** A target whose sources are written to files: 'wgsl' | 'cuda' | 'triton'. */
export type TargetName = (typeof SOURCE_TARGETS)[number]['name'];
/** Any target, 'cpu' included. */
export type Target = (typeof TARGETS)[number]['name'];

export const SOURCE_TARGET_NAMES: readonly TargetName[] = SOURCE_TARGETS.map((t) => t.name);
export const TARGET_NAMES: readonly Target[] = TARGETS.map((t) => t.name);

/** The default device of each target. */
export const CAPS = Object.fromEntries(TARGETS.map((t) => [t.name, t.caps])) as Record<Target, DeviceCaps>;

/** File-name extension of each source target's files. */
export const EXT = Object.fromEntries(SOURCE_TARGETS.map((t) => [t.name, t.ext])) as Record<TargetName, string>;

/** The record of target `name`; an unknown name is an error that lists the known ones. */
export function targetRecord(name: string): TargetRecord {
  const t = TARGETS.find((r) => r.name === name);
  if (!t) throw new Error(`target = ${JSON.stringify(name)}: not one of ${TARGET_NAMES.join(', ')}`);
  return t;
}

/** The printer of each source target. */
export const EMITTERS = Object.fromEntries(SOURCE_TARGETS.map((t) => [t.name, t.emit])) as Record<
  TargetName,
  (lk: LoweredKernel, version: string) => Emitted
>;

/** Lower kernel `k` for `target` on device `caps` (default: the target's) and print it. */
export function compileKernel(
  k: Kernel,
  schedule: Schedule,
  target: Target | TargetRecord,
  caps?: DeviceCaps,
  opts: LowerOptions = {},
): Emitted & { lowered: LoweredKernel } {
  const record = typeof target === 'string' ? targetRecord(target) : target;
  const lowered = lower(k, schedule, caps ?? record.caps, opts);
  return { ...record.emit(lowered, CODEGEN_VERSION), lowered };
}
