// In-batch candidates: the targets of all rows of the call ('batch') or of the rows of the row's group of
// `share` rows ('group'), shared by those rows. Entries whose target is ignore_index are not candidates; the
// row's own target and its duplicates are rejected like any candidate equal to it. q: item frequencies (a log q
// tensor [V], `logq_batch`) or uniform.
import { i32 } from '../values.js';
import type { Part, SourceContext } from './source.js';
import { sampledLogq } from './logq.js';

export function inBatchPart(x: SourceContext): Part {
  const { kb, o, targets, ignore } = x;
  const N = kb.dim('N');
  const group = o.inBatch === 'group';
  const logq = sampledLogq(kb, o.inBatchSampling ?? 'uniform', '_batch', 'the in-batch candidates (item frequency)');
  return {
    name: 'batch', shared: true, count: group ? i32(o.share!) : N, logq,
    at: (slot) => {
      const r = kb.let('cand_row', group ? kb.group.mul(o.share!).add(slot) : slot);
      const inRows = kb.let('cand_in', r.lt(N));
      const t = kb.let('cand_t', kb.load(targets, r, inRows));
      return { n: kb.let('n', t), inRange: kb.let('in_range', inRows.and(t.ne(ignore))) };
    },
  };
}
