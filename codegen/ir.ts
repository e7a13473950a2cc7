// The IR every ccekit kernel is made of. The DSL builds it, the verifier checks it, the passes and the one
// lowering (lower.ts) rewrite it, and the target emitters print the lowered form.
//
// Execution model ("row-tiled kernels"): a kernel runs as a grid of programs; each program owns
// `schedule.rows` consecutive rows of the row dimension. Every value has a *scope*:
//   uniform — the same for the whole program (parameters, loop counters, constants);
//   row     — one value per row slot of the program (a row index, a target id, a logit);
//   vec     — one value per row slot and per element d of the vector dimension (an embedding row).
// Control flow is uniform (loop bounds are uniform); per-row and per-element decisions are masks and
// selects, so the same program maps to SIMT targets (CUDA, WGSL: lanes of a row slot share the vector)
// and to tile targets (Triton: a row is a [BLOCK_R] tensor, a vec a [BLOCK_R, BLOCK_D] tensor).
//
// Tile kernels (candidates shared by the rows of a program) add a candidate axis c of `kernel.cands`
// entries, the same for every row of the program:
//   cand  — one value per candidate of the tile (an item id, a mask);
//   tile  — one value per row slot and candidate (a logit, a probability): [rows, cands];
//   cvec  — one value per candidate and element d (a gathered item row): [cands, D];
//   tvec  — one value per row slot, candidate and element d (rows gathered per row: per-row candidates).
// The algorithm never fixes the tile: a candidate loop (`for` with `cands`) steps by the tile, which the
// lowering's sizing pass (codegen/candidates.ts) sets from the schedule (kernel.cands) before anything else.
// A scope is a set of axes (r, c, d); operands broadcast to the union of their axes, which may not hold all
// three — contractions (`mm`) consume the third. Tile targets print these as 2-D tensors and `mm` as a
// tensor-core dot; the other targets run the `untile` pass first (codegen/untile.ts), which unrolls the
// candidate axis into `cands` row / vec values.

export type StorageDType = 'f32' | 'f16' | 'bf16' | 'i32' | 'u32';
export type ValueType = 'f32' | 'i32' | 'u32' | 'bool';
export type Scope = 'uniform' | 'row' | 'vec' | 'cand' | 'tile' | 'cvec' | 'tvec';

const AXES: Record<Scope, string> = {
  uniform: '', row: 'r', vec: 'rd', cand: 'c', tile: 'rc', cvec: 'cd', tvec: 'rcd',
};
const BY_AXES = new Map(Object.entries(AXES).map(([s, a]) => [a, s as Scope]));
export const TILE_SCOPES: ReadonlySet<Scope> = new Set(['cand', 'tile', 'cvec', 'tvec']);
/** The scope left when the axis `axis` of a scope-`s` value is reduced away (undefined: `s` has no such axis). */
export function withoutAxis(s: Scope, axis: 'c' | 'd'): Scope | undefined {
  return AXES[s].includes(axis) ? BY_AXES.get(AXES[s].replace(axis, '')) : undefined;
}

export class ScopeError extends Error {}

/** Whether a value of scope `inner` can be used where `outer` is expected (its axes are a subset). */
export function scopeWithin(inner: Scope, outer: Scope): boolean {
  return [...AXES[inner]].every((a) => AXES[outer].includes(a));
}
/** The scope of an operation on operands of scopes a and b: the union of their axes. */
export function widerScope(a: Scope, b: Scope): Scope {
  const axes = ['r', 'c', 'd'].filter((x) => AXES[a].includes(x) || AXES[b].includes(x)).join('');
  const s = BY_AXES.get(axes);
  if (!s)
    throw new ScopeError(
      `a ${a} value and a ${b} value span rows, candidates and elements at once; contract one axis with mm()`,
    );
  return s;
}

/** Register type a storage dtype loads into: half and bfloat widen to f32 (accumulate in fp32). */
export function valueTypeOf(d: StorageDType): Exclude<ValueType, 'bool'> {
  return d === 'f16' || d === 'bf16' || d === 'f32' ? 'f32' : d;
}
export function bytesOf(d: StorageDType): number {
  return d === 'f16' || d === 'bf16' ? 2 : 4;
}

export type BinFn =
  | 'add' | 'sub' | 'mul' | 'div' | 'min' | 'max' | 'pow'
  | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge'
  | 'and' | 'or' | 'bitand' | 'bitor' | 'bitxor' | 'shl' | 'shr' | 'mod'
  | 'mulhi'; // high 32 bits of the 64-bit product of two u32 values
export type UnFn = 'neg' | 'exp' | 'log' | 'tanh' | 'sqrt' | 'abs' | 'not' | 'log1p' | 'sigmoid';

