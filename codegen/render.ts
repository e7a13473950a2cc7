// Expression printing shared by every target: the walk, parenthesization, scope broadcasting and the
// rewrites all targets want (integer powers as products) live here; a Dialect says how each leaf and
// operator is spelled.
import type { BinFn, Expr, MatMul, Scope, TensorParam, UnFn, ValueType } from './ir.js';
import { scopeWithin } from './ir.js';
import { isDGuard, type LoweredKernel, type SymbolInfo } from './lower.js';

export interface Dialect {
  constant(v: number, t: ValueType): string;
  param(name: string, t: ValueType): string;
  /** A reference; `inRegion` tells whether we print an element of a vec region. */
  ref(name: string, sym: SymbolInfo | undefined, inRegion: boolean): string;
  row(): string;
  rowValid(): string;
  /** Index of this program's row group: the program id divided by `programsPerGroup` (uniform i32). */
  group(programsPerGroup: number): string;
  /** d: the element index (vec or cvec scope). */
  d(s: Scope): string;
  /** Tile targets: the candidate index of the tile, a contraction, a reduction over candidates. */
  cidx?(): string;
  mm?(e: MatMul & { s: Scope }, a: string, b: string): string;
  reduceCands?(fn: 'sum' | 'max', a: string): string;
  bin(fn: BinFn, a: string, b: string, operandType: ValueType): string;
  un(fn: UnFn, a: string, t: ValueType): string;
  select(c: string, a: string, b: string, t: ValueType): string;
  cast(a: string, from: ValueType, to: ValueType): string;
  /**
   * The element guard d < D (`d`: the printed index). Absent: printed as the comparison. CUDA prints a macro
   * that a compile-time define turns into true where D equals BLOCK_D, so one source serves both cases.
   */
  dGuard?(d: string): string;
  /** Unmasked load of one element. */
  load(tensor: TensorParam, index: string): string;
  /** Make a value of scope `from` usable where scope `to` is expected (tile targets broadcast). */
  lift?(code: string, from: Scope, to: Scope): string;
}

/**
 * A C-like constant: `1.5f` floats, true / false, `7u` unsigned; signed integers as `int` prints them (CUDA: `7`,
 * WGSL: `7i`).
 */
export function cConstant(int: (v: number) => string): (v: number, t: string) => string {
  return (v, t) => {
    if (t === 'f32') return `${formatFloat(v)}f`;
    if (t === 'bool') return v ? 'true' : 'false';
    return t === 'u32' ? `${v >>> 0}u` : int(v | 0);
  };
}

export function formatFloat(v: number): string {
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return v.toFixed(1);
  const s = String(v);
  return s.includes('e') || s.includes('.') ? s : `${s}.0`;
}

export class ExprPrinter {
  /** Set while printing the body of a vec region. */
  inRegion = false;
  constructor(
    readonly lk: LoweredKernel,
    readonly dialect: Dialect,
  ) {}

  private tensor(name: string): TensorParam {
    const p = this.lk.kernel.params.find((q) => q.name === name);
    if (!p || p.kind !== 'tensor') throw new Error(`${this.lk.kernel.name}: unknown tensor ${name}`);
    return p;
  }
  tensorParam(name: string): TensorParam {
    return this.tensor(name);
  }

  /** The element guard `index < D` as the target spells it; undefined in an exactD kernel, which has none. */
  inD(index: string): string | undefined {
    if (this.lk.exactD) return undefined;
    if (this.dialect.dGuard) return this.dialect.dGuard(index);
    return `${index} < ${this.dialect.param(this.lk.kernel.vecDim, 'i32')}`;
  }

  /** Print `e` for use at scope `want` (defaults to its own scope); narrower values are lifted (broadcast). */
  print(e: Expr, want: Scope = e.s): string {
    const D = this.dialect;
    const code = this.inner(e);
    const lifted = e.s !== want && scopeWithin(e.s, want) && e.op !== 'const' && e.op !== 'param';
    return D.lift && lifted ? D.lift(code, e.s, want) : code;
  }

