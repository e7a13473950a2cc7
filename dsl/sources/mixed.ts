// Mixed negative sampling (Yang et al., WWW 2020): the in-batch candidates plus K drawn negatives, each part
// corrected by its own q, k counting the accepted candidates of both. With s_j = e·c_j − log(k·q_p(j)(n_j)),
// exp(lse) − exp(s0) is (1/k)·Σ_j exp(e·c_j)/q_p(j)(n_j): the count-weighted mean of the two parts' importance
// estimates of Σ_{n≠t} exp(e·c_n), the normalizer without the target.
import type { Part, SourceContext } from './source.js';
import { inBatchPart } from './inbatch.js';

export function mixedParts(x: SourceContext, drawn: (x: SourceContext) => Part): Part[] {
  return [inBatchPart(x), drawn(x)];
}
