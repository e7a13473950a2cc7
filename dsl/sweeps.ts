// The blocks of the CCE- kernels (dsl/cce.ts): the prologue (parameters, the row's target and hidden vector,
// the candidate source), and the forward and backward sweeps, each written once over the candidate axes of the
// source's parts (dsl/sources/): per-row candidates (tvec rows, per-row dots) or candidates shared by the
// program's rows (cvec rows, tile contractions). The tile of a candidate loop is the schedule's, set in the
// lowering; nothing here reads a schedule.
import { KernelBuilder, OnlineSoftmax, type Tensor, type Var } from './builder.js';
import { type CceOptions, correctionFor, derivativeOf, type FloatDType, transformOf } from './options.js';
import { type Part, groupRowsOf, sourceOf } from './sources/index.js';
import { dot, dotCands, f32, mm, reduceCands, select, type Val } from './values.js';

const NEG_BIG = -3.0e38;

export interface Common {
  kb: KernelBuilder<'D'>;
  o: CceOptions;
  E: Tensor<FloatDType, readonly [string, 'D']>;
  C: Tensor<FloatDType, readonly ['V', 'D']>;
  parts: Part[];
  /** Whether candidates are counted (k) and corrected by log q: sampled candidates, not the full catalog. */
  counted: boolean;
  t: Val<'i32'>;
  live: Val<'bool'>;
  tSafe: Val<'i32'>;
  /** The row of C of the target (local to a vocabulary shard), and whether this kernel owns it (live rows). */
  tRow: Val<'i32'>;
  tHere: Val<'bool'>;
  /** Vocabulary shard: whether item n is one of C's rows, and its row there. */
  owned?: (n: Val<'i32'>) => Val<'bool'>;
  local: (n: Val<'i32'>) => Val<'i32'>;
  /** The row of E (and dE) this loss row reads: the row itself, or positions[row]. */
  eRow: Val<'i32'>;
  e: Val<'f32'>;
}

/** The name of a kernel: `base` for sampled candidates, the full-catalog name, and the source's tag. */
export function kernelName(o: CceOptions, sampled: string, full: string): string {
  if (o.mode !== 'sampled') return o.positions ? `${full}_pos` : full;
  if (o.vocabShard) return `${sampled}${o.share ? '_shared' : ''}_vocab${o.positions ? '_pos' : ''}`;
  const drawn = o.negatives === 'none' ? '' : o.share ? '_shared' : '';
  const tag = o.inBatch ? `_inbatch${o.negatives === 'none' ? '' : `_${o.negatives ?? 'tensor'}`}` : drawn;
  return `${sampled}${tag}${o.positions ? '_pos' : ''}`;
}

export function prologue(name: string, doc: string, o: CceOptions): Common {
  const kb = new KernelBuilder({ name, doc, rowDim: 'N', vecDim: 'D', candAxis: true, groupRows: groupRowsOf(o) });
  const eRows = o.positions ? 'NE' : 'N';
  const E = kb.input('E', o.dtype, [eRows, 'D'] as const, 'hidden states, one row per position');
  const C = kb.input('C', o.dtype, ['V', 'D'] as const, 'item embeddings (the classifier)');
  const T = kb.input('targets', 'i32', ['N'] as const, 'target item per row, or ignore_index');
  const P = o.positions
    ? kb.input('positions', 'i32', ['N'] as const, 'the row of E of each loss row (distinct)')
    : undefined;
  const ignore = kb.scalar('ignore_index', 'i32', 'target value of rows that do not count');
  const catalog = o.vocabShard ? 'VG' : 'V';
  const { parts } = sourceOf({ kb, o, targets: T, ignore, catalog });
  const start = o.vocabShard ? kb.scalar('vocab_start', 'i32', 'first item of this shard of C') : undefined;
  const owned = start ? (n: Val<'i32'>) => n.ge(start).and(n.lt(start.add(kb.dim('V')))) : undefined;
  const local = (n: Val<'i32'>) => (start ? n.sub(start) : n);
  kb.comment('row i of this slot: target, whether it counts, hidden vector');
  const t = kb.let('t', kb.load(T, kb.row, kb.rowValid));
  const live = kb.let('live', kb.rowValid.and(t.ne(ignore)));
  const tSafe = kb.let('t_safe', select(live, t, 0));
  const eRow = P ? kb.let('e_row', kb.load(P, kb.row, kb.rowValid)) : kb.row;
  const e = kb.let('e', kb.loadRow(E, eRow, kb.rowValid));
  const tHere = owned ? kb.let('t_here', live.and(owned(t))) : live;
  const tRow = owned ? kb.let('t_row', select(tHere, local(t), 0)) : tSafe;
  const counted = parts.some((p) => p.logq);
  return { kb, o, E, C, parts, counted, t, live, tSafe, tRow, tHere, owned, local, eRow, e };
}

