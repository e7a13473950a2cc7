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
import { KernelBuilder, OnlineSoftmax, type Tensor, type Var } from './builder.js';
import { applyScalarFn, derivative, type ScalarFn, argRef } from './scalarfn.js';
import type { Schedule } from './schedule.js';
import { DslError, dot, f32, i32, mm, reduceCands, select, type Val } from './values.js';
import { STREAM_SHARED, type Sampler, sampleItem, sampleItems, samplerParams } from './sampling.js';

export type FloatDType = 'f32' | 'f16' | 'bf16';

export interface CceOptions {
  mode: 'sampled' | 'full';
  dtype: FloatDType;
  /** Sampled mode: 'uniform' (q = 1/(V−1), a scalar log q) or 'given' (a log q tensor [V]). */
  sampling: 'uniform' | 'given';
  /** Sampled mode: negatives from an index tensor [N, K] (default) or drawn in the kernel (Philox4x32-10, seed). */
  negatives?: 'tensor' | 'philox';
  /**
   * Sampled mode: row-tile-shared negatives. Each group of `share` consecutive rows (one program) shares its
   * K negatives (index tensor [G, K], G = ⌈N/share⌉, or Philox stream 1 keyed by the group). Every row still
   * sees K i.i.d. draws from q, so its estimator is unchanged; logits and gradients become tile contractions
   * (tensor cores) and dC gets one update per group and candidate instead of one per row.
   */
  share?: number;
  /**
   * dC without float atomics: int64 fixed point (units of 1/dC_scale) added with integer atomics, so dC is
   * bit-identical from run to run whatever order the programs run in. The runtime picks the scale from a
   * bound of |dC| (runtime/fixed.ts) and converts to float afterwards.
   */
  deterministic?: boolean;
  /** Backward: 'scalar' upstream gradient (mean / sum) or 'perRow' (reduction none). */
  grad: 'scalar' | 'perRow';
  /** Logit transform f(x) applied to every dot product (identity when absent). */
  transform?: ScalarFn;
  /** Sampling correction from log q (−log q when absent). */
  correction?: ScalarFn;
}

export const DEFAULT_OPTIONS: CceOptions = { mode: 'sampled', dtype: 'f32', sampling: 'uniform', grad: 'scalar' };

/** A stable key of the options that change generated code (never shapes). */
export function optionsKey(o: CceOptions): string {
  const fn = (f?: ScalarFn) => (f ? `${f.name}(${f.args.join(',')})=${JSON.stringify(f.body)}` : '-');
  const share = o.mode === 'sampled' && o.share ? `share${o.share}` : '';
  return [o.mode, o.dtype, o.mode === 'sampled' ? o.sampling : '', o.mode === 'sampled' ? o.negatives ?? 'tensor' : '', o.grad, fn(o.transform), fn(o.correction), share, ...(o.deterministic ? ['det'] : [])].join('|');
}

const NEG_BIG = -3.0e38;

interface Common {
  kb: KernelBuilder<'D'>;
  E: Tensor<FloatDType, readonly ['N', 'D']>;
  C: Tensor<FloatDType, readonly ['V', 'D']>;
  sampled: boolean;
  negatives?: Tensor<'i32', readonly [string, 'K']>;
  /** Rows per group sharing negatives (tile kernels). */
  share?: number;
  sampler?: Sampler;
  logq?: Tensor<'f32', readonly ['V']>;
  logqUniform?: Val<'f32'>;
  t: Val<'i32'>;
  live: Val<'bool'>;
  tSafe: Val<'i32'>;
  e: Val<'f32'>;
}

