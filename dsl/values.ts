// Typed values of the DSL. A Val<T> wraps an IR expression whose register type is T; the phantom type
// makes dtype mistakes (adding an i32 to an f32, storing a float into an index tensor, gathering with a
// float index) TypeScript errors. Scope (uniform / row / vec) is tracked at run time by the IR.
import {
  type BinFn,
  type Expr,
  type Scope,
  type StorageDType,
  type UnFn,
  type ValueType,
  COMPARE_FNS,
  mmScope,
  widerScope,
} from '../codegen/ir.js';

export type Num = 'f32' | 'i32' | 'u32';
export type ValueOf<D extends StorageDType> = D extends 'f32' | 'f16' | 'bf16'
  ? 'f32'
  : D extends 'i32'
    ? 'i32'
    : 'u32';

export class DslError extends Error {}

export class Val<T extends ValueType = ValueType> {
  /** Phantom: carries the register type for the type checker. */
  declare readonly __type: T;
  constructor(readonly e: Expr) {}
  get type(): T {
    return this.e.t as T;
  }
  get scope(): Scope {
    return this.e.s;
  }

  add<U extends Num & T>(this: Val<U>, b: Val<U> | number): Val<U> {
    return bin('add', this, b);
  }
  sub<U extends Num & T>(this: Val<U>, b: Val<U> | number): Val<U> {
    return bin('sub', this, b);
  }
  mul<U extends Num & T>(this: Val<U>, b: Val<U> | number): Val<U> {
    return bin('mul', this, b);
  }
  div<U extends Num & T>(this: Val<U>, b: Val<U> | number): Val<U> {
    return bin('div', this, b);
  }
  max<U extends Num & T>(this: Val<U>, b: Val<U> | number): Val<U> {
    return bin('max', this, b);
  }
  min<U extends Num & T>(this: Val<U>, b: Val<U> | number): Val<U> {
    return bin('min', this, b);
  }
  eq<U extends Num & T>(this: Val<U>, b: Val<U> | number): Val<'bool'> {
    return bin('eq', this, b);
  }
  ne<U extends Num & T>(this: Val<U>, b: Val<U> | number): Val<'bool'> {
    return bin('ne', this, b);
  }
  lt<U extends Num & T>(this: Val<U>, b: Val<U> | number): Val<'bool'> {
    return bin('lt', this, b);
  }
  le<U extends Num & T>(this: Val<U>, b: Val<U> | number): Val<'bool'> {
    return bin('le', this, b);
  }
  gt<U extends Num & T>(this: Val<U>, b: Val<U> | number): Val<'bool'> {
    return bin('gt', this, b);
  }
  ge<U extends Num & T>(this: Val<U>, b: Val<U> | number): Val<'bool'> {
    return bin('ge', this, b);
  }
  xor<U extends 'i32' | 'u32'>(this: Val<U>, b: Val<U> | number): Val<U> {
    return bin('bitxor', this, b);
  }
  shl<U extends 'i32' | 'u32'>(this: Val<U>, b: Val<U> | number): Val<U> {
    return bin('shl', this, b);
  }
  /** Shift right (logical for u32). */
  shr<U extends 'i32' | 'u32'>(this: Val<U>, b: Val<U> | number): Val<U> {
    return bin('shr', this, b);
  }
  bitand<U extends 'i32' | 'u32'>(this: Val<U>, b: Val<U> | number): Val<U> {
    return bin('bitand', this, b);
  }
  bitor<U extends 'i32' | 'u32'>(this: Val<U>, b: Val<U> | number): Val<U> {
    return bin('bitor', this, b);
  }
  /** High 32 bits of the 64-bit product (u32). */
  mulhi(this: Val<'u32'>, b: Val<'u32'> | number): Val<'u32'> {
    return bin('mulhi', this, b);
  }
  and(this: Val<'bool'>, b: Val<'bool'>): Val<'bool'> {
    return bin('and', this, b);
  }
  or(this: Val<'bool'>, b: Val<'bool'>): Val<'bool'> {
    return bin('or', this, b);
  }
  not(this: Val<'bool'>): Val<'bool'> {
    return un('not', this);
  }
  neg<U extends Num & T>(this: Val<U>): Val<U> {
    return un('neg', this);
  }
  exp(this: Val<'f32'>): Val<'f32'> {
    return un('exp', this);
  }
  log(this: Val<'f32'>): Val<'f32'> {
    return un('log', this);
  }
  /** log(1 + x), accurate for tiny x. */
  log1p(this: Val<'f32'>): Val<'f32'> {
    return un('log1p', this);
  }
  abs(this: Val<'f32'>): Val<'f32'> {
    return un('abs', this);
  }
  /** Convert to another register type (i32 → f32, ...). */
  to<U extends Num>(t: U): Val<U> {
    if (this.e.t === t) return this as unknown as Val<U>;
    return new Val<U>({ op: 'cast', t, s: this.e.s, a: this.e });
  }
}

export function constant<T extends Num>(t: T, v: number): Val<T> {
  if (t !== 'f32' && !Number.isInteger(v)) throw new DslError(`constant ${v} is not an integer but has type ${t}`);
  return new Val<T>({ op: 'const', t, s: 'uniform', v });
}
export const f32 = (v: number) => constant('f32', v);
export const i32 = (v: number) => constant('i32', v);
export const u32 = (v: number) => constant('u32', v);
export const TRUE = new Val<'bool'>({ op: 'const', t: 'bool', s: 'uniform', v: 1 });

function lift<T extends ValueType>(x: Val<T> | number, like: Val<T>): Val<T> {
  if (typeof x !== 'number') return x;
  return constant(like.type as Num, x) as unknown as Val<T>;
}

