// Host side of dC by item (dsl/byitem.ts), shared by the runtimes: the chunk plan, the scan levels and the
// launch sequence, over whatever buffers and launches a runtime has.
import { SCAN_WIDTH, SEGMENT } from '../dsl/byitem.js';
import { reduceSchedule } from '../codegen/schedule.js';
import { type Schedule, checkScheduleForD, fitD } from '../codegen/schedule.js';
import type { ByItemPass } from './kernels.js';
import type { CceProblem } from './problem.js';

/**
 * Default budget of the pair buffers: 48 MiB of i32 rows and items (extra memory stays ≤ 64 MiB with the
 * counters).
 */
export const BY_ITEM_PAIR_BYTES = 48 << 20;

export interface ScanLevel {
  /** Entries scanned at this level. */
  n: number;
  /** Blocks of SCAN_WIDTH entries (the next level's n). */
  blocks: number;
}

export interface ByItemPlan {
  /** Rows per chunk. */
  chunkRows: number;
  /** Entries of each pair buffer (chunkRows·K). */
  capacity: number;
  /** Scan levels over the V item counts, down to one block. */
  levels: ScanLevel[];
  /** Extra device bytes: the pair buffers, the counters and the scan's buffers, lse + log k. */
  extraBytes: number;
  /**
   * One u32 per pair, ((row − row0) << itemBits | item) + 1, where a chunk's rows and the items fit 32 bits
   * without shrinking the chunk (twice the rows per chunk in the same bytes, half the scattered writes).
   */
  packed: boolean;
  /** Bits of an item id (packed entries). */
  itemBits: number;
}

/** pack: true (where it fits), false (two words), or the item bits to use (tests: entries that reach the top bit). */
export function byItemPlan(
  p: Pick<CceProblem, 'N' | 'K' | 'V'>, pairBytes = BY_ITEM_PAIR_BYTES, pack: boolean | number = true,
): ByItemPlan {
  if (p.N * p.K >= 2 ** 31) throw new Error(`dC by item: N·K = ${p.N * p.K} pairs exceed i32 positions`);
  const K = Math.max(1, p.K);
  // V < 2^itemBits, so a packed entry ((rows − 1) << itemBits | (V − 1)) + 1 stays below 2^32.
  const itemBits = Math.max(1, Math.ceil(Math.log2(p.V + 1)), typeof pack === 'number' ? pack : 0);
  const twoWords = Math.max(1, Math.min(p.N, Math.floor(pairBytes / 8 / K)));
  const oneWord = Math.min(p.N, Math.floor(pairBytes / 4 / K), 2 ** (32 - itemBits));
  const packed = pack !== false && itemBits < 32 && oneWord >= twoWords;
  const chunkRows = packed ? oneWord : twoWords;
  const levels = scanLevels(p.V);
  const scanWords = levels.reduce((a, l) => a + 2 * l.n + l.blocks, 0);
  const extraBytes = 4 * ((packed ? 1 : 2) * chunkRows * p.K + scanWords + p.N);
  return { chunkRows, capacity: chunkRows * p.K, levels, packed, itemBits, extraBytes };
}

/** Scan levels over n values: blocks of SCAN_WIDTH, then the blocks' totals, ... down to one block. */
export function scanLevels(n0: number): ScanLevel[] {
  const levels: ScanLevel[] = [];
  for (let n = n0; ; ) {
    const blocks = Math.ceil(n / SCAN_WIDTH);
    levels.push({ n, blocks });
    if (blocks === 1) return levels;
    n = blocks;
  }
}

export { reduceSchedule };

/** The reduction's schedule at vector length D: `s` fitted to D and checked (checkScheduleForD), for every runtime. */
export function reduceScheduleFor(s: Schedule, D: number): Schedule {
  const fitted = fitD(s, D, 'reduceSchedule');
  checkScheduleForD(fitted, D, 'reduceSchedule');
  return fitted;
}

/** What the launch sequence needs from a runtime. */
export interface ByItemOps<B> {
  launch(k: ByItemPass, rows: number, buffers: Record<string, B>, scalars: Record<string, number>): void;
  /** Zero the first `words` 32-bit words. */
  clear(b: B, words: number): void;
}

/**
 * Buffers: `counts` (V i32, becomes the fill's cursor), per scan level `local` (n i32) and `totals` (blocks
 * i32; level l + 1 scans level l's totals), `rows` and `items` (capacity i32 each; packed: `rows` holds the
 * u32 entries and `items` is not used), plus the problem's inputs, lse_k and dC.
 */
export interface ByItemBuffers<B> {
  counts: B;
  local: B[];
  totals: B[];
  rows: B;
  items: B;
  inputs: Record<string, B>;
}

/**
 * Exclusive prefix sums of `b.counts` (levels from byItemPlan): block sums up the levels, block bases back
 * down. Returns the buffer that holds them: `b.counts` itself, or level 0's local sums when one block is all.
 */
export function runScan<B>(
  ops: ByItemOps<B>,
  L: readonly ScanLevel[],
  b: Pick<ByItemBuffers<B>, 'counts' | 'local' | 'totals'>,
  scalars: Record<string, number>,
): B {
  // Up: level l scans `counts` (l = 0) or level l − 1's totals.
  const src = (l: number) => (l === 0 ? b.counts : b.totals[l - 1]!);
  L.forEach((lv, l) => {
    const buffers = { src: src(l), local: b.local[l]!, totals: b.totals[l]! };
    ops.launch('scan_blocks', lv.blocks, buffers, { ...scalars, n: lv.n, B: lv.blocks });
  });
  // Down: the top level's local sums are its prefix sums; each lower level adds its block's base, in place of
  // its source.
  for (let l = L.length - 2; l >= 0; l--) {
    const base = l + 1 === L.length - 1 ? b.local[l + 1]! : src(l + 1);
    const buffers = { local: b.local[l]!, base, dst: src(l) };
    ops.launch('scan_add', L[l]!.blocks, buffers, { ...scalars, n: L[l]!.n, B: L[l]!.blocks });
  }
  return L.length === 1 ? b.local[0]! : b.counts;
}

/** The negatives' dC terms, chunk by chunk, after the forward wrote lse + log k and the targets' terms. */
export function runByItemChunks<B>(
  ops: ByItemOps<B>,
  p: Pick<CceProblem, 'N' | 'K' | 'V'>,
  plan: ByItemPlan,
  b: ByItemBuffers<B>,
  scalars: Record<string, number>,
): void {
  const L = plan.levels;
  if (p.K === 0) return; // no negatives: the forward wrote every term
  for (let r0 = 0; r0 < p.N; r0 += plan.chunkRows) {
    const P = Math.min(plan.chunkRows, p.N - r0) * p.K;
    const s = { ...scalars, pair0: r0 * p.K, row0: r0, item_bits: plan.itemBits, P, Q: P, S: Math.ceil(P / SEGMENT) };
    ops.clear(b.counts, p.V);
    ops.launch('count_pairs', P, { ...b.inputs, counts: b.counts }, s);
    const cursor = runScan(ops, L, b, s);
    ops.clear(b.rows, P);
    const pairs: Record<string, B> = plan.packed ? { pair_codes: b.rows } : { pair_rows: b.rows, pair_items: b.items };
    ops.launch('fill_pairs', P, { ...b.inputs, cursor, ...pairs }, s);
    ops.launch('dc_by_item', s.S, { ...b.inputs, ...pairs }, s);
  }
}
