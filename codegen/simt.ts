// Statement printing for SIMT targets (CUDA C++, WGSL): a program is rows·lanes threads; thread `tid`
// serves row slot tid / lanes and lane tid % lanes. A vec region is a loop over the elements a lane owns,
// element j ↔ d = ((j / vec)·lanes + lane)·vec + j % vec. Vec names that live across regions are
// per-thread arrays; the rest are scalars inside the loop. Target files give the spelling (SimtSyntax).
import type { TensorParam, ValueType } from './ir.js';
import type { LStmt, LoweredKernel } from './lower.js';
import { NEG_BIG } from './lower.js';
import { type Dialect, ExprPrinter, Lines } from './render.js';

export interface SimtSyntax extends Dialect {
  declare(name: string, t: ValueType, init: string | undefined, mutable: boolean): string;
  declareArray(name: string, t: ValueType, n: number): string;
  forOpen(v: string, start: string, end: string, step: number, unrolled: boolean): string;
  ifOpen(cond: string): string;
  store(tensor: string, index: string, value: string): string;
  atomicAdd(tensor: string, index: string, value: string): string;
  /** An add into an i32 counter as an expression whose value is the counter before the add. */
  fetchAdd(tensor: string, index: string, value: string): string;
  /** Cross-lane reduction of row partials (all lanes end with the result). */
  laneReduce(fn: 'sum' | 'max', targets: string[], lk: LoweredKernel, out: Lines): void;
  /** The element index expression for element j of this lane. */
  elementIndex(j: string, lk: LoweredKernel): string;
  /** Zero of a type. */
  zero(t: ValueType): string;
  statementEnd: string;
  /** A barrier of the program's threads (workgroup memory visible to all). */
  barrier: string;
  /**
   * Vector memory operations on `n` consecutive f32 registers `regs` at element `offset` of a tensor, for row
   * accesses when schedule.vec > 1 (the runtime guarantees vecDim % vec == 0). Absent: element by element.
   */
  vector?: {
    load(t: TensorParam, offset: string, n: number, regs: string): string;
    store(t: TensorParam, offset: string, n: number, regs: string): string;
    atomicAdd(t: TensorParam, offset: string, n: number, regs: string): string;
  };
}

