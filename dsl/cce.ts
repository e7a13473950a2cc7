// CCE- (cross-entropy with negative sampling, no materialized logits) and full-catalog CE, written in the
// DSL. One factory builds the forward and the backward of both from the same blocks: gather a candidate
// row, dot it with the hidden row, transform and correct the logit, fold it into an online softmax.
//
// Row i: hidden e_i, target t_i, candidates n_ij. Sampled mode: negatives from an index tensor [N, K]
// drawn from q; a negative equal to t_i is rejected; k_i accepted; s_i0 = f(e·c_t),
// s_ij = f(e·c_n) + corr(log q(n)) − log k_i; loss_i = logsumexp(s_i0, s_ij) − s_i0. The −log k_i is the
// same for every negative of a row, so one pass keeps an online softmax of f(e·c_n) + corr(log q(n)) and
// the count k_i, and subtracts log k_i at the end. Full mode: candidates are all items 0..V−1.
// Rows whose target is ignore_index produce 0 loss, 0 lse and 0 gradients.
import type { Kernel } from '../codegen/ir.js';
import { KernelBuilder } from './builder.js';
import { argRef } from './scalarfn.js';
import { DslError, f32, select } from './values.js';
import { sampleItem, samplerParams } from './sampling.js';
import { byItemRefusal, type CceOptions } from './options.js';
import { backwardSweep, forwardSweep, kernelName, type OnlineDE, prologue, targetTerm } from './sweeps.js';

export {
  byItemRefusal, type CceOptions, checkCandidates, correctionFor, DEFAULT_OPTIONS, derivativeOf, type FloatDType,
  optionsKey, transformOf,
} from './options.js';

/** Forward: per-row lse and loss (and, sampled, the accepted count). */
export function cceForward(o: CceOptions): Kernel {
  const name = kernelName(o, 'cce_minus_fwd', 'ce_full_fwd');
  const what = 'CCE- forward: online softmax over gathered candidates; writes lse, loss';
  const c = prologue(name, what + (o.mode === 'sampled' ? ', accepted count' : ''), o);
  const { kb } = c;
  if (o.vocabShard) return shardStatistics(c);
  const LOSS = kb.output('loss', 'f32', ['N'] as const, 'per-row loss (0 for ignored rows)');
  const LSE = kb.output('lse', 'f32', ['N'] as const, 'per-row log-sum-exp (input of the backward)');
  const KACC = c.counted ? kb.output('kacc', 'i32', ['N'] as const, 'accepted negatives per row') : undefined;
  const { lse, loss, kcount } = forwardSweep(c);
  kb.store(LOSS, kb.row, select(c.live, loss, 0), kb.rowValid);
  kb.store(LSE, kb.row, select(c.live, lse, 0), kb.rowValid);
  if (KACC) kb.store(KACC, kb.row, kcount, kb.rowValid);
  return kb.build();
}

/**
 * Forward of a vocabulary shard: per-row partial statistics of the shard's candidates (running max and sum of
 * exponentials of their corrected logits before − log k, accepted count) and the target logit where the shard
 * owns it (−3e38 elsewhere). The host merges them over the shards as a logsumexp (max-rescaled).
 */
function shardStatistics(c: ReturnType<typeof prologue>): Kernel {
  const { kb } = c;
  const MAX = kb.output('part_max', 'f32', ['N'] as const, 'running max of the shard\'s candidates (−3e38: none)');
  const SUM = kb.output('part_sum', 'f32', ['N'] as const, 'sum of exp(logit − part_max) over them');
  const S0 = kb.output('part_s0', 'f32', ['N'] as const, 'the target logit where this shard owns it, else −3e38');
  const KACC = kb.output('kacc', 'i32', ['N'] as const, 'accepted candidates of this shard per row');
  const sw = forwardSweep(c);
  kb.store(MAX, kb.row, select(c.live, sw.max, -3.0e38), kb.rowValid);
  kb.store(SUM, kb.row, select(c.live, sw.sum, 0), kb.rowValid);
  kb.store(S0, kb.row, select(c.tHere, sw.s0, -3.0e38), kb.rowValid);
  kb.store(KACC, kb.row, sw.kcount, kb.rowValid);
  return kb.build();
}

/** Backward: dE (written per row) and dC (fp32 scatter-add) for an upstream gradient. */
export function cceBackward(o: CceOptions): Kernel {
  const name = kernelName(o, 'cce_minus_bwd', 'ce_full_bwd');
  const what = 'CCE- backward: recompute logits, p = exp(s − lse); dE = Σ coef·c, dC[n] += coef·e';
  const c = prologue(name, what, o);
  const { kb } = c;
  const LSE = kb.input('lse', 'f32', ['N'] as const, 'per-row lse from the forward');
  const KACC = c.counted
    ? kb.input('kacc', 'i32', ['N'] as const, 'accepted negatives per row from the forward')
    : undefined;
  const DLOSS = o.grad === 'perRow'
    ? kb.input('dloss', 'f32', ['N'] as const, 'upstream gradient per row')
    : undefined;
  const scale = kb.scalar('grad_scale', 'f32', 'upstream scalar gradient (mean: 1/n_valid)');
  const lse = kb.let('lse_i', kb.load(LSE, kb.row, c.live));
  const g0 = DLOSS ? kb.load(DLOSS, kb.row, c.live).mul(scale) : scale;
  const g = kb.let('g', select(c.live, g0, 0));
  const logk = KACC ? kb.let('logk', kb.load(KACC, kb.row, c.live).to('f32').max(1).log()) : undefined;
  backwardSweep(c, lse, logk, g, DLOSS ? undefined : scale);
  return kb.build();
}