function prologue(name: string, doc: string, o: CceOptions, s: Schedule): Common {
  const share = o.mode === 'sampled' ? o.share : undefined;
  if (share !== undefined && share % s.rows !== 0) throw new DslError(`${name}: rows = ${s.rows} per program must divide the ${share} rows that share negatives`);
  const kb = new KernelBuilder(share ? { name: `${name}_shared`, doc, rowDim: 'N', vecDim: 'D', cands: s.samplesPerStep, groupRows: share } : { name, doc, rowDim: 'N', vecDim: 'D' });
  const E = kb.input('E', o.dtype, ['N', 'D'] as const, 'hidden states, one row per position');
  const C = kb.input('C', o.dtype, ['V', 'D'] as const, 'item embeddings (the classifier)');
  const T = kb.input('targets', 'i32', ['N'] as const, 'target item per row, or ignore_index');
  const c: Partial<Common> = { kb, E, C, sampled: o.mode === 'sampled', share };
  if (o.mode === 'sampled') {
    if (o.negatives === 'philox') c.sampler = samplerParams(kb, o.sampling);
    else
      c.negatives = share
        ? kb.input('negatives', 'i32', ['G', 'K'] as const, `sampled negative items per group of ${share} rows`)
        : kb.input('negatives', 'i32', ['N', 'K'] as const, 'sampled negative items per row');
    Object.assign(c, logqParams(kb, o));
  }
  const ignore = kb.scalar('ignore_index', 'i32', 'target value of rows that do not count');
  kb.comment('row i of this slot: target, whether it counts, hidden vector');
  c.t = kb.let('t', kb.load(T, kb.row, kb.rowValid));
  c.live = kb.let('live', kb.rowValid.and(c.t.ne(ignore)));
  c.tSafe = kb.let('t_safe', select(c.live, c.t, 0));
  c.e = kb.let('e', kb.loadRow(E, kb.row, kb.rowValid));
  return c as Common;
}

interface Candidate {
  n: Val<'i32'>;
  ok: Val<'bool'>;
}

/** Candidates of one step: slots kk..kk+S−1 of the row's negatives (sampled) or items kk.. (full). */
function candidates(c: Common, kk: Val<'i32'>, S: number): Candidate[] {
  const { kb } = c;
  const out: Candidate[] = [];
  // In-kernel sampling: the step's S slots (kk a multiple of S) share their Philox calls.
  const drawn = c.sampled && c.sampler ? sampleItems(kb, c.sampler, kb.row, kk, S, kb.dim('V'), 'smp') : undefined;
  for (let j = 0; j < S; j++) {
    const slot = kk.add(j);
    if (c.sampled) {
      const K = kb.dim('K');
      const inRange = kb.let(`in_${j}`, c.live.and(slot.lt(K)));
      const n = drawn ? kb.let(`n_${j}`, drawn[j]!) : kb.let(`n_${j}`, kb.load(c.negatives!, kb.row.mul(K).add(slot), inRange));
      out.push({ n, ok: kb.let(`ok_${j}`, inRange.and(n.ne(c.t))) });
    } else {
      // The target joins the other items' online softmax at the end (mergeTarget), as in sampled mode.
      const n = kb.let(`n_${j}`, slot);
      out.push({ n, ok: kb.let(`ok_${j}`, c.live.and(n.lt(kb.dim('V'))).and(n.ne(c.t))) });
    }
  }
  return out;
}

export const transformOf = (o: CceOptions) => (x: Val<'f32'>) => (o.transform ? applyScalarFn(o.transform, [x]) : x);

/** The sampling distribution's parameters: a log q tensor [V] (given q) or the scalar log q (uniform). */
export function logqParams(kb: KernelBuilder<'D'>, o: CceOptions): { logq?: Tensor<'f32', readonly ['V']>; logqUniform?: Val<'f32'> } {
  return o.sampling === 'given'
    ? { logq: kb.input('logq', 'f32', ['V'] as const, 'log q(v) of the sampling distribution') }
    : { logqUniform: kb.scalar('logq_uniform', 'f32', 'log q for uniform sampling: −log(V−1)') };
}

