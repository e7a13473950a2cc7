// The untile pass: a sized kernel with a candidate axis (`cands` entries, see ir.ts) rewritten as a plain row kernel
// for targets that do not lower tiles (CPU executor, CUDA and WGSL SIMT printers) and for per-row candidates (tvec
// values) on every target. The candidate axis is unrolled: every cand / tile / cvec / tvec value x becomes `cands`
// values x__0.. of scope uniform / row / vec / vec, a contraction over d becomes `cands` per-row dot products, a
// contraction or reduction over the candidates a sum (max) of the copies, and an atomicAdd of a contraction over rows
// becomes `cands` per-row atomic adds (the atomics do the sum over rows). The candidates stay shared by the rows of a
// program: SIMT targets gather each candidate row once per program from cache rather than once per row from memory.
import { type Expr, type Kernel, type Scope, type Stmt, TILE_SCOPES, mapChildren } from './ir.js';

const DOWN: Record<Scope, Scope> = {
  uniform: 'uniform',
  row: 'row',
  vec: 'vec',
  cand: 'uniform',
  tile: 'row',
  cvec: 'vec',
  tvec: 'vec',
};

const mul = (a: Expr, b: Expr, s: Scope): Expr => ({ op: 'bin', fn: 'mul', t: 'f32', s, a, b });
const add = (fn: 'sum' | 'max', a: Expr, b: Expr, s: Scope): Expr => ({
  op: 'bin',
  fn: fn === 'sum' ? 'add' : 'max',
  t: 'f32',
  s,
  a,
  b,
});
const copyName = (name: string, j: number) => `${name}__${j}`;

export function untile(k: Kernel): Kernel {
  const C = k.cands;
  if (C === undefined) return k;
  const copies = (f: (j: number) => Expr): Expr[] => Array.from({ length: C }, (_, j) => f(j));
  const fold = (fn: 'sum' | 'max', xs: Expr[], s: Scope) => xs.reduce((acc, x) => add(fn, acc, x, s));

  /** A value of non-tile scope whose operands may contain reductions / contractions of tile values. */
  const flat = (e: Expr): Expr => {
    if (TILE_SCOPES.has(e.s)) throw new Error(`${k.name}: untile: a ${e.s} value where one value per row is needed`);
    if (e.op === 'reduce' && e.axis === 'c') return fold(e.fn, copies((j) => at(e.a, j)), e.s);
    // tile·cvec → vec
    if (e.op === 'mm') return fold('sum', copies((j) => mul(at(e.a, j), at(e.b, j), 'vec')), 'vec');
    return mapChildren(e, flat);
  };
  /** Copy j of a value (the identity on values without a candidate axis). */
  const at = (e: Expr, j: number): Expr => {
    if (!TILE_SCOPES.has(e.s)) return flat(e);
    const s = DOWN[e.s];
    switch (e.op) {
      case 'ref':
        return { ...e, name: copyName(e.name, j), s };
      case 'cidx':
        return { op: 'const', t: 'i32', s: 'uniform', v: j };
      case 'd':
        return { ...e, s: 'vec' };
      case 'mm':
        // vec·cvec → tile: the dot of the row with candidate j; tile·vec → cvec: row's share of candidate j.
        return e.s === 'tile'
          ? { op: 'reduce', fn: 'sum', t: 'f32', s: 'row', a: mul(e.a, at(e.b, j), 'vec') }
          : mul(at(e.a, j), e.b, 'vec');
      default:
        return { ...mapChildren(e, (x) => at(x, j)), s };
    }
  };
  const isTile = (...es: (Expr | undefined)[]) => es.some((e) => e && TILE_SCOPES.has(e.s));

  const block = (body: readonly Stmt[]): Stmt[] =>
    body.flatMap((s): Stmt[] => {
      switch (s.k) {
        case 'let':
          return isTile(s.value)
            ? copies((j) => at(s.value, j)).map((v, j) => ({ k: 'let', name: copyName(s.name, j), value: v }))
            : [{ ...s, value: flat(s.value) }];
        case 'var':
          return TILE_SCOPES.has(s.s)
            ? copies((j) => at(s.init, j)).map(
                (v, j) => ({ k: 'var', name: copyName(s.name, j), t: s.t, s: DOWN[s.s], init: v }) as Stmt,
              )
            : [{ ...s, init: flat(s.init) }];
        case 'assign':
          return isTile(s.value) || tileVars.has(s.name)
            ? copies((j) => at(s.value, j)).map((v, j) => ({ k: 'assign', name: copyName(s.name, j), value: v }))
            : [{ ...s, value: flat(s.value) }];
        case 'store':
        case 'atomicAdd':
          if (!isTile(s.index, s.value, s.mask))
            return [{ ...s, index: flat(s.index), value: flat(s.value), mask: s.mask && flat(s.mask) }];
          return Array.from({ length: C }, (_, j) => ({
            ...s,
            index: at(s.index, j),
            value: at(s.value, j),
            mask: s.mask && at(s.mask, j),
          }));
        case 'for':
          return [{ ...s, body: block(s.body) }];
        case 'comment':
          return [s];
      }
    });
  const tileVars = new Set<string>();
  const collect = (body: readonly Stmt[]) =>
    body.forEach((s) =>
      s.k === 'var' && TILE_SCOPES.has(s.s) ? tileVars.add(s.name) : s.k === 'for' && collect(s.body),
    );
  collect(k.body);
  const plain = (body: readonly Stmt[]): Stmt[] =>
    body.map((s) => (s.k === 'for' ? { ...s, cands: undefined, body: plain(s.body) } : s));
  return { ...k, cands: undefined, candAxis: undefined, body: plain(block(k.body)) };
}
