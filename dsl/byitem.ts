// dC reduced by item, for per-row negatives. Scattering coef·e_i into dC[n] for every (row, negative) pair
// costs N·K·D float atomics, and on real catalogs that scatter, not the gathers, sets the time (the fp32
// atomic floor). Instead, per chunk of rows:
//   count  — regenerate the pairs (Philox or the index tensor) and count the accepted ones per item;
//   scan   — exclusive prefix sums of the counts: each item's slice of a pair buffer;
//   fill   — regenerate the pairs again and write each pair's row and item into its item's slice (an integer
//            cursor hands out the entries; one packed u32 where the chunk's rows and the items fit 32 bits);
//   reduce — walk the buffers in segments of SEGMENT pairs: consecutive pairs of one item share its row c_n
//            (loaded once), recompute p = exp(s − lse_i − log k_i) from the lse + log k the forward wrote,
//            sum coef·e_i in registers and add the sum to dC[n] once per item and segment.
// The forward (cceFusedDE with byItem) writes loss, dE, lse + log k and the targets' dC terms.
// Float atomics drop from one per pair and element to about one per item, segment and element; the pair
// buffers hold one u32 or two i32 per pair of a chunk (the runtime sizes chunks to a memory budget).
import type { Kernel } from '../codegen/ir.js';
import { KernelBuilder } from './builder.js';
import {
  type CceOptions, byItemRefusal, checkNegativesDtype, correctionFor, derivativeOf, type FloatDType,
  type Negatives, negativesInput, transformOf,
} from './options.js';
import { sampledLogq } from './sources/logq.js';
import { type Sampler, sampleItem, samplerParams } from './sampling.js';
import { DslError, dot, f32, i32, select, u32, type Val } from './values.js';

/** Pairs per segment of the reduce kernel: its rows walk this many consecutive buffer entries. */
export const SEGMENT = 32;
/** Entries per program row of the scan kernels (sequential per thread). */
export const SCAN_WIDTH = 64;

/** Docs of the pair buffers (packed entries; rows of two-word entries). */
const PACKED_DOC = '((row − row0) << item_bits | item) + 1 of each pair, grouped by item; 0 where unused';
const ROWS_DOC = 'row + 1 of each pair, grouped by item; 0 where unused';


function check(o: CceOptions): void {
  const refusal = byItemRefusal(o);
  if (refusal) throw new DslError(refusal);
  checkNegativesDtype(o);
}

interface Pairs {
  kb: KernelBuilder<'D'>;
  sampler?: Sampler;
  negatives?: Negatives;
}

/** The pair source of a kernel: Philox keys (and alias table) or the index tensor. */
function pairSource(kb: KernelBuilder<'D'>, o: CceOptions): Pairs {
  if (o.negatives === 'philox') return { kb, sampler: samplerParams(kb, o.sampling) };
  return { kb, negatives: negativesInput(kb, o, 'N', 'sampled negative items per row') };
}

/** Row and slot of pair id `pid` (= row·K + slot), and its item. */
function pairItem(src: Pairs, pid: Val<'i32'>, valid: Val<'bool'>): { grow: Val<'i32'>; n: Val<'i32'> } {
  const { kb } = src;
  const K = kb.dim('K');
  const grow = kb.let('prow', pid.div(K));
  const slot = kb.let('pslot', pid.sub(grow.mul(K)));
  const n = src.sampler ? sampleItem(kb, src.sampler, grow, slot, kb.dim('V'), 'smp') : src.negatives!.load(pid, valid);
  return { grow, n: kb.let('n', n) };
}

