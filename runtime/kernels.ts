// A pass's kernel as the runtimes compile it (dsl/passes.ts holds the vocabulary and the factories) and its keys:
// the IR's (codegen version, pass, variant: no schedule field) and the compiled kernel's, which adds what the
// lowering takes (the schedule, and whether D equals its BLOCK_D: exactD kernels drop their element guards).
import { CODEGEN_VERSION } from '../codegen/version.js';
import type { Kernel } from '../codegen/ir.js';
import { type CceOptions, optionsKey } from '../dsl/cce.js';
import { COUNTER_PASSES, PACKED_PASSES, type PassName, passKernel } from '../dsl/passes.js';
import { COUNTER_SCHEDULE, type Schedule, exactD } from '../codegen/schedule.js';

export { type ByItemPass, PASS_NAMES, type PassName } from '../dsl/passes.js';

/** The schedule a pass runs with: the problem's, or one thread a row for the counters. */
export const passSchedule = (pass: PassName, s: Schedule): Schedule =>
  COUNTER_PASSES.has(pass) ? COUNTER_SCHEDULE : s;

export interface KernelSpec {
  pass: PassName;
  options: CceOptions;
  schedule: Schedule;
  /** The vector length the kernel serves; with it equal to the schedule's BLOCK_D the kernel is exactD. */
  D?: number;
  /** dC by item: one packed u32 a pair (fill_pairs, dc_by_item). */
  packed: boolean;
  exactD: boolean;
  /** The IR's key: the same for every schedule. */
  irKey: string;
  /** The compiled kernel's key: the IR's and the lowering's inputs. */
  key: string;
}

export function kernelSpec(
  pass: PassName, options: CceOptions, schedule: Schedule, D?: number, packed = false,
): KernelSpec {
  const s = passSchedule(pass, schedule);
  const pk = PACKED_PASSES.has(pass) && packed;
  const exact = exactD(s, D);
  const irKey = [CODEGEN_VERSION, pass, optionsKey(options), pk ? 'packed' : ''].join('|');
  const key = [irKey, JSON.stringify(s), exact ? 'exactD' : ''].join('|');
  return { pass, options, schedule: s, D, packed: pk, exactD: exact, irKey, key };
}

export function buildKernel(spec: KernelSpec): Kernel {
  return passKernel(spec.pass, spec.options, spec.packed);
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