export const COMPARE_FNS: ReadonlySet<BinFn> = new Set(['eq', 'ne', 'lt', 'le', 'gt', 'ge']);
export const LOGIC_FNS: ReadonlySet<BinFn> = new Set(['and', 'or']);
export const INT_FNS: ReadonlySet<BinFn> = new Set(['bitand', 'bitor', 'bitxor', 'shl', 'shr', 'mod', 'mulhi']);
export const FLOAT_UN: ReadonlySet<UnFn> = new Set(['exp', 'log', 'tanh', 'sqrt', 'log1p', 'sigmoid']);

interface Typed {
  t: ValueType;
  s: Scope;
}
export type Expr = Typed &
  (
    | { op: 'const'; v: number }
    | { op: 'param'; name: string }
    | { op: 'ref'; name: string }
    | { op: 'row' } // global row index of this row slot (i32)
    | { op: 'rowValid' } // row < rows dimension (bool)
    | { op: 'group' } // index of the group of `groupRows` rows this program's rows belong to (i32, uniform)
    | { op: 'cidx' } // candidate index within the tile, 0..cands−1 (i32, cand scope)
    | { op: 'd' } // element index along the vector dimension (i32, vec or cvec scope)
    | { op: 'bin'; fn: BinFn; a: Expr; b: Expr }
    | { op: 'un'; fn: UnFn; a: Expr }
    | { op: 'select'; c: Expr; a: Expr; b: Expr }
    | { op: 'cast'; a: Expr }
    | { op: 'load'; tensor: string; index: Expr; mask?: Expr }
    // over d < vector length (vec → row, tvec → tile) or candidates (tile → row, tvec → vec)
    | { op: 'reduce'; fn: 'sum' | 'max'; a: Expr; axis?: 'd' | 'c' }
    | MatMul
  );

/**
 * Tile contraction (a tensor-core dot on tile targets):
 *   vec [r,d] · cvec [c,d] → tile [r,c] (over d);  tile [r,c] · cvec [c,d] → vec [r,d] (over c);
 *   tile [r,c] · vec [r,d] → cvec [c,d] (over the program's rows: only as the value of an atomicAdd, where
 *   the sum over rows is the atomic accumulation itself).
 * `prec` is the storage precision the products may be taken in; an operand not marked exact (not a plain
 * 16-bit load) is split into high and low parts of that precision, so the result stays fp32-accurate.
 */
export interface MatMul {
  op: 'mm';
  a: Expr;
  b: Expr;
  prec: 'f32' | 'f16' | 'bf16';
  exact: readonly [boolean, boolean];
}

/** The scope of mm(a, b), or undefined when the pair is not a contraction. */
export function mmScope(a: Scope, b: Scope): Scope | undefined {
  if (a === 'vec' && b === 'cvec') return 'tile';
  if (a === 'tile' && b === 'cvec') return 'vec';
  if (a === 'tile' && b === 'vec') return 'cvec';
  return undefined;
}

export type Stmt =
  | { k: 'let'; name: string; value: Expr }
  | { k: 'var'; name: string; t: ValueType; s: Scope; init: Expr }
  | { k: 'assign'; name: string; value: Expr }
  | { k: 'store'; tensor: string; index: Expr; value: Expr; mask?: Expr }
  /**
   * Add into an accumulator: f32 (float atomics, or int64 fixed point) or i32 (an integer counter). On an i32
   * counter, `old` names the value before the add (0 where the mask is off): a slot index handed out by the
   * counter. SIMT targets run a row's statements on each of its lanes, so counters need schedule.lanes = 1.
   */
  | { k: 'atomicAdd'; tensor: string; index: Expr; value: Expr; mask?: Expr; old?: string }
  /** `cands`: a candidate loop; it steps by the kernel's tile (`cands`), 0 until the sizing pass sets it. */
  | { k: 'for'; v: string; start: Expr; end: Expr; step: number; unroll: boolean; body: Stmt[]; cands?: true }
  | { k: 'comment'; text: string };

export type Access = 'read' | 'write' | 'atomic';
export interface TensorParam {
  kind: 'tensor';
  name: string;
  dtype: StorageDType;
  shape: readonly string[];
  access: Access;
  /**
   * Accumulators only: deterministic fixed point. Each element is a two's-complement int64 in units of
   * 1/scale (scalar parameter `<name>_scale`); an add rounds v·scale to an integer and adds it with integer
   * atomics, so the sum is the same whatever the order of the adds (no float atomics).
   */
  fixed?: boolean;
  doc?: string;
}
export interface ScalarParam {
  kind: 'scalar';
  name: string;
  type: 'f32' | 'i32' | 'u32';
  doc?: string;
}
export type Param = TensorParam | ScalarParam;

