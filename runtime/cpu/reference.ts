/**
 * Plain float64 reference of CCE- (sampled softmax cross-entropy with rejected
 * collisions and log-q correction) and of full-catalog cross-entropy, with
 * gradients. Straightforward loops: this is the executable specification the
 * generated kernels are checked against.
 *
 * Row i (not ignored), sampled mode:
 *   s_0  = f(e_i . c_t)
 *   s_j  = f(e_i . c_n) + corr(log q(n)) - log(k_i)   for each accepted negative n != t
 *   lse  = logsumexp(s_0, s_j...),   loss_i = lse - s_0   (k_i = 0: lse = s_0, loss 0)
 * Full mode: lse = logsumexp_v f(e_i . c_v),  loss_i = lse - f(e_i . c_t).
 * In-batch candidates (inBatch): the targets of all rows, or of row i's group of shareRows rows, that are not
 * ignoreIndex, corrected by their own q (inBatchProbs, uniform if absent); with drawn negatives too (mixed)
 * k_i counts the accepted candidates of both parts. positions: row i reads e = E[positions[i]], and dE of that
 * row of E gets its gradient (E and dE have NE rows).
 */
import { materializeNegatives } from '../philox.js';
import { decode } from '../numeric.js';
import { logQ, logQBatch, validateProblem, type CceProblem } from '../problem.js';

export interface ScalarMap {
  f: (x: number) => number;
  df: (x: number) => number;
}

export interface ReferenceOptions {
  /** Logit transform f (default identity). */
  transform?: ScalarMap;
  /** Correction added to negative logits, from log q (default -logq). */
  correction?: (logq: number) => number;
  /** Upstream gradient: scalar for mean/sum (default 1), per-row for none (default ones). */
  gradOutput?: number | Float64Array;
}

export interface ReferenceResult {
  /** Reduced loss; Float64Array of row losses for 'none'. */
  loss: number | Float64Array;
  rowLoss: Float64Array;
  lse: Float64Array;
  kAccepted: Int32Array;
  nValid: number;
  dE: Float64Array;
  dC: Float64Array;
}

const IDENTITY: ScalarMap = { f: (x) => x, df: () => 1 };
const NEG_LOGQ = (lq: number): number => -lq;

/** Reference on the problem's stored (dtype-rounded) values; validates the problem first. */
export function referenceCce(p: CceProblem, o: ReferenceOptions = {}): ReferenceResult {
  validateProblem(p);
  const q = materializeNegatives(p);
  return referenceCceF64(q, decode(q.dtype, q.E), decode(q.dtype, q.C), o);
}

/**
 * Reference on explicit float64 values of E (N*D) and C (V*D); everything else
 * (shapes, ids, itemProbs, reduction) comes from p, which is assumed valid.
 */
