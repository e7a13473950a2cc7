// The training-step planner behind `ccekit plan`: peak memory and step time of a SASRec step (model + loss +
// optimizer) for (method, batch size, sequence length, negatives, sharing), from runtime/costmodel.ts's cost model
// (data, also read by the PyTorch package) and a calibration of its coefficients (`ccekit plan --calibrate` fits them
// to measured runs on the device; the defaults are first-principles figures for an H200 and are labelled so). Pure
// functions: the CLI prints and plots.
import { CceInputError } from './problem.js';
import {
  COST_MODEL, type CostModel, DEFAULT_COEFS, type MemoryPhase, PLAN_METHODS, type PlanMethod, type Term, coefNames,
  environment, expr, sumTerms,
} from './costmodel.js';

export { PLAN_METHODS, type PlanMethod } from './costmodel.js';

export interface PlanModel {
  /** Catalog size, hidden size, maximum sequence length, transformer blocks and heads. */
  V: number;
  D: number;
  maxLen: number;
  blocks: number;
  heads: number;
  /** Share of the B·L positions that carry a loss (non-padding), default 1. */
  fill?: number;
}

export interface PlanConfig {
  method: PlanMethod;
  batch: number;
  seqLen: number;
  /** Drawn negatives a row (0 for in-batch alone); shared: a group's. */
  K: number;
  /** Rows a group of shared draws (cce-shared, cce-mixed). */
  share?: number;
}

/** The cost model's coefficients, and where they come from. */
export interface Calibration {
  device: string;
  /** 'default' (first principles, not measured) or 'measured'. */
  source: 'default' | 'measured';
  coefs: Record<string, number>;
}

export const DEFAULT_CALIBRATION: Calibration = {
  device: 'NVIDIA H200 (defaults, not measured)', source: 'default', coefs: { ...DEFAULT_COEFS },
};

/** A calibration read from JSON: every coefficient of the model a finite number >= 0, else an error naming it. */
export function checkCalibration(c: unknown, model: CostModel = COST_MODEL): Calibration {
  const cal = c as Calibration;
  if (typeof cal !== 'object' || cal === null || typeof cal.coefs !== 'object' || cal.coefs === null)
    throw new CceInputError('calibration', 'calibration: no coefs object (an older or foreign file?)');
  for (const name of coefNames(model)) {
    const v = cal.coefs[name];
    if (v === undefined)
      throw new CceInputError('calibration', `calibration: coefficient ${name} is missing (made for an older cost ` +
        'model? measure again and run ccekit plan --calibrate)');
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
      throw new CceInputError('calibration', `calibration: coefficient ${name} must be a number >= 0, got ${v}`);
  }
  return cal;
}

export interface PlanEstimate {
  config: PlanConfig;
  /** Loss rows a step and candidates a row. */
  rows: number;
  candidates: number;
  peakBytes: number;
  stepMs: number;
  /** Bytes of each memory term group and of each phase above `params` (static); milliseconds of model and loss. */
  parts: {
    params: number; grads: number; activations: number; table: number; loss: number; held: number; optimizer: number;
    modelMs: number; lossMs: number;
  };
  phases: { loss: number; grads: number; optimizer: number };
}

const positiveInt = (name: string, x: number, min = 1) => {
  if (!Number.isSafeInteger(x) || x < min)
    throw new CceInputError(name, `${name}: must be an integer >= ${min}, got ${x}`);
};

export function checkPlanModel(m: PlanModel): void {
  positiveInt('V', m.V, 2);
  positiveInt('D', m.D);
  positiveInt('maxLen', m.maxLen);
  positiveInt('blocks', m.blocks, 0);
  positiveInt('heads', m.heads);
  if (m.fill !== undefined && !(m.fill > 0 && m.fill <= 1))
    throw new CceInputError('fill', `fill: must be in (0, 1], got ${m.fill}`);
}

const envOf = (m: PlanModel, c: PlanConfig, model: CostModel) => environment(model, c.method, {
  V: m.V, D: m.D, maxLen: m.maxLen, blocks: m.blocks, heads: m.heads, fill: m.fill ?? 1,
  B: c.batch, L: c.seqLen, K: c.K, share: c.share ?? 0,
});

/** Parameters of SASRec (the cost model's P). */
export const paramCount = (m: PlanModel): number =>
  envOf(m, { method: 'cce-per-row', batch: 1, seqLen: 1, K: 1 }, COST_MODEL).P!;

