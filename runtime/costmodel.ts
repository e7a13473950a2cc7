// The planner's cost model as data: every quantity of a SASRec training step is a sum of terms, a term a calibrated
// coefficient times an expression over the step's sizes. `ccekit plan` (runtime/memplan.ts) and the PyTorch package
// (ccekit_torch/plan.py, which reads this model, its expressions parsed, as plan_model.json) evaluate the same data,
// so the model is written once; only `ccekit plan --calibrate` fits the coefficients.
//
// Expressions: sums of products of numbers, names and parenthesised expressions, `^` with an integer exponent
// (`B*L*(blocks*(6*D^2 + L*D) + D)`). Names are the inputs below and the derived quantities, in their order.

export const PLAN_METHODS = ['ce-minus', 'ce', 'cce-per-row', 'cce-shared', 'cce-in-batch', 'cce-mixed'] as const;
export type PlanMethod = (typeof PLAN_METHODS)[number];

export type MemoryPart = 'grads' | 'activations' | 'table' | 'optimizer' | 'loss' | 'held';
export type MemoryPhase = 'loss' | 'grads' | 'optimizer';

/** A coefficient (a name of the calibration) times an expression. */
export interface Term {
  coef: string;
  expr: string;
}

export interface CostModel {
  version: number;
  /** Inputs: V, D, maxLen, blocks, heads, fill (model); B, L, K, share (configuration). */
  inputs: string[];
  /** Derived quantities in order; `cands` (candidates a row) comes from `candidates` by method. */
  derived: [string, string][];
  candidates: Record<PlanMethod, string>;
  /**
   * Peak bytes = static + the largest of three phases: the loss's backward peak (activations + `loss`; the
   * gradients are not formed yet), the gradients forming (grads + activations + the item table's transient + what
   * the loss still `held`s), and Adam's step (grads + its temporaries).
   */
  memory: {
    static: string; grads: string; activations: Term[]; table: Term[]; optimizer: Term[];
    loss: Record<PlanMethod, Term[]>; held: Record<PlanMethod, Term[]>;
    /** Each phase as the memory parts it adds up (names above; loss and held: the method's). */
    phases: Record<MemoryPhase, MemoryPart[]>;
  };
  /** Step milliseconds = model (forward, backward, Adam) + loss (forward and backward). */
  time: { model: Term[]; loss: Record<PlanMethod, Term[]> };
}

// Every method's loss state in the same terms: row·candidate·element (PyTorch CE-'s gathered [N, K, D]),
// row·candidate (logits, ids), row·element (copies of E, dE).
const lossMem = (m: string): Term[] => [{ coef: `mem.${m}.pairs`, expr: 'N*cands*D' },
  { coef: `mem.${m}.cands`, expr: 'N*cands' }, { coef: `mem.${m}.rows`, expr: 'N*D' }];
// Held while the gradients form: also copies of the table a loss makes (the bf16 C that a trainer under autocast
// hands ccekit's kernels, and its gradient).
const heldMem = (m: string): Term[] => [{ coef: `mem.${m}.held.cands`, expr: 'N*cands' },
  { coef: `mem.${m}.held.rows`, expr: 'N*D' }, { coef: `mem.${m}.held.table`, expr: 'V*D' }];
const byMethod = <T>(f: (m: PlanMethod) => T) =>
  Object.fromEntries(PLAN_METHODS.map((m) => [m, f(m)])) as Record<PlanMethod, T>;
const lossMs = (m: string): Term[] => [{ coef: `ms.${m}.pairs`, expr: 'N*cands*D' },
  { coef: `ms.${m}.table`, expr: 'V*D' }];
