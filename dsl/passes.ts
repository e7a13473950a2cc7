// The one vocabulary of pass names (the manifest's, every runtime's, the PyTorch package's) and the one registry
// from a pass to its kernel factory.
import type { Kernel } from '../codegen/ir.js';
import { COUNTER_SCHEDULE, cceCountPairs, cceFillPairs, cceReduceByItem, scanAdd, scanBlocks } from './byitem.js';
import { type CceOptions, cceBackward, cceForward, cceFused, cceFusedDE, cceSamples } from './cce.js';
import type { Schedule } from './schedule.js';

export const PASS_NAMES = [
  'forward', 'backward', 'fused', 'fused_de', 'fused_de_by_item',
  'count_pairs', 'scan_blocks', 'scan_add', 'fill_pairs', 'dc_by_item', 'samples',
] as const;
export type PassName = (typeof PASS_NAMES)[number];

/** Passes of dC by item after its forward (runtime/byitem.ts launches them). */
export type ByItemPass = Extract<PassName, 'count_pairs' | 'scan_blocks' | 'scan_add' | 'fill_pairs' | 'dc_by_item'>;

type Factory = (o: CceOptions, s: Schedule, packed: boolean) => Kernel;
const FACTORIES: Record<PassName, Factory> = {
  forward: (o, s) => cceForward(o, s),
  backward: (o, s) => cceBackward(o, s),
  fused: (o, s) => cceFused(o, s),
  fused_de: (o, s) => cceFusedDE(o, s, false),
  fused_de_by_item: (o, s) => cceFusedDE(o, s, true),
  count_pairs: (o) => cceCountPairs(o),
  scan_blocks: () => scanBlocks(),
  scan_add: () => scanAdd(),
  fill_pairs: (o, _s, packed) => cceFillPairs(o, packed),
  dc_by_item: (o, s, packed) => cceReduceByItem(o, s, packed),
  samples: (o, s) => cceSamples(o, s),
};

/** Passes that hold no embeddings and run one thread a row whatever the problem's schedule. */
export const COUNTER_PASSES: ReadonlySet<PassName> = new Set(['count_pairs', 'scan_blocks', 'scan_add', 'fill_pairs']);

/** Passes with a one-word-per-pair variant (dC by item). */
export const PACKED_PASSES: ReadonlySet<PassName> = new Set(['fill_pairs', 'dc_by_item']);

/** The schedule a pass runs with: the problem's, or one thread a row for the counters. */
export const passSchedule = (pass: PassName, s: Schedule): Schedule =>
  COUNTER_PASSES.has(pass) ? COUNTER_SCHEDULE : s;

/** The kernel of a pass for options and a schedule (`packed`: fill_pairs and dc_by_item only). */
export function passKernel(pass: PassName, o: CceOptions, s: Schedule, packed = false): Kernel {
  return FACTORIES[pass](o, passSchedule(pass, s), PACKED_PASSES.has(pass) && packed);
}
