// The training-step planner behind `ccekit plan`: peak memory and step time of a SASRec step (model + loss +
// optimizer) for (method, batch size, sequence length, negatives, sharing), from a cost model whose coefficients a
// calibration file sets (`ccekit plan --calibrate` fits them to measured runs on the device; defaults are rough
// first-principles figures for an H200 and are labelled so). Pure functions: the CLI prints and plots.
import { CceInputError } from './problem.js';

export const PLAN_METHODS = ['ce-minus', 'ce', 'cce-per-row', 'cce-shared', 'cce-in-batch', 'cce-mixed'] as const;
export type PlanMethod = (typeof PLAN_METHODS)[number];

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

/** Coefficients of the cost model: milliseconds a unit of work, bytes an element of activation / loss state. */
export interface Calibration {
  device: string;
  /** 'default' (first principles, not measured) or 'measured'. */
  source: 'default' | 'measured';
  ms: { model: number; optimizer: number; loss: Record<PlanMethod, number> };
  bytes: { activation: number; attention: number; loss: Record<PlanMethod, number> };
}

/**
 * Defaults: model and optimizer from FLOP / byte counts at an H200's rates; the losses from the H200 figures of
 * bench/results (ccekit per row 5.3 ms and PyTorch CE- 56 ms at N = 32768, K = 511, D = 256; shared 64 1.9 ms;
 * in-batch 33 ms at N = K = 32768), in ms per row·candidate·element.
 */
export const DEFAULT_CALIBRATION: Calibration = {
  device: 'NVIDIA H200 (defaults, not measured)',
  source: 'default',
  ms: {
    model: 2.0e-11, optimizer: 1.2e-11,
    loss: { 'ce-minus': 1.3e-8, ce: 1.5e-11, 'cce-per-row': 1.24e-9, 'cce-shared': 4.5e-10, 'cce-in-batch': 1.2e-10,
      'cce-mixed': 1.2e-10 },
  },
  bytes: {
    activation: 40, attention: 6,
    loss: { 'ce-minus': 10, ce: 10, 'cce-per-row': 6, 'cce-shared': 6, 'cce-in-batch': 6, 'cce-mixed': 6 },
  },
};

export interface PlanEstimate {
  config: PlanConfig;
  /** Loss rows a step and candidates a row. */
  rows: number;
  candidates: number;
  peakBytes: number;
  stepMs: number;
  parts: { params: number; activations: number; loss: number; modelMs: number; lossMs: number; optMs: number };
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

/** Parameters of SASRec: item and position tables, per block attention (4 D²) and the point-wise FFN (2 D²). */
export const paramCount = (m: PlanModel): number =>
  (m.V + 2) * m.D + m.maxLen * m.D + m.blocks * (6 * m.D * m.D + 10 * m.D);

/** The estimate of one configuration. */
export function estimate(m: PlanModel, c: PlanConfig, cal: Calibration = DEFAULT_CALIBRATION): PlanEstimate {
  checkPlanModel(m);
  positiveInt('batch', c.batch);
  positiveInt('seqLen', c.seqLen);
  if (c.seqLen > m.maxLen) throw new CceInputError('seqLen', `seqLen: ${c.seqLen} exceeds maxLen ${m.maxLen}`);
  positiveInt('K', c.K, c.method === 'cce-in-batch' || c.method === 'ce' ? 0 : 1);
  const { D, V } = m;
  const N = Math.round(c.batch * c.seqLen * (m.fill ?? 1));
  const cands = c.method === 'ce' ? V : c.method === 'cce-in-batch' ? N : c.method === 'cce-mixed' ? N + c.K : c.K;
  const P = paramCount(m);
  const params = 16 * P; // fp32 parameter, gradient, Adam's two moments
  const elems = c.batch * c.seqLen;
  const activations = m.blocks * (elems * D * cal.bytes.activation + c.batch * m.heads * c.seqLen ** 2 *
    cal.bytes.attention) + elems * D * cal.bytes.activation;
  const lb = cal.bytes.loss[c.method];
  // PyTorch CE- gathers [N, K, D] (and its gradient); full CE holds [N, V] logits; ccekit holds O(N·D).
  const loss = c.method === 'ce-minus' ? N * c.K * (D * lb + 16) : c.method === 'ce' ? N * V * lb : N * D * lb;
  const modelMs = cal.ms.model * m.blocks * elems * (6 * D * D + c.seqLen * D) * 6;
  const lossMs = cal.ms.loss[c.method] * N * cands * D;
  const optMs = cal.ms.optimizer * P;
  return {
    config: c, rows: N, candidates: cands, peakBytes: params + activations + loss, stepMs: modelMs + lossMs + optMs,
    parts: { params, activations, loss, modelMs, lossMs, optMs },
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
  front.sort((a, b) => perRow(a) - perRow(b));
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

/** A measured step (examples/sasrec/calibrate.py): the whole step, and the same step with a trivial loss. */
export interface MeasuredRun {
  config: PlanConfig;
  stepMs: number;
  /** null where the device reports no peak (the CPU). */
  peakBytes: number | null;
  modelMs?: number;
  modelPeakBytes?: number | null;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * Fits the calibration to measured runs, each coefficient scaled by measured / predicted: the model and optimizer
 * times and the activation bytes from the runs' model-only steps (when they have them), then each method's loss
 * time and bytes from what its steps add beyond them.
 */
export function fitCalibration(
  m: PlanModel, runs: MeasuredRun[], device: string, base: Calibration = DEFAULT_CALIBRATION,
): Calibration {
  if (runs.length === 0) throw new CceInputError('runs', 'runs: no measured run to calibrate from');
  const cal: Calibration = JSON.parse(JSON.stringify(base));
  cal.device = device;
  cal.source = 'measured';
  const timed = runs.filter((r) => r.modelMs !== undefined);
  if (timed.length) {
    const k = mean(timed.map((r) => {
      const e = estimate(m, r.config, cal);
      return r.modelMs! / (e.parts.modelMs + e.parts.optMs);
    }));
    cal.ms.model *= k;
    cal.ms.optimizer *= k;
  }
  const sized = runs.filter((r) => typeof r.modelPeakBytes === 'number');
  if (sized.length) {
    const k = mean(sized.map((r) => {
      const e = estimate(m, r.config, cal);
      return Math.max(0.05, (r.modelPeakBytes! - e.parts.params) / e.parts.activations);
    }));
    cal.bytes.activation *= k;
    cal.bytes.attention *= k;
  }
  for (const method of PLAN_METHODS) {
    const mine = runs.filter((r) => r.config.method === method);
    if (mine.length === 0) continue;
    const ratio = (f: (e: PlanEstimate) => number, g: (r: (typeof mine)[number], e: PlanEstimate) => number) => {
      const xs = mine.map((r) => {
        const e = estimate(m, r.config, cal);
        return g(r, e) / Math.max(1e-30, f(e));
      });
      return xs.reduce((a, b) => a + b, 0) / xs.length;
    };
    // The loss's share: what the measured step has beyond the model and optimizer terms.
    cal.ms.loss[method] *= Math.max(0.05, ratio((e) => e.parts.lossMs,
      (r, e) => r.stepMs - (r.modelMs ?? e.parts.modelMs + e.parts.optMs)));
    if (mine.every((r) => typeof r.peakBytes === 'number'))
      cal.bytes.loss[method] *= Math.max(0.05, ratio((e) => e.parts.loss,
        (r, e) => r.peakBytes! - (typeof r.modelPeakBytes === 'number' ? r.modelPeakBytes : e.parts.params +
          e.parts.activations)));
  }
  return cal;
}
