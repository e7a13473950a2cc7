// The kernel builder: declares tensors and sizes, records statements, and returns IR (codegen/ir.ts).
import type { Access, Expr, Kernel, Param, Scope, StorageDType, Stmt, ValueType } from '../codegen/ir.js';
import { widerScope } from '../codegen/ir.js';
import { DslError, type Num, Val, type ValueOf, constant, reduceCands, select, TRUE } from './values.js';

/** A tensor parameter; its dtype and symbolic shape are part of its type. */
export class Tensor<D extends StorageDType = StorageDType, S extends readonly string[] = readonly string[]> {
  constructor(
    readonly name: string,
    readonly dtype: D,
    readonly shape: S,
    readonly access: Access,
  ) {}
}

/** A mutable variable (loop-carried state such as a running max). */
export class Var<T extends ValueType = ValueType> {
  constructor(
    private readonly kb: KernelBuilder<string>,
    readonly name: string,
    readonly t: T,
    readonly s: Scope,
  ) {}
  get(): Val<T> {
    return new Val<T>({ op: 'ref', name: this.name, t: this.t, s: this.s });
  }
  set(v: Val<T>): void {
    if (v.type !== this.t) throw new DslError(`assignment to ${this.name}: type ${v.type}, variable is ${this.t}`);
    if (widerScope(v.scope, this.s) !== this.s)
      throw new DslError(`assignment to ${this.name}: a ${v.scope} value does not fit a ${this.s} variable`);
    this.kb.emit({ k: 'assign', name: this.name, value: v.e });
  }
}

export interface KernelInfo<VD extends string> {
  name: string;
  doc: string;
  rowDim: string;
  vecDim: VD;
  /**
   * Kernels with a candidate axis (cand / tile / cvec / tvec values, candidate loops); its tile is the
   * schedule's, set in the lowering.
   */
  candAxis?: boolean;
  /** Rows per group (the rows that share candidates); a program's rows lie in one group. */
  groupRows?: number;
}

export class KernelBuilder<VD extends string = 'D'> {
  private readonly params: Param[] = [];
  private readonly dims: string[] = [];
  private readonly blocks: Stmt[][] = [[]];
  private readonly names = new Set<string>();
  /** Names the target skeletons and printers declare themselves; fresh() steps around them, claim() refuses them. */
  static readonly RESERVED: readonly string[] = [
    'tid', 'slot', 'lane', 'pid', 'row', 'rows', 'row_valid', 'lid', 'wid', 'nwg', 'params', 'd', 'd0', 'j', 'c', 'v',
    'offs_d', 'offs_c', 'program',
  ];

  constructor(readonly info: KernelInfo<VD>) {
    this.dim(info.rowDim);
    this.dim(info.vecDim);
  }

  /** A symbolic size; an i32 uniform at run time. */
  dim(name: string): Val<'i32'> {
    if (!this.dims.includes(name)) {
      this.claim(name);
      this.dims.push(name);
    }
    return new Val<'i32'>({ op: 'param', name, t: 'i32', s: 'uniform' });
  }

  private tensor<D extends StorageDType, const S extends readonly string[]>(
    name: string,
    dtype: D,
    shape: S,
    access: Access,
    doc?: string,
    fixed?: boolean,
  ): Tensor<D, S> {
    this.claim(name);
    for (const d of shape) this.dim(d);
    this.params.push({ kind: 'tensor', name, dtype, shape, access, doc, ...(fixed ? { fixed } : {}) });
    return new Tensor(name, dtype, shape, access);
  }
  input<D extends StorageDType, const S extends readonly string[]>(
    name: string,
    dtype: D,
    shape: S,
    doc?: string,
  ): Tensor<D, S> {
    return this.tensor(name, dtype, shape, 'read', doc);
  }
  output<D extends StorageDType, const S extends readonly string[]>(
    name: string,
    dtype: D,
    shape: S,
    doc?: string,
  ): Tensor<D, S> {
    return this.tensor(name, dtype, shape, 'write', doc);
  }
  /**
   * A tensor that programs scatter-add f32 values into (zero it before the launch): fp32 with float atomics,
   * or, `fixed`, deterministic int64 fixed point in units of 1/scale (adds a scalar `<name>_scale`).
   */
  accumulator<const S extends readonly string[]>(
    name: string,
    shape: S,
    doc?: string,
    fixed = false,
  ): Tensor<'f32', S> {
    const fixedDoc = `${doc ?? ''} [int64 fixed point, units of 1/${name}_scale]`.trim();
    const t = this.tensor(name, 'f32', shape, 'atomic', fixed ? fixedDoc : doc, fixed);
    if (fixed) this.scalar(`${name}_scale`, 'f32', `fixed-point scale of ${name} (a power of two)`);
    return t;
  }
  /** An i32 tensor that programs add into with integer atomics (counts, slot cursors); zero or fill it first. */
  counter<const S extends readonly string[]>(name: string, shape: S, doc?: string): Tensor<'i32', S> {
    return this.tensor(name, 'i32', shape, 'atomic', doc);
  }
  scalar<T extends Num>(name: string, type: T, doc?: string): Val<T> {
    this.claim(name);
    this.params.push({ kind: 'scalar', name, type, doc });
    return new Val<T>({ op: 'param', name, t: type, s: 'uniform' });
  }