export const COST_MODEL: CostModel = {
  version: 1,
  inputs: ['V', 'D', 'maxLen', 'blocks', 'heads', 'fill', 'B', 'L', 'K', 'share'],
  derived: [
    ['elems', 'B*L'],
    ['N', 'B*L*fill'],
    // SASRec's parameters: item and position tables, per block attention (4 D²) and the point-wise FFN (2 D²).
    ['P', '(V + 2)*D + maxLen*D + blocks*(6*D^2 + 10*D)'],
  ],
  candidates: { 'ce-minus': 'K', ce: 'V', 'cce-per-row': 'K', 'cce-shared': 'K', 'cce-in-batch': 'N',
    'cce-mixed': 'N + K' },
  memory: {
    static: '12*P', // fp32 weights and Adam's two moments
    grads: '4*P', // fp32 gradients (freed by zero_grad before each step)
    activations: [{ coef: 'mem.act', expr: 'B*L*D*(blocks + 1)' }, { coef: 'mem.attn', expr: 'blocks*B*heads*L^2' }],
    table: [{ coef: 'mem.table', expr: 'V*D' }],
    optimizer: [{ coef: 'mem.opt', expr: 'P' }],
    loss: byMethod(lossMem),
    held: byMethod(heldMem),
    phases: { loss: ['activations', 'loss'], grads: ['grads', 'activations', 'table', 'held'],
      optimizer: ['grads', 'optimizer'] },
  },
  time: {
    model: [{ coef: 'ms.model', expr: 'B*L*(blocks*(6*D^2 + L*D) + D)' }, { coef: 'ms.params', expr: 'P' }],
    loss: byMethod(lossMs),
  },
};

/**
 * Default coefficients (not a calibration of the user's card): the model at about 50 TFLOP/s (6 FLOPs a weight and
 * token), Adam at about 1.3 TB/s over its 28 bytes a parameter, the losses' times from the H200 figures of
 * bench/results (ccekit per row 5.3 ms and PyTorch CE- 56 ms at N = 32768, K = 511, D = 256), in ms a
 * row·candidate·element; bytes a unit of each memory term by what each holds (PyTorch CE-: the gathered fp32 rows,
 * their bf16 copy and both gradients, 6 bytes an element below the 12 of fp32; full CE: fp32 logits and their
 * gradient; ccekit: fp32 dE, and the bf16 copy of C that a trainer under autocast hands it).
 */
const CCE_MS = { 'cce-per-row': 1.24e-9, 'cce-shared': 4.5e-10, 'cce-in-batch': 1.2e-10, 'cce-mixed': 1.2e-10 };
export const DEFAULT_COEFS: Record<string, number> = {
  'ms.model': 1.2e-10, 'ms.params': 2.2e-8, 'ms.ce-minus.pairs': 1.3e-8, 'ms.ce.pairs': 1.5e-11,
  'mem.act': 18, 'mem.attn': 2, 'mem.table': 4, 'mem.opt': 4,
  ...Object.fromEntries(PLAN_METHODS.flatMap((m) => [[`ms.${m}.table`, 0], [`mem.${m}.pairs`, 0],
    [`mem.${m}.cands`, 0], [`mem.${m}.rows`, 0], [`mem.${m}.held.cands`, 0],
    [`mem.${m}.held.rows`, m.startsWith('cce') ? 4 : 0], [`mem.${m}.held.table`, m.startsWith('cce') ? 2 : 0]])),
  ...Object.fromEntries(Object.entries(CCE_MS).map(([m, v]) => [`ms.${m}.pairs`, v])),
  'mem.ce-minus.pairs': 6, 'mem.ce-minus.cands': 16, 'mem.ce.cands': 8,
};

/** Every term of the model. */
const allTerms = ({ memory: mem, time }: CostModel): Term[] => [...mem.activations, ...mem.table, ...mem.optimizer,
  ...time.model, ...PLAN_METHODS.flatMap((m) => [...mem.loss[m], ...mem.held[m], ...time.loss[m]])];

/** Every expression of the model (inputs to the parser). */
const expressions = (model: CostModel): string[] => [...new Set([...model.derived.map(([, e]) => e),
  ...Object.values(model.candidates), model.memory.static, model.memory.grads, ...allTerms(model).map((t) => t.expr)])];