export function printSimtBody(lk: LoweredKernel, syn: SimtSyntax, depth: number): string {
  const out = new Lines('  ', depth);
  // A vec array read inside a region is this lane's element j.
  const ref: SimtSyntax['ref'] = (n, info, inRegion) =>
    info?.s === 'vec' && info.array && inRegion ? `${n}[j]` : syn.ref(n, info, inRegion);
  const ep = new ExprPrinter(lk, { ...syn, ref });
  const sym = (n: string) => lk.symbols.get(n)!;
  const isArray = (n: string) => sym(n).s === 'vec' && sym(n).array;
  const lhs = (n: string) => (ep.inRegion && isArray(n) ? `${n}[j]` : n);
  const end = syn.statementEnd;

  const emit = (s: LStmt): void => {
    switch (s.k) {
      case 'comment':
        out.line(`// ${s.text}`);
        return;
      case 'decl': {
        if (s.s === 'vec' && isArray(s.name)) {
          if (!ep.inRegion) out.line(syn.declareArray(s.name, s.t, lk.perLane));
          else out.line(`${lhs(s.name)} = ${ep.print(s.init!)}${end}`);
          return;
        }
        out.line(syn.declare(s.name, s.t, s.init && ep.print(s.init), s.mut));
        return;
      }
      case 'assign':
        out.line(`${lhs(s.name)} = ${ep.print(s.value)}${end}`);
        return;
      case 'load': {
        const p = ep.tensorParam(s.tensor);
        const target = isArray(s.name) && ep.inRegion ? lhs(s.name) : undefined;
        if (!target) out.line(syn.declare(s.name, s.t, syn.zero(s.t), true));
        out.line(syn.ifOpen(ep.print(s.mask)));
        out.line(`  ${target ?? s.name} = ${syn.load(p, ep.print(s.index))}${end}`);
        if (target) {
          out.line('} else {');
          out.line(`  ${target} = ${syn.zero(s.t)}${end}`);
        }
        out.line('}');
        return;
      }
      case 'store':
      case 'atomicAdd': {
        if (s.k === 'atomicAdd' && s.rowShared !== undefined) {
          // This row slot's share, summed over the program's rows after the region (rowSharedSum).
          const at = `ccekit_rows[(${s.rowShared * lk.schedule.rows} + slot) * ${lk.blockD} + d]`;
          out.line(syn.ifOpen(s.mask ? ep.print(s.mask) : syn.constant(1, 'bool')));
          out.line(`  ${at} = ${ep.print(s.value)}${end}`);
          out.line('} else {');
          out.line(`  ${at} = ${syn.zero('f32')}${end}`);
          out.line('}');
          return;
        }
        // A counter's value before the add is declared first (0 where the mask is off).
        if (s.k === 'atomicAdd' && s.old) out.line(syn.declare(s.old, 'i32', syn.zero('i32'), true));
        const text =
          s.k === 'atomicAdd' && s.old
            ? `${s.old} = ${syn.fetchAdd(s.tensor, ep.print(s.index), ep.print(s.value))}${end}`
            : (s.k === 'store' ? syn.store : syn.atomicAdd).call(syn, s.tensor, ep.print(s.index), ep.print(s.value));
        if (s.mask) {
          out.line(syn.ifOpen(ep.print(s.mask)));
          out.line(`  ${text}`);
          out.line('}');
        } else out.line(text);
        return;
      }
      case 'for':
        out.line(syn.forOpen(s.v, ep.print(s.start), ep.print(s.end), s.step, false));
        out.indent();
        s.body.forEach(emit);
        out.dedent();
        out.line('}');
        return;
      case 'vec': {
        // Arrays first defined inside this region are declared before its loop.
        for (const b of s.body) {
          if ((b.k === 'decl' || b.k === 'load') && isArray(b.name))
            out.line(syn.declareArray(b.name, b.t, lk.perLane));
        }
        if (syn.vector && lk.schedule.vec > 1 && s.body.some(vectorizable)) {
          emitChunked(s.body);
          rowSharedSum(s.body);
          return;
        }
        out.line(syn.forOpen('j', '0', String(lk.perLane), 1, true));
        out.indent();
        const at = out.mark();
        ep.inRegion = true;
        s.body.forEach(emit);
        ep.inRegion = false;
        // The element index, where the region's statements use it.
        if (out.since(at).some((l) => /\bd\b/.test(l)))
          out.insert(at, syn.declare('d', 'i32', syn.elementIndex('j', lk), false));
        out.dedent();
        out.line('}');
        rowSharedSum(s.body);
        return;
      }
      case 'accum': {
        const v = ep.print(s.value);
        const rhs = s.fn === 'sum' ? syn.bin('add', s.target, v, 'f32') : syn.bin('max', s.target, v, 'f32');
        out.line(`${s.target} = ${rhs}${end}`);
        return;
      }
      case 'laneReduce':
        if (lk.schedule.lanes > 1) syn.laneReduce(s.fn, s.targets, lk, out);
        return;
    }
  };
  /** After a region: each rowShared atomic's row, summed over the program's row slots, added once per element. */
  function rowSharedSum(body: LStmt[]): void {
    const adds = body.filter(
      (b): b is Extract<LStmt, { k: 'store' | 'atomicAdd' }> => b.k === 'atomicAdd' && b.rowShared !== undefined,
    );
    if (!adds.length) return;
    const { rows } = lk.schedule;
    const BD = lk.blockD;
    const dim = syn.param(lk.kernel.vecDim, 'i32');
    out.line(syn.barrier);
    out.line(syn.forOpen('ccekit_e', 'tid', String(BD), lk.invocations, false));
    out.indent();
    for (const b of adds) {
      const acc = `ccekit_acc${b.rowShared}`;
      out.line(syn.declare(acc, 'f32', syn.zero('f32'), true));
      out.line(syn.forOpen('ccekit_r', '0', String(rows), 1, true));
      out.line(`  ${acc} = ${acc} + ccekit_rows[(${b.rowShared! * rows} + ccekit_r) * ${BD} + ccekit_e]${end}`);
      out.line('}');
      const terms = [ep.inD('ccekit_e'), ...(b.row!.mask ? [`(${ep.print(b.row!.mask)})`] : [])];
      const cond = terms.filter(Boolean).join(' && ') || syn.constant(1, 'bool');
      out.line(syn.ifOpen(cond));
      out.line(`  ${syn.atomicAdd(b.tensor, `${ep.print(b.row!.base)} * ${dim} + ccekit_e`, acc)}`);
      out.line('}');
    }
    out.dedent();
    out.line('}');
    out.line(syn.barrier);
  }

  /** A row access of a float tensor: one vector operation per chunk of `vec` elements. */
  function vectorizable(b: LStmt): b is Extract<LStmt, { k: 'load' | 'store' | 'atomicAdd' }> & { row: RowAccessT } {
    if (b.k !== 'load' && b.k !== 'store' && b.k !== 'atomicAdd') return false;
    if ((b.k === 'atomicAdd' && b.rowShared !== undefined) || !b.row) return false;
    const dtype = ep.tensorParam(b.tensor).dtype;
    return dtype !== 'i32' && dtype !== 'u32';
  }

  /** Region as chunks of `vec` consecutive elements: vector loads, element statements, vector stores. */
  function emitChunked(body: LStmt[]): void {
    const { vec, lanes, dChunks } = lk.schedule;
    const V = syn.vector!;
    const dim = syn.param(lk.kernel.vecDim, 'i32');
    const guard = (r: { mask?: import('./ir.js').Expr }) =>
      [...(r.mask ? [`(${ep.print(r.mask)})`] : []), ep.inD('d0')].filter(Boolean).join(' && ') ||
      syn.constant(1, 'bool');
    const offset = (r: { base: import('./ir.js').Expr }) => `${ep.print(r.base)} * ${dim} + d0`;
    out.line(syn.forOpen('c', '0', String(dChunks), 1, true));
    out.indent();
    out.line(syn.declare('d0', 'i32', `(c * ${lanes} + lane) * ${vec}`, false));
    for (const b of body) {
      if (!vectorizable(b)) continue;
      const r = (b as { row: RowAccessT }).row;
      const regs = `${b.k === 'load' ? b.name : `${b.tensor}_out${body.indexOf(b)}`}_v`;
      out.line(syn.declareArray(regs, 'f32', vec));
      if (b.k !== 'load') continue;
      out.line(syn.ifOpen(guard(r)));
      out.line(`  ${V.load(ep.tensorParam(b.tensor), offset(r), vec, regs)}`);
      out.line('} else {');
      for (let v = 0; v < vec; v++) out.line(`  ${regs}[${v}] = ${syn.zero('f32')}${end}`);
      out.line('}');
    }
    out.line(syn.forOpen('v', '0', String(vec), 1, true));
    out.indent();
    const at = out.mark();
    ep.inRegion = true;
    for (const b of body) {
      if (!vectorizable(b)) {
        emit(b);
        continue;
      }
      if (b.k === 'load') {
        if (isArray(b.name)) out.line(`${lhs(b.name)} = ${b.name}_v[v]${end}`);
        else out.line(syn.declare(b.name, b.t, `${b.name}_v[v]`, false));
      } else if (b.k === 'store' || b.k === 'atomicAdd')
        out.line(`${b.tensor}_out${body.indexOf(b)}_v[v] = ${ep.print(b.value)}${end}`);
    }
    ep.inRegion = false;
    // Element index and register index, where the statements use them.
    const used = out.since(at);
    if (used.some((l) => /\bd\b/.test(l))) out.insert(at, syn.declare('d', 'i32', 'd0 + v', false));
    if (used.some((l) => /\bj\b/.test(l))) out.insert(at, syn.declare('j', 'i32', `c * ${vec} + v`, false));
    out.dedent();
    out.line('}');
    for (const b of body) {
      if (!vectorizable(b) || b.k === 'load') continue;
      const r = (b as { row: RowAccessT }).row;
      const regs = `${b.tensor}_out${body.indexOf(b)}_v`;
      const op = b.k === 'store' ? V.store : V.atomicAdd;
      out.line(syn.ifOpen(guard(r)));
      out.line(`  ${op(ep.tensorParam(b.tensor), offset(r), vec, regs)}`);
      out.line('}');
    }
    out.dedent();
    out.line('}');
  }

  lk.body.forEach(emit);
  return out.toString();
}

type RowAccessT = import('./lower.js').RowAccess;

export { NEG_BIG };
