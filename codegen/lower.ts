// The one lowering shared by every target: IR (after passes) + schedule → lowered program.
//
// What it makes explicit:
//  - vec regions: runs of per-element statements. SIMT targets print a loop over the elements a lane owns
//    (d = ((chunk·lanes + lane)·vec + v)); the tile target prints them as [BLOCK_R, BLOCK_D] tensor ops.
//  - reductions: each `reduce` becomes a row partial, an `accum` inside a vec region and a `laneReduce`
//    (shuffles / workgroup memory / nothing on tile targets). Consecutive independent reductions share one
//    region and one laneReduce, so their loads are in flight together.
//  - masked loads: their own statements (WGSL must branch around an out-of-range read).
//  - storage of vec values: a vec name used outside its region is a per-lane array (SIMT) / tile.
import {
  type Expr, type Kernel, type Scope, type Stmt, type ValueType, children, forEachExpr, mapExpr,
} from './ir.js';
import { runPasses } from './passes.js';
import { untile } from './untile.js';
import { alignSlots, shareLets, sizeCandidates } from './candidates.js';
import { verifyKernel, VerifyError } from './verify.js';
import { type Schedule, blockD, checkScheduleForD, checkScheduleShape, invocations, perLane } from './schedule.js';
import { type DeviceCaps, checkAgainstCaps, traitsOf } from './target.js';
import { markRowShared, markTemporaries, mergeRegions, refs } from './regions.js';


export type LStmt =
  | { k: 'decl'; name: string; t: ValueType; s: Scope; init?: Expr; mut: boolean }
  | { k: 'assign'; name: string; value: Expr }
  | { k: 'load'; name: string; t: ValueType; s: Scope; tensor: string; index: Expr; mask: Expr; row?: RowAccess }
  | {
      k: 'store' | 'atomicAdd';
      tensor: string;
      index: Expr;
      value: Expr;
      mask?: Expr;
      row?: RowAccess;
      rowShared?: number;
      old?: string;
    }
  | { k: 'for'; v: string; start: Expr; end: Expr; step: number; body: LStmt[] }
  | { k: 'vec'; body: LStmt[] }
  | { k: 'accum'; fn: 'sum' | 'max'; target: string; value: Expr }
  | { k: 'laneReduce'; fn: 'sum' | 'max'; targets: string[] }
  | { k: 'comment'; text: string };

/**
 * A vec access of whole row `base` of a [rows, vecDim] tensor: index = base·vecDim + d, mask = d < vecDim
 * (and `mask`, a row-level condition). SIMT emitters may turn it into vector memory operations.
 */
export interface RowAccess {
  base: Expr;
  mask?: Expr;
}

/** Recognise base·vecDim + d with mask (d < vecDim) [&& m], m free of d. */
export function rowAccessOf(index: Expr, mask: Expr | undefined, vecDim: string): RowAccess | undefined {
  const isD = (e: Expr) => e.op === 'd';
  const isDim = (e: Expr) => e.op === 'param' && e.name === vecDim;
  if (index.op !== 'bin' || index.fn !== 'add' || !isD(index.b)) return undefined;
  const m = index.a;
  if (m.op !== 'bin' || m.fn !== 'mul' || !isDim(m.b) || m.a.s === 'vec') return undefined;
  const dValid = (e: Expr) => e.op === 'bin' && e.fn === 'lt' && isD(e.a) && isDim(e.b);
  if (!mask) return undefined;
  if (dValid(mask)) return { base: m.a };
  if (mask.op === 'bin' && mask.fn === 'and' && dValid(mask.a) && mask.b.s !== 'vec')
    return { base: m.a, mask: mask.b };
  return undefined;
}

export interface SymbolInfo {
  t: ValueType;
  s: Scope;
  /** vec names: true when stored per lane (array / tile) across statements, false for region temporaries. */
  array: boolean;
}