/** Correction added to the logit of a negative with log q = lq: corr(lq), −lq by default. */
export const correctionFor = (o: CceOptions, lq: Val<'f32'>): Val<'f32'> => (o.correction ? applyScalarFn(o.correction, [lq]) : lq.neg());

/** Correction added to a negative's logit: corr(log q(n)), −log q by default. */
function correctionOf(c: Common, o: CceOptions, cand: Candidate): Val<'f32'> | undefined {
  if (!c.sampled) return undefined;
  return correctionFor(o, c.logq ? c.kb.load(c.logq, cand.n, cand.ok) : c.logqUniform!);
}

/** Why dC by item (dsl/byitem.ts) does not apply to these options, or undefined: it is for per-row sampled negatives with float dC. */
export function byItemRefusal(o: CceOptions): string | undefined {
  return o.mode !== 'sampled' || o.share || o.deterministic ? 'dC by item: per-row sampled negatives with float dC only' : undefined;
}

/** The target logit s0 = f(e · c_t). */
function targetLogit(c: Common, o: CceOptions): Val<'f32'> {
  c.kb.comment('target logit s0 = f(e · c_t)');
  return c.kb.let('s0', transformOf(o)(dot(c.e, c.kb.loadRow(c.C, c.tSafe, c.live))));
}

/** The backward's outputs (dE per row, dC scatter-added) and f' of the logit transform (identity: none). */
function gradientOutputs(c: Common, o: CceOptions) {
  const { kb } = c;
  const dE = kb.output('dE', 'f32', ['N', 'D'] as const, 'gradient of the hidden states');
  const dC = kb.accumulator('dC', ['V', 'D'] as const, 'gradient of the item embeddings (zero it first)', o.deterministic);
  return { dE, dC, df: derivativeOf(o) };
}

/**
 * dE carried along the forward's one sweep (flash-attention style): A = Σ_j exp(u_j − m)·f'(raw_j)·c_j over the
 * negatives (u_j their logit before − log k), rescaled whenever the running max m moves; at the end
 * Σ_j p_j·f'(raw_j)·c_j = A·exp(m − log k − lse).
 */
interface OnlineDE {
  acc: Var<'f32'>;
  /** The running max after the sweep. */
  max?: Val<'f32'>;
}

export const derivativeOf = (o: CceOptions) => (o.transform ? (x: Val<'f32'>) => applyScalarFn(derivative(o.transform!, o.transform!.args[0]), [x]) : undefined);

/** What a forward sweep yields per row: the target logit, lse, loss and lse of the other candidates (see mergeTarget), accepted count. */
interface Sweep extends Merged {
  s0: Val<'f32'>;
  kcount: Val<'i32'>;
}

/** Forward sweep: online softmax over the candidates, the target merged at the end; with `de`, dE rides along. */
function forwardSweep(c: Common, o: CceOptions, s: Schedule, de?: OnlineDE): Sweep {
  if (c.share) return sharedForwardSweep(c, o, de);
  const { kb } = c;
  const f = transformOf(o);
  const df = derivativeOf(o);
  const s0 = targetLogit(c, o);
  const sm = new OnlineSoftmax(kb, 'cand');
  const kcount = kb.var('kcount', i32(0), 'row');
  const S = s.samplesPerStep;
  const end = c.sampled ? kb.dim('K') : kb.dim('V');
  kb.loop('kk', 0, end, S, (kk) => {
    kb.comment(`gather ${S} candidates, dot them with e, fold them into the online softmax`);
    const cs = candidates(c, kk, S);
    const logitOf = (x: Candidate, j: number, raw: Val<'f32'>) => {
      const corr = correctionOf(c, o, x);
      return kb.let(`s_${j}`, corr ? f(raw).add(corr) : f(raw));
    };
    if (de)
      // One candidate at a time: gather, logit, fold the row into dE. The gathered row stays in registers across
      // the softmax update (H200: 7.6 → 6.4 ms for the by-item forward at ml20m, against loading it again).
      cs.forEach((x, j) => {
        const row = kb.let(`c_${j}`, kb.loadRow(c.C, x.n, x.ok));
        const raw = kb.let(`raw_${j}`, dot(c.e, row));
        const { scale, weights } = sm.update([logitOf(x, j, raw)], [x.ok], true);
        de.acc.set(de.acc.get().mul(scale).add(row.mul(df ? weights[0]!.mul(df(raw)) : weights[0]!)));
      });
    else {
      const raw = cs.map((x, j) => kb.let(`raw_${j}`, dot(c.e, kb.loadRow(c.C, x.n, x.ok))));
      sm.update(cs.map((x, j) => logitOf(x, j, raw[j]!)), cs.map((x) => x.ok));
    }
    if (c.sampled) kcount.set(cs.reduce((acc, x) => acc.add(select(x.ok, 1, 0)), kcount.get()));
  });
  if (de) de.max = sm.m.get();
  return { s0, ...mergeTarget(kb, s0, sm, c.sampled ? kcount.get() : undefined), kcount: kcount.get() };
}

