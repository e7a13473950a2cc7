// dC reduced by item, for per-row negatives. Scattering coef·e_i into dC[n] for every (row, negative) pair
// costs N·K·D float atomics, and on real catalogs that scatter, not the gathers, sets the time (the fp32
// atomic floor). Instead, per chunk of rows:
//   count  — regenerate the pairs (Philox or the index tensor) and count the accepted ones per item;
//   scan   — exclusive prefix sums of the counts: each item's slice of a pair buffer;
//   fill   — regenerate the pairs again and write each pair's row and item into its item's slice (an integer
//            cursor hands out the entries);
//   reduce — walk the buffers in segments of SEGMENT pairs: consecutive pairs of one item share its row c_n
//            (loaded once), recompute p = exp(s − lse_i) from lse and the accepted count the forward wrote,
//            sum coef·e_i in registers and add the sum to dC[n] once per item and segment.
// The forward (cceFusedDE with byItem) writes loss, dE, lse, the accepted counts and the targets' dC terms.
// Float atomics drop from one per pair and element to about one per item, segment and element; the pair
// buffers hold two i32 per pair of a chunk (the runtime sizes chunks to a memory budget).
import type { Kernel } from '../codegen/ir.js';
import { KernelBuilder, type Tensor } from './builder.js';
import { type CceOptions, derivativeOf, type FloatDType, transformOf } from './cce.js';
import { type Sampler, sampleItem } from './sampling.js';
import { applyScalarFn } from './scalarfn.js';
import { type Schedule, fitD } from './schedule.js';
import { DslError, dot, f32, i32, select, type Val } from './values.js';

/** Pairs per segment of the reduce kernel: its rows walk this many consecutive buffer entries. */
export const SEGMENT = 32;
/** Entries per program row of the scan kernels (sequential per thread). */
export const SCAN_WIDTH = 64;

/**
 * Default schedule of the reduction: few lanes a row (about D/32), so a warp walks several segments at once and
 * the per-pair scalar work (loads of row and item, lse, exp) is shared by fewer lanes; 4-element accesses.
 */
export function reduceSchedule(D: number): Schedule {
  let lanes = 1;
  while (lanes < 32 && lanes * 32 < D) lanes *= 2;
  return fitD({ rows: Math.max(1, 128 / lanes) as Schedule['rows'], lanes: lanes as Schedule['lanes'], vec: 4, dChunks: 1, samplesPerStep: 1, stages: 1 }, D);
}

/** Schedule of the counting, filling and scan kernels: one thread per row (their counters need lanes = 1). */
export const COUNTER_SCHEDULE: Schedule = { rows: 128, lanes: 1, vec: 1, dChunks: 1, samplesPerStep: 1, stages: 1 };

function check(o: CceOptions): void {
  if (o.mode !== 'sampled' || o.share || o.deterministic) throw new DslError('dC by item: per-row sampled negatives with float dC only');
}

interface Pairs {
  kb: KernelBuilder<'D'>;
  sampler?: Sampler;
  negatives?: Tensor<'i32', readonly ['N', 'K']>;
}

/** The pair source of a kernel: Philox keys (and alias table) or the index tensor. */
function pairSource(kb: KernelBuilder<'D'>, o: CceOptions): Pairs {
  if (o.negatives === 'philox')
    return {
      kb,
      sampler: {
        seedLo: kb.scalar('seed_lo', 'u32', 'Philox key, low word'),
        seedHi: kb.scalar('seed_hi', 'u32', 'Philox key, high word'),
        alias: o.sampling === 'given' ? kb.input('alias_table', 'u32', ['V2'] as const, 'Walker alias table: [u32 threshold, alias item] per item') : undefined,
      },
    };
  return { kb, negatives: kb.input('negatives', 'i32', ['N', 'K'] as const, 'sampled negative items per row') };
}

/** Row and slot of pair id `pid` (= row·K + slot), and its item. */
function pairItem(src: Pairs, pid: Val<'i32'>, valid: Val<'bool'>): { grow: Val<'i32'>; n: Val<'i32'> } {
  const { kb } = src;
  const K = kb.dim('K');
  const grow = kb.let('prow', pid.div(K));
  const slot = kb.let('pslot', pid.sub(grow.mul(K)));
  const n = src.sampler ? sampleItem(kb, src.sampler, grow, slot, kb.dim('V'), 'smp') : kb.load(src.negatives!, pid, valid);
  return { grow, n: kb.let('n', n) };
}