export interface Kernel {
  name: string;
  doc: string;
  /** Symbolic sizes; each is an i32 uniform parameter at run time (shapes never enter the pipeline key). */
  dims: readonly string[];
  /** The dimension whose entries are distributed over programs (rows). */
  rowDim: string;
  /** The dimension vec-scope values run along. */
  vecDim: string;
  /** Kernels with a candidate axis (cand / tile / cvec / tvec scopes, candidate loops). */
  candAxis?: true;
  /** The candidate tile, set by the lowering's sizing pass from the schedule (never by the algorithm). */
  cands?: number;
  /** Rows per group (`group` is row / groupRows); a program's rows lie in one group: schedule.rows divides it. */
  groupRows?: number;
  params: readonly Param[];
  body: Stmt[];
}

export function tensorParam(k: Kernel, name: string): TensorParam | undefined {
  const p = k.params.find((q) => q.name === name);
  return p && p.kind === 'tensor' ? p : undefined;
}

/** Visit every expression (pre-order) in a statement list. */
export function forEachExpr(body: readonly Stmt[], fn: (e: Expr, s: Stmt) => void): void {
  const visit = (e: Expr, s: Stmt): void => {
    fn(e, s);
    for (const c of children(e)) visit(c, s);
  };
  for (const s of body) {
    for (const e of stmtExprs(s)) visit(e, s);
    if (s.k === 'for') forEachExpr(s.body, fn);
  }
}

export function children(e: Expr): Expr[] {
  switch (e.op) {
    case 'bin':
      return [e.a, e.b];
    case 'un':
    case 'cast':
    case 'reduce':
      return [e.a];
    case 'select':
      return [e.c, e.a, e.b];
    case 'load':
      return e.mask ? [e.index, e.mask] : [e.index];
    case 'mm':
      return [e.a, e.b];
    default:
      return [];
  }
}

export function stmtExprs(s: Stmt): Expr[] {
  switch (s.k) {
    case 'let':
    case 'assign':
      return [s.value];
    case 'var':
      return [s.init];
    case 'store':
    case 'atomicAdd':
      return s.mask ? [s.index, s.value, s.mask] : [s.index, s.value];
    case 'for':
      return [s.start, s.end];
    case 'comment':
      return [];
  }
}

/** Rebuild an expression bottom-up. */
export function mapExpr(e: Expr, fn: (e: Expr) => Expr): Expr {
  return fn(mapChildren(e, (x) => mapExpr(x, fn)));
}

/** The expression with its direct operands replaced by f(operand); `e` itself when none changed. */
export function mapChildren(e: Expr, f: (x: Expr) => Expr): Expr {
  switch (e.op) {
    case 'bin':
    case 'mm': {
      const a = f(e.a);
      const b = f(e.b);
      return a === e.a && b === e.b ? e : { ...e, a, b };
    }
    case 'un':
    case 'cast':
    case 'reduce': {
      const a = f(e.a);
      return a === e.a ? e : { ...e, a };
    }
    case 'select': {
      const c = f(e.c);
      const a = f(e.a);
      const b = f(e.b);
      return c === e.c && a === e.a && b === e.b ? e : { ...e, c, a, b };
    }
    case 'load': {
      const index = f(e.index);
      const mask = e.mask && f(e.mask);
      return index === e.index && mask === e.mask ? e : { ...e, index, mask };
    }
    default:
      return e;
  }
}

export function mapStmtExprs(s: Stmt, fn: (e: Expr) => Expr): Stmt {
  const m = (e: Expr) => mapExpr(e, fn);
  switch (s.k) {
    case 'let':
    case 'assign':
      return { ...s, value: m(s.value) };
    case 'var':
      return { ...s, init: m(s.init) };
    case 'store':
    case 'atomicAdd':
      return { ...s, index: m(s.index), value: m(s.value), mask: s.mask && m(s.mask) };
    case 'for':
      return { ...s, start: m(s.start), end: m(s.end), body: s.body.map((b) => mapStmtExprs(b, fn)) };
    case 'comment':
      return s;
  }
}

export function exprToString(e: Expr): string {
  switch (e.op) {
    case 'const':
      return String(e.v);
    case 'param':
    case 'ref':
      return e.name;
    case 'row':
    case 'rowValid':
    case 'group':
    case 'cidx':
    case 'd':
      return e.op;
    case 'bin':
      return `${e.fn}(${exprToString(e.a)}, ${exprToString(e.b)})`;
    case 'un':
      return `${e.fn}(${exprToString(e.a)})`;
    case 'select':
      return `select(${exprToString(e.c)}, ${exprToString(e.a)}, ${exprToString(e.b)})`;
    case 'cast':
      return `${e.t}(${exprToString(e.a)})`;
    case 'load':
      return `${e.tensor}[${exprToString(e.index)}${e.mask ? ' if ' + exprToString(e.mask) : ''}]`;
    case 'reduce':
      return `reduce_${e.fn}${e.axis === 'c' ? '_c' : ''}(${exprToString(e.a)})`;
    case 'mm':
      return `mm(${exprToString(e.a)}, ${exprToString(e.b)})`;
  }
}
