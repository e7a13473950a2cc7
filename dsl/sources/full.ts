// The full catalog: every item 0..V−1 is a candidate of every row (full CE), with no correction and no count.
import type { Part, SourceContext } from './source.js';

export function fullPart(x: SourceContext): Part {
  const { kb } = x;
  const V = kb.dim('V');
  return {
    name: 'items', shared: true, count: V,
    at: (slot) => ({ n: kb.let('n', slot), inRange: kb.let('in_range', slot.lt(V)) }),
  };
}
