// The one vocabulary of pass names (the manifest's, every runtime's, the PyTorch package's) and the one registry
// from a pass to its kernel factory. A factory takes the variant only: schedules are the lowering's.
import type { Kernel } from '../codegen/ir.js';
import { cceCountPairs, cceFillPairs, cceReduceByItem, scanAdd, scanBlocks } from './byitem.js';
import { type CceOptions, cceBackward, cceForward, cceFused, cceFusedDE, cceSamples } from './cce.js';

export const PASS_NAMES = [
  'forward', 'backward', 'fused', 'fused_de', 'fused_de_by_item',
  'count_pairs', 'scan_blocks', 'scan_add', 'fill_pairs', 'dc_by_item', 'samples',
] as const;
export type PassName = (typeof PASS_NAMES)[number];

/** Passes of dC by item after its forward (runtime/byitem.ts launches them). */
export type ByItemPass = Extract<PassName, 'count_pairs' | 'scan_blocks' | 'scan_add' | 'fill_pairs' | 'dc_by_item'>;

type Factory = (o: CceOptions, packed: boolean) => Kernel;
const FACTORIES: Record<PassName, Factory> = {
  forward: (o) => cceForward(o),
  backward: (o) => cceBackward(o),
  fused: (o) => cceFused(o),
  fused_de: (o) => cceFusedDE(o, false),
  fused_de_by_item: (o) => cceFusedDE(o, true),
  count_pairs: (o) => cceCountPairs(o),
  scan_blocks: () => scanBlocks(),
  scan_add: () => scanAdd(),
  fill_pairs: (o, packed) => cceFillPairs(o, packed),
  dc_by_item: (o, packed) => cceReduceByItem(o, packed),
  samples: (o) => cceSamples(o),
};

/** Passes that hold no embeddings and run one thread a row whatever the problem's schedule. */
export const COUNTER_PASSES: ReadonlySet<PassName> = new Set(['count_pairs', 'scan_blocks', 'scan_add', 'fill_pairs']);

/** Passes with a one-word-per-pair variant (dC by item). */
export const PACKED_PASSES: ReadonlySet<PassName> = new Set(['fill_pairs', 'dc_by_item']);

/** The kernel (IR) of a pass for a variant (`packed`: fill_pairs and dc_by_item only). */
export function passKernel(pass: PassName, o: CceOptions, packed = false): Kernel {
  return FACTORIES[pass](o, PACKED_PASSES.has(pass) && packed);
}