/** One tile of a part's candidates at `slot`: ids, masks, gathered rows, raw dots and logits. */
interface CandTile {
  part: Part;
  n: Val<'i32'>;
  /** The candidate's row of C (local to a vocabulary shard). */
  row: Val<'i32'>;
  inRange: Val<'bool'>;
  /** Accepted: the row counts, the slot holds a candidate, and it is not the row's target. */
  ok: Val<'bool'>;
  /** The candidates' rows: cvec (shared) or tvec (per row). */
  rows: Val<'f32'>;
  raw: Val<'f32'>;
  logit: Val<'f32'>;
}

function candTile(c: Common, part: Part, slot: Val<'i32'>): CandTile {
  const { kb, o } = c;
  const at = part.at(slot);
  const { n } = at;
  // A vocabulary shard takes its own items only (the others are other ranks' candidates, counted there).
  const inRange = c.owned ? kb.let('in_shard', at.inRange.and(c.owned(n))) : at.inRange;
  const ok = kb.let('ok', c.live.and(inRange).and(n.ne(c.t)));
  const row = c.owned ? kb.let('n_row', select(inRange, c.local(n), 0)) : n;
  const rows = part.shared
    ? kb.let('c_tile', kb.loadCandRows(c.C, row, inRange))
    : kb.let('c_rows', kb.loadRow(c.C, row, ok));
  const raw = kb.let('raw', part.shared ? mm(c.e, rows, o.dtype, [true, true]) : dotCands(c.e, rows));
  const corr = part.logq ? correctionFor(o, part.logq(n, inRange)) : undefined;
  const f = transformOf(o)(raw);
  return { part, n, row, inRange, ok, rows, raw, logit: kb.let('logit', corr ? f.add(corr) : f) };
}

/** Σ over the tile's candidates of w · row: a contraction (shared) or a sum of per-row products. */
function weighted(c: Common, x: CandTile, w: Val<'f32'>): Val<'f32'> {
  // The weights are in [0, 1]: the contraction over candidates suits 16-bit tensor cores (hi/lo split).
  return x.part.shared ? mm(w, x.rows, c.o.dtype, [false, true]) : reduceCands('sum', w.mul(x.rows));
}

/**
 * dE carried along the forward's one sweep (flash-attention style): A = Σ_j exp(u_j − m)·f'(raw_j)·c_j over the
 * candidates (u_j their logit before − log k), rescaled whenever the running max m moves; at the end
 * Σ_j p_j·f'(raw_j)·c_j = A·exp(m − log k − lse).
 */
export interface OnlineDE {
  acc: Var<'f32'>;
  /** The running max after the sweep. */
  max?: Val<'f32'>;
}

interface Merged {
  lse: Val<'f32'>;
  /** lse − s0, as softplus(neg − s0): accurate when the target dominates (a loss of 1e−8 survives fp32). */
  loss: Val<'f32'>;
  /** lse of the other candidates (sampled: − log k); ≈ −∞ when none was accepted. */
  neg: Val<'f32'>;
}

/** What a forward sweep yields per row: the target logit, lse, loss, lse of the others, accepted count. */
export interface Sweep extends Merged {
  s0: Val<'f32'>;
  kcount: Val<'i32'>;
  /** The online softmax of the candidates after the sweep: running max and sum of exp(logit − max). */
  max: Val<'f32'>;
  sum: Val<'f32'>;
}

/** Forward sweep: online softmax over every part's candidates, the target merged at the end; `de`: dE rides. */
export function forwardSweep(c: Common, de?: OnlineDE): Sweep {
  const { kb, o } = c;
  const df = derivativeOf(o);
  kb.comment('target logit s0 = f(e · c_t)');
  const s0 = kb.let('s0', transformOf(o)(dot(c.e, kb.loadRow(c.C, c.tRow, c.tHere))));
  const sm = new OnlineSoftmax(kb, 'cand');
  const kacc = kb.var('kacc_f', f32(0), 'row');
  for (const part of c.parts)
    kb.candLoop('kk', part.count, (_kk, slot) => {
      kb.comment(`a tile of ${part.name} candidates: gather, dot with e, fold into the online softmax`);
      const x = candTile(c, part, slot);
      const { scale, weights } = sm.updateTile(x.logit, x.ok);
      if (de) de.acc.set(de.acc.get().mul(scale).add(weighted(c, x, df ? weights.mul(df(x.raw)) : weights)));
      if (part.logq) kacc.set(kacc.get().add(reduceCands('sum', select(x.ok, f32(1), f32(0)))));
    });
  if (de) de.max = sm.m.get();
  const kcount = kb.let('kcount', kacc.get().to('i32'));
  const merged = mergeTarget(kb, s0, sm, c.counted ? kcount : undefined);
  return { s0, ...merged, kcount, max: sm.m.get(), sum: sm.l.get() };
}

