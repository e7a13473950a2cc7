// The schedule: how a kernel's rows and vector elements map onto programs, lanes and registers. It is a
// plain serializable object, separate from the algorithm, checked against a device capability record.
import { type DeviceCaps, traitsOf } from './target.js';


export type Pow2 = 1 | 2 | 4 | 8 | 16 | 32 | 64 | 128 | 256;
export type VecWidth = 1 | 2 | 4 | 8;

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

export const DEFAULT_SCHEDULE: Schedule = { rows: 4, lanes: 32, vec: 1, dChunks: 8, samplesPerStep: 4, stages: 2 };

export const blockD = (s: Schedule): number => s.lanes * s.vec * s.dChunks;
/**
 * Whether a kernel of schedule `s` may drop its element guards d < D: the vector length D is known and equals
 * BLOCK_D.
 */
export const exactD = (s: Schedule, D: number | undefined): boolean => blockD(s) === D;
export const perLane = (s: Schedule): number => s.vec * s.dChunks;
export const invocations = (s: Schedule): number => s.rows * s.lanes;
/** Warps per program on CUDA (Triton's num_warps). */
export const warps = (s: Schedule): number => Math.max(1, Math.ceil(invocations(s) / 32));

/** Bounds of the fit: the largest lanes and register chunks SCHEDULE_SPACE offers, and the widest vector access. */
const MAX_LANES = 256;
const MAX_CHUNKS = 256;
const MAX_VEC = 8;
/**
 * Elements a lane holds (vec·dChunks) before the fit spreads a row over more lanes instead: several per-lane
 * vectors of 32 stay within CUDA's 255 registers a thread (256 never do), and lavapipe compiles a kernel with
 * 256 elements a lane in ~25 s against ~1.5 s at 64 (this 2-core machine).
 */
export const FIT_PER_LANE = 32;

/**
 * Fit a schedule to a vector length D: vec shrinks until it divides D; then, until BLOCK_D ≥ D, dChunks grows
 * while a lane holds fewer than `perLane` elements, then lanes, then dChunks, then vec (only to widths that
 * divide D). The result passes checkScheduleForD, and a schedule that already suits D is returned as it is; a D
 * beyond the largest schedule (256 lanes · 256 chunks · the widest vec dividing D) is a ScheduleError naming D.
 * `perLane`: FIT_PER_LANE for SIMT targets; a tile target (one [rows, BLOCK_D] tile) passes MAX_CHUNKS·vec.
 */
export function fitD(s: Schedule, D: number, what = 'schedule', perLane = FIT_PER_LANE): Schedule {
  checkD(D);
  checkScheduleShape(s, what);
  let { dChunks, vec, lanes } = s as { dChunks: number; vec: number; lanes: number };
  // Vector memory operations move whole groups of `vec` elements: vec must divide D.
  while (vec > 1 && D % vec !== 0) vec /= 2;
  while (lanes * vec * dChunks < D) {
    if (dChunks < MAX_CHUNKS && vec * dChunks < perLane) dChunks *= 2;
    else if (lanes < MAX_LANES) lanes *= 2;
    else if (dChunks < MAX_CHUNKS) dChunks *= 2;
    else if (vec < MAX_VEC && D % (2 * vec) === 0) vec *= 2;
    else {
      let widest = 1;
      while (widest < MAX_VEC && D % (2 * widest) === 0) widest *= 2;
      const most = MAX_LANES * widest * MAX_CHUNKS;
      throw new ScheduleError(
        `D = ${D} does not fit any schedule: at most lanes ${MAX_LANES} · vec ${widest} (the widest dividing D) · ` +
          `dChunks ${MAX_CHUNKS} = ${most} elements`,
      );
    }
  }
  const fitted = { ...s, dChunks: dChunks as Pow2, vec: vec as VecWidth, lanes: lanes as Pow2 };
  checkScheduleForD(fitted, D, what);
  return fitted;
}

function checkD(D: number): void {
  if (!Number.isSafeInteger(D) || D < 1)
    throw new ScheduleError(`D = ${D}: the vector length must be a positive integer`);
}

/**
 * Every condition the lowering and the emitted kernels rely on for a schedule `s` run at vector length D
 * (kernels that index D-vectors; the counters' one-thread schedules have none), in one place; each runtime calls
 * it before it compiles or launches, and fitD's output always passes it. Throws ScheduleError naming the field and D.
 * - the schedule's own shape (checkScheduleShape);
 * - vec divides D: SIMT emitters move `vec` consecutive elements per access (float2 / float4, packed 16-bit
 *   words) with one guard d0 < D on the first; an access that started below D would cross into the next row
 *   (and lose alignment);
 * - BLOCK_D = lanes·vec·dChunks ≥ D: a lane owns only the elements below BLOCK_D, the rest would never be computed
 *   (elements in BLOCK_D beyond D are guarded by d < D, or the guards are dropped when BLOCK_D = D).
 */