/** The estimate of one configuration. */
export function estimate(m: PlanModel, c: PlanConfig, cal: Calibration = DEFAULT_CALIBRATION,
  model: CostModel = COST_MODEL): PlanEstimate {
  checkPlanModel(m);
  if (!PLAN_METHODS.includes(c.method))
    throw new CceInputError('method', `method: '${c.method}' is not one of ${PLAN_METHODS.join(', ')}`);
  positiveInt('batch', c.batch);
  positiveInt('seqLen', c.seqLen);
  if (c.seqLen > m.maxLen) throw new CceInputError('seqLen', `seqLen: ${c.seqLen} exceeds maxLen ${m.maxLen}`);
  positiveInt('K', c.K, c.method === 'cce-in-batch' || c.method === 'ce' ? 0 : 1);
  const env = envOf(m, c, model);
  const k = cal.coefs, mem = model.memory;
  const parts = {
    params: expr(mem.static, env), grads: expr(mem.grads, env), activations: sumTerms(mem.activations, k, env),
    table: sumTerms(mem.table, k, env), loss: sumTerms(mem.loss[c.method], k, env),
    held: sumTerms(mem.held[c.method], k, env), optimizer: sumTerms(mem.optimizer, k, env),
    modelMs: sumTerms(model.time.model, k, env), lossMs: sumTerms(model.time.loss[c.method], k, env),
  };
  const phase = (p: MemoryPhase) => mem.phases[p].reduce((s, part) => s + parts[part], 0);
  const phases = { loss: phase('loss'), grads: phase('grads'), optimizer: phase('optimizer') };
  return {
    config: c, rows: Math.round(env.N!), candidates: Math.round(env.cands!),
    peakBytes: parts.params + Math.max(phases.loss, phases.grads, phases.optimizer),
    stepMs: parts.modelMs + parts.lossMs, parts, phases,
  };
}

/** The configurations of a grid that fit the budget, their Pareto front and a recommendation. */
export function planGrid(
  m: PlanModel, grid: PlanConfig[], budgetBytes: number, cal: Calibration = DEFAULT_CALIBRATION,
): { fitting: PlanEstimate[]; front: PlanEstimate[]; recommended: PlanEstimate; all: PlanEstimate[] } {
  if (!(Number.isFinite(budgetBytes) && budgetBytes > 0))
    throw new CceInputError('budget', `budget: must be a positive number of bytes, got ${budgetBytes}`);
  if (grid.length === 0) throw new CceInputError('grid', 'grid: no configuration to plan');
  const all = grid.map((c) => estimate(m, c, cal));
  const fitting = all.filter((e) => e.peakBytes <= budgetBytes);
  if (fitting.length === 0) {
    const least = all.reduce((a, b) => (b.peakBytes < a.peakBytes ? b : a));
    throw new CceInputError('budget', `budget: ${gib(budgetBytes)} GiB fits none of the ${all.length} ` +
      `configurations; the smallest needs ${gib(least.peakBytes)} GiB (${describe(least.config)})`);
  }
  // Non-dominated among the fitting ones in (time a training row ↓, candidates a row ↑, rows a step ↑): what a
  // trainer trades (throughput against the negatives and batch size that the paper finds NDCG grows with).
  const perRow = (e: PlanEstimate) => e.stepMs / e.rows;
  const better = (b: PlanEstimate, a: PlanEstimate) => perRow(b) <= perRow(a) && b.candidates >= a.candidates &&
    b.rows >= a.rows && (perRow(b) < perRow(a) || b.candidates > a.candidates || b.rows > a.rows);
  const front = fitting.filter((a) => !fitting.some((b) => b !== a && better(b, a)));
  front.sort((a, b) => perRow(a) - perRow(b) || a.peakBytes - b.peakBytes);
  // Recommend the most scored candidates a step (rows·candidates) among those within 1.5× of the best time a row.
  const fastest = Math.min(...fitting.map(perRow));
  const near = fitting.filter((e) => perRow(e) <= 1.5 * fastest);
  const recommended = near.reduce((a, b) => (b.rows * b.candidates > a.rows * a.candidates ||
    (b.rows * b.candidates === a.rows * a.candidates && b.stepMs < a.stepMs) ? b : a));
  return { fitting, front, recommended, all };
}

export const gib = (bytes: number): string => (bytes / 2 ** 30).toFixed(2);
export const describe = (c: PlanConfig): string =>
  `${c.method} batch ${c.batch} length ${c.seqLen} K ${c.K}${c.share ? ` share ${c.share}` : ''}`;

/**
 * A measured step (examples/sasrec/calibrate.py): the whole step's median time and peak, the peaks of its two
 * phases (forward + backward, Adam's step) and the same for the step with a trivial loss (the model's share).
 * Peaks are null where the device reports none (the CPU).
 */
