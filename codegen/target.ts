// The contract a target fulfils for the compiler core: what the device offers (DeviceCaps), how the target's
// code uses it (TargetTraits), and the record each targets/<t>/ exports (TargetRecord). The lowering and the
// schedule fits ask the traits; no code below targets/ compares target names.
import type { LoweredKernel } from './lower.js';
import { VerifyError } from './verify.js';

/** What a device offers; read from the adapter / driver where possible. */
export interface DeviceCaps {
  /** The name of the target record the device is programmed through ('cpu', 'wgsl', 'cuda', 'triton', …). */
  target: string;
  name: string;
  maxInvocations: number;
  maxSharedBytes: number;
  /** Registers a thread may use before spilling (CUDA: 255). */
  maxRegisters?: number;
  /** SIMT width that cross-lane shuffles work within (CUDA warp: 32). */
  warpSize?: number;
  maxGridX: number;
  maxStorageBindingBytes?: number;
  /**
   * WebGPU: the subgroup size when it is fixed and subgroups are runs of consecutive invocation indices (probed
   * by the runtime); lane reductions of exactly that many lanes then use subgroup operations.
   */
  subgroupSize?: number;
  /** Storage buffers one kernel may bind (WebGPU's maxStorageBuffersPerShaderStage). */
  maxStorageBuffers?: number;
  shaderF16: boolean;
  /** The instruction set the emitted code is written for, where the target names one (CUDA: 'sm_90a'). */
  arch?: string;
  /**
   * The target's traits (its record's). Absent (caps built by hand from a probed device): a SIMT GPU target,
   * see simtTraits.
   */
  traits?: TargetTraits;
}

/** How a target's code maps the schedule onto the device: what the lowering and the schedule fits ask. */
export interface TargetTraits {
  /** The printer takes tile values (the candidate axis) as they are; otherwise the lowering untiles them. */
  tiles: boolean;
  /**
   * How the lanes of a row combine a reduction:
   * - 'none': no cross-lane step (a tile is one value; or one loop computes a whole row, as on the CPU);
   * - 'shuffle': warp shuffles within caps.warpSize lanes, then shared memory across the warps of a row
   *   (lanes above the warp size must be a multiple of it);
   * - 'subgroup': subgroup operations when caps.subgroupSize equals the lanes, else as 'workgroup';
   * - 'workgroup': a tree in workgroup memory, one f32 slot per thread and combined value.
   */
  laneReduce: 'none' | 'shuffle' | 'subgroup' | 'workgroup';
  /**
   * An atomic add of a whole row that is the same for all row slots of a program (a shared candidate) may be
   * summed over the row slots in workgroup memory first, then added once per element (LoweredKernel).
   */
  rowSharedAtomics: boolean;
  /** Each lane of a row is its own thread: i32 counter atomics need lanes = 1, else every lane would add. */
  countersNeedOneLane: boolean;
  /** Candidates per loop step (samplesPerStep) allowed with negatives shared by a row tile (fitShare clamps). */
  shareStep: { min: number; max: number };
}

/** One kernel parameter as the runtime must bind it. */
export interface ParamDoc {
  name: string;
  kind: 'tensor' | 'scalar' | 'dim';
  dtype: string;
  shape?: readonly string[];
  access?: 'read' | 'write' | 'atomic';
  /** WGSL: binding index in group 0 (tensors) or the uniform struct field (scalars, dims). */
  binding?: number;
  doc?: string;
}

export interface Emitted {
  source: string;
  entry: string;
  parameters: ParamDoc[];
}

/** What each targets/<t>/ exports: its name, file extension, default device, traits and printer. */
export interface TargetRecord<N extends string = string> {
  name: N;
  /** File-name extension of emitted sources. */
  ext: string;
  /** The default device (caps.target = name, caps.traits = traits). */
  caps: DeviceCaps;
  traits: TargetTraits;
  emit(lk: LoweredKernel, version: string): Emitted;
}

/**
 * The traits of a SIMT GPU target, for caps that carry none: warp shuffles when the device has a warp size,
 * else subgroup operations where they fit and workgroup memory otherwise.
 */
