// IR verifier: every error names the kernel, the op and the reason.
import {
  COMPARE_FNS,
  type Expr,
  FLOAT_UN,
  INT_FNS,
  type Kernel,
  LOGIC_FNS,
  type Scope,
  type Stmt,
  type ValueType,
  TILE_SCOPES,
  exprToString,
  mmScope,
  withoutAxis,
  scopeWithin,
  valueTypeOf,
  widerScope,
} from './ir.js';

export class VerifyError extends Error {
  constructor(
    readonly kernel: string,
    readonly op: string,
    readonly reason: string,
  ) {
    super(`${kernel}: ${op}: ${reason}`);
  }
}

interface Sym {
  t: ValueType;
  s: Scope;
  mutable: boolean;
}

export function verifyKernel(k: Kernel): void {
  const fail = (op: string, reason: string): never => {
    throw new VerifyError(k.name, op, reason);
  };
  const scalars = new Map<string, ValueType>();
  const tensors = new Map<string, (typeof k.params)[number] & { kind: 'tensor' }>();
  for (const d of k.dims) scalars.set(d, 'i32');
  for (const p of k.params) {
    if (p.kind === 'scalar') scalars.set(p.name, p.type);
    else {
      for (const d of p.shape)
        if (!k.dims.includes(d)) fail(`tensor ${p.name}`, `shape uses undeclared dimension '${d}'`);
      tensors.set(p.name, p);
    }
  }
  if (!k.dims.includes(k.rowDim)) fail('kernel', `row dimension '${k.rowDim}' is not declared`);
  if (k.cands !== undefined && !(Number.isInteger(k.cands) && k.cands >= 1))
    fail('kernel', `cands = ${k.cands} must be a positive integer`);
  if (k.cands !== undefined && !k.candAxis) fail('kernel', `cands = ${k.cands} in a kernel without a candidate axis`);

  let mmOverRowsOk = false;
  const hasRowAxis = (e: Expr) => e.s === 'row' || e.s === 'vec' || e.s === 'tile' || e.s === 'tvec';
  const union = (a: Scope, b: Scope, here: string): Scope => {
    try {
      return widerScope(a, b);
    } catch (err) {
      return fail(here, (err as Error).message);
    }
  };
  const checkExpr = (e: Expr, env: Map<string, Sym>, where: string): void => {
    const here = `${where} (${exprToString(e).slice(0, 80)})`;
    switch (e.op) {
      case 'const':
        if (!Number.isFinite(e.v)) fail(here, `constant ${e.v} is not finite`);
        if (e.s !== 'uniform') fail(here, 'constants are uniform');
        return;
      case 'param': {
        const t = scalars.get(e.name);
        if (!t) fail(here, `unknown parameter '${e.name}'`);
        if (t !== e.t) fail(here, `parameter '${e.name}' is ${t}, used as ${e.t}`);
        return;
      }
      case 'ref': {
        const v = env.get(e.name);
        if (!v) fail(here, `'${e.name}' is used before it is declared`);
        if (v!.t !== e.t || v!.s !== e.s) fail(here, `'${e.name}' is ${v!.s} ${v!.t}, used as ${e.s} ${e.t}`);
        return;
      }
      case 'row':
      case 'd':
      case 'group':
      case 'cidx':
        if (e.t !== 'i32') fail(here, `${e.op} is i32`);
        if (e.op === 'd' && e.s !== 'vec' && e.s !== 'cvec') fail(here, 'd is a vec or cvec value');
        if (e.op === 'cidx' && e.s !== 'cand') fail(here, 'cidx is a cand value');
        if (e.op === 'group' && (e.s !== 'uniform' || k.groupRows === undefined))
          fail(here, 'group is uniform, in a kernel with groupRows');
        if (TILE_SCOPES.has(e.s) && !k.candAxis) fail(here, 'a candidate-axis value in a kernel without one');
        return;
      case 'rowValid':
        return;
      case 'bin': {
        checkExpr(e.a, env, where);
        checkExpr(e.b, env, where);
        if (e.a.t !== e.b.t) fail(here, `${e.fn}: operand types differ (${e.a.t} vs ${e.b.t})`);
        if (LOGIC_FNS.has(e.fn) && e.a.t !== 'bool') fail(here, `${e.fn} needs bool operands, got ${e.a.t}`);
        if (!LOGIC_FNS.has(e.fn) && e.a.t === 'bool' && e.fn !== 'eq' && e.fn !== 'ne')
          fail(here, `${e.fn} is not defined on bool`);
        if (INT_FNS.has(e.fn) && e.a.t === 'f32') fail(here, `${e.fn} needs integer operands, got f32`);
        if (e.fn === 'mulhi' && e.a.t !== 'u32') fail(here, `mulhi needs u32 operands, got ${e.a.t}`);
        const t = COMPARE_FNS.has(e.fn) || LOGIC_FNS.has(e.fn) ? 'bool' : e.a.t;
        if (e.t !== t) fail(here, `${e.fn} yields ${t}, annotated ${e.t}`);
        if (e.s !== union(e.a.s, e.b.s, here)) fail(here, 'scope annotation is wrong');
        return;
      }
      case 'un':
        checkExpr(e.a, env, where);
        if (FLOAT_UN.has(e.fn) && e.a.t !== 'f32') fail(here, `${e.fn} needs an f32 operand, got ${e.a.t}`);
        if (e.fn === 'not' && e.a.t !== 'bool') fail(here, `not needs a bool operand`);
        return;
      case 'select':
        checkExpr(e.c, env, where);
        checkExpr(e.a, env, where);
        checkExpr(e.b, env, where);
        if (e.c.t !== 'bool') fail(here, `select condition is ${e.c.t}, not bool`);
        if (e.a.t !== e.b.t || e.t !== e.a.t) fail(here, `select branches differ (${e.a.t} vs ${e.b.t})`);
        return;
      case 'cast':
        checkExpr(e.a, env, where);
        if (e.t === 'bool') fail(here, 'cast to bool; compare instead');
        return;
      case 'load': {
        const p = tensors.get(e.tensor);
        if (!p) fail(here, `unknown tensor '${e.tensor}'`);
        if (p!.access !== 'read')
          fail(here, `load from '${e.tensor}', which is ${p!.access === 'write' ? 'an output' : 'an accumulator'}`);
        if (e.t !== valueTypeOf(p!.dtype)) fail(here, `load from ${p!.dtype} tensor '${e.tensor}' typed ${e.t}`);
        checkExpr(e.index, env, where);
        if (e.index.t !== 'i32') fail(here, `index into '${e.tensor}' is ${e.index.t}, not i32`);
        if (e.mask) {
          checkExpr(e.mask, env, where);
          if (e.mask.t !== 'bool') fail(here, `mask is ${e.mask.t}, not bool`);
        }
        return;
      }
      case 'reduce':
        checkExpr(e.a, env, where);
        if (e.axis === 'c') {
          if (e.a.s !== 'tile' && e.a.s !== 'tvec')
            fail(here, `reduce_${e.fn} over candidates needs a tile or tvec operand, got ${e.a.s}`);
        } else if (e.a.s !== 'vec' && e.a.s !== 'tvec')
          fail(here, `reduce_${e.fn} needs a vec or tvec operand, got ${e.a.s}`);
        if (e.a.t !== 'f32' || e.t !== 'f32') fail(here, `reduce_${e.fn} works on f32`);
        if (e.s !== withoutAxis(e.a.s, e.axis ?? 'd')) fail(here, 'scope annotation of the reduction is wrong');
        return;
      case 'mm': {
        checkExpr(e.a, env, where);
        checkExpr(e.b, env, where);
        const s = mmScope(e.a.s, e.b.s);
        if (!s)
          fail(here, `mm of a ${e.a.s} and a ${e.b.s} value is not a contraction (vec·cvec, tile·cvec, tile·vec)`);
        if (e.s !== s) fail(here, 'scope annotation is wrong');
        if (e.a.t !== 'f32' || e.b.t !== 'f32' || e.t !== 'f32') fail(here, 'mm works on f32');
        if (!k.candAxis) fail(here, 'mm in a kernel without a candidate axis');
        if (e.s === 'cvec' && !mmOverRowsOk)
          fail(here, 'a contraction over rows (tile·vec) may only be the value of an atomicAdd');
        return;
      }
    }
  };

  const checkAccess = (
    s: Stmt & { tensor: string; index: Expr; value: Expr; mask?: Expr },
    env: Map<string, Sym>,
    where: string,
  ) => {
    const p = tensors.get(s.tensor);
    if (!p) fail(where, `unknown tensor '${s.tensor}'`);
    const want = s.k === 'store' ? 'write' : 'atomic';
    if (p!.access !== want) fail(where, `'${s.tensor}' is not ${want === 'write' ? 'an output' : 'an accumulator'}`);
    checkExpr(s.index, env, where);
    // A contraction over rows sums the rows' contributions, which only an atomic accumulation may do, and
    // only scaled by values that are the same for every row (uniform or per candidate).
    const byRows = (e: Expr): boolean =>
      (e.op === 'mm' && e.s === 'cvec') ||
      (e.op === 'bin' &&
        e.fn === 'mul' &&
        ((byRows(e.a) && !hasRowAxis(e.b)) || (byRows(e.b) && !hasRowAxis(e.a))));
    mmOverRowsOk = s.k === 'atomicAdd' && byRows(s.value);
    checkExpr(s.value, env, where);
    mmOverRowsOk = false;
    if (s.index.t !== 'i32') fail(where, `index into '${s.tensor}' is ${s.index.t}, not i32`);
    if (s.value.t !== valueTypeOf(p!.dtype)) fail(where, `${s.value.t} value into ${p!.dtype} tensor '${s.tensor}'`);
    if (s.k === 'atomicAdd' && s.value.t !== 'f32' && !(s.value.t === 'i32' && p!.dtype === 'i32' && !p!.fixed))
      fail(where, 'atomicAdd takes f32 values (i32 into an i32 counter)');
    if (s.k === 'atomicAdd' && s.old !== undefined && p!.dtype !== 'i32')
      fail(where, `the value before the add (${s.old}) comes from i32 counters only`);
    if (s.mask) {
      checkExpr(s.mask, env, where);
      if (s.mask.t !== 'bool') fail(where, `mask is ${s.mask.t}, not bool`);
    }
    if (s.k === 'store' && p!.dtype !== 'f32' && p!.dtype !== 'i32' && p!.dtype !== 'u32')
      fail(
        where,
        `store into ${p!.dtype} tensor '${s.tensor}': outputs are f32/i32/u32 ` +
          '(packed 16-bit stores race between lanes)',
      );
  };

  const walk = (body: readonly Stmt[], env: Map<string, Sym>): void => {
    for (const s of body) {
      switch (s.k) {
        case 'let':
          checkExpr(s.value, env, `let ${s.name}`);
          if (env.has(s.name) || scalars.has(s.name)) fail(`let ${s.name}`, 'name already declared');
          env.set(s.name, { t: s.value.t, s: s.value.s, mutable: false });
          break;
        case 'var':
          checkExpr(s.init, env, `var ${s.name}`);
          if (env.has(s.name) || scalars.has(s.name)) fail(`var ${s.name}`, 'name already declared');
          if (s.init.t !== s.t) fail(`var ${s.name}`, `initial value is ${s.init.t}, variable is ${s.t}`);
          if (!scopeWithin(s.init.s, s.s)) fail(`var ${s.name}`, `a ${s.init.s} initial value in a ${s.s} variable`);
          env.set(s.name, { t: s.t, s: s.s, mutable: true });
          break;
        case 'assign': {
          const v = env.get(s.name);
          if (!v) fail(`assign ${s.name}`, 'assignment to an undeclared variable');
          if (!v!.mutable) fail(`assign ${s.name}`, 'assignment to a let (immutable)');
          checkExpr(s.value, env, `assign ${s.name}`);
          if (s.value.t !== v!.t) fail(`assign ${s.name}`, `${s.value.t} value into ${v!.t} variable`);
          if (!scopeWithin(s.value.s, v!.s)) fail(`assign ${s.name}`, `a ${s.value.s} value into a ${v!.s} variable`);
          break;
        }
        case 'store':
          checkAccess(s, env, `store ${s.tensor}`);
          break;
        case 'atomicAdd': {
          checkAccess(s, env, `atomicAdd ${s.tensor}`);
          if (s.old === undefined) break;
          const scope = [s.index, s.value, s.mask].reduce<Scope>((a, e) => (e ? widerScope(a, e.s) : a), 'uniform');
          if (scope !== 'uniform' && scope !== 'row')
            fail(`atomicAdd ${s.tensor}`, `the value before the add is one per row, but the add is ${scope}`);
          if (env.has(s.old) || scalars.has(s.old)) fail(`atomicAdd ${s.tensor}`, `name ${s.old} already declared`);
          env.set(s.old, { t: 'i32', s: scope, mutable: false });
          break;
        }
        case 'for': {
          const where = `for ${s.v}`;
          checkExpr(s.start, env, where);
          checkExpr(s.end, env, where);
          if (s.start.s !== 'uniform' || s.end.s !== 'uniform')
            fail(where, 'loop bounds must be uniform (control flow is uniform)');
          if (s.start.t !== 'i32' || s.end.t !== 'i32') fail(where, 'loop bounds must be i32');
          if (s.cands && !k.candAxis) fail(where, 'a candidate loop in a kernel without a candidate axis');
          // A candidate loop steps by the tile: 0 until the sizing pass sets kernel.cands.
          if (s.cands && s.step !== (k.cands ?? 0)) fail(where, `candidate loop step ${s.step} is not the tile`);
          if (!s.cands && (!Number.isInteger(s.step) || s.step <= 0))
            fail(where, `step ${s.step} must be a positive integer`);
          if (s.unroll && (s.start.op !== 'const' || s.end.op !== 'const'))
            fail(where, 'an unrolled loop needs constant bounds');
          if (env.has(s.v)) fail(where, 'loop variable shadows a name');
          const inner = new Map(env);
          inner.set(s.v, { t: 'i32', s: 'uniform', mutable: false });
          walk(s.body, inner);
          break;
        }
        case 'comment':
          break;
      }
    }
  };
  walk(k.body, new Map());
}