export interface LoweredKernel {
  kernel: Kernel;
  schedule: Schedule;
  body: LStmt[];
  symbols: Map<string, SymbolInfo>;
  /** The most values one laneReduce combines (sizes SIMT scratch memory). */
  maxReduceBatch: number;
  blockD: number;
  perLane: number;
  invocations: number;
  /** The device record it was lowered for (emitters may use device features). */
  caps?: DeviceCaps;
  /**
   * SIMT: f32 slots of workgroup memory for atomic adds into a row that is the same for all rows of a program
   * (a shared candidate): each is summed over the program's rows there first, then added once per element.
   */
  rowSharedSlots: number;
  /**
   * The vector length equals BLOCK_D (lanes·vec·dChunks): every element index d a lane owns is below it, so
   * the printers drop the element guards d < D (and the lowering the masks of row reductions).
   */
  exactD: boolean;
}

export interface LowerOptions {
  /** The vector length is known to equal the schedule's BLOCK_D (see LoweredKernel.exactD). */
  exactD?: boolean;
}

/** d < vecDim: the element guard that exactD kernels drop. */
export const isDGuard = (e: Expr, vecDim: string): boolean =>
  e.op === 'bin' && e.fn === 'lt' && e.a.op === 'd' && e.b.op === 'param' && e.b.name === vecDim;

export const NEG_BIG = -3.0e38;

let counter = 0;
const refOf = (name: string, t: ValueType, s: Scope): Expr => ({ op: 'ref', name, t, s });

const hasScope = (k: Kernel, scope: Scope): boolean => {
  let found = false;
  forEachExpr(k.body, (e) => (found ||= e.s === scope));
  return found;
};

/** Reductions over d (lowered into vec regions); reductions over candidates stay expressions of tile targets. */
const hasReduce = (e: Expr): boolean => (e.op === 'reduce' && e.axis !== 'c') || children(e).some(hasReduce);