export function bin<R extends ValueType>(fn: BinFn, a: Val, b: Val | number): Val<R> {
  const bb = lift(b, a);
  if (a.type !== bb.type) throw new DslError(`${fn}: operand types differ (${a.type} vs ${bb.type})`);
  const t: ValueType = COMPARE_FNS.has(fn) || fn === 'and' || fn === 'or' ? 'bool' : a.type;
  return new Val<R>({ op: 'bin', fn, t, s: widerScope(a.scope, bb.scope), a: a.e, b: bb.e });
}

export function un<R extends ValueType>(fn: UnFn, a: Val): Val<R> {
  return new Val<R>({ op: 'un', fn, t: a.type, s: a.scope, a: a.e });
}

export function select<T extends ValueType>(c: Val<'bool'>, a: Val<T> | number, b: Val<T> | number): Val<T> {
  if (typeof a === 'number' && typeof b === 'number')
    return select(c, constant('i32', a), constant('i32', b)) as unknown as Val<T>;
  const av = typeof a === 'number' ? lift(a, b as Val<T>) : a;
  const bv = typeof b === 'number' ? lift(b, av) : b;
  if (av.type !== bv.type) throw new DslError(`select: branch types differ (${av.type} vs ${bv.type})`);
  const s = widerScope(c.scope, widerScope(av.scope, bv.scope));
  return new Val<T>({ op: 'select', t: av.type, s, c: c.e, a: av.e, b: bv.e });
}

export const exp = (x: Val<'f32'>) => x.exp();
export const log = (x: Val<'f32'>) => x.log();
export const tanh = (x: Val<'f32'>): Val<'f32'> => un('tanh', x);
export const maximum = <T extends Num>(a: Val<T>, b: Val<T> | number) => a.max(b);
/** Fused multiply-add a*b + c (emitters may contract it into one instruction). */
export const fma = (a: Val<'f32'>, b: Val<'f32'>, c: Val<'f32'>) => a.mul(b).add(c);

/** Sum of a vec-scope value over the vector dimension (masked to its length): one value per row. */
export function sum(x: Val<'f32'>): Val<'f32'> {
  if (x.scope !== 'vec') throw new DslError('sum: operand must be a vec value (one element per d)');
  return new Val<'f32'>({ op: 'reduce', fn: 'sum', t: 'f32', s: 'row', a: x.e });
}
export function reduceMax(x: Val<'f32'>): Val<'f32'> {
  if (x.scope !== 'vec') throw new DslError('reduceMax: operand must be a vec value (one element per d)');
  return new Val<'f32'>({ op: 'reduce', fn: 'max', t: 'f32', s: 'row', a: x.e });
}
/** Per-row dot product of two vec values. */
export function dot(a: Val<'f32'>, b: Val<'f32'>): Val<'f32'> {
  return sum(a.mul(b));
}

/**
 * Tile matmul: the rows of a program (one vec per row slot, [R, D]) times S candidate vectors ([S, D], typically
 * rows gathered at indices shared by the program's rows) transposed: the [R, S] tile A·Bᵀ, as S per-row values.
 * The lowering batches the S reductions into one vector region and one lane reduction; a tensor-core lowering
 * (mma / wgmma, tl.dot) is the planned replacement for shared candidates.
 */
export function matmul(a: Val<'f32'>, bs: readonly Val<'f32'>[]): Val<'f32'>[] {
  if (a.scope !== 'vec' || bs.some((b) => b.scope !== 'vec'))
    throw new DslError('matmul: operands must be vec values ([rows, D] and [S, D])');
  return bs.map((b) => dot(a, b));
}

/** Reduction over the candidates: a tile value ([rows, candidates]) to a row, a tvec value to a vec. */
export function reduceCands(fn: 'sum' | 'max', x: Val<'f32'>): Val<'f32'> {
  if (x.scope !== 'tile' && x.scope !== 'tvec')
    throw new DslError(`reduceCands: operand must be a tile or tvec value (one per row and candidate), got ${x.scope}`);
  return new Val<'f32'>({ op: 'reduce', fn, axis: 'c', t: 'f32', s: x.scope === 'tile' ? 'row' : 'vec', a: x.e });
}

/** Per-row dot products of a vec and per-row candidate rows (tvec): one value per row and candidate (tile). */
export function dotCands(a: Val<'f32'>, b: Val<'f32'>): Val<'f32'> {
  const x = a.mul(b);
  if (x.scope !== 'tvec') throw new DslError(`dotCands: a vec times a tvec value, got ${x.scope}`);
  return new Val<'f32'>({ op: 'reduce', fn: 'sum', t: 'f32', s: 'tile', a: x.e });
}

/**
 * Tile contraction (tensor cores on tile targets): vec·cvec → tile (each row with each candidate row),
 * tile·cvec → vec (rows' weighted sums of candidate rows), tile·vec → cvec (candidates' weighted sums of
 * the program's rows; only as the value of an atomicAdd). `prec`: the storage precision products may be
 * taken in; `exact`: which operands are plain loads of that precision (others are split hi + lo).
 */
export function mm(
  a: Val<'f32'>,
  b: Val<'f32'>,
  prec: 'f32' | 'f16' | 'bf16',
  exact: readonly [boolean, boolean],
): Val<'f32'> {
  const s = mmScope(a.scope, b.scope);
  if (!s) {
    const what = `a ${a.scope} value times a ${b.scope} value`;
    throw new DslError(`mm: ${what} is not a tile contraction (vec·cvec, tile·cvec, tile·vec)`);
  }
  return new Val<'f32'>({ op: 'mm', t: 'f32', s, a: a.e, b: b.e, prec, exact });
}
