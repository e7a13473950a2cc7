// Vocabulary-parallel CCE- (CceOptions.vocabShard): the item table cut into shards of unequal size, each shard's
// forward kernel (partial statistics) and backward kernel (its dC and part of dE) run on the CPU executor, the
// statistics merged as a logsumexp on the host, against the float64 reference on the whole table; fresh random
// inputs with collisions and ignored rows, index-tensor and Philox negatives, targets in every shard.
import { describe, expect, it } from 'vitest';
import { lower } from '../codegen/lower.js';
import type { Schedule } from '../codegen/schedule.js';
import type { CceOptions } from '../dsl/cce.js';
import { passKernel } from '../dsl/passes.js';
import { relErr } from '../runtime/check.js';
import { referenceCce } from '../runtime/cpu/reference.js';
import { decode } from '../runtime/numeric.js';
import { samplerInputs } from '../runtime/philox.js';
import type { CceProblem } from '../runtime/problem.js';
import { randomProblem } from '../runtime/random.js';
import { compileJs } from '../targets/js/emit.js';
import { CAPS } from '../targets/registry.js';
import { freshSeed } from './support/cases.js';

const S: Schedule = { rows: 4, lanes: 4, vec: 1, dChunks: 4, samplesPerStep: 4, stages: 1 };
const NEG = -3.0e38;

function run(pass: 'forward' | 'backward', o: CceOptions, buffers: Record<string, Float64Array | Int32Array |
  Uint32Array>, scalars: Record<string, number>, N: number): void {
  const fn = compileJs(lower(passKernel(pass, o), S, CAPS.cpu));
  fn(buffers, scalars, Math.ceil(N / S.rows));
}

/** The step over P shards [bounds[r], bounds[r + 1]) of the table, merged as the package's host code merges. */
function sharded(p: CceProblem, bounds: number[], dloss: Float64Array, o: CceOptions) {
  const { N, D, K } = p;
  const E = decode(p.dtype, p.E);
  const C = decode(p.dtype, p.C);
  const smp = samplerInputs(p);
  const common = {
    N, D, K, K2: 2 * K, G: N, VG: p.V, V2: 2 * p.V, ignore_index: p.ignoreIndex, logq_uniform: -Math.log(p.V - 1),
    seed_lo: smp.seed_lo, seed_hi: smp.seed_hi, grad_scale: 1,
  };
  // A given q: every shard reads log q of global ids ([VG]).
  const logq = p.itemProbs ? Float64Array.from(p.itemProbs, (x) => Math.log(x)) : new Float64Array(0);
  const inputs = { E, targets: p.targets, negatives: p.negatives ?? new Int32Array(0), logq };
  const shards = bounds.slice(0, -1).map((start, r) => ({ start, V: bounds[r + 1]! - start }));
  const parts = shards.map(({ start, V }) => {
    const out = { part_max: new Float64Array(N), part_sum: new Float64Array(N), part_s0: new Float64Array(N),
      kacc: new Int32Array(N) };
    run('forward', o, { ...inputs, C: C.subarray(start * D, (start + V) * D), ...out },
      { ...common, V, vocab_start: start }, N);
    return out;
  });
  const lse = new Float64Array(N);
  const kTotal = new Int32Array(N);
  const share = new Float64Array(N);
  const rowLoss = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const M = Math.max(...parts.map((q) => q.part_max[i]!));
    const L = parts.reduce((a, q) => a + q.part_sum[i]! * Math.exp(q.part_max[i]! - M), 0);
    const k = parts.reduce((a, q) => a + q.kacc[i]!, 0);
    const s0 = Math.max(...parts.map((q) => q.part_s0[i]!));
    kTotal[i] = k;
    if (s0 <= NEG) continue; // an ignored row: no shard owns its target
    const neg = k > 0 && L > 0 ? M + Math.log(L) - Math.log(k) : -Infinity;
    const mx = Math.max(s0, neg);
    lse[i] = mx + Math.log(Math.exp(s0 - mx) + Math.exp(neg - mx));
    share[i] = Math.exp(neg - lse[i]!);
    rowLoss[i] = lse[i]! - s0;
  }
  const dE = new Float64Array(N * D);
  const dC = new Float64Array(p.V * D);
  shards.forEach(({ start, V }) => {
    const out = { dE: new Float64Array(N * D), dC: new Float64Array(V * D) };
    run('backward', o, { ...inputs, C: C.subarray(start * D, (start + V) * D), lse, kacc: kTotal,
      neg_share: share, dloss, ...out }, { ...common, V, vocab_start: start }, N);
    out.dE.forEach((x, j) => (dE[j] = dE[j]! + x));
    dC.set(out.dC, start * D);
  });
  return { rowLoss, lse, kTotal, dE, dC };
}

describe('vocabulary-parallel CCE- (shards on the CPU executor) vs the float64 reference on the whole table', () => {
  const cases = [
    { N: 37, D: 9, V: 23, K: 11, P: [0, 5, 6, 23], philox: false, dtype: 'f32' as const },
    { N: 64, D: 16, V: 97, K: 30, P: [0, 40, 97], philox: true, dtype: 'f16' as const },
    { N: 51, D: 5, V: 60, K: 8, P: [0, 13, 31, 60], philox: false, dtype: 'bf16' as const, given: true },
  ];
  for (const c of cases)
    it(`N=${c.N} D=${c.D} V=${c.V} K=${c.K} ${c.dtype} shards ${c.P.join('/')}${c.philox ? ' philox' : ''}`, () => {
      const q = randomProblem({ N: c.N, D: c.D, V: c.V, K: c.K, dtype: c.dtype, seed: freshSeed(), ignoreFraction: 0.15,
        collisionRate: 0.2, popularity: c.given });
      const p: CceProblem = { ...q, reduction: 'none',
        ...(c.philox ? { negatives: undefined, philoxSeed: freshSeed() } : {}) };
      const o: CceOptions = { mode: 'sampled', dtype: 'f32', sampling: c.given ? 'given' : 'uniform', grad: 'perRow',
        negatives: c.philox ? 'philox' : 'tensor', vocabShard: true };
      const dloss = Float64Array.from({ length: c.N }, (_, i) => 0.5 + (i % 3));
      const got = sharded(p, c.P, dloss, o);
      const ref = referenceCce(p, { gradOutput: dloss });
      expect(relErr(got.rowLoss, ref.rowLoss)).toBeLessThan(1e-10);
      expect(relErr(got.lse, ref.lse)).toBeLessThan(1e-10);
      expect(Array.from(got.kTotal)).toEqual(Array.from(ref.kAccepted));
      expect(relErr(got.dE, ref.dE)).toBeLessThan(1e-10);
      expect(relErr(got.dC, ref.dC)).toBeLessThan(1e-10);
    });
});