export function checkScheduleForD(s: Schedule, D: number, what = 'schedule'): void {
  checkD(D);
  checkScheduleShape(s, what);
  if (D % s.vec !== 0)
    throw new ScheduleError(
      `${what}.vec = ${s.vec} does not divide D = ${D}: vector accesses of ${s.vec} elements would cross rows ` +
        '(fitD picks a vec that divides D)',
    );
  if (blockD(s) < D)
    throw new ScheduleError(
      `${what}: BLOCK_D = lanes·vec·dChunks = ${s.lanes}·${s.vec}·${s.dChunks} = ${blockD(s)} is below D = ${D}: ` +
        'elements beyond it would not be computed (fitD grows dChunks, lanes, vec)',
    );
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
export function checkScheduleShape(s: Schedule, what = 'schedule'): void {
  for (const [field, allowed] of Object.entries(SCHEDULE_SPACE)) {
    const v = (s as unknown as Record<string, number>)[field];
    const shown = typeof v === 'number' ? v : JSON.stringify(v);
    if (!(allowed as readonly number[]).includes(v))
      throw new ScheduleError(`${what}.${field} = ${shown} is not one of ${allowed.join(', ')}`);
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
  const pow2 = (n: number) => n as Pow2;
  const v = vec as VecWidth;
  const s: Schedule = { rows: pow2(rows), lanes: pow2(lanes), vec: v, dChunks: 1, samplesPerStep: 4, stages: 1 };
  return fitD(s, D);
}

/** The caps fields the schedule fits read: the target's traits and the invocations a program may have. */
export type FitCaps = Pick<DeviceCaps, 'traits' | 'warpSize' | 'maxInvocations'>;

/** A schedule fitted to a vector length D and, with negatives shared by groups of `share` rows, to the groups. */
export function fitProblem(s: Schedule, D: number, caps: FitCaps, share?: number): Schedule {
  const tiles = traitsOf(caps).tiles;
  const base = share ? fitShare(s, share, caps) : s;
  const fitted = fitD(base, D, 'schedule', tiles ? MAX_CHUNKS * MAX_VEC : FIT_PER_LANE);
  // Lanes grown for a large D: SIMT targets give up row slots to stay within the device's invocations (a
  // tile target's program keeps its whole group of rows; lanes as given are the caller's to choose).
  let rows: number = fitted.rows;
  if (!tiles && fitted.lanes > base.lanes) while (rows > 1 && rows * fitted.lanes > caps.maxInvocations) rows /= 2;
  return rows === fitted.rows ? fitted : { ...fitted, rows: rows as Pow2 };
}

/**
 * A schedule for negatives shared by groups of `share` rows (a program's rows must lie in one group). Tile
 * targets take a whole group per program (one gather and one dC update per candidate for all its rows; lanes
 * shrink, register chunks grow, until it fits); SIMT targets keep their rows per program (at most the group).
 * Candidates a step are clamped to the target's shareStep: tile targets take at least 16 (the smallest
 * tensor-core dot); SIMT GPU targets at most 2, since the untiled kernel's candidate rows are the same for all
 * rows of a program (cache hits) and each candidate adds its sampler state and logit to every thread's registers.
 */
export function fitShare(s: Schedule, share: number, caps: FitCaps): Schedule {
  const { tiles, shareStep } = traitsOf(caps);
  const step = Math.min(shareStep.max, Math.max(shareStep.min, s.samplesPerStep)) as Schedule['samplesPerStep'];
  if (!tiles) return { ...s, rows: Math.min(s.rows, share) as Pow2, samplesPerStep: step };
  let { lanes, dChunks } = s as { lanes: number; dChunks: number };
  while (share * lanes > caps.maxInvocations && lanes > 1) {
    lanes /= 2;
    dChunks *= 2;
  }
  const pow2 = (n: number) => n as Pow2;
  return { ...s, rows: pow2(share), lanes: pow2(lanes), dChunks: pow2(Math.min(256, dChunks)), samplesPerStep: step };
}
/**
 * Default schedule of the reduction: about D/16 lanes a row (16 at D = 256, 4 at D = 64), so a warp walks
 * several segments at once; 4-element accesses, one pair a step. On an H100 (bench/results/h100-by-item.md)
 * this beat 8 and 32 lanes at D = 256, and two or four pairs a step (more registers, fewer warps) lost.
 */
export function reduceSchedule(D: number): Schedule {
  let lanes = 1;
  while (lanes < 32 && lanes * 16 < D) lanes *= 2;
  const rows = Math.max(1, 128 / lanes) as Schedule['rows'];
  return fitD({ rows, lanes: lanes as Schedule['lanes'], vec: 4, dChunks: 1, samplesPerStep: 1, stages: 1 }, D);
}


/** Schedule of the counting, filling and scan kernels: one thread per row (their counters need lanes = 1). */
export const COUNTER_SCHEDULE: Schedule = { rows: 128, lanes: 1, vec: 1, dChunks: 1, samplesPerStep: 1, stages: 1 };
