// The candidate axis in the lowering. The algorithm (dsl/) writes its candidate loops without a tile; here the
// schedule sizes them (sizeCandidates), and around the untile pass two rewrites give back what a hand-unrolled
// loop would share: slot arithmetic of an aligned tile (alignSlots: (kk + cidx) >> s is (kk >> s) + (cidx >> s)
// when the tile and 2^s divide one another) and common subexpressions (shareLets: the Philox call of four
// uniform slots is computed once, not once per slot).
import { type Expr, type Kernel, type Stmt, mapExpr, mapStmtExprs } from './ir.js';

/** The kernel with its candidate tile set to `cands` (the schedule's) and its candidate loops stepping by it. */
export function sizeCandidates(k: Kernel, cands: number): Kernel {
  if (!k.candAxis) return k;
  if (!Number.isInteger(cands) || cands < 1) throw new Error(`${k.name}: candidate tile ${cands} is not positive`);
  const size = (body: readonly Stmt[]): Stmt[] =>
    body.map((s) => (s.k === 'for' ? { ...s, step: s.cands ? cands : s.step, body: size(s.body) } : s));
  return { ...k, cands, body: size(k.body) };
}

const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;
const cidx: Expr = { op: 'cidx', t: 'i32', s: 'cand' };

/**
 * Rewrite slot arithmetic in sized candidate loops (run after sizeCandidates, before untile): with kk the loop
 * variable (a multiple of the tile S, from 0) and the slot kk + cidx (cidx < S), (kk + cidx) >> s is
 * (kk >> s) + (cidx >> s), and (kk + cidx) & (2^s − 1) is cidx & (2^s − 1) when 2^s divides S, or
 * (kk & (2^s − 1)) + cidx when S divides 2^s (no carry crosses bit s). Untiled, the slots of one tile then
 * share one counter (and so one Philox call).
 */
export function alignSlots(k: Kernel): Kernel {
  if (!k.cands) return k;
  const S = k.cands;
  if (!isPow2(S)) return k;
  const walk = (st: readonly Stmt[], loops: Set<string>, defs: Map<string, Expr>): Stmt[] =>
    st.map((s) => {
      if (s.k === 'for') {
        const inner = new Set(loops);
        if (s.cands && s.start.op === 'const' && s.start.v === 0) inner.add(s.v);
        return { ...s, body: walk(s.body, inner, new Map(defs)) };
      }
      const through = (e: Expr): Expr => {
        if (e.op === 'ref' && defs.has(e.name)) return through(defs.get(e.name)!);
        if (e.op === 'cast' && e.t !== 'f32' && e.a.t !== 'f32') return through(e.a);
        return e;
      };
      /** The loop variable kk when e is the slot kk + cidx (through lets and integer casts). */
      const slotOf = (e: Expr): string | undefined => {
        const x = through(e);
        if (x.op !== 'bin' || x.fn !== 'add') return undefined;
        const [a, b] = [through(x.a), through(x.b)];
        if (a.op === 'ref' && loops.has(a.name) && b.op === 'cidx') return a.name;
        if (b.op === 'ref' && loops.has(b.name) && a.op === 'cidx') return b.name;
        return undefined;
      };
      const rewrite = (x: Expr): Expr => {
        if (x.op !== 'bin' || (x.fn !== 'shr' && x.fn !== 'bitand') || x.b.op !== 'const') return x;
        const v = slotOf(x.a);
        const P = x.fn === 'shr' ? 2 ** x.b.v : x.b.v + 1;
        if (v === undefined || !isPow2(P) || !(S % P === 0 || P % S === 0)) return x;
        const as = (e: Expr): Expr => (x.t === 'i32' ? e : { op: 'cast', t: x.t, s: e.s, a: e });
        const kk = as({ op: 'ref', name: v, t: 'i32', s: 'uniform' });
        const c = as(cidx);
        const add = (a: Expr, b: Expr): Expr => ({ op: 'bin', fn: 'add', t: x.t, s: x.s, a, b });
        if (x.fn === 'bitand')
          return S % P === 0 ? { ...x, a: c } : add({ ...x, a: kk, s: 'uniform' }, c);
        return add({ ...x, a: kk, s: 'uniform' }, { ...x, a: c, s: 'cand' });
      };
      const m = loops.size ? mapStmtExprs(s, rewrite) : s;
      if (m.k === 'let') defs.set(m.name, m.value);
      return m;
    });
  return { ...k, body: walk(k.body, new Set(), new Map()) };
}

/**
 * Merge lets of equal values: a let whose value (after earlier merges) equals an earlier let's, in its block or
 * an enclosing one, is dropped and its readers read the earlier name. Only values that read nothing mutable
 * qualify (lets, loop variables, parameters, loads of read-only tensors: never a var).
 */
export function shareLets(body: readonly Stmt[]): Stmt[] {
  const mutable = new Set<string>();
  const collect = (st: readonly Stmt[]) =>
    st.forEach((s) => {
      if (s.k === 'var') mutable.add(s.name);
      if (s.k === 'atomicAdd' && s.old) mutable.add(s.old);
      if (s.k === 'for') collect(s.body);
    });
  collect(body);
  const rename = new Map<string, string>();
  const sub = (e: Expr): Expr => (e.op === 'ref' && rename.has(e.name) ? { ...e, name: rename.get(e.name)! } : e);
  const pure = (e: Expr): boolean => {
    let ok = true;
    mapExpr(e, (x) => {
      if (x.op === 'ref' && mutable.has(x.name)) ok = false;
      return x;
    });
    return ok;
  };
  const walk = (st: readonly Stmt[], seen: Map<string, string>): Stmt[] =>
    st.flatMap((s): Stmt[] => {
      const m = mapStmtExprs(s.k === 'for' ? { ...s, body: [] } : s, sub);
      if (m.k === 'for') return [{ ...m, body: walk(s.k === 'for' ? s.body : [], new Map(seen)) }];
      if (m.k !== 'let' || !pure(m.value)) return [m];
      const key = JSON.stringify(m.value);
      const hit = seen.get(key);
      if (hit === undefined) {
        seen.set(key, m.name);
        return [m];
      }
      rename.set(m.name, hit);
      return [];
    });
  return walk(body, new Map());
}
