// IR → IR passes that every target gets: unrolling of constant loops and constant folding.
import { type Expr, type Kernel, type Stmt, mapExpr, mapStmtExprs, stmtExprs } from './ir.js';

/** Expand `unroll` loops: the loop variable becomes a constant; names declared inside get a _j suffix. */
export function unrollLoops(body: readonly Stmt[]): Stmt[] {
  const out: Stmt[] = [];
  for (const s of body) {
    if (s.k !== 'for') {
      out.push(s);
      continue;
    }
    const inner = unrollLoops(s.body);
    if (!s.unroll) {
      out.push({ ...s, body: inner });
      continue;
    }
    if (s.start.op !== 'const' || s.end.op !== 'const') throw new Error(`unroll of ${s.v}: bounds are not constant`);
    for (let j = s.start.v; j < s.end.v; j += s.step) {
      const renames = new Map<string, string>();
      const declared = (st: Stmt) => {
        if (st.k === 'let' || st.k === 'var') renames.set(st.name, `${st.name}_${j}`);
        if (st.k === 'atomicAdd' && st.old) renames.set(st.old, `${st.old}_${j}`);
        if (st.k === 'for') st.body.forEach(declared);
      };
      inner.forEach(declared);
      const sub = (e: Expr): Expr => {
        if (e.op !== 'ref') return e;
        if (e.name === s.v) return { op: 'const', t: 'i32', s: 'uniform', v: j };
        const r = renames.get(e.name);
        return r ? { ...e, name: r } : e;
      };
      const rename = (st: Stmt): Stmt => {
        // A loop's body is renamed once, below (mapStmtExprs would also walk it).
        const m =
          st.k === 'for' ? { ...st, start: mapExpr(st.start, sub), end: mapExpr(st.end, sub) } : mapStmtExprs(st, sub);
        if ((m.k === 'let' || m.k === 'var' || m.k === 'assign') && renames.has(m.name))
          return { ...m, name: renames.get(m.name)! } as Stmt;
        if (m.k === 'for') return { ...m, body: m.body.map(rename) };
        if (m.k === 'atomicAdd' && m.old && renames.has(m.old)) return { ...m, old: renames.get(m.old)! };
        return m;
      };
      out.push(...inner.map(rename));
    }
  }
  return out;
}

const isConst = (e: Expr): e is Expr & { op: 'const' } => e.op === 'const';

/** A binary op on constants with the IR's semantics (i32 / u32 wrap; f32 in float64); undefined if not foldable. */
export function evalBin(fn: string, a: number, b: number, t: string): number | undefined {
  const i = (x: number) => (t === 'u32' ? x >>> 0 : x | 0);
  // f32 constants fold in float64 (the CPU executor's precision); emitters round when they print them.
  const f = (x: number) => (t === 'f32' || t === 'bool' ? x : i(x));
  switch (fn) {
    case 'add': return f(a + b);
    case 'sub': return f(a - b);
    case 'mul': return t === 'f32' ? a * b : i(Math.imul(a, b));
    case 'div': return t === 'f32' ? a / b : b === 0 ? undefined : i(Math.trunc(a / b));
    case 'pow': return t === 'f32' ? a ** b : undefined;
    case 'min': return Math.min(a, b);
    case 'max': return Math.max(a, b);
    case 'eq': return +(a === b);
    case 'ne': return +(a !== b);
    case 'lt': return +(a < b);
    case 'le': return +(a <= b);
    case 'gt': return +(a > b);
    case 'ge': return +(a >= b);
    case 'bitxor': return i(a ^ b);
    case 'bitand': return i(a & b);
    case 'bitor': return i(a | b);
    case 'mulhi': return Number((BigInt(a >>> 0) * BigInt(b >>> 0)) >> 32n);
    case 'shl': return b >= 0 && b < 32 ? i(a << b) : undefined;
    case 'shr': return b >= 0 && b < 32 ? (t === 'u32' ? (a >>> 0) >>> b : i(a >> b)) : undefined;
    case 'and': return +(!!a && !!b);
    case 'or': return +(!!a || !!b);
    default: return undefined;
  }
}

/** Fold constant sub-expressions and simplify boolean identities (mask && true → mask). */
export function foldExpr(e: Expr): Expr {
  return mapExpr(e, foldNode);
}

