// The schedule: how a kernel's rows and vector elements map onto programs, lanes and registers. It is a
// plain serializable object, separate from the algorithm, checked against a device capability record.

export type Pow2 = 1 | 2 | 4 | 8 | 16 | 32 | 64 | 128 | 256;
export type VecWidth = 1 | 2 | 4 | 8;
export type Target = 'cpu' | 'wgsl' | 'cuda' | 'triton';

export interface Schedule {
  /** Row slots per program (CTA / workgroup / Triton program). */
  rows: Pow2;
  /** Lanes (threads) that share one row's vector; cross-lane reductions combine them. */
  lanes: Pow2;
  /** Consecutive vector elements each lane owns per chunk. */
  vec: VecWidth;
  /** Register chunks per lane: a vector holds lanes·vec·dChunks elements (BLOCK_D ≥ D). */
  dChunks: Pow2;
  /**
   * Samples (candidate items) gathered per loop step; their loads are independent. With negatives shared by
   * the rows of a program it is the candidate tile (K chunk): ≥ 16 for tensor-core dots.
   */
  samplesPerStep: 1 | 2 | 4 | 8 | 16 | 32 | 64;
  /** Software-pipelining depth (Triton's num_stages); SIMT emitters do not pipeline yet. */
  stages: 1 | 2 | 3 | 4 | 5;
}

/** What a device offers; read from the adapter / driver where possible. */
export interface DeviceCaps {
  target: Target;
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
}

export const CAPS: Record<Target, DeviceCaps> = {
  cpu: { target: 'cpu', name: 'cpu-float64', maxInvocations: 1 << 16, maxSharedBytes: 1 << 30, maxGridX: 2 ** 31 - 1, shaderF16: true },
  // WebGPU defaults (gpuweb spec), except storage buffers: the spec's default is 8, but the backward kernels
  // with a given q or a per-row upstream gradient bind 9–10, which desktop adapters offer (lavapipe 16,
  // Vulkan / Metal / D3D12 drivers ≥ 10); the runtime requests the adapter's limits and checks them.
  wgsl: { target: 'wgsl', name: 'webgpu-default', maxInvocations: 256, maxSharedBytes: 16384, maxGridX: 65535, maxStorageBindingBytes: 134217728, maxStorageBuffers: 10, shaderF16: false },
  // Hopper (sm_90): 1024 threads, 227 KiB shared memory per block after opt-in (48 KiB static).
  cuda: { target: 'cuda', name: 'sm_90a', maxInvocations: 1024, maxSharedBytes: 48 * 1024, maxRegisters: 255, warpSize: 32, maxGridX: 2 ** 31 - 1, shaderF16: true },
  triton: { target: 'triton', name: 'triton', maxInvocations: 1024, maxSharedBytes: 227 * 1024, maxGridX: 2 ** 31 - 1, shaderF16: true },
};

export const DEFAULT_SCHEDULE: Schedule = { rows: 4, lanes: 32, vec: 1, dChunks: 8, samplesPerStep: 4, stages: 2 };

export const blockD = (s: Schedule): number => s.lanes * s.vec * s.dChunks;
/** Whether a kernel of schedule `s` may drop its element guards d < D: the vector length D is known and equals BLOCK_D. */
export const exactD = (s: Schedule, D: number | undefined): boolean => blockD(s) === D;
export const perLane = (s: Schedule): number => s.vec * s.dChunks;
export const invocations = (s: Schedule): number => s.rows * s.lanes;
/** Warps per program on CUDA (Triton's num_warps). */
export const warps = (s: Schedule): number => Math.max(1, Math.ceil(invocations(s) / 32));

/** Fit a schedule to a vector length D: vec divides D, then grow dChunks (then vec, lanes) until BLOCK_D ≥ D. */
export function fitD(s: Schedule, D: number): Schedule {
  let { dChunks, vec, lanes } = s as { dChunks: number; vec: number; lanes: number };
  // Vector memory operations move whole groups of `vec` elements: vec must divide D.
  while (vec > 1 && D % vec !== 0) vec /= 2;
  while (lanes * vec * dChunks < D) {
    if (dChunks < 256) dChunks *= 2;
    else if (vec < 8) vec *= 2;
    else if (lanes < 256) lanes *= 2;
    else throw new ScheduleError(`D=${D} does not fit any schedule (at most 256·8·256 elements)`);
  }
  return { ...s, dChunks: dChunks as Pow2, vec: vec as VecWidth, lanes: lanes as Pow2 };
}