export interface MeasuredRun {
  config: PlanConfig;
  /** The run's own model where it differs from the file's (its catalog, its fill). */
  model?: PlanModel;
  /** null where the time is not comparable (runs sharing a GPU): --check compares memory only. */
  stepMs: number | null;
  peakBytes: number | null;
  fbPeakBytes?: number | null;
  optPeakBytes?: number | null;
  modelMs?: number;
  modelPeakBytes?: number | null;
  modelFbPeakBytes?: number | null;
}

/** Gaussian elimination of a small system; null when singular. */
function solve(A: number[][], b: number[]): number[] | null {
  const n = b.length, M = A.map((r, i) => [...r, b[i]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r]![c]!) > Math.abs(M[p]![c]!)) p = r;
    if (!(Math.abs(M[p]![c]!) > 1e-12 * Math.max(1, ...M.map((r) => Math.abs(r[c]!))))) return null;
    [M[c], M[p]] = [M[p]!, M[c]!];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = M[r]![c]! / M[c]![c]!;
      for (let k = c; k <= n; k++) M[r]![k]! -= f * M[c]![k]!;
    }
  }
  return M.map((r, i) => r[n]! / r[i]!);
}

/**
 * Fits the coefficients of `terms` to measured values y (rows: the terms' expressions at each run), minimising the
 * squared relative error with every coefficient >= 0 (each subset of the terms solved, the best non-negative kept).
 * With fewer distinct runs than terms, the base coefficients are scaled by one common factor instead.
 */
export function fitTerms(terms: Term[], rows: number[][], y: number[], base: Record<string, number>):
  Record<string, number> {
  const out: Record<string, number> = {};
  if (rows.length === 0) return out;
  const top = Math.max(...y.map(Math.abs));
  const w = y.map((v) => 1 / Math.max(Math.abs(v), 1e-3 * top, 1e-300));
  const target = y.map((v) => Math.max(0, v));
  const distinct = new Set(rows.map((r) => r.map((x) => x.toPrecision(6)).join())).size;
  if (distinct < terms.length) {
    const f = rows.map((r) => r.reduce((s, x, j) => s + x * (base[terms[j]!.coef] ?? 0), 0));
    const num = f.reduce((s, fi, i) => s + w[i]! ** 2 * fi * target[i]!, 0);
    const den = f.reduce((s, fi, i) => s + (w[i]! * fi) ** 2, 0);
    const k = den > 0 ? Math.max(0, num / den) : 1;
    for (const t of terms) out[t.coef] = (base[t.coef] ?? 0) * k;
    return out;
  }
  let best: { x: number[]; err: number } | null = null;
  for (let mask = 1; mask < 1 << terms.length; mask++) {
    const idx = terms.map((_, j) => j).filter((j) => mask & (1 << j));
    const A = idx.map((a) => idx.map((b) => rows.reduce((s, r, i) => s + w[i]! ** 2 * r[a]! * r[b]!, 0)));
    const rhs = idx.map((a) => rows.reduce((s, r, i) => s + w[i]! ** 2 * r[a]! * target[i]!, 0));
    const sol = solve(A, rhs);
    if (sol === null || sol.some((v) => v < 0)) continue;
    const x = terms.map(() => 0);
    idx.forEach((j, i) => (x[j] = sol[i]!));
    const err = rows.reduce((s, r, i) => s + (w[i]! * (r.reduce((a, v, j) => a + v * x[j]!, 0) - target[i]!)) ** 2, 0);
    if (best === null || err < best.err * (1 - 1e-9)) best = { x, err };
  }
  terms.forEach((t, j) => (out[t.coef] = best ? best.x[j]! : 0));
  return out;
}

const num = (x: number | null | undefined): x is number => typeof x === 'number' && Number.isFinite(x);

/**
 * Fits the calibration to measured runs: the model's time from the runs' model-only steps, each method's loss time
 * from what its steps add; the activation and item-table bytes from the model-only steps' forward + backward peaks
 * (their gradients phase), the optimizer's from Adam's phase, and each method's loss bytes either as its backward
 * peak or as state held while the gradients form, whichever predicts its runs' forward + backward peaks better.
 * Coefficients no run informs keep their base values.
 */