interface Merged {
  lse: Val<'f32'>;
  /** lse − s0, as softplus(neg − s0): accurate when the target dominates (a loss of 1e−8 survives fp32). */
  loss: Val<'f32'>;
  /** lse of the other candidates (negatives: − log k); ≈ −∞ when none was accepted. */
  neg: Val<'f32'>;
}

/** lse of the target logit and the other candidates' online softmax (sampled: the accepted negatives, minus log k). */
function mergeTarget(kb: KernelBuilder<'D'>, s0: Val<'f32'>, sm: OnlineSoftmax, kcount?: Val<'i32'>): Merged {
  kb.comment('other candidates (sampled: lse − log k), then merged with the target logit');
  const neg = kcount ? kb.let('neg_lse', select(kcount.gt(0), sm.lse().sub(kcount.to('f32').max(1).log()), NEG_BIG)) : kb.let('neg_lse', sm.lse());
  const mx = kb.let('mx', s0.max(neg));
  const x = kb.let('neg_gap', neg.sub(s0));
  return {
    lse: kb.let('lse_i', mx.add(s0.sub(mx).exp().add(neg.sub(mx).exp()).log())),
    loss: kb.let('loss_i', x.max(0).add(x.abs().neg().exp().log1p())),
    neg,
  };
}

/** Shared negatives, one tile of the candidate axis at kk: item ids and range (cand), acceptance per row (tile). */
function sharedCandidates(c: Common, kk: Val<'i32'>): { n: Val<'i32'>; inRange: Val<'bool'>; ok: Val<'bool'> } {
  const { kb } = c;
  const K = kb.dim('K');
  const slot = kb.let('slot', kk.add(kb.cidx));
  const inRange = kb.let('in_range', slot.lt(K));
  const n = c.sampler
    ? kb.let('n', sampleItem(kb, c.sampler, kb.group, slot, kb.dim('V'), 'smp', STREAM_SHARED))
    : kb.let('n', kb.load(c.negatives!, kb.group.mul(K).add(slot), inRange));
  return { n, inRange, ok: kb.let('ok', c.live.and(inRange).and(n.ne(c.t))) };
}

/** Logits of a tile: f(e · c_n) + corr(log q(n)) for every row and shared candidate. */
function sharedLogits(c: Common, o: CceOptions, n: Val<'i32'>, inRange: Val<'bool'>): { cc: Val<'f32'>; raw: Val<'f32'>; logit: Val<'f32'> } {
  const { kb } = c;
  const cc = kb.let('c_tile', kb.loadCandRows(c.C, n, inRange));
  const raw = kb.let('raw', mm(c.e, cc, o.dtype, [true, true]));
  const corr = correctionOf(c, o, { n, ok: inRange });
  return { cc, raw, logit: kb.let('logit', corr ? transformOf(o)(raw).add(corr) : transformOf(o)(raw)) };
}