  /** Global index of this row slot, and whether it is inside the row dimension. */
  get row(): Val<'i32'> {
    return new Val<'i32'>({ op: 'row', t: 'i32', s: 'row' });
  }
  get rowValid(): Val<'bool'> {
    return new Val<'bool'>({ op: 'rowValid', t: 'bool', s: 'row' });
  }
  /** Element index along the vector dimension (a vec value). */
  get d(): Val<'i32'> {
    return new Val<'i32'>({ op: 'd', t: 'i32', s: 'vec' });
  }
  /** Index of the group of groupRows rows this program's rows belong to (uniform). */
  get group(): Val<'i32'> {
    if (this.info.groupRows === undefined) throw new DslError(`${this.info.name}: group in a kernel without groupRows`);
    return new Val<'i32'>({ op: 'group', t: 'i32', s: 'uniform' });
  }
  /** The candidate index within the tile, 0..cands−1 (a cand value). */
  get cidx(): Val<'i32'> {
    if (!this.info.candAxis) throw new DslError(`${this.info.name}: cidx in a kernel without a candidate axis`);
    return new Val<'i32'>({ op: 'cidx', t: 'i32', s: 'cand' });
  }
  /** Gather the rows n (a cand value) of a [rows, vecDim] tensor as a cvec value ([cands, D]). */
  loadCandRows<D extends 'f32' | 'f16' | 'bf16'>(
    t: Tensor<D, readonly [string, VD]>,
    n: Val<'i32'>,
    mask: Val<'bool'> = TRUE,
  ): Val<'f32'> {
    return this.load(t, this.candOffsets(n), this.cdValid.and(mask)) as Val<'f32'>;
  }
  /** Scatter-add a cvec value into rows n (a cand value) of an accumulator. */
  atomicAddCandRows(
    t: Tensor<'f32', readonly [string, VD]>,
    n: Val<'i32'>,
    v: Val<'f32'>,
    mask: Val<'bool'> = TRUE,
  ): void {
    this.atomicAdd(t, this.candOffsets(n), v, this.cdValid.and(mask));
  }
  private get cd(): Val<'i32'> {
    return new Val<'i32'>({ op: 'd', t: 'i32', s: 'cvec' });
  }
  private candOffsets(n: Val<'i32'>): Val<'i32'> {
    if (n.scope !== 'cand')
      throw new DslError(`${this.info.name}: candidate rows are indexed by a cand value, got ${n.scope}`);
    return n.mul(this.dim(this.info.vecDim)).add(this.cd);
  }
  private get cdValid(): Val<'bool'> {
    return this.cd.lt(this.dim(this.info.vecDim));
  }

  emit(s: Stmt): void {
    this.blocks[this.blocks.length - 1].push(s);
  }
  comment(text: string): void {
    this.emit({ k: 'comment', text });
  }

  private claim(name: string): void {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
      throw new DslError(`${this.info.name}: '${name}' is not a valid identifier`);
    if (KernelBuilder.RESERVED.includes(name) || name.startsWith('ccekit_'))
      throw new DslError(`${this.info.name}: '${name}' is reserved for the generated code`);
    if (this.names.has(name)) throw new DslError(`${this.info.name}: the name '${name}' is declared twice`);
    this.names.add(name);
  }
  /** A fresh name derived from `base`. */
  fresh(base: string): string {
    let n = base;
    for (let i = 1; this.names.has(n) || KernelBuilder.RESERVED.includes(n); i++) n = `${base}_${i}`;
    return n;
  }

  /** Bind a value to a name (an immutable let). */
  let<T extends ValueType>(name: string, v: Val<T>): Val<T> {
    const n = this.fresh(name);
    this.claim(n);
    this.emit({ k: 'let', name: n, value: v.e });
    return new Val<T>({ op: 'ref', name: n, t: v.type, s: v.scope });
  }
  var<T extends ValueType>(name: string, init: Val<T>, scope?: Scope): Var<T> {
    const n = this.fresh(name);
    this.claim(n);
    const s = scope ?? init.scope;
    if (widerScope(init.scope, s) !== s)
      throw new DslError(`var ${n}: a ${init.scope} initial value does not fit scope ${s}`);
    this.emit({ k: 'var', name: n, t: init.type, s, init: init.e });
    return new Var<T>(this as KernelBuilder<string>, n, init.type, s);
  }