const POW2 = [1, 2, 4, 8, 16, 32, 64, 128, 256];
export const SCHEDULE_SPACE = {
  rows: POW2,
  lanes: POW2,
  vec: [1, 2, 4, 8],
  dChunks: POW2,
  samplesPerStep: [1, 2, 4, 8, 16, 32, 64],
  stages: [1, 2, 3, 4, 5],
} as const;

export class ScheduleError extends Error {}

/** Shape checks of a schedule alone (not against a device); throws ScheduleError naming the field. */
export function checkScheduleShape(s: Schedule): void {
  for (const [field, allowed] of Object.entries(SCHEDULE_SPACE)) {
    const v = (s as unknown as Record<string, number>)[field];
    if (!(allowed as readonly number[]).includes(v))
      throw new ScheduleError(`schedule.${field} = ${v} is not one of ${allowed.join(', ')}`);
  }
}

export function parseSchedule(json: string): Schedule {
  const o = JSON.parse(json) as Schedule;
  checkScheduleShape(o);
  return o;
}

/**
 * The untuned default for a SIMT GPU, from tuning runs on an H100 (bench/results/tuning-h100.json): 4-element
 * vector accesses, two register chunks per lane, up to a warp of lanes per row, 4 candidates a step (one Philox
 * call serves 4 uniform slots; on an H100 4 tied with 2 or won at every setting, fused, by item and separate
 * passes, bench/results/h100-by-item.md).
 */
export function heuristicSchedule(D: number, dtype: 'f32' | 'f16' | 'bf16'): Schedule {
  void dtype;
  let vec = 4;
  while (vec > 1 && D % vec !== 0) vec /= 2;
  let lanes = 1;
  while (lanes < 32 && lanes * vec * 2 < D) lanes *= 2;
  const rows = Math.max(1, (lanes >= 16 ? 128 : 256) / lanes);
  return fitD({ rows: rows as Pow2, lanes: lanes as Pow2, vec: vec as VecWidth, dChunks: 1, samplesPerStep: 4, stages: 1 }, D);
}

/** A schedule fitted to a vector length D and, with negatives shared by groups of `share` rows, to the groups. */
export function fitProblem(s: Schedule, D: number, caps: Pick<DeviceCaps, 'target' | 'maxInvocations'>, share?: number): Schedule {
  return fitD(share ? fitShare(s, share, caps) : s, D);
}

/**
 * A schedule for negatives shared by groups of `share` rows (a program's rows must lie in one group). Tile
 * targets take a whole group per program (one gather and one dC update per candidate for all its rows; lanes
 * shrink, register chunks grow, until it fits) and a candidate tile of at least 16 (the smallest tensor-core
 * dot); SIMT targets keep their rows per program (at most the group) and take at most 2 candidates a step:
 * the untiled kernel's candidate rows are the same for all rows of a program (cache hits), and each candidate
 * adds its sampler state and logit to every thread's registers.
 */
export function fitShare(s: Schedule, share: number, caps: Pick<DeviceCaps, 'target' | 'maxInvocations'>): Schedule {
  const rows = Math.min(s.rows, share) as Pow2;
  if (caps.target === 'cpu') return { ...s, rows };
  if (caps.target !== 'triton') return { ...s, rows, samplesPerStep: Math.min(s.samplesPerStep, 2) as Schedule['samplesPerStep'] };
  let { lanes, dChunks } = s as { lanes: number; dChunks: number };
  while (share * lanes > caps.maxInvocations && lanes > 1) {
    lanes /= 2;
    dChunks *= 2;
  }
  const samplesPerStep = Math.max(16, s.samplesPerStep) as Schedule['samplesPerStep'];
  return { ...s, rows: share as Pow2, lanes: lanes as Pow2, dChunks: Math.min(256, dChunks) as Pow2, samplesPerStep };
}
