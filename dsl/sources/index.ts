// The candidate source of a kernel's options: one file per source in this folder.
import { type CceOptions, checkCandidates } from '../options.js';
import { fullPart } from './full.js';
import { inBatchPart } from './inbatch.js';
import { mixedParts } from './mixed.js';
import { philoxPart } from './philox.js';
import type { Part, Source, SourceContext } from './source.js';
import { tensorPart } from './tensor.js';

export type { Part, Source, SourceContext } from './source.js';

export function sourceOf(x: SourceContext): Source {
  const { o } = x;
  checkCandidates(o);
  const drawn = o.negatives === 'philox' ? philoxPart : tensorPart;
  let parts: Part[];
  if (o.mode === 'full') parts = [fullPart(x)];
  else if (!o.inBatch) parts = [drawn(x)];
  else parts = o.negatives === 'none' ? [inBatchPart(x)] : mixedParts(x, drawn);
  return { parts, groupRows: groupRowsOf(o) };
}

/** Rows per group of the kernel's group index: `share` where a part reads it (shared draws, in-batch groups). */
export function groupRowsOf(o: CceOptions): number | undefined {
  const grouped = o.mode === 'sampled' && (o.inBatch === 'group' || (o.share && o.negatives !== 'none'));
  return grouped ? o.share : undefined;
}