/** Forward sweep with row-tile-shared negatives: tiles of candidates, contractions on tensor cores. */
function sharedForwardSweep(c: Common, o: CceOptions, de?: OnlineDE): Sweep {
  const { kb } = c;
  const df = derivativeOf(o);
  const s0 = targetLogit(c, o);
  const sm = new OnlineSoftmax(kb, 'cand');
  const kacc = kb.var('kacc_f', f32(0), 'row');
  kb.loop('kk', 0, kb.dim('K'), kb.cands, (kk) => {
    kb.comment(`a tile of ${kb.cands} negatives shared by the program's rows: gather once, logits as one contraction`);
    const { n, inRange, ok } = sharedCandidates(c, kk);
    const { cc, raw, logit } = sharedLogits(c, o, n, inRange);
    const { scale, weights } = sm.updateTile(logit, ok);
    // The weights are in [0, 1]: the contraction over candidates suits 16-bit tensor cores (hi/lo split).
    if (de) de.acc.set(de.acc.get().mul(scale).add(mm(df ? weights.mul(df(raw)) : weights, cc, o.dtype, [false, true])));
    kacc.set(kacc.get().add(reduceCands('sum', select(ok, f32(1), f32(0)))));
  });
  if (de) de.max = sm.m.get();
  const kcount = kb.let('kcount', kacc.get().to('i32'));
  return { s0, ...mergeTarget(kb, s0, sm, kcount), kcount };
}

/**
 * Backward sweep: recompute the logits, p = exp(s − lse); dE = Σ coef·c in registers, dC[n] += coef·e.
 * g: the upstream gradient per row (0 on ignored rows); gScalar: the same when it is one scalar for all rows.
 */
function backwardSweep(c: Common, o: CceOptions, s: Schedule, lse: Val<'f32'>, logk: Val<'f32'> | undefined, g: Val<'f32'>, gScalar?: Val<'f32'>): void {
  if (c.share) return sharedBackwardSweep(c, o, lse, logk!, g, gScalar);
  const { kb } = c;
  const f = transformOf(o);
  const { dE, dC, df } = gradientOutputs(c, o);
  const coefOf = (raw: Val<'f32'>, p: Val<'f32'>) => (df ? p.mul(g).mul(df(raw)) : p.mul(g));
  const dEacc = kb.var('dE_acc', f32(0), 'vec');
  // Σ p over the other candidates: 1 − p0, without the cancellation of p0 − 1 when the target dominates.
  const psum = kb.var('p_others', f32(0), 'row');
  const S = s.samplesPerStep;
  const end = c.sampled ? kb.dim('K') : kb.dim('V');
  kb.loop('kk', 0, end, S, (kk) => {
    kb.comment(`recompute ${S} logits, accumulate dE in registers, scatter-add dC`);
    const cs = candidates(c, kk, S);
    const rows = cs.map((x, j) => kb.let(`c_${j}`, kb.loadRow(c.C, x.n, x.ok)));
    const raw = cs.map((x, j) => kb.let(`raw_${j}`, dot(c.e, rows[j])));
    const ps = cs.map((x, j) => {
      const corr = correctionOf(c, o, x);
      let sj = corr ? f(raw[j]).add(corr) : f(raw[j]);
      if (logk) sj = sj.sub(logk);
      return kb.let(`p_${j}`, select(x.ok, sj.sub(lse).exp(), 0));
    });
    psum.set(ps.reduce((acc, p) => acc.add(p), psum.get()));
    const coefs = cs.map((x, j) => kb.let(`coef_${j}`, coefOf(raw[j], ps[j])));
    dEacc.set(coefs.reduce((acc, cf, j) => acc.add(rows[j].mul(cf)), dEacc.get()));
    cs.forEach((x, j) => kb.atomicAddRow(dC, x.n, c.e.mul(coefs[j]), x.ok));
  });
  kb.comment("target: coefficient (p0 − 1)·g·f'(raw0) = −Σ p_others·g·f'(raw0)");
  const ct = kb.let('c_t', kb.loadRow(c.C, c.tSafe, c.live));
  const raw0 = kb.let('raw0', dot(c.e, ct));
  const coef0 = kb.let('coef0', select(c.live, coefOf(raw0, psum.get().neg()), 0));
  kb.atomicAddRow(dC, c.tSafe, c.e.mul(coef0), c.live);
  kb.storeRow(dE, kb.row, dEacc.get().add(ct.mul(coef0)), kb.rowValid);
}