/** Counting and filling: one pair per row (pair id pair0 + row); `ok` when it is an accepted negative. */
function pairKernel(
  name: string,
  doc: string,
  o: CceOptions,
): { kb: KernelBuilder<'D'>; grow: Val<'i32'>; n: Val<'i32'>; ok: Val<'bool'> } {
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

/**
 * Write each accepted pair's row and item into its item's slice of the pair buffers. `packed`: one u32 per
 * pair, ((row − row0) << item_bits | item) + 1, when the chunk's rows and the items fit 32 bits together
 * (half the scattered writes and reads); otherwise two i32 buffers, row + 1 and item. 0 marks an unused entry.
 */
export function cceFillPairs(o: CceOptions, packed = false): Kernel {
  const name = packed ? 'cce_minus_fill_pairs_packed' : 'cce_minus_fill_pairs';
  const { kb, grow, n, ok } = pairKernel(name, "dC by item, step 3: the pairs' rows and items, grouped by item", o);
  const cursorDoc = 'next free entry of each item (the exclusive prefix sums of the counts)';
  const cursor = kb.counter('cursor', ['V'] as const, cursorDoc);
  if (packed) {
    const codesDoc = `${PACKED_DOC} (cleared before)`;
    const codes = kb.output('pair_codes', 'u32', ['Q'] as const, codesDoc);
    const row0 = kb.scalar('row0', 'i32', 'first row of this chunk');
    const bits = kb.scalar('item_bits', 'u32', 'bits of an item id in a packed entry');
    const at = kb.fetchAdd('at', cursor, n, 1, ok);
    kb.store(codes, at, grow.sub(row0).to('u32').shl(bits).bitor(n.to('u32')).add(1), ok);
    return kb.build();
  }
  const rows = kb.output('pair_rows', 'i32', ['Q'] as const, `${ROWS_DOC} (cleared before)`);
  const itemsDoc = 'item of each pair (the reduction reads it instead of drawing it again)';
  const items = kb.output('pair_items', 'i32', ['Q'] as const, itemsDoc);
  const at = kb.fetchAdd('at', cursor, n, 1, ok);
  kb.store(rows, at, grow.add(1), ok);
  kb.store(items, at, n, ok);
  return kb.build();
}

/** The entries of this row's block of a scan: index and whether it is inside the `n` values. */
function eachInBlock(kb: KernelBuilder<'D'>, body: (idx: Val<'i32'>, inb: Val<'bool'>) => void): void {
  kb.loop('j', 0, SCAN_WIDTH, 1, (j) => {
    const idx = kb.let('idx', kb.row.mul(SCAN_WIDTH).add(j));
    body(idx, kb.let('inb', kb.rowValid.and(idx.lt(kb.dim('n')))));
  });
}

/**
 * Exclusive prefix sums of `src` within blocks of SCAN_WIDTH entries (one thread per block), and each block's
 * total: the first half of a two-kernel scan, applied again to the totals until one block remains.
 */
export function scanBlocks(): Kernel {
  const doc = 'exclusive prefix sums within blocks, and block totals';
  const kb = new KernelBuilder({ name: 'ccekit_scan_blocks', doc, rowDim: 'B', vecDim: 'D' });
  const src = kb.input('src', 'i32', ['n'] as const, 'values');
  const local = kb.output('local', 'i32', ['n'] as const, 'exclusive prefix sums within each block');
  const totals = kb.output('totals', 'i32', ['B'] as const, 'sum of each block');
  const run = kb.var('run', i32(0), 'row');
  eachInBlock(kb, (idx, inb) => {
    const x = kb.let('x', kb.load(src, idx, inb));
    kb.store(local, idx, run.get(), inb);
    run.set(run.get().add(x));
  });
  kb.store(totals, kb.row, run.get(), kb.rowValid);
  return kb.build();
}

/** The second half: add each block's base (the scanned totals) to its local prefix sums. */
export function scanAdd(): Kernel {
  const doc = 'exclusive prefix sums from local sums and scanned block totals';
  const kb = new KernelBuilder({ name: 'ccekit_scan_add', doc, rowDim: 'B', vecDim: 'D' });
  const local = kb.input('local', 'i32', ['n'] as const, 'exclusive prefix sums within each block');
  const base = kb.input('base', 'i32', ['B'] as const, 'exclusive prefix sums of the block totals');
  const dst = kb.output('dst', 'i32', ['n'] as const, 'exclusive prefix sums');
  const b = kb.let('b', kb.load(base, kb.row, kb.rowValid));
  eachInBlock(kb, (idx, inb) => {
    kb.store(dst, idx, kb.load(local, idx, inb).add(b), inb);
  });
  return kb.build();
}

/**
 * The reduction: row r walks entries r·SEGMENT .. r·SEGMENT + SEGMENT − 1 of the pair buffer. A run of one
 * item's pairs loads c_n once, sums coef·e_i in registers and adds the sum to dC[n] when the item changes
 * and at the end, so dC sees one float-atomic row per item and segment instead of one per pair.
 */
export function cceReduceByItem(o: CceOptions, packed = false): Kernel {
  check(o);
  const name = packed ? 'cce_minus_dc_by_item_packed' : 'cce_minus_dc_by_item';
  const doc = "dC by item, step 4: sums of coef·e over runs of one item's pairs, one dC update per run";
  const kb = new KernelBuilder({ name, doc, rowDim: 'S', vecDim: 'D' });
  const E = kb.input('E', o.dtype as FloatDType, ['N', 'D'] as const, 'hidden states, one row per position');
  const C = kb.input('C', o.dtype as FloatDType, ['V', 'D'] as const, 'item embeddings (the classifier)');
  const codes = packed ? kb.input('pair_codes', 'u32', ['Q'] as const, PACKED_DOC) : undefined;
  const row0 = packed ? kb.scalar('row0', 'i32', 'first row of this chunk') : undefined;
  const bits = packed ? kb.scalar('item_bits', 'u32', 'bits of an item id in a packed entry') : undefined;
  const pairRows = packed ? undefined : kb.input('pair_rows', 'i32', ['Q'] as const, ROWS_DOC);
  const pairItems = packed ? undefined : kb.input('pair_items', 'i32', ['Q'] as const, 'item of each pair');
  const LSEK = kb.input('lse_k', 'f32', ['N'] as const, 'per-row lse + log k from the forward');
  const logq = sampledLogq(kb, o.sampling, '', 'the sampling distribution of the drawn negatives');
  const dC = kb.accumulator('dC', ['V', 'D'] as const, 'gradient of the item embeddings (adds the negatives\' terms)');
  const g = kb.scalar('grad_scale', 'f32', 'upstream scalar gradient (mean: 1/n_valid)');
  const f = transformOf(o);
  const df = derivativeOf(o);
  const item = kb.var('item', i32(-1), 'row');
  const cur = kb.var('c_cur', f32(0), 'vec');
  const acc = kb.var('acc', f32(0), 'vec');
  // One pair a step (on an H100 two or four a step lost: more registers, fewer warps); the run bookkeeping
  // takes the pairs in order, so they are not a candidate axis a schedule could tile.
  const U = 1;
  kb.loop('jj', 0, SEGMENT, U, (jj) => {
    kb.comment(`${U} pairs: rows, items, each item's row (loaded when it differs from the one before), e_i, logits`);
    const pairs = Array.from({ length: U }, (_, u) => {
      const pos = kb.let(`pos_${u}`, kb.row.mul(SEGMENT).add(jj).add(u));
      const inb = kb.let(`inb_${u}`, kb.rowValid.and(pos.lt(kb.dim('Q'))));
      if (codes) {
        const code = kb.let(`code_${u}`, kb.load(codes, pos, inb));
        const valid = kb.let(`valid_${u}`, code.ne(0));
        const x = code.sub(1);
        const grow = kb.let(`prow_${u}`, select(valid, x.shr(bits!).to('i32').add(row0!), -1));
        return { grow, valid, n: kb.let(`n_${u}`, x.bitand(u32(1).shl(bits!).sub(1)).to('i32')) };
      }
      const grow = kb.let(`prow_${u}`, kb.load(pairRows!, pos, inb).sub(1));
      const valid = kb.let(`valid_${u}`, grow.ge(0));
      return { grow, valid, n: kb.let(`n_${u}`, kb.load(pairItems!, pos, valid)) };
    });
    // Entries past the filled ones are invalid to the segment's end, so a valid pair's predecessor is valid:
    // pair u starts a run when it is valid and its item differs from the one before it.
    let prevN = item.get();
    let prevC = cur.get();
    const runs = pairs.map(({ n, valid }, u) => {
      const same = kb.let(`same_${u}`, n.eq(prevN));
      const c = kb.let(`c_${u}`, select(same, prevC, kb.loadRow(C, n, valid.and(same.not()))));
      const run = { c, before: prevN, fresh: kb.let(`fresh_${u}`, valid.and(same.not())) };
      prevN = n;
      prevC = c;
      return run;
    });
    const es = pairs.map(({ grow, valid }, u) => kb.let(`e_${u}`, kb.loadRow(E, grow, valid)));
    const raws = pairs.map((_, u) => kb.let(`raw_${u}`, dot(es[u]!, runs[u]!.c)));
    const coefs = pairs.map(({ grow, valid, n }, u) => {
      const corr = correctionFor(o, logq(n, valid));
      const sj = f(raws[u]!).add(corr).sub(kb.load(LSEK, grow, valid));
      const p = kb.let(`p_${u}`, select(valid, sj.exp(), 0));
      return kb.let(`coef_${u}`, (df ? p.mul(df(raws[u]!)) : p).mul(g));
    });
    kb.comment('in order: a pair that starts a run adds the finished run to dC first');
    runs.forEach(({ before, fresh }, u) => {
      kb.atomicAddRow(dC, before, acc.get(), fresh.and(before.ge(0)));
      acc.set(select(fresh, f32(0), acc.get()).add(es[u]!.mul(coefs[u]!)));
    });
    item.set(pairs.reduce((it, { valid, n }) => select(valid, n, it), item.get()));
    cur.set(runs[U - 1]!.c);
  });
  kb.atomicAddRow(dC, item.get(), acc.get(), item.get().ge(0));
  return kb.build();
}
