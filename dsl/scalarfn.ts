// Scalar functions (logit transforms, sampling corrections) as IR templates: an f32 expression over named
// arguments, applied by substitution and differentiated symbolically for the backward pass.
import { type Expr, mapExpr, widerScope } from '../codegen/ir.js';
import { evalBin, foldExpr } from '../codegen/passes.js';
import { Val } from './values.js';

export interface ScalarFn {
  name: string;
  args: readonly string[];
  /** The body; arguments appear as { op: 'param', name: '$arg' } placeholders. */
  body: Expr;
  /** Where it came from (file:line), for messages. */
  origin: string;
}

export const argRef = (name: string): Expr => ({ op: 'param', name: `$${name}`, t: 'f32', s: 'uniform' });

export function applyScalarFn(fn: ScalarFn, args: readonly Val<'f32'>[]): Val<'f32'> {
  if (args.length !== fn.args.length)
    throw new Error(`${fn.name} (${fn.origin}) takes ${fn.args.length} arguments, got ${args.length}`);
  const bound = new Map(fn.args.map((a, i) => [`$${a}`, args[i].e]));
  const e = mapExpr(fn.body, (x) => {
    if (x.op === 'param' && bound.has(x.name)) return bound.get(x.name)!;
    // Re-derive scopes bottom-up now that arguments carry theirs.
    if (x.op === 'bin') return { ...x, s: widerOf(x.a.s, x.b.s) };
    if (x.op === 'un' || x.op === 'cast') return { ...x, s: x.a.s };
    if (x.op === 'select') return { ...x, s: widerOf(x.c.s, widerOf(x.a.s, x.b.s)) };
    return x;
  });
  return new Val<'f32'>(e);
}

const widerOf = widerScope;

const C = (v: number): Expr => ({ op: 'const', t: 'f32', s: 'uniform', v });
const B = (fn: 'add' | 'sub' | 'mul' | 'div' | 'pow', a: Expr, b: Expr): Expr =>
  ({ op: 'bin', fn, t: 'f32', s: 'uniform', a, b });
const U = (fn: 'neg' | 'exp' | 'log' | 'tanh' | 'sqrt' | 'sigmoid', a: Expr): Expr =>
  ({ op: 'un', fn, t: 'f32', s: 'uniform', a });

/** d body / d arg, simplified by constant folding. */
export function derivative(fn: ScalarFn, arg: string): ScalarFn {
  const x = `$${arg}`;
  const d = (e: Expr): Expr => {
    switch (e.op) {
      case 'const':
        return C(0);
      case 'param':
        return C(e.name === x ? 1 : 0);
      case 'bin': {
        const [a, b, da, db] = [e.a, e.b, d(e.a), d(e.b)];
        switch (e.fn) {
          case 'add': return B('add', da, db);
          case 'sub': return B('sub', da, db);
          case 'mul': return B('add', B('mul', da, b), B('mul', a, db));
          case 'div': return B('div', B('sub', B('mul', da, b), B('mul', a, db)), B('mul', b, b));
          case 'pow':
            if (b.op === 'const') return B('mul', B('mul', C(b.v), B('pow', a, C(b.v - 1))), da);
            // d a^b = a^b · (b' · log a + b · a' / a), for a > 0
            return B('mul', e, B('add', B('mul', db, U('log', a)), B('div', B('mul', b, da), a)));
          case 'min':
          case 'max': {
            const pick: Expr = { op: 'bin', fn: e.fn === 'max' ? 'ge' : 'le', t: 'bool', s: 'uniform', a, b };
            return { op: 'select', t: 'f32', s: 'uniform', c: pick, a: da, b: db };
          }
          default:
            throw new Error(`${fn.name} (${fn.origin}): no derivative for ${e.fn}`);
        }
      }
      case 'un': {
        const [a, da] = [e.a, d(e.a)];
        switch (e.fn) {
          case 'neg': return U('neg', da);
          case 'exp': return B('mul', e, da);
          case 'log': return B('div', da, a);
          case 'log1p': return B('div', da, B('add', C(1), a));
          case 'tanh': return B('mul', B('sub', C(1), B('mul', e, e)), da);
          case 'sqrt': return B('div', da, B('mul', C(2), e));
          case 'sigmoid': return B('mul', B('mul', e, B('sub', C(1), e)), da);
          case 'abs': {
            const nonNeg: Expr = { op: 'bin', fn: 'ge', t: 'bool', s: 'uniform', a, b: C(0) };
            return B('mul', { op: 'select', t: 'f32', s: 'uniform', c: nonNeg, a: C(1), b: C(-1) }, da);
          }
          default:
            throw new Error(`${fn.name} (${fn.origin}): no derivative for ${e.fn}`);
        }
      }
      case 'select':
        return { ...e, a: d(e.a), b: d(e.b) };
      default:
        throw new Error(`${fn.name} (${fn.origin}): cannot differentiate ${e.op}`);
    }
  };
  return { name: `d_${fn.name}_d${arg}`, args: fn.args, body: foldExpr(simplify(d(fn.body))), origin: fn.origin };
}

/** Algebraic clean-up the constant folder does not do (x*0, x*1, x+0, 0-x). */
function simplify(e: Expr): Expr {
  return mapExpr(e, (x) => {
    if (x.op !== 'bin') return x;
    const z = (q: Expr) => q.op === 'const' && q.v === 0;
    const one = (q: Expr) => q.op === 'const' && q.v === 1;
    if (x.fn === 'mul' && (z(x.a) || z(x.b))) return C(0);
    if (x.fn === 'mul' && one(x.a)) return x.b;
    if (x.fn === 'mul' && one(x.b)) return x.a;
    if (x.fn === 'add' && z(x.a)) return x.b;
    if ((x.fn === 'add' || x.fn === 'sub') && z(x.b)) return x.a;
    if (x.fn === 'sub' && z(x.a)) return U('neg', x.b);
    if (x.fn === 'div' && z(x.a)) return C(0);
    return x;
  });
}

/** Evaluate a scalar function in float64 (tests, CPU helpers). */
export function evalScalarFn(fn: ScalarFn, args: readonly number[]): number {
  const env = new Map(fn.args.map((a, i) => [`$${a}`, args[i]]));
  const ev = (e: Expr): number => {
    switch (e.op) {
      case 'const': return e.v;
      case 'param': return env.get(e.name)!;
      case 'bin': {
        const v = evalBin(e.fn, ev(e.a), ev(e.b), e.a.t);
        if (v === undefined) throw new Error(`evalScalarFn: ${e.fn}`);
        return v;
      }
      case 'un': {
        const a = ev(e.a);
        switch (e.fn) {
          case 'neg': return -a;
          case 'exp': return Math.exp(a);
          case 'log': return Math.log(a);
          case 'log1p': return Math.log1p(a);
          case 'tanh': return Math.tanh(a);
          case 'sqrt': return Math.sqrt(a);
          case 'abs': return Math.abs(a);
          case 'sigmoid': return 1 / (1 + Math.exp(-a));
          case 'not': return +!a;
        }
        throw new Error('unreachable');
      }
      case 'select': return ev(e.c) ? ev(e.a) : ev(e.b);
      default: throw new Error(`evalScalarFn: ${e.op}`);
    }
  };
  return ev(fn.body);
}