/**
 * Forward and backward fused, for an upstream gradient known before the launch (mean / sum reductions: every
 * training loop): one kernel per row tile sweeps the candidates twice — the online softmax, then the gradients
 * with the final lse — so lse and the accepted count never leave registers and E is read once.
 */
export function cceFused(o: CceOptions): Kernel {
  if (o.vocabShard) throw new DslError('vocabShard: the shards\' statistics merge between forward and backward');
  const name = kernelName(o, 'cce_minus_fused', 'ce_full_fused');
  const c = prologue(name, 'CCE- forward + backward in one pass over rows: loss, lse, dE, dC', o);
  const { kb } = c;
  const LOSS = kb.output('loss', 'f32', ['N'] as const, 'per-row loss (0 for ignored rows)');
  const scale = kb.scalar('grad_scale', 'f32', 'upstream scalar gradient (mean: 1/n_valid)');
  const { lse, loss, kcount } = forwardSweep(c);
  kb.store(LOSS, kb.row, select(c.live, loss, 0), kb.rowValid);
  const g = kb.let('g', select(c.live, scale, 0));
  const logk = c.counted ? kb.let('logk', kcount.to('f32').max(1).log()) : undefined;
  backwardSweep(c, lse, logk, g, scale);
  return kb.build();
}

/**
 * Forward and dE in one sweep, for item embeddings that need no gradient (a frozen item table) and an upstream
 * gradient known before the launch (mean / sum): dE rides along the online softmax with the running-max
 * rescale, so the candidates are gathered once instead of twice and nothing is scattered.
 *
 * `byItem`: the first kernel of dC reduced by item (dsl/byitem.ts) — the same sweep also writes lse + log k per
 * row (the reduction's p needs no log per pair) and adds the target's term to dC; the negatives' terms follow,
 * grouped by item.
 */
export function cceFusedDE(o: CceOptions, byItem = false): Kernel {
  const refusal = byItem ? byItemRefusal(o) : undefined;
  if (refusal) throw new DslError(refusal);
  if (o.vocabShard) throw new DslError('vocabShard: the shards\' statistics merge between forward and backward');
  const name = kernelName(o, byItem ? 'cce_minus_fused_de_by_item' : 'cce_minus_fused_de', 'ce_full_fused_de');
  const what = byItem
    ? 'CCE- forward + dE in one sweep, lse + log k for dC by item, the target term of dC'
    : 'CCE- forward + dE in one sweep (no dC): loss, dE';
  const c = prologue(name, what, o);
  const { kb } = c;
  const LOSS = kb.output('loss', 'f32', ['N'] as const, 'per-row loss (0 for ignored rows)');
  const dE = kb.output('dE', 'f32', [o.positions ? 'NE' : 'N', 'D'] as const, 'gradient of the hidden states');
  const LSEK = byItem
    ? kb.output('lse_k', 'f32', ['N'] as const, 'per-row lse + log k, for dC by item: p = exp(logit − lse_k)')
    : undefined;
  const dCDoc = "gradient of the item embeddings: the targets' terms here (zero it first)";
  const dC = byItem ? kb.accumulator('dC', ['V', 'D'] as const, dCDoc) : undefined;
  const scale = kb.scalar('grad_scale', 'f32', 'upstream scalar gradient (mean: 1/n_valid)');
  const de: OnlineDE = { acc: kb.var('dE_online', f32(0), 'vec') };
  const { lse, loss, neg, kcount } = forwardSweep(c, de);
  kb.store(LOSS, kb.row, select(c.live, loss, 0), kb.rowValid);
  const logk = c.counted ? kb.let('logk', kcount.to('f32').max(1).log()) : f32(0);
  if (LSEK) kb.store(LSEK, kb.row, select(c.live, lse.add(logk), 0), kb.rowValid);
  kb.comment("dE = g·(Σ_j p_j·f'(raw_j)·c_j + (p0 − 1)·f'(raw0)·c_t); the sum is A·exp(m − log k − lse)");
  const factor = kb.let('p_factor', select(c.live, de.max!.sub(logk).sub(lse).exp(), 0));
  // p0 − 1 = −(the other candidates' share) = −exp(neg − lse).
  const { ct, coef0 } = targetTerm(c, neg.sub(lse).exp().neg());
  const g = kb.let('g', select(c.live, scale, 0));
  kb.storeRow(dE, c.eRow, de.acc.get().mul(factor).add(ct.mul(coef0)).mul(g), kb.rowValid);
  if (dC) kb.atomicAddRow(dC, c.tSafe, c.e.mul(coef0.mul(g)), c.live);
  return kb.build();
}

/** The negatives the in-kernel sampler draws, written out [N, K] (for cross-target bit-exactness tests). */
export function cceSamples(o: Pick<CceOptions, 'sampling'>): Kernel {
  const doc = 'the in-kernel sampler (Philox4x32-10) written out';
  const kb = new KernelBuilder({ name: 'cce_minus_samples', doc, rowDim: 'N', vecDim: 'D', candAxis: true });
  const sampler = samplerParams(kb, o.sampling);
  const out = kb.output('samples', 'i32', ['N', 'K'] as const, 'drawn item per (row, slot)');
  const K = kb.dim('K');
  kb.candLoop('kk', K, (_kk, slot) => {
    const n = sampleItem(kb, sampler, kb.row, slot, kb.dim('V'), 'smp');
    kb.store(out, kb.row.mul(K).add(slot), n, kb.rowValid.and(slot.lt(K)));
  });
  return kb.build();
}

/** The kernels of one configuration. */
export function cceKernels(o: CceOptions): { forward: Kernel; backward: Kernel } {
  return { forward: cceForward(o), backward: cceBackward(o) };
}

export { argRef };