/**
 * Backward sweep with shared negatives. Per tile: P = exp(logit − log k − lse)·f'(raw) on accepted entries;
 * dE += P·C_tile (contraction over candidates), dC[n] += Pᵀ·E (over the program's rows, one atomic per
 * candidate element). The upstream gradient multiplies afterwards, so the contractions see P ∈ [0, 1]
 * (fp16 tensor cores would flush p·g to zero when g = 1/N is small); a per-row g on fp16 storage makes the
 * contraction over rows an fp32 one.
 */
function sharedBackwardSweep(c: Common, o: CceOptions, lse: Val<'f32'>, logk: Val<'f32'>, g: Val<'f32'>, gScalar?: Val<'f32'>): void {
  const { kb } = c;
  const f = transformOf(o);
  const { dE, dC, df } = gradientOutputs(c, o);
  const dEacc = kb.var('dE_acc', f32(0), 'vec');
  // Σ p over the negatives: 1 − p0, without the cancellation of p0 − 1 when the target dominates.
  const psum = kb.var('p_others', f32(0), 'row');
  const overRows = o.dtype === 'f16' && !gScalar ? 'f32' : o.dtype;
  kb.loop('kk', 0, kb.dim('K'), kb.cands, (kk) => {
    kb.comment(`recompute a tile of logits; dE += P·C_tile, dC[n] += Pᵀ·E`);
    const { n, inRange, ok } = sharedCandidates(c, kk);
    const { cc, raw, logit } = sharedLogits(c, o, n, inRange);
    const p = kb.let('p', select(ok, logit.sub(logk).sub(lse).exp(), 0));
    psum.set(psum.get().add(reduceCands('sum', p)));
    const coef = kb.let('coef', df ? p.mul(df(raw)) : p);
    dEacc.set(dEacc.get().add(mm(coef, cc, o.dtype, [false, true])));
    const byRows = gScalar ? mm(coef, c.e, o.dtype, [false, true]).mul(gScalar) : mm(kb.let('coef_g', coef.mul(g)), c.e, overRows, [false, overRows !== 'f32']);
    kb.atomicAddCandRows(dC, n, byRows, inRange);
  });
  kb.comment("target: coefficient (p0 − 1)·f'(raw0) = −Σ p_others·f'(raw0), times g");
  const ct = kb.let('c_t', kb.loadRow(c.C, c.tSafe, c.live));
  const raw0 = kb.let('raw0', dot(c.e, ct));
  const p0 = psum.get().neg();
  const coef0 = kb.let('coef0', select(c.live, df ? p0.mul(df(raw0)) : p0, 0));
  kb.atomicAddRow(dC, c.tSafe, c.e.mul(coef0.mul(g)), c.live);
  kb.storeRow(dE, kb.row, dEacc.get().add(ct.mul(coef0)).mul(g), kb.rowValid);
}