/** Counting and filling: one pair per row (pair id pair0 + row); `ok` when it is an accepted negative. */
function pairKernel(name: string, doc: string, o: CceOptions): { kb: KernelBuilder<'D'>; grow: Val<'i32'>; n: Val<'i32'>; ok: Val<'bool'> } {
  check(o);
  const kb = new KernelBuilder({ name, doc, rowDim: 'P', vecDim: 'D' });
  const T = kb.input('targets', 'i32', ['N'] as const, 'target item per row, or ignore_index');
  const src = pairSource(kb, o);
  const ignore = kb.scalar('ignore_index', 'i32', 'target value of rows that do not count');
  const pair0 = kb.scalar('pair0', 'i32', 'pair id of this launch\'s first row (chunk of rows · K)');
  const pid = kb.let('pid', pair0.add(kb.row));
  const { grow, n } = pairItem(src, pid, kb.rowValid);
  const t = kb.let('t', kb.load(T, grow, kb.rowValid));
  const ok = kb.let('ok', kb.rowValid.and(t.ne(ignore)).and(n.ne(t)));
  return { kb, grow, n, ok };
}

/** Count the accepted negatives of a chunk's pairs per item. */
export function cceCountPairs(o: CceOptions): Kernel {
  const { kb, n, ok } = pairKernel('cce_minus_count_pairs', 'dC by item, step 1: accepted negatives per item', o);
  const counts = kb.counter('counts', ['V'] as const, 'accepted negatives per item (zero it first)');
  kb.atomicAdd(counts, n, i32(1), ok);
  return kb.build();
}

/** Write each accepted pair's row and item into its item's slice of the pair buffers. */
export function cceFillPairs(o: CceOptions): Kernel {
  const { kb, grow, n, ok } = pairKernel('cce_minus_fill_pairs', 'dC by item, step 3: the pairs\' rows and items, grouped by item', o);
  const cursor = kb.counter('cursor', ['V'] as const, 'next free entry of each item (the exclusive prefix sums of the counts)');
  const rows = kb.output('pair_rows', 'i32', ['Q'] as const, 'row + 1 of each pair, grouped by item; 0 where unused (cleared before)');
  const items = kb.output('pair_items', 'i32', ['Q'] as const, 'item of each pair (the reduction reads it instead of drawing it again)');
  const at = kb.fetchAdd('at', cursor, n, 1, ok);
  kb.store(rows, at, grow.add(1), ok);
  kb.store(items, at, n, ok);
  return kb.build();
}

/**
 * Exclusive prefix sums of `src` within blocks of SCAN_WIDTH entries (one thread per block), and each block's
 * total: the first half of a two-kernel scan, applied again to the totals until one block remains.
 */
export function scanBlocks(): Kernel {
  const kb = new KernelBuilder({ name: 'ccekit_scan_blocks', doc: 'exclusive prefix sums within blocks, and block totals', rowDim: 'B', vecDim: 'D' });
  const src = kb.input('src', 'i32', ['n'] as const, 'values');
  const local = kb.output('local', 'i32', ['n'] as const, 'exclusive prefix sums within each block');
  const totals = kb.output('totals', 'i32', ['B'] as const, 'sum of each block');
  const run = kb.var('run', i32(0), 'row');
  kb.loop('j', 0, SCAN_WIDTH, 1, (j) => {
    const idx = kb.let('idx', kb.row.mul(SCAN_WIDTH).add(j));
    const inb = kb.let('inb', kb.rowValid.and(idx.lt(kb.dim('n'))));
    const x = kb.let('x', kb.load(src, idx, inb));
    kb.store(local, idx, run.get(), inb);
    run.set(run.get().add(x));
  });
  kb.store(totals, kb.row, run.get(), kb.rowValid);
  return kb.build();
}

/** The second half: add each block's base (the scanned totals) to its local prefix sums. */
export function scanAdd(): Kernel {
  const kb = new KernelBuilder({ name: 'ccekit_scan_add', doc: 'exclusive prefix sums from local sums and scanned block totals', rowDim: 'B', vecDim: 'D' });
  const local = kb.input('local', 'i32', ['n'] as const, 'exclusive prefix sums within each block');
  const base = kb.input('base', 'i32', ['B'] as const, 'exclusive prefix sums of the block totals');
  const dst = kb.output('dst', 'i32', ['n'] as const, 'exclusive prefix sums');
  const b = kb.let('b', kb.load(base, kb.row, kb.rowValid));
  kb.loop('j', 0, SCAN_WIDTH, 1, (j) => {
    const idx = kb.let('idx', kb.row.mul(SCAN_WIDTH).add(j));
    const inb = kb.let('inb', kb.rowValid.and(idx.lt(kb.dim('n'))));
    kb.store(dst, idx, kb.load(local, idx, inb).add(b), inb);
  });
  return kb.build();
}