/** lse of the target logit and the other candidates' online softmax (sampled: minus log k). */
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

/**
 * The target's term of the gradients, for p0 − 1 = −(the other candidates' share) (no cancellation when the
 * target dominates): coef0 = (p0 − 1)·f'(raw0) on live rows; returns c_t and coef0.
 */
export function targetTerm(c: Common, p0m1: Val<'f32'>): { ct: Val<'f32'>; coef0: Val<'f32'> } {
  const { kb } = c;
  const df = derivativeOf(c.o);
  kb.comment("target: coefficient (p0 − 1)·f'(raw0), p0 − 1 = −(the other candidates' share)");
  const ct = kb.let('c_t', kb.loadRow(c.C, c.tRow, c.tHere));
  const raw0 = kb.let('raw0', dot(c.e, ct));
  return { ct, coef0: kb.let('coef0', select(c.tHere, df ? p0m1.mul(df(raw0)) : p0m1, 0)) };
}

/** The gradient outputs: dE per row of E, dC scatter-added (float atomics or deterministic fixed point). */
export function gradientOutputs(c: Common) {
  const { kb, o } = c;
  const dE = kb.output('dE', 'f32', [o.positions ? 'NE' : 'N', 'D'] as const, 'gradient of the hidden states');
  const doc = 'gradient of the item embeddings (zero it first)';
  const dC = kb.accumulator('dC', ['V', 'D'] as const, doc, o.deterministic);
  return { dE, dC };
}

/**
 * Backward sweep: recompute the logits, P = exp(logit − log k − lse)·f'(raw) on accepted entries; dE += P·rows,
 * dC[n] += P·e (per row) or Pᵀ·E (shared: a contraction over the program's rows, one atomic per candidate
 * element). The upstream gradient g multiplies afterwards, so contractions see P ∈ [0, 1] (fp16 tensor cores
 * would flush p·g to zero when g = 1/N is small); a per-row g on fp16 storage makes the contraction over rows
 * an fp32 one. gScalar: g when it is one scalar for all rows.
 */
export function backwardSweep(
  c: Common,
  lse: Val<'f32'>,
  logk: Val<'f32'> | undefined,
  g: Val<'f32'>,
  gScalar?: Val<'f32'>,
): void {
  const { kb, o } = c;
  const df = derivativeOf(o);
  const { dE, dC } = gradientOutputs(c);
  const dEacc = kb.var('dE_acc', f32(0), 'vec');
  // Σ p over the other candidates: 1 − p0, without the cancellation of p0 − 1 when the target dominates.
  const psum = kb.var('p_others', f32(0), 'row');
  const overRows = o.dtype === 'f16' && !gScalar ? 'f32' : o.dtype;
  for (const part of c.parts)
    kb.candLoop('kk', part.count, (_kk, slot) => {
      kb.comment(`recompute a tile of ${part.name} logits; dE += P·rows, dC[n] += P·e`);
      const x = candTile(c, part, slot);
      const u = part.logq && logk ? x.logit.sub(logk) : x.logit;
      const p = kb.let('p', select(x.ok, u.sub(lse).exp(), 0));
      psum.set(psum.get().add(reduceCands('sum', p)));
      const coef = kb.let('coef', df ? p.mul(df(x.raw)) : p);
      dEacc.set(dEacc.get().add(weighted(c, x, coef)));
      if (!part.shared) kb.atomicAddRow(dC, x.row, c.e.mul(coef.mul(g)), x.ok);
      else {
        const byRows = gScalar
          ? mm(coef, c.e, o.dtype, [false, true]).mul(gScalar)
          : mm(kb.let('coef_g', coef.mul(g)), c.e, overRows, [false, overRows !== 'f32']);
        kb.atomicAddCandRows(dC, x.row, byRows, x.inRange);
      }
    });
  // A vocabulary shard's candidates are a part of the row's: p0 − 1 = −(the others' share), merged by the host.
  const shareDoc = "the other candidates' share of the row's softmax, merged over the shards";
  const share = c.o.vocabShard ? kb.input('neg_share', 'f32', ['N'] as const, shareDoc) : undefined;
  const others = share ? kb.load(share, kb.row, c.live) : psum.get();
  const { ct, coef0 } = targetTerm(c, others.neg());
  kb.atomicAddRow(dC, c.tRow, c.e.mul(coef0.mul(g)), c.tHere);
  kb.storeRow(dE, c.eRow, dEacc.get().add(ct.mul(coef0)).mul(g), kb.rowValid);
}