  /** Print `e` at its own scope; operands are printed at the scope of `e`. */
  private inner(e: Expr): string {
    const D = this.dialect;
    const lift = (code: string, _from: Scope) => code;
    switch (e.op) {
      case 'const':
        return D.constant(e.v, e.t);
      case 'param':
        return D.param(e.name, e.t);
      case 'ref':
        return lift(D.ref(e.name, this.lk.symbols.get(e.name), this.inRegion), e.s);
      case 'row':
        return lift(D.row(), 'row');
      case 'rowValid':
        return lift(D.rowValid(), 'row');
      case 'group':
        return D.group((this.lk.kernel.groupRows ?? this.lk.schedule.rows) / this.lk.schedule.rows);
      case 'd':
        return D.d(e.s);
      case 'cidx':
        if (!D.cidx)
          throw new Error(
            `${this.lk.kernel.name}: a candidate-axis value reached a target without tiles (untile first)`,
          );
        return D.cidx();
      case 'mm':
        if (!D.mm) throw new Error(`${this.lk.kernel.name}: mm reached a target without tiles (untile first)`);
        return D.mm(e, this.print(e.a), this.print(e.b));
      case 'bin': {
        if (isDGuard(e, this.lk.kernel.vecDim) && (this.lk.exactD || D.dGuard))
          return this.inD(this.print(e.a, e.s)) ?? D.constant(1, 'bool');
        if (e.fn === 'pow' && e.b.op === 'const' && Number.isInteger(e.b.v) && e.b.v >= 1 && e.b.v <= 4) {
          const a = this.print(e.a, e.s);
          return `(${Array(e.b.v).fill(a).join(' * ')})`;
        }
        return D.bin(e.fn, this.print(e.a, e.s), this.print(e.b, e.s), e.a.t);
      }
      case 'un':
        return D.un(e.fn, this.print(e.a, e.s), e.t);
      case 'select':
        return D.select(this.print(e.c, e.s), this.print(e.a, e.s), this.print(e.b, e.s), e.t);
      case 'cast':
        return D.cast(this.print(e.a, e.s), e.a.t, e.t);
      case 'load':
        if (e.mask) throw new Error(`${this.lk.kernel.name}: masked load left in an expression (lowering bug)`);
        return lift(D.load(this.tensor(e.tensor), this.print(e.index, e.s)), e.s);
      case 'reduce':
        if (e.axis === 'c' && D.reduceCands) return D.reduceCands(e.fn, this.print(e.a));
        throw new Error(`${this.lk.kernel.name}: reduce left in an expression (lowering bug)`);
    }
  }
}

/** C-family spelling of binary operators (CUDA, WGSL, JS share it; Triton overrides logic ops). */
export function cBinary(fn: BinFn, a: string, b: string, fmin: string, fmax: string): string {
  const ops: Partial<Record<BinFn, string>> = {
    add: '+', sub: '-', mul: '*', div: '/', eq: '==', ne: '!=', lt: '<', le: '<=', gt: '>', ge: '>=',
    and: '&&', or: '||', bitand: '&', bitor: '|', bitxor: '^', shl: '<<', shr: '>>', mod: '%',
  };
  if (fn === 'min') return `${fmin}(${a}, ${b})`;
  if (fn === 'max') return `${fmax}(${a}, ${b})`;
  const op = ops[fn];
  if (!op) throw new Error(`binary ${fn} has no C spelling`);
  return `(${a} ${op} ${b})`;
}

/** Lines with indentation. */
export class Lines {
  private readonly out: string[] = [];
  private depth: number;
  constructor(
    private readonly unit = '  ',
    depth = 0,
  ) {
    this.depth = depth;
  }
  line(s: string): void {
    for (const l of s.split('\n')) this.out.push(l === '' ? '' : this.unit.repeat(this.depth) + l);
  }
  /** Position for a later insert(); since() lists the lines written after it. */
  mark(): number {
    return this.out.length;
  }
  since(mark: number): string[] {
    return this.out.slice(mark);
  }
  insert(mark: number, s: string): void {
    this.out.splice(mark, 0, this.unit.repeat(this.depth) + s);
  }
  indent(): void {
    this.depth++;
  }
  dedent(): void {
    this.depth--;
  }
  toString(): string {
    return this.out.join('\n');
  }
}
