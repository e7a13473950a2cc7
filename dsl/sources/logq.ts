// log q of a part of sampled candidates: a tensor [V] (given q) or one scalar (uniform: −log(V−1)).
import type { KernelBuilder } from '../builder.js';
import type { Val } from '../values.js';

/** Declares the log q parameter of a part (`suffix` keeps the names of two parts apart). */
export function sampledLogq(
  kb: KernelBuilder<'D'>, sampling: 'uniform' | 'given', suffix: string, what: string, catalog: 'V' | 'VG' = 'V',
): (n: Val<'i32'>, mask: Val<'bool'>) => Val<'f32'> {
  if (sampling === 'given') {
    const t = kb.input(`logq${suffix}`, 'f32', [catalog] as const, `log q(v) of ${what}`);
    return (n, mask) => kb.load(t, n, mask);
  }
  const u = kb.scalar(`logq${suffix}_uniform`, 'f32', `log q of ${what}, uniform: −log(V−1)`);
  return () => u;
}