export function referenceCceF64(
  p: CceProblem,
  E: Float64Array,
  C: Float64Array,
  o: ReferenceOptions = {},
): ReferenceResult {
  const { N, D, V } = p;
  const NE = p.positions ? p.NE! : N;
  if (E.length !== NE * D) throw new Error(`referenceCceF64: E has length ${E.length}, expected ${NE * D}`);
  if (C.length !== V * D) throw new Error(`referenceCceF64: C has length ${C.length}, expected V*D = ${V * D}`);
  const { f, df } = o.transform ?? IDENTITY;
  const corr = o.correction ?? NEG_LOGQ;
  const full = p.mode === 'full';
  const K = full ? 0 : p.K;
  const lq = logQ(p);
  const lqb = p.inBatch ? logQBatch(p) : undefined;
  const eRow = (i: number) => (p.positions ? p.positions[i]! : i);
  /** Row i's sampled candidates: [item, log q] of the drawn slots, then of the in-batch ones. */
  const candidatesOf = (i: number): [number, number][] => {
    const out: [number, number][] = [];
    for (let j = 0; j < K; j++) out.push([p.negatives![i * K + j]!, lq[p.negatives![i * K + j]!]!]);
    if (!lqb) return out;
    const R = p.inBatch === 'group' ? p.shareRows! : N;
    const r0 = p.inBatch === 'group' ? Math.floor(i / R) * R : 0;
    for (let r = r0; r < Math.min(N, r0 + R); r++) {
      const n = p.targets[r]!;
      if (n !== p.ignoreIndex) out.push([n, lqb[n]!]);
    }
    return out;
  };

  const rowLoss = new Float64Array(N);
  const lse = new Float64Array(N);
  const kAccepted = new Int32Array(N);
  const dE = new Float64Array(NE * D);
  const dC = new Float64Array(V * D);

  let nValid = 0;
  for (let i = 0; i < N; i++) if (p.targets[i] !== p.ignoreIndex) nValid++;

  const g = upstream(p, o.gradOutput, nValid);

  const dot = (i: number, v: number): number => {
    let s = 0;
    const r = eRow(i);
    for (let d = 0; d < D; d++) s += E[r * D + d]! * C[v * D + d]!;
    return s;
  };

  for (let i = 0; i < N; i++) {
    const t = p.targets[i]!;
    if (t === p.ignoreIndex) continue; // rowLoss 0, lse 0, no gradient

    // Columns of this row's softmax: item id, raw dot r, logit s, and whether it is the target column.
    const items: number[] = [];
    const raw: number[] = [];
    const logits: number[] = [];
    const isTarget: boolean[] = [];

    if (full) {
      for (let v = 0; v < V; v++) {
        const r = dot(i, v);
        items.push(v);
        raw.push(r);
        logits.push(f(r));
        isTarget.push(v === t);
      }
      kAccepted[i] = 0;
    } else {
      const r0 = dot(i, t);
      items.push(t);
      raw.push(r0);
      logits.push(f(r0));
      isTarget.push(true);
      const cands = candidatesOf(i).filter(([n]) => n !== t); // a candidate equal to the target is rejected
      const k = cands.length;
      kAccepted[i] = k;
      const logK = k > 0 ? Math.log(k) : 0;
      for (const [n, lqn] of cands) {
        const r = dot(i, n);
        items.push(n);
        raw.push(r);
        logits.push(f(r) + corr(lqn) - logK);
        isTarget.push(false);
      }
    }

    // Stable logsumexp.
    let m = -Infinity;
    for (const s of logits) if (s > m) m = s;
    let sum = 0;
    for (const s of logits) sum += Math.exp(s - m);
    const rowLse = m + Math.log(sum);

    // The target's logit and the other candidates' share: loss = softplus(lse_others − s_t) and p_t − 1 =
    // −Σ_others p, free of the cancellation of lse − s_t and p_t − 1 when the target dominates.
    let targetLogit = 0;
    let others = 0;
    for (let c = 0; c < logits.length; c++) {
      if (isTarget[c]) targetLogit = logits[c]!;
      else others += Math.exp(logits[c]! - m);
    }
    const x = others > 0 ? m + Math.log(others) - targetLogit : -Infinity;
    const pOthers = others * Math.exp(m - rowLse);
    lse[i] = rowLse;
    rowLoss[i] = Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));

    // Gradients: coef = (p_c - [c is target]) * g_i * f'(r_c).
    const gi = g[i]!;
    if (gi === 0) continue;
    for (let c = 0; c < logits.length; c++) {
      const prob = isTarget[c] ? -pOthers : Math.exp(logits[c]! - rowLse);
      const coef = prob * gi * df(raw[c]!);
      const v = items[c]!;
      for (let d = 0; d < D; d++) {
        const ie = eRow(i) * D + d;
        const ic = v * D + d;
        dE[ie] = dE[ie]! + coef * C[ic]!;
        dC[ic] = dC[ic]! + coef * E[ie]!;
      }
    }
  }

  let loss: number | Float64Array;
  if (p.reduction === 'none') {
    loss = rowLoss.slice();
  } else {
    let total = 0;
    for (let i = 0; i < N; i++) total += rowLoss[i]!;
    loss = p.reduction === 'sum' ? total : nValid > 0 ? total / nValid : 0;
  }

  return { loss, rowLoss, lse, kAccepted, nValid, dE, dC };
}

/** Per-row upstream gradient g_i (ignored rows get whatever; they are skipped). */
function upstream(p: CceProblem, gradOutput: number | Float64Array | undefined, nValid: number): Float64Array {
  const g = new Float64Array(p.N);
  if (p.reduction === 'none') {
    if (gradOutput === undefined) g.fill(1);
    else if (typeof gradOutput === 'number') g.fill(gradOutput);
    else {
      if (gradOutput.length !== p.N) {
        throw new Error(`referenceCce: gradOutput has length ${gradOutput.length}, expected N = ${p.N}`);
      }
      g.set(gradOutput);
    }
    return g;
  }
  if (gradOutput !== undefined && typeof gradOutput !== 'number') {
    throw new Error(`referenceCce: gradOutput must be a scalar for reduction '${p.reduction}'`);
  }
  const gs = gradOutput ?? 1;
  g.fill(p.reduction === 'sum' ? gs : nValid > 0 ? gs / nValid : 0);
  return g;
}
