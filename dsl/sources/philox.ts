// Negatives drawn in the kernel (Philox4x32-10, dsl/sampling.ts): per row (stream 0), or shared by each group of
// `share` rows (stream 1, keyed by the group). The backward regenerates the forward's draws.
import { STREAM_ROW, STREAM_SHARED, sampleItem, samplerParams } from '../sampling.js';
import type { Part, SourceContext } from './source.js';
import { sampledLogq } from './logq.js';

export function philoxPart(x: SourceContext): Part {
  const { kb, o } = x;
  const K = kb.dim('K');
  const sampler = samplerParams(kb, o.sampling);
  const logq = sampledLogq(kb, o.sampling, '', 'the sampling distribution of the drawn negatives', x.catalog);
  const shared = !!o.share;
  return {
    name: 'drawn', shared, count: K, logq,
    at: (slot) => {
      const inRange = kb.let('in_range', shared ? slot.lt(K) : kb.rowValid.and(slot.lt(K)));
      const key = shared ? kb.group : kb.row;
      const stream = shared ? STREAM_SHARED : STREAM_ROW;
      const n = kb.let('n', sampleItem(kb, sampler, key, slot, kb.dim(x.catalog), 'smp', stream));
      return { n, inRange };
    },
  };
}
