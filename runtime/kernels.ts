// A pass's kernel as the runtimes compile it (dsl/passes.ts holds the vocabulary and the factories) and the one
// cache key of a compiled kernel: codegen version, pass, variant, schedule and whether D equals the
// schedule's BLOCK_D (exactD: the kernel drops its element guards).
import { CODEGEN_VERSION } from '../codegen/version.js';
import type { Kernel } from '../codegen/ir.js';
import { type CceOptions, optionsKey } from '../dsl/cce.js';
import { PACKED_PASSES, type PassName, passKernel, passSchedule } from '../dsl/passes.js';
import { type Schedule, exactD } from '../dsl/schedule.js';

export { type ByItemPass, PASS_NAMES, type PassName } from '../dsl/passes.js';

export interface KernelSpec {
  pass: PassName;
  options: CceOptions;
  schedule: Schedule;
  /** The vector length the kernel serves; with it equal to the schedule's BLOCK_D the kernel is exactD. */
  D?: number;
  /** dC by item: one packed u32 a pair (fill_pairs, dc_by_item). */
  packed: boolean;
  exactD: boolean;
  key: string;
}

export function kernelSpec(
  pass: PassName, options: CceOptions, schedule: Schedule, D?: number, packed = false,
): KernelSpec {
  const s = passSchedule(pass, schedule);
  const pk = PACKED_PASSES.has(pass) && packed;
  const exact = exactD(s, D);
  const key = [CODEGEN_VERSION, pass, optionsKey(options), JSON.stringify(s), exact ? 'exactD' : '', pk ? 'packed' : '']
    .join('|');
  return { pass, options, schedule: s, D, packed: pk, exactD: exact, key };
}

export function buildKernel(spec: KernelSpec): Kernel {
  return passKernel(spec.pass, spec.options, spec.schedule, spec.packed);
}

/** A backend's compiled kernels by spec key. */
export class KernelCache<K> {
  private readonly map = new Map<string, K>();
  /** Drop a spec's entry (a build that failed is made again at the next call). */
  delete(spec: KernelSpec): void {
    this.map.delete(spec.key);
  }
  get(spec: KernelSpec, make: () => K): K {
    let hit = this.map.get(spec.key);
    if (hit === undefined) this.map.set(spec.key, (hit = make()));
    return hit;
  }
}
