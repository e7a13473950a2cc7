// The blocks of the CCE- kernels (dsl/cce.ts): the prologue (parameters, the row's target and hidden vector),
// the candidates of a step, and the forward and backward sweeps over them, per row or with row-tile-shared
// negatives (tiles of candidates, contractions).
import { KernelBuilder, OnlineSoftmax, type Tensor, type Var } from './builder.js';
import {
  checkNegativesDtype, type CceOptions, correctionFor, derivativeOf, type FloatDType, logqParams, type Negatives,
  negativesInput, transformOf,
} from './options.js';
import type { Schedule } from './schedule.js';
import { DslError, dot, f32, i32, mm, reduceCands, select, type Val } from './values.js';
import { STREAM_SHARED, type Sampler, sampleItem, sampleItems, samplerParams } from './sampling.js';

const NEG_BIG = -3.0e38;

export interface Common {
  kb: KernelBuilder<'D'>;
  E: Tensor<FloatDType, readonly ['N', 'D']>;
  C: Tensor<FloatDType, readonly ['V', 'D']>;
  sampled: boolean;
  negatives?: Negatives;
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

export function prologue(name: string, doc: string, o: CceOptions, s: Schedule): Common {
  checkNegativesDtype(o);
  const share = o.mode === 'sampled' ? o.share : undefined;
  if (share !== undefined && share % s.rows !== 0)
    throw new DslError(`${name}: rows = ${s.rows} per program must divide the ${share} rows that share negatives`);
  const kb = new KernelBuilder(
    share
      ? { name: `${name}_shared`, doc, rowDim: 'N', vecDim: 'D', cands: s.samplesPerStep, groupRows: share }
      : { name, doc, rowDim: 'N', vecDim: 'D' },
  );
  const E = kb.input('E', o.dtype, ['N', 'D'] as const, 'hidden states, one row per position');
  const C = kb.input('C', o.dtype, ['V', 'D'] as const, 'item embeddings (the classifier)');
  const T = kb.input('targets', 'i32', ['N'] as const, 'target item per row, or ignore_index');
  const c: Partial<Common> = { kb, E, C, sampled: o.mode === 'sampled', share };
  if (o.mode === 'sampled') {
    if (o.negatives === 'philox') c.sampler = samplerParams(kb, o.sampling);
    else
      c.negatives = share
        ? negativesInput(kb, o, 'G', `sampled negative items per group of ${share} rows`)
        : negativesInput(kb, o, 'N', 'sampled negative items per row');
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
      const n = kb.let(`n_${j}`, drawn ? drawn[j]! : c.negatives!.load(kb.row.mul(K).add(slot), inRange));
      out.push({ n, ok: kb.let(`ok_${j}`, inRange.and(n.ne(c.t))) });
    } else {
      // The target joins the other items' online softmax at the end (mergeTarget), as in sampled mode.
      const n = kb.let(`n_${j}`, slot);
      out.push({ n, ok: kb.let(`ok_${j}`, c.live.and(n.lt(kb.dim('V'))).and(n.ne(c.t))) });
    }
  }
  return out;
}

/** Correction added to a negative's logit: corr(log q(n)), −log q by default. */
function correctionOf(c: Common, o: CceOptions, cand: Candidate): Val<'f32'> | undefined {
  if (!c.sampled) return undefined;
  return correctionFor(o, c.logq ? c.kb.load(c.logq, cand.n, cand.ok) : c.logqUniform!);
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
  const dCDoc = 'gradient of the item embeddings (zero it first)';
  const dC = kb.accumulator('dC', ['V', 'D'] as const, dCDoc, o.deterministic);
  return { dE, dC, df: derivativeOf(o) };
}

/**
 * dE carried along the forward's one sweep (flash-attention style): A = Σ_j exp(u_j − m)·f'(raw_j)·c_j over the
 * negatives (u_j their logit before − log k), rescaled whenever the running max m moves; at the end
 * Σ_j p_j·f'(raw_j)·c_j = A·exp(m − log k − lse).
 */
export interface OnlineDE {
  acc: Var<'f32'>;
  /** The running max after the sweep. */
  max?: Val<'f32'>;
}

/**
 * What a forward sweep yields per row: the target logit, lse, loss and lse of the other candidates (see
 * mergeTarget), accepted count.
 */
export interface Sweep extends Merged {
  s0: Val<'f32'>;
  kcount: Val<'i32'>;
}

/** Forward sweep: online softmax over the candidates, the target merged at the end; with `de`, dE rides along. */
export function forwardSweep(c: Common, o: CceOptions, s: Schedule, de?: OnlineDE): Sweep {
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
      // the softmax update instead of being loaded again.
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

/**
 * lse of the target logit and the other candidates' online softmax (sampled: the accepted negatives, minus
 * log k).
 */
function mergeTarget(kb: KernelBuilder<'D'>, s0: Val<'f32'>, sm: OnlineSoftmax, kcount?: Val<'i32'>): Merged {
  kb.comment('other candidates (sampled: lse − log k), then merged with the target logit');
  const neg = kcount
    ? kb.let('neg_lse', select(kcount.gt(0), sm.lse().sub(kcount.to('f32').max(1).log()), NEG_BIG))
    : kb.let('neg_lse', sm.lse());
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
    : kb.let('n', c.negatives!.load(kb.group.mul(K).add(slot), inRange));
  return { n, inRange, ok: kb.let('ok', c.live.and(inRange).and(n.ne(c.t))) };
}

/** Logits of a tile: f(e · c_n) + corr(log q(n)) for every row and shared candidate. */
function sharedLogits(
  c: Common,
  o: CceOptions,
  n: Val<'i32'>,
  inRange: Val<'bool'>,
): { cc: Val<'f32'>; raw: Val<'f32'>; logit: Val<'f32'> } {
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
    if (de) {
      const w = df ? weights.mul(df(raw)) : weights;
      de.acc.set(de.acc.get().mul(scale).add(mm(w, cc, o.dtype, [false, true])));
    }
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
export function backwardSweep(
  c: Common,
  o: CceOptions,
  s: Schedule,
  lse: Val<'f32'>,
  logk: Val<'f32'> | undefined,
  g: Val<'f32'>,
  gScalar?: Val<'f32'>,
): void {
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
function sharedBackwardSweep(
  c: Common,
  o: CceOptions,
  lse: Val<'f32'>,
  logk: Val<'f32'>,
  g: Val<'f32'>,
  gScalar?: Val<'f32'>,
): void {
  const { kb } = c;
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
    const byRows = gScalar
      ? mm(coef, c.e, o.dtype, [false, true]).mul(gScalar)
      : mm(kb.let('coef_g', coef.mul(g)), c.e, overRows, [false, overRows !== 'f32']);
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