/**
 * The model as the PyTorch package reads it (plan_model.json): the model, its expressions already parsed (so the
 * package evaluates trees and needs no parser of its own) and its coefficient names.
 */
export const packagedModel = (model: CostModel = COST_MODEL) => ({
  model, trees: Object.fromEntries(expressions(model).map((e) => [e, parseExpr(e)])), coefs: coefNames(model),
});

/** Every coefficient name the model uses. */
export const coefNames = (model: CostModel = COST_MODEL): string[] => [...new Set(allTerms(model).map((t) => t.coef))];

// ---------------------------------------------------------------------------------------------------------------
// The expression language. ccekit_torch/plan.py evaluates the trees parseExpr makes (packagedModel); test/plan.test.ts
// evaluates both on the same inputs.

export type Node = number | string | { op: '+' | '*' | '^'; a: Node; b: Node };

export function parseExpr(text: string): Node {
  const toks = text.match(/\d+(\.\d+)?(e[-+]?\d+)?|[A-Za-z_][A-Za-z_0-9]*|[-+*^()]|\S/g) ?? [];
  let i = 0;
  const fail = (why: string): never => {
    throw new Error(`cost model: ${why} in '${text}'`);
  };
  const factor = (): Node => {
    const t = toks[i++] ?? fail('unexpected end');
    let x: Node;
    if (t === '(') {
      x = sum();
      if (toks[i++] !== ')') fail("missing ')'");
    } else if (/^\d/.test(t)) x = Number(t);
    else if (/^[A-Za-z_]/.test(t)) x = t;
    else return fail(`unexpected '${t}'`);
    if (toks[i] === '^') {
      i++;
      const e = toks[i++] ?? fail('unexpected end');
      if (!/^\d+$/.test(e)) fail(`'^' needs an integer exponent, got '${e}'`);
      x = { op: '^', a: x, b: Number(e) };
    }
    return x;
  };
  // A left-associative level of binary op over the next tighter level.
  const level = (op: '+' | '*', next: () => Node) => (): Node => {
    let x = next();
    while (toks[i] === op) {
      i++;
      x = { op, a: x, b: next() };
    }
    return x;
  };
  const product = level('*', factor);
  const sum = level('+', product);
  const x = sum();
  if (i !== toks.length) fail(`unexpected '${toks[i]}'`);
  return x;
}

export function evalExpr(node: Node, env: Record<string, number>): number {
  if (typeof node === 'number') return node;
  if (typeof node === 'string') {
    const v = env[node];
    if (v === undefined) throw new Error(`cost model: unknown name '${node}'`);
    return v;
  }
  const a = evalExpr(node.a, env), b = evalExpr(node.b, env);
  return node.op === '+' ? a + b : node.op === '*' ? a * b : a ** b;
}

const parsed = new Map<string, Node>();
export const expr = (text: string, env: Record<string, number>): number => {
  let n = parsed.get(text);
  if (n === undefined) parsed.set(text, (n = parseExpr(text)));
  return evalExpr(n, env);
};

/** The inputs and derived quantities of one step (method picks `cands`). */
export function environment(model: CostModel, method: PlanMethod, inputs: Record<string, number>):
  Record<string, number> {
  const env: Record<string, number> = {};
  for (const name of model.inputs) {
    const v = inputs[name];
    if (v === undefined || !Number.isFinite(v)) throw new Error(`cost model: input ${name} is missing`);
    env[name] = v;
  }
  for (const [name, e] of model.derived) env[name] = expr(e, env);
  env.cands = expr(model.candidates[method], env);
  return env;
}

/** Σ coefficient × expression over terms. */
export const sumTerms = (terms: Term[], coefs: Record<string, number>, env: Record<string, number>): number =>
  terms.reduce((s, t) => s + (coefs[t.coef] ?? 0) * expr(t.expr, env), 0);