  /** for (v = start; v < end; v += step) — bounds must be uniform. With unroll, bounds must be constants. */
  loop(
    name: string,
    start: Val<'i32'> | number,
    end: Val<'i32'> | number,
    step: number,
    body: (i: Val<'i32'>) => void,
    opts: { unroll?: boolean } = {},
  ): void {
    const v = this.fresh(name);
    this.claim(v);
    const s = typeof start === 'number' ? constant('i32', start) : start;
    const e = typeof end === 'number' ? constant('i32', end) : end;
    this.blocks.push([]);
    body(new Val<'i32'>({ op: 'ref', name: v, t: 'i32', s: 'uniform' }));
    const b = this.blocks.pop()!;
    this.emit({ k: 'for', v, start: s.e, end: e.e, step, unroll: !!opts.unroll, body: b });
  }
  /**
   * A loop over a candidate axis [0, end): each step covers one tile of candidates kk + cidx (the tile is the
   * schedule's, chosen in the lowering; the algorithm never sees it).
   */
  candLoop(name: string, end: Val<'i32'>, body: (kk: Val<'i32'>, slot: Val<'i32'>) => void): void {
    if (!this.info.candAxis) throw new DslError(`${this.info.name}: candLoop in a kernel without a candidate axis`);
    const v = this.fresh(name);
    this.claim(v);
    const kk = new Val<'i32'>({ op: 'ref', name: v, t: 'i32', s: 'uniform' });
    this.blocks.push([]);
    body(kk, kk.add(this.cidx));
    const b = this.blocks.pop()!;
    this.emit({ k: 'for', v, start: constant('i32', 0).e, end: end.e, step: 0, unroll: false, body: b, cands: true });
  }
  /** A loop the lowering unrolls (constant trip count); j takes the values 0..count-1. */
  unroll(name: string, count: number, body: (j: Val<'i32'>, jc: number) => void): void {
    let jc = 0;
    this.loop(name, 0, count, 1, (j) => body(j, jc++), { unroll: true });
    if (jc !== 1) throw new DslError('unroll body must be traced once');
  }

  load<D extends StorageDType>(t: Tensor<D>, index: Val<'i32'>, mask?: Val<'bool'>): Val<ValueOf<D>> {
    const ty = (t.dtype === 'i32' ? 'i32' : t.dtype === 'u32' ? 'u32' : 'f32') as ValueOf<D>;
    const s = widerScope(index.scope, mask?.scope ?? 'uniform');
    return new Val<ValueOf<D>>({ op: 'load', tensor: t.name, t: ty, s, index: index.e, mask: mask?.e });
  }
  store<D extends StorageDType>(t: Tensor<D>, index: Val<'i32'>, value: Val<ValueOf<D>>, mask?: Val<'bool'>): void {
    if (t.access !== 'write') throw new DslError(`${this.info.name}: store into '${t.name}', which is not an output`);
    this.emit({ k: 'store', tensor: t.name, index: index.e, value: value.e, mask: mask?.e });
  }
  atomicAdd<D extends 'f32' | 'i32'>(
    t: Tensor<D>,
    index: Val<'i32'>,
    value: Val<ValueOf<D>>,
    mask?: Val<'bool'>,
  ): void {
    if (t.access !== 'atomic')
      throw new DslError(`${this.info.name}: atomicAdd into '${t.name}', which is not an accumulator`);
    this.emit({ k: 'atomicAdd', tensor: t.name, index: index.e, value: value.e, mask: mask?.e });
  }
  /** Add `value` to an i32 counter and return what it held before (0 where the mask is off): slot allocation. */
  fetchAdd(
    name: string,
    t: Tensor<'i32'>,
    index: Val<'i32'>,
    value: Val<'i32'> | number,
    mask?: Val<'bool'>,
  ): Val<'i32'> {
    if (t.access !== 'atomic') throw new DslError(`${this.info.name}: fetchAdd on '${t.name}', which is not a counter`);
    const old = this.fresh(name);
    this.claim(old);
    const v = typeof value === 'number' ? constant('i32', value) : value;
    this.emit({ k: 'atomicAdd', tensor: t.name, index: index.e, value: v.e, mask: mask?.e, old });
    const s = widerScope(widerScope(index.scope, v.scope), mask?.scope ?? 'uniform');
    return new Val<'i32'>({ op: 'ref', name: old, t: 'i32', s });
  }