/** Forward: per-row lse and loss (and, sampled, the accepted count). */
export function cceForward(o: CceOptions, s: Schedule): Kernel {
  const name = o.mode === 'sampled' ? 'cce_minus_fwd' : 'ce_full_fwd';
  const c = prologue(name, 'CCE- forward: online softmax over gathered candidates; writes lse, loss' + (o.mode === 'sampled' ? ', accepted count' : ''), o, s);
  const { kb } = c;
  const LOSS = kb.output('loss', 'f32', ['N'] as const, 'per-row loss (0 for ignored rows)');
  const LSE = kb.output('lse', 'f32', ['N'] as const, 'per-row log-sum-exp (input of the backward)');
  const KACC = c.sampled ? kb.output('kacc', 'i32', ['N'] as const, 'accepted negatives per row') : undefined;
  const { lse, loss, kcount } = forwardSweep(c, o, s);
  kb.store(LOSS, kb.row, select(c.live, loss, 0), kb.rowValid);
  kb.store(LSE, kb.row, select(c.live, lse, 0), kb.rowValid);
  if (KACC) kb.store(KACC, kb.row, kcount, kb.rowValid);
  return kb.build();
}

/** Backward: dE (written per row) and dC (fp32 scatter-add) for an upstream gradient. */
export function cceBackward(o: CceOptions, s: Schedule): Kernel {
  const name = o.mode === 'sampled' ? 'cce_minus_bwd' : 'ce_full_bwd';
  const c = prologue(name, 'CCE- backward: recompute logits, p = exp(s − lse); dE = Σ coef·c, dC[n] += coef·e', o, s);
  const { kb } = c;
  const LSE = kb.input('lse', 'f32', ['N'] as const, 'per-row lse from the forward');
  const KACC = c.sampled ? kb.input('kacc', 'i32', ['N'] as const, 'accepted negatives per row from the forward') : undefined;
  const DLOSS = o.grad === 'perRow' ? kb.input('dloss', 'f32', ['N'] as const, 'upstream gradient per row') : undefined;
  const scale = kb.scalar('grad_scale', 'f32', 'upstream scalar gradient (mean: 1/n_valid)');
  const lse = kb.let('lse_i', kb.load(LSE, kb.row, c.live));
  const g0 = DLOSS ? kb.load(DLOSS, kb.row, c.live).mul(scale) : scale;
  const g = kb.let('g', select(c.live, g0, 0));
  const logk = KACC ? kb.let('logk', kb.load(KACC, kb.row, c.live).to('f32').max(1).log()) : undefined;
  backwardSweep(c, o, s, lse, logk, g, DLOSS ? undefined : scale);
  return kb.build();
}

/**
 * Forward and backward fused, for an upstream gradient known before the launch (mean / sum reductions: every
 * training loop): one kernel per row tile sweeps the candidates twice — the online softmax, then the gradients
 * with the final lse — so lse and the accepted count never leave registers and E is read once.
 */