/**
 * The reduction: row r walks entries r·SEGMENT .. r·SEGMENT + SEGMENT − 1 of the pair buffer. A run of one
 * item's pairs loads c_n once, sums coef·e_i in registers and adds the sum to dC[n] when the item changes
 * and at the end, so dC sees one float-atomic row per item and segment instead of one per pair.
 */
export function cceReduceByItem(o: CceOptions, s: Schedule): Kernel {
  check(o);
  void s;
  const kb = new KernelBuilder({ name: 'cce_minus_dc_by_item', doc: 'dC by item, step 4: sums of coef·e over runs of one item\'s pairs, one dC update per run', rowDim: 'S', vecDim: 'D' });
  const E = kb.input('E', o.dtype as FloatDType, ['N', 'D'] as const, 'hidden states, one row per position');
  const C = kb.input('C', o.dtype as FloatDType, ['V', 'D'] as const, 'item embeddings (the classifier)');
  const pairRows = kb.input('pair_rows', 'i32', ['Q'] as const, 'row + 1 of each pair, grouped by item; 0 where unused');
  const pairItems = kb.input('pair_items', 'i32', ['Q'] as const, 'item of each pair');
  const LSE = kb.input('lse', 'f32', ['N'] as const, 'per-row lse from the forward');
  const KACC = kb.input('kacc', 'i32', ['N'] as const, 'accepted negatives per row from the forward');
  const logq = o.sampling === 'given' ? kb.input('logq', 'f32', ['V'] as const, 'log q(v) of the sampling distribution') : undefined;
  const logqUniform = logq ? undefined : kb.scalar('logq_uniform', 'f32', 'log q for uniform sampling: −log(V−1)');
  const dC = kb.accumulator('dC', ['V', 'D'] as const, 'gradient of the item embeddings (adds the negatives\' terms)');
  const g = kb.scalar('grad_scale', 'f32', 'upstream scalar gradient (mean: 1/n_valid)');
  const f = transformOf(o);
  const df = derivativeOf(o);
  const item = kb.var('item', i32(-1), 'row');
  const cur = kb.var('c_cur', f32(0), 'vec');
  const acc = kb.var('acc', f32(0), 'vec');
  kb.loop('j', 0, SEGMENT, 1, (j) => {
    const pos = kb.let('pos', kb.row.mul(SEGMENT).add(j));
    const inb = kb.let('inb', kb.rowValid.and(pos.lt(kb.dim('Q'))));
    const grow = kb.let('prow', kb.load(pairRows, pos, inb).sub(1));
    const valid = kb.let('valid', grow.ge(0));
    const n = kb.let('n', kb.load(pairItems, pos, valid));
    const fresh = kb.let('fresh', valid.and(n.ne(item.get())));
    kb.comment('a new item: add the finished run to dC, load the new item\'s row');
    kb.atomicAddRow(dC, item.get(), acc.get(), fresh.and(item.get().ge(0)));
    cur.set(select(fresh, kb.loadRow(C, n, fresh), cur.get()));
    const e = kb.let('e', kb.loadRow(E, grow, valid));
    const raw = kb.let('raw', dot(e, cur.get()));
    const lq = logq ? kb.load(logq, n, valid) : logqUniform!;
    const corr = o.correction ? applyScalarFn(o.correction, [lq]) : lq.neg();
    const logk = kb.load(KACC, grow, valid).to('f32').max(1).log();
    const sj = f(raw).add(corr).sub(logk).sub(kb.load(LSE, grow, valid));
    const p = kb.let('p', select(valid, sj.exp(), 0));
    const coef = kb.let('coef', (df ? p.mul(df(raw)) : p).mul(g));
    const term = kb.let('term', e.mul(coef));
    acc.set(select(fresh, term, acc.get().add(term)));
    item.set(select(valid, n, item.get()));
  });
  kb.atomicAddRow(dC, item.get(), acc.get(), item.get().ge(0));
  return kb.build();
}