  /** Element offsets of row `r` of a [rows, vecDim] tensor: r * vecDim + d (a vec value). */
  rowOffsets(r: Val<'i32'>): Val<'i32'> {
    return r.mul(this.dim(this.info.vecDim)).add(this.d);
  }
  /** Mask of the valid elements of a vec: d < vecDim. */
  get dValid(): Val<'bool'> {
    return this.d.lt(this.dim(this.info.vecDim));
  }
  /** Gather row `r` of a [rows, vecDim] tensor as a vec value (masked loads read 0). */
  loadRow<D extends 'f32' | 'f16' | 'bf16'>(
    t: Tensor<D, readonly [string, VD]>,
    r: Val<'i32'>,
    mask: Val<'bool'> = TRUE,
  ): Val<'f32'> {
    return this.load(t, this.rowOffsets(r), this.dValid.and(mask)) as Val<'f32'>;
  }
  storeRow(t: Tensor<'f32', readonly [string, VD]>, r: Val<'i32'>, v: Val<'f32'>, mask: Val<'bool'> = TRUE): void {
    this.store(t, this.rowOffsets(r), v, this.dValid.and(mask));
  }
  atomicAddRow(t: Tensor<'f32', readonly [string, VD]>, r: Val<'i32'>, v: Val<'f32'>, mask: Val<'bool'> = TRUE): void {
    this.atomicAdd(t, this.rowOffsets(r), v, this.dValid.and(mask));
  }
  /** Zero for vec values that are masked off. */
  where<T extends ValueType>(mask: Val<'bool'>, a: Val<T>, b: Val<T> | number): Val<T> {
    return select(mask, a, b);
  }

  build(): Kernel {
    if (this.blocks.length !== 1) throw new DslError(`${this.info.name}: build() inside a loop`);
    return {
      name: this.info.name,
      doc: this.info.doc,
      dims: [...this.dims],
      rowDim: this.info.rowDim,
      vecDim: this.info.vecDim,
      ...(this.info.candAxis ? { candAxis: true as const } : {}),
      ...(this.info.groupRows !== undefined ? { groupRows: this.info.groupRows } : {}),
      params: [...this.params],
      body: this.blocks[0],
    };
  }
}

/** Online softmax state per row: running max m and running sum l of exp(x - m), rescaled as m grows. */
export class OnlineSoftmax {
  readonly m: Var<'f32'>;
  readonly l: Var<'f32'>;
  constructor(
    private readonly kb: KernelBuilder<string>,
    name: string,
  ) {
    this.m = kb.var(`${name}_max`, constant('f32', -3.0e38), 'row');
    this.l = kb.var(`${name}_sum`, constant('f32', 0), 'row');
  }
  /**
   * Add a chunk of logits at once (one rescale per chunk); masked-off logits are skipped. With `weights`, also
   * returns the rescale of what was accumulated before, exp(m_old − m_new), and each logit's weight
   * exp(x − m_new) (0 when masked), for sums that ride along (flash-attention style). Without it they are
   * unnamed expressions of the running max, which the update then moves: do not use them afterwards.
   */
  update(
    logits: readonly Val<'f32'>[],
    masks: readonly Val<'bool'>[],
    weights = false,
  ): { scale: Val<'f32'>; weights: Val<'f32'>[] } {
    const kb = this.kb;
    let cm = this.m.get();
    logits.forEach((x, j) => (cm = cm.max(select(masks[j], x, constant('f32', -3.0e38)))));
    const mNew = kb.let('m_new', cm);
    const scaleOf = () => this.m.get().sub(mNew).exp();
    const weightOf = (x: Val<'f32'>, j: number) => select(masks[j], x.sub(mNew).exp(), 0);
    const scale = weights ? kb.let('m_scale', scaleOf()) : scaleOf();
    const w = logits.map((x, j) => (weights ? kb.let(`w_${j}`, weightOf(x, j)) : weightOf(x, j)));
    this.l.set(w.reduce((acc, x) => acc.add(x), this.l.get().mul(scale)));
    this.m.set(mNew);
    return { scale, weights: w };
  }
  /**
   * Add a tile of logits ([rows, candidates]); masked-off logits are skipped. Returns the rescale and the weights
   * as update does.
   */
  updateTile(logits: Val<'f32'>, mask: Val<'bool'>): { scale: Val<'f32'>; weights: Val<'f32'> } {
    const kb = this.kb;
    const mNew = kb.let('m_new', this.m.get().max(reduceCands('max', select(mask, logits, constant('f32', -3.0e38)))));
    const p = kb.let('p_tile', select(mask, logits.sub(mNew).exp(), 0));
    const scale = kb.let('m_scale', this.m.get().sub(mNew).exp());
    this.l.set(this.l.get().mul(scale).add(reduceCands('sum', p)));
    this.m.set(mNew);
    return { scale, weights: p };
  }
  /** log Σ exp; −3e38 (≈ −∞) when nothing was added. */
  lse(): Val<'f32'> {
    return select(this.l.get().gt(0), this.m.get().add(this.l.get().log()), -3.0e38);
  }
}