export function lower(k0: Kernel, schedule: Schedule, caps?: DeviceCaps, opts: LowerOptions = {}): LoweredKernel {
  const exactD = !!opts.exactD;
  checkScheduleShape(schedule);
  verifyKernel(k0);
  if (k0.groupRows !== undefined && k0.groupRows % schedule.rows !== 0)
    throw new VerifyError(
      k0.name,
      'schedule',
      `rows = ${schedule.rows} per program must divide the ${k0.groupRows} rows of a group that share candidates`,
    );
  // The schedule sizes the candidate axis. Printers of tile targets take tile values as they are when the tile
  // suits a tensor-core dot and every candidate is shared by the program's rows; otherwise the untile pass.
  const sized = alignSlots(sizeCandidates(k0, schedule.samplesPerStep));
  const traits = caps ? traitsOf(caps) : undefined;
  const keepTiles = !!traits?.tiles && !!sized.cands && sized.cands >= traits.shareStep.min && !hasScope(sized, 'tvec');
  const passed = runPasses(sized.candAxis && !keepTiles ? untile(sized) : sized);
  const k = { ...passed, body: shareLets(passed.body) };
  verifyKernel(k);
  counter = 0;
  const symbols = new Map<string, SymbolInfo>();
  let maxReduceBatch = 1;
  const declare = (name: string, t: ValueType, s: Scope) => symbols.set(name, { t, s, array: s === 'vec' });

  // Masked loads → load statements (named); returns the expression with them replaced by refs.
  const hoistLoads = (e: Expr, pre: LStmt[]): Expr =>
    mapExpr(e, (x) => {
      if (x.op !== 'load' || !x.mask) return x;
      const name = `${x.tensor.toLowerCase()}_ld${counter++}`;
      declare(name, x.t, x.s);
      const row = rowAccessOf(x.index, x.mask, k.vecDim);
      pre.push({ k: 'load', name, t: x.t, s: x.s, tensor: x.tensor, index: x.index, mask: x.mask, row });
      return refOf(name, x.t, x.s);
    });

  // A statement list where every vec-scope statement is wrapped in its own region (merged later).
  const wrap = (s: LStmt, scope: Scope): LStmt[] => (scope === 'vec' ? [{ k: 'vec', body: [s] }] : [s]);

  const lowerBlock = (body: readonly Stmt[]): LStmt[] => {
    const out: LStmt[] = [];
    // Pending reduction batch: partial declarations, accumulations, and the statements that consume them.
    let batch: {
      decls: LStmt[];
      accums: LStmt[];
      targets: Map<'sum' | 'max', string[]>;
      after: LStmt[];
      defined: Set<string>;
    } | null = null;
    const flush = () => {
      if (!batch) return;
      out.push(...batch.decls, { k: 'vec', body: batch.accums });
      for (const [fn, targets] of batch.targets) {
        out.push({ k: 'laneReduce', fn, targets });
        maxReduceBatch = Math.max(maxReduceBatch, targets.length);
      }
      out.push(...batch.after);
      batch = null;
    };

    const simple = (s: Stmt, sink: LStmt[]) => {
      switch (s.k) {
        case 'comment':
          sink.push(s);
          return;
        case 'let': {
          const pre: LStmt[] = [];
          const v = hoistLoads(s.value, pre);
          declare(s.name, v.t, v.s);
          for (const p of pre) sink.push(...wrap(p, (p as { s: Scope }).s));
          sink.push(...wrap({ k: 'decl', name: s.name, t: v.t, s: v.s, init: v, mut: false }, v.s));
          return;
        }
        case 'var': {
          const pre: LStmt[] = [];
          const v = hoistLoads(s.init, pre);
          declare(s.name, s.t, s.s);
          for (const p of pre) sink.push(...wrap(p, (p as { s: Scope }).s));
          if (s.s === 'vec') {
            sink.push({ k: 'decl', name: s.name, t: s.t, s: s.s, mut: true });
            sink.push({ k: 'vec', body: [{ k: 'assign', name: s.name, value: v }] });
          } else sink.push({ k: 'decl', name: s.name, t: s.t, s: s.s, init: v, mut: true });
          return;
        }
        case 'assign': {
          const pre: LStmt[] = [];
          const v = hoistLoads(s.value, pre);
          const scope = symbols.get(s.name)!.s;
          for (const p of pre) sink.push(...wrap(p, (p as { s: Scope }).s));
          sink.push(...wrap({ k: 'assign', name: s.name, value: v }, scope === 'vec' ? 'vec' : v.s));
          return;
        }
        case 'store':
        case 'atomicAdd': {
          const pre: LStmt[] = [];
          const index = hoistLoads(s.index, pre);
          const value = hoistLoads(s.value, pre);
          const mask = s.mask && hoistLoads(s.mask, pre);
          for (const p of pre) sink.push(...wrap(p, (p as { s: Scope }).s));
          const scope = [index, value, mask].reduce<Scope>(
            (a, e) => (e && e.s === 'vec' ? 'vec' : e && e.s === 'row' && a === 'uniform' ? 'row' : a),
            'uniform',
          );
          const old = s.k === 'atomicAdd' ? s.old : undefined;
          if (old) declare(old, 'i32', scope);
          const row = scope === 'vec' ? rowAccessOf(index, mask, k.vecDim) : undefined;
          sink.push(...wrap({ k: s.k, tensor: s.tensor, index, value, mask, row, ...(old ? { old } : {}) }, scope));
          return;
        }
        case 'for':
          sink.push({ k: 'for', v: s.v, start: s.start, end: s.end, step: s.step, body: lowerBlock(s.body) });
          return;
      }
    };

    for (const s of body) {
      const exprs =
        s.k === 'let' || s.k === 'assign'
          ? [s.value]
          : s.k === 'var'
            ? [s.init]
            : s.k === 'store' || s.k === 'atomicAdd'
              ? [s.index, s.value, ...(s.mask ? [s.mask] : [])]
              : [];
      if (!exprs.some(hasReduce)) {
        flush();
        simple(s, out);
        continue;
      }
      // Replace each reduce by a partial; its vec operand goes into the batch's accumulation region.
      const deps = new Set<string>();
      const accums: LStmt[] = [];
      const decls: LStmt[] = [];
      const tgts: [('sum' | 'max'), string][] = [];
      const rewrite = (e: Expr): Expr =>
        mapExpr(e, (x) => {
          if (x.op !== 'reduce' || x.axis === 'c') return x;
          const name = `red${counter++}`;
          declare(name, 'f32', 'row');
          const pre: LStmt[] = [];
          const operand = hoistLoads(x.a, pre);
          refs(operand, deps);
          const ident = x.fn === 'sum' ? 0 : NEG_BIG;
          const identity: Expr = { op: 'const', t: 'f32', s: 'uniform', v: ident };
          decls.push({ k: 'decl', name, t: 'f32', s: 'row', init: identity, mut: true });
          const d: Expr = { op: 'd', t: 'i32', s: 'vec' };
          const dim: Expr = { op: 'param', name: k.vecDim, t: 'i32', s: 'uniform' };
          const dValid: Expr = { op: 'bin', fn: 'lt', t: 'bool', s: 'vec', a: d, b: dim };
          const masked: Expr = exactD
            ? operand
            : { op: 'select', t: 'f32', s: 'vec', c: dValid, a: operand, b: identity };
          accums.push(...pre, { k: 'accum', fn: x.fn, target: name, value: masked });
          tgts.push([x.fn, name]);
          return refOf(name, 'f32', 'row');
        });
      const rewritten: Stmt =
        s.k === 'var'
          ? { ...s, init: rewrite(s.init) }
          : s.k === 'let' || s.k === 'assign'
            ? { ...s, value: rewrite(s.value) }
            : s.k === 'store' || s.k === 'atomicAdd'
              ? { ...s, index: rewrite(s.index), value: rewrite(s.value), mask: s.mask && rewrite(s.mask) }
              : s;
      const b = batch as typeof batch;
      if (b && [...deps].some((d) => b.defined.has(d))) flush();
      if (!batch) batch = { decls: [], accums: [], targets: new Map(), after: [], defined: new Set() };
      const cur = batch as NonNullable<typeof batch>;
      cur.decls.push(...decls);
      cur.accums.push(...accums);
      for (const [fn, n] of tgts) cur.targets.set(fn, [...(cur.targets.get(fn) ?? []), n]);
      simple(rewritten, cur.after);
      if (s.k === 'let' || s.k === 'var' || s.k === 'assign') cur.defined.add(s.name);
    }
    flush();
    return mergeRegions(out);
  };

  const body = lowerBlock(k.body);
  markTemporaries(body, symbols);
  const lk: LoweredKernel = {
    kernel: k,
    schedule,
    body,
    symbols,
    maxReduceBatch,
    blockD: blockD(schedule),
    perLane: perLane(schedule),
    invocations: invocations(schedule),
    caps,
    rowSharedSlots: 0,
    exactD,
  };
  if (caps) markRowShared(lk, caps);
  if (caps) checkAgainstCaps(lk, caps);
  return lk;
}

/** indexesVectors by lowered body: the runtimes ask at every launch, the body never changes. */
const vectorBodies = new WeakMap<LStmt[], boolean>();

/** Whether a lowered kernel has vec regions (indexes vectors of its vecDim): its schedule must suit D. */
export function indexesVectors(lk: Pick<LoweredKernel, 'body'>): boolean {
  const walk = (b: LStmt[]): boolean => b.some((s) => s.k === 'vec' || (s.k === 'for' && walk(s.body)));
  let known = vectorBodies.get(lk.body);
  if (known === undefined) vectorBodies.set(lk.body, (known = walk(lk.body)));
  return known;
}

/**
 * The (schedule, D) check of a lowered kernel that runs at vector length D, for the runtimes before they compile
 * or launch it (D undefined: a D-independent build; kernels without vec regions take any D).
 */
export function checkKernelForD(
  lk: Pick<LoweredKernel, 'body' | 'schedule' | 'kernel'>,
  D: number | undefined,
): void {
  if (D !== undefined && indexesVectors(lk)) checkScheduleForD(lk.schedule, D, `${lk.kernel.name}: schedule`);
}