export function cceFused(o: CceOptions, s: Schedule): Kernel {
  const name = o.mode === 'sampled' ? 'cce_minus_fused' : 'ce_full_fused';
  const c = prologue(name, 'CCE- forward + backward in one pass over rows: loss, lse, dE, dC', o, s);
  const { kb } = c;
  const LOSS = kb.output('loss', 'f32', ['N'] as const, 'per-row loss (0 for ignored rows)');
  const scale = kb.scalar('grad_scale', 'f32', 'upstream scalar gradient (mean: 1/n_valid)');
  const { lse, loss, kcount } = forwardSweep(c, o, s);
  kb.store(LOSS, kb.row, select(c.live, loss, 0), kb.rowValid);
  const g = kb.let('g', select(c.live, scale, 0));
  const logk = c.sampled ? kb.let('logk', kcount.to('f32').max(1).log()) : undefined;
  backwardSweep(c, o, s, lse, logk, g, scale);
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
export function cceFusedDE(o: CceOptions, s: Schedule, byItem = false): Kernel {
  const refusal = byItem ? byItemRefusal(o) : undefined;
  if (refusal) throw new DslError(refusal);
  const name = o.mode === 'sampled' ? (byItem ? 'cce_minus_fused_de_by_item' : 'cce_minus_fused_de') : 'ce_full_fused_de';
  const c = prologue(name, byItem ? 'CCE- forward + dE in one sweep, lse + log k for dC by item, the target term of dC' : 'CCE- forward + dE in one sweep (no dC): loss, dE', o, s);
  const { kb } = c;
  const df = derivativeOf(o);
  const LOSS = kb.output('loss', 'f32', ['N'] as const, 'per-row loss (0 for ignored rows)');
  const dE = kb.output('dE', 'f32', ['N', 'D'] as const, 'gradient of the hidden states');
  const LSEK = byItem ? kb.output('lse_k', 'f32', ['N'] as const, 'per-row lse + log k, for dC by item: p = exp(logit − lse_k)') : undefined;
  const dC = byItem ? kb.accumulator('dC', ['V', 'D'] as const, 'gradient of the item embeddings: the targets\' terms here (zero it first)') : undefined;
  const scale = kb.scalar('grad_scale', 'f32', 'upstream scalar gradient (mean: 1/n_valid)');
  const de: OnlineDE = { acc: kb.var('dE_online', f32(0), 'vec') };
  const { lse, loss, neg, kcount } = forwardSweep(c, o, s, de);
  kb.store(LOSS, kb.row, select(c.live, loss, 0), kb.rowValid);
  const logk = c.sampled ? kb.let('logk', kcount.to('f32').max(1).log()) : f32(0);
  if (LSEK) kb.store(LSEK, kb.row, select(c.live, lse.add(logk), 0), kb.rowValid);
  kb.comment("dE = g·(Σ_j p_j·f'(raw_j)·c_j + (p0 − 1)·f'(raw0)·c_t); the sum is A·exp(m − log k − lse)");
  const factor = kb.let('p_factor', select(c.live, de.max!.sub(logk).sub(lse).exp(), 0));
  const ct = kb.let('c_t', kb.loadRow(c.C, c.tSafe, c.live));
  const raw0 = kb.let('raw0', dot(c.e, ct));
  // p0 − 1 = −(the other candidates' share) = −exp(neg − lse): no cancellation when the target dominates.
  const p0 = neg.sub(lse).exp().neg();
  const coef0 = kb.let('coef0', select(c.live, df ? p0.mul(df(raw0)) : p0, 0));
  const g = kb.let('g', select(c.live, scale, 0));
  kb.storeRow(dE, kb.row, de.acc.get().mul(factor).add(ct.mul(coef0)).mul(g), kb.rowValid);
  if (dC) kb.atomicAddRow(dC, c.tSafe, c.e.mul(coef0.mul(g)), c.live);
  return kb.build();
}

/** The negatives the in-kernel sampler draws, written out [N, K] (for cross-target bit-exactness tests). */
export function cceSamples(o: Pick<CceOptions, 'sampling'>, s: Schedule): Kernel {
  const kb = new KernelBuilder({ name: 'cce_minus_samples', doc: 'the in-kernel sampler (Philox4x32-10) written out', rowDim: 'N', vecDim: 'D' });
  const sampler = samplerParams(kb, o.sampling);
  const out = kb.output('samples', 'i32', ['N', 'K'] as const, 'drawn item per (row, slot)');
  const K = kb.dim('K');
  kb.loop('kk', 0, K, s.samplesPerStep, (kk) => {
    for (let j = 0; j < s.samplesPerStep; j++) {
      const slot = kk.add(j);
      const n = sampleItem(kb, sampler, kb.row, slot, kb.dim('V'), `smp_${j}`);
      kb.store(out, kb.row.mul(K).add(slot), n, kb.rowValid.and(slot.lt(K)));
    }
  });
  return kb.build();
}

/** The kernels of one configuration. */
export function cceKernels(o: CceOptions, s: Schedule): { forward: Kernel; backward: Kernel } {
  return { forward: cceForward(o, s), backward: cceBackward(o, s) };
}

export { argRef };