export function simtTraits(caps: Pick<DeviceCaps, 'warpSize'>): TargetTraits {
  return {
    tiles: false,
    laneReduce: caps.warpSize ? 'shuffle' : 'subgroup',
    rowSharedAtomics: true,
    countersNeedOneLane: true,
    shareStep: { min: 1, max: 2 },
  };
}

/** The traits the lowering and the fits follow on `caps`: its record's, else a SIMT GPU's (simtTraits). */
export function traitsOf(caps: Pick<DeviceCaps, 'traits' | 'warpSize'>): TargetTraits {
  return caps.traits ?? simtTraits(caps);
}

/**
 * f32 slots of workgroup / shared memory one lane reduction takes per value it combines (0: none), for
 * kernels of schedule lk.schedule on lk.caps under `traits`; sized for lk.maxReduceBatch values at most.
 */
export function laneScratchPerValue(
  lk: Pick<LoweredKernel, 'schedule' | 'invocations' | 'caps'>,
  traits: TargetTraits,
): number {
  const lanes = lk.schedule.lanes;
  if (lanes === 1) return 0;
  switch (traits.laneReduce) {
    case 'none':
      return 0;
    case 'shuffle': {
      // Kernels lowered without caps: the warp of 32 of every CUDA device.
      const warp = lk.caps?.warpSize ?? 32;
      return lanes > warp ? lk.invocations / warp : 0;
    }
    case 'subgroup':
      return lk.caps?.subgroupSize === lanes ? 0 : lk.invocations;
    case 'workgroup':
      return lk.invocations;
  }
}

/** Workgroup / shared memory a lowered kernel needs: its lane reductions' scratch and its rowShared sums. */
export function sharedBytes(lk: LoweredKernel, caps: DeviceCaps): number {
  const perValue = laneScratchPerValue({ ...lk, caps }, traitsOf(caps));
  return (lk.maxReduceBatch * perValue + (lk.rowSharedSlots ?? 0)) * 4;
}

/** Resource checks of a lowered kernel against a device; errors name the kernel and the resource. */
export function checkAgainstCaps(lk: LoweredKernel, caps: DeviceCaps): void {
  const traits = traitsOf(caps);
  const s = lk.schedule;
  const fail = (op: string, reason: string): never => {
    throw new VerifyError(lk.kernel.name, op, `${reason} (target ${caps.target}, ${caps.name})`);
  };
  if (lk.invocations > caps.maxInvocations)
    fail('schedule', `rows·lanes = ${lk.invocations} invocations exceed the device limit ${caps.maxInvocations}`);
  if (caps.warpSize && lk.invocations % caps.warpSize !== 0)
    fail('schedule', `rows·lanes = ${lk.invocations} is not a multiple of the warp size ${caps.warpSize}`);
  const storage = lk.kernel.params.filter((p) => p.kind === 'tensor').length;
  if (caps.maxStorageBuffers !== undefined && storage > caps.maxStorageBuffers)
    fail('kernel', `binds ${storage} storage buffers, the device allows ${caps.maxStorageBuffers} per shader stage`);
  const shared = sharedBytes(lk, caps);
  if (shared > caps.maxSharedBytes)
    fail('laneReduce', `needs ${shared} bytes of workgroup memory, the device offers ${caps.maxSharedBytes}`);
  if (caps.maxRegisters) {
    const arrays = [...lk.symbols.values()].filter((v) => v.s === 'vec' && v.array).length;
    const regs = arrays * lk.perLane + 24;
    if (regs > caps.maxRegisters)
      fail(
        'schedule',
        `about ${regs} registers per thread (${arrays} vectors × ${lk.perLane} elements) exceed ${caps.maxRegisters}`,
      );
  }
  const warp = caps.warpSize;
  if (traits.laneReduce === 'shuffle' && warp && s.lanes > warp && s.lanes % warp !== 0)
    fail('schedule', `lanes above ${warp} must be a multiple of ${warp}`);
  const counters = lk.kernel.params.some((p) => p.kind === 'tensor' && p.access === 'atomic' && p.dtype === 'i32');
  if (counters && s.lanes > 1 && traits.countersNeedOneLane)
    fail('schedule', `i32 counters need lanes = 1 (each lane of a row would add), got ${s.lanes}`);
}
