// Default schedules by backend kind: one table read by the step, the tuner and the CLI. Measurements behind the
// WebGPU choices: bench/results/webgpu-h100.md, h100-deterministic-webgpu.md and h100-by-item.md.
import { reduceSchedule } from '../codegen/schedule.js';
import { DEFAULT_SCHEDULE, type Schedule, fitD, heuristicSchedule } from '../codegen/schedule.js';
import type { BackendKind } from './backend.js';

/** WebGPU forward: 32 lanes a row (one subgroup on NVIDIA), 4-element row accesses, 4 rows per workgroup. */
export const WEBGPU_SCHEDULE: Schedule = { rows: 4, lanes: 32, vec: 4, dChunks: 2, samplesPerStep: 2, stages: 1 };
/**
 * WebGPU backward: WGSL has no vector atomics, and its compare-exchange scatter-add coalesces when consecutive
 * lanes own consecutive elements (vec = 1).
 */
export const WEBGPU_BWD_SCHEDULE: Schedule = { rows: 4, lanes: 32, vec: 1, dChunks: 8, samplesPerStep: 4, stages: 1 };

/**
 * WebGPU schedules of the two passes:
 * - shared negatives: 256 threads, lanes ≈ D/8 (vec 4, 2 chunks), the rest rows, whose partial rows are summed in
 *   workgroup memory before each candidate's atomic update, one candidate a step; the same for both passes;
 * - per-row negatives at D ≤ 64: 8 rows of 32 lanes, one element a lane, 4 candidates a step, both passes;
 * - per-row negatives above: WEBGPU_SCHEDULE forward, WEBGPU_BWD_SCHEDULE backward.
 */
export function webgpuSchedules(D: number, shared: boolean): { fwd: Schedule; bwd: Schedule } {
  const d = 2 ** Math.ceil(Math.log2(Math.max(1, D)));
  if (shared) {
    const lanes = Math.min(32, Math.max(4, d / 8));
    const dChunks = Math.max(2, d / (lanes * 4));
    const rows = Math.min(256 / lanes, Math.max(1, 2048 / (lanes * 4 * dChunks)));
    const s = { rows, lanes, vec: 4, dChunks, samplesPerStep: 1, stages: 1 } as Schedule;
    return { fwd: s, bwd: s };
  }
  if (d <= 64) {
    const s: Schedule = { rows: 8, lanes: 32, vec: 1, dChunks: 2, samplesPerStep: 4, stages: 1 };
    return { fwd: s, bwd: s };
  }
  return { fwd: WEBGPU_SCHEDULE, bwd: WEBGPU_BWD_SCHEDULE };
}

/**
 * The by-item reduction on WebGPU: a row's lanes are one subgroup (a lane reduction through workgroup memory
 * would cost two barriers per pair), 2-element accesses where D allows, two pairs a step, 256 invocations.
 */
export function webgpuReduceSchedule(D: number, subgroupSize?: number): Schedule {
  const lanes = (subgroupSize && subgroupSize <= 32 ? subgroupSize : 32) as Schedule['lanes'];
  const rows = Math.max(1, 256 / lanes) as Schedule['rows'];
  return fitD({ rows, lanes, vec: D % 2 === 0 ? 2 : 1, dChunks: 1, samplesPerStep: 2, stages: 1 }, D);
}

/**
 * The schedules of one step: its first pass, the backward (separate passes), the fused kernel (forward and
 * gradients in one pass) and dC by item's reduction.
 */
export interface StepSchedules {
  fwd: Schedule;
  bwd: Schedule;
  fused: Schedule;
  reduce: Schedule;
}

export interface DefaultsQuery {
  D: number;
  dtype: 'f32' | 'f16' | 'bf16';
  shared: boolean;
  byItem: boolean;
  subgroupSize?: number;
}

type Rule = (q: DefaultsQuery) => StepSchedules;

const DEFAULTS: Record<BackendKind, Rule> = {
  cpu: (q) => ({ fwd: DEFAULT_SCHEDULE, bwd: DEFAULT_SCHEDULE, fused: DEFAULT_SCHEDULE, reduce: reduceSchedule(q.D) }),
  cuda: (q) => {
    const h = heuristicSchedule(q.D, q.dtype);
    return { fwd: h, bwd: h, fused: h, reduce: reduceSchedule(q.D) };
  },
  webgpu: (q) => {
    const def = webgpuSchedules(q.D, q.shared);
    // dC by item: its forward carries dE and the gathered row through the sweep; 4 candidates a step and
    // 2-element accesses where D is even.
    const even = q.D % 2 === 0 ? { vec: 2, dChunks: Math.max(1, (def.fwd.dChunks * def.fwd.vec) / 2) } : {};
    const fwd = q.byItem ? ({ ...def.fwd, samplesPerStep: 4, ...even } as Schedule) : def.fwd;
    // The fused kernel scatters dC with compare-exchange loops as the backward does: the backward's schedule.
    return { fwd, bwd: def.bwd, fused: def.bwd, reduce: webgpuReduceSchedule(q.D, q.subgroupSize) };
  },
};

export function defaultSchedules(kind: BackendKind, q: DefaultsQuery): StepSchedules {
  return DEFAULTS[kind](q);
}

/** Untimed steps before timed ones last at least this long: on an idle GPU the first seconds run slower. */
export const WARMUP_MS: Record<BackendKind, number> = { cpu: 0, cuda: 0, webgpu: 2000 };

/** The default schedules of a step on a backend (its kind and caps) for a problem. */
export function stepDefaults(
  b: { kind: BackendKind; caps: { subgroupSize?: number } },
  p: { D: number; dtype: 'f32' | 'f16' | 'bf16'; shareRows?: number },
  o: { byItem?: boolean } = {},
): StepSchedules {
  return defaultSchedules(b.kind, {
    D: p.D, dtype: p.dtype, shared: !!p.shareRows, byItem: !!o.byItem, subgroupSize: b.caps.subgroupSize,
  });
}