/** One node of foldExpr, its operands already folded. */
function foldNode(x: Expr): Expr {
  if (x.op === 'bin') {
    if (isConst(x.a) && isConst(x.b)) {
      const v = evalBin(x.fn, x.a.v, x.b.v, x.a.t);
      if (v !== undefined && Number.isFinite(v)) return { op: 'const', t: x.t, s: 'uniform', v };
    }
    const id = (c: Expr, other: Expr) => {
      if (!isConst(c)) return undefined;
      if (x.fn === 'and') return c.v ? other : c;
      if (x.fn === 'or') return c.v ? c : other;
      if (x.fn === 'add' && c.v === 0 && x.t !== 'f32') return other;
      if (x.fn === 'mul' && c.v === 1) return other;
      return undefined;
    };
    const r = id(x.a, x.b) ?? id(x.b, x.a);
    if (r && r.s === x.s) return r;
    if (r && r.op === 'const') return { ...r, s: 'uniform' };
    if (r) return r;
  }
  if (x.op === 'select' && isConst(x.c)) return x.c.v ? x.a : x.b;
  if (x.op === 'load' && x.mask && isConst(x.mask) && x.mask.v) return { ...x, mask: undefined };
  if (x.op === 'cast' && isConst(x.a)) {
    const v = x.t === 'f32' ? x.a.v : x.t === 'u32' ? x.a.v >>> 0 : Math.trunc(x.a.v) | 0;
    return { op: 'const', t: x.t, s: 'uniform', v };
  }
  return x;
}

/** Fold every expression of every statement; mapStmtExprs walks loop bodies and folds bottom-up. */
export function foldConstants(body: readonly Stmt[]): Stmt[] {
  return body.map((s) => mapStmtExprs(s, foldNode));
}

/** The names an expression reads, with repeats (the operands of mapChildren, without rebuilding). */
function refsOf(e: Expr, out: string[]): void {
  switch (e.op) {
    case 'ref':
      out.push(e.name);
      return;
    case 'bin':
    case 'mm':
      refsOf(e.a, out);
      refsOf(e.b, out);
      return;
    case 'un':
    case 'cast':
    case 'reduce':
      refsOf(e.a, out);
      return;
    case 'select':
      refsOf(e.c, out);
      refsOf(e.a, out);
      refsOf(e.b, out);
      return;
    case 'load':
      refsOf(e.index, out);
      if (e.mask) refsOf(e.mask, out);
      return;
    default:
      return;
  }
}

/**
 * Drop lets and vars (with their assignments) that nothing reads; loads have no side effects. A name's
 * reads are counted once; dropping a statement releases its reads, which may leave more names unread.
 */
export function eliminateDeadCode(body: readonly Stmt[]): Stmt[] {
  const reads = new Map<Stmt, string[]>();
  const writers = new Map<string, Stmt[]>();
  const count = new Map<string, number>();
  const visit = (st: readonly Stmt[]) =>
    st.forEach((s) => {
      const names: string[] = [];
      for (const e of stmtExprs(s)) refsOf(e, names);
      reads.set(s, names);
      for (const n of names) count.set(n, (count.get(n) ?? 0) + 1);
      if (s.k === 'let' || s.k === 'var' || s.k === 'assign') writers.set(s.name, [...(writers.get(s.name) ?? []), s]);
      if (s.k === 'for') visit(s.body);
    });
  visit(body);
  const dead = new Set<Stmt>();
  const work = [...writers.keys()].filter((n) => !count.get(n));
  while (work.length) {
    for (const s of writers.get(work.pop()!)!) {
      if (dead.has(s)) continue;
      dead.add(s);
      for (const n of reads.get(s)!) {
        const left = count.get(n)! - 1;
        count.set(n, left);
        if (left === 0 && writers.has(n)) work.push(n);
      }
    }
  }
  const prune = (st: readonly Stmt[]): Stmt[] =>
    st.flatMap((s): Stmt[] => (dead.has(s) ? [] : s.k === 'for' ? [{ ...s, body: prune(s.body) }] : [s]));
  return prune(body);
}

export function runPasses(k: Kernel): Kernel {
  return { ...k, body: eliminateDeadCode(foldConstants(unrollLoops(k.body))) };
}