export function fitCalibration(
  m: PlanModel, runs: MeasuredRun[], device: string, base: Calibration = DEFAULT_CALIBRATION,
  model: CostModel = COST_MODEL,
): Calibration {
  if (runs.length === 0) throw new CceInputError('runs', 'runs: no measured run to calibrate from');
  for (const r of runs) estimate(r.model ?? m, r.config, base, model); // checks every configuration first
  let coefs = { ...base.coefs };
  const mem = model.memory;
  const env = (r: MeasuredRun) => envOf(r.model ?? m, r.config, model);
  const rowsOf = (terms: Term[], rs: MeasuredRun[]) => rs.map((r) => terms.map((t) => expr(t.expr, env(r))));
  const fit = (terms: Term[], rs: MeasuredRun[], y: (r: MeasuredRun) => number) =>
    Object.assign(coefs, fitTerms(terms, rowsOf(terms, rs), rs.map(y), coefs));
  fit(model.time.model, runs.filter((r) => num(r.modelMs)), (r) => r.modelMs!);
  const at = (r: MeasuredRun, e: string) => expr(e, env(r));
  const fb = (r: MeasuredRun) => (num(r.fbPeakBytes) ? r.fbPeakBytes : r.peakBytes);
  const modelFb = (r: MeasuredRun) => (num(r.modelFbPeakBytes) ? r.modelFbPeakBytes : r.modelPeakBytes);
  // The model alone peaks as its gradients form: static + grads + activations + the table's transient.
  fit([...mem.activations, ...mem.table], runs.filter((r) => num(modelFb(r))),
    (r) => modelFb(r)! - at(r, mem.static) - at(r, mem.grads));
  fit(mem.optimizer, runs.filter((r) => num(r.optPeakBytes)),
    (r) => r.optPeakBytes! - at(r, mem.static) - at(r, mem.grads));
  for (const method of PLAN_METHODS) {
    const mine = runs.filter((r) => r.config.method === method);
    const modelMs = (r: MeasuredRun) => (num(r.modelMs) ? r.modelMs : sumTerms(model.time.model, coefs, env(r)));
    const timed = mine.filter((r) => num(r.stepMs));
    fit(model.time.loss[method], timed, (r) => r.stepMs! - modelMs(r));
    const sized = mine.filter((r) => num(fb(r)));
    if (sized.length === 0) continue;
    const act = (r: MeasuredRun) => sumTerms(mem.activations, coefs, env(r));
    const gradsPhase = (r: MeasuredRun) => at(r, mem.static) + at(r, mem.grads) + act(r) +
      sumTerms(mem.table, coefs, env(r));
    const zero = (terms: Term[]) => Object.fromEntries(terms.map((t) => [t.coef, 0]));
    // (a) the loss peaks in backward, before the gradients form; (b) it holds state while they form.
    // (a) fits the runs whose peak the gradients phase alone does not explain.
    const above = sized.filter((r) => fb(r)! > 1.01 * gradsPhase(r));
    const peakRuns = above.length ? above : sized;
    const asPeak = { ...coefs, ...zero(mem.held[method]), ...fitTerms(mem.loss[method], rowsOf(mem.loss[method],
      peakRuns), peakRuns.map((r) => fb(r)! - at(r, mem.static) - act(r)), coefs) };
    const asHeld = { ...coefs, ...zero(mem.loss[method]), ...fitTerms(mem.held[method], rowsOf(mem.held[method],
      sized), sized.map((r) => fb(r)! - gradsPhase(r)), coefs) };
    const err = (k: Record<string, number>) => sized.reduce((s, r) => {
      const e = estimate(r.model ?? m, r.config, { device, source: 'measured', coefs: k }, model);
      return s + ((e.parts.params + Math.max(e.phases.loss, e.phases.grads)) / fb(r)! - 1) ** 2;
    }, 0);
    coefs = err(asPeak) <= err(asHeld) ? asPeak : asHeld;
  }
  return { device, source: 'measured', coefs };
}

/** Measured against predicted, per run: the planner's accuracy (`ccekit plan --check`). */
export function compareRuns(m: PlanModel, runs: MeasuredRun[], cal: Calibration): {
  config: PlanConfig; stepMs: number | null; predictedMs: number; msError: number | null; peakBytes: number | null;
  predictedBytes: number; bytesError: number | null;
}[] {
  return runs.map((r) => {
    const e = estimate(r.model ?? m, r.config, cal);
    return { config: r.config, stepMs: r.stepMs, predictedMs: e.stepMs,
      msError: num(r.stepMs) ? e.stepMs / r.stepMs - 1 : null, peakBytes: r.peakBytes, predictedBytes: e.peakBytes,
      bytesError: num(r.peakBytes) ? e.peakBytes / r.peakBytes - 1 : null };
  });
}
