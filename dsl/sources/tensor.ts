// Negatives from an index tensor: [N, K] per row, or [G, K] shared by each group of `share` rows (G = ⌈N/share⌉).
import { negativesInput } from '../options.js';
import type { Part, SourceContext } from './source.js';
import { sampledLogq } from './logq.js';

export function tensorPart(x: SourceContext): Part {
  const { kb, o } = x;
  const K = kb.dim('K');
  const logq = sampledLogq(kb, o.sampling, '', 'the sampling distribution of the drawn negatives', x.catalog);
  if (o.share) {
    const neg = negativesInput(kb, o, 'G', `sampled negative items per group of ${o.share} rows`);
    return {
      name: 'drawn', shared: true, count: K, logq,
      at: (slot) => {
        const inRange = kb.let('in_range', slot.lt(K));
        return { n: kb.let('n', neg.load(kb.group.mul(K).add(slot), inRange)), inRange };
      },
    };
  }
  const neg = negativesInput(kb, o, 'N', 'sampled negative items per row');
  return {
    name: 'drawn', shared: false, count: K, logq,
    at: (slot) => {
      const inRange = kb.let('in_range', kb.rowValid.and(slot.lt(K)));
      return { n: kb.let('n', neg.load(kb.row.mul(K).add(slot), inRange)), inRange };
    },
  };
}
