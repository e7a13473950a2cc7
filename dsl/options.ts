// The options of the CCE- kernels (dsl/cce.ts, dsl/byitem.ts), their code key, and the small pieces both kernel
// families build from them: the logit transform and its derivative, the sampling correction and the negatives
// index tensor (the log q parameters are dsl/sources/logq.ts's).
import type { KernelBuilder, Tensor } from './builder.js';
import { applyScalarFn, derivative, type ScalarFn } from './scalarfn.js';
import { DslError, type Val } from './values.js';

export type FloatDType = 'f32' | 'f16' | 'bf16';

export interface CceOptions {
  mode: 'sampled' | 'full';
  dtype: FloatDType;
  /** Sampled mode: 'uniform' (q = 1/(V−1), a scalar log q) or 'given' (a log q tensor [V]). */
  sampling: 'uniform' | 'given';
  /**
   * Sampled mode, the drawn negatives: an index tensor [N, K] (default), drawn in the kernel (Philox4x32-10,
   * seed), or 'none' (in-batch candidates only).
   */
  negatives?: 'tensor' | 'philox' | 'none';
  /**
   * Sampled mode: in-batch candidates, the targets of all rows ('batch') or of the rows of the row's group of
   * `share` rows ('group'), shared by those rows, with their own q (inBatchSampling). With drawn negatives too
   * the kernel mixes both parts: k counts the accepted candidates of both, each corrected by its own q.
   */
  inBatch?: 'batch' | 'group';
  /** q of the in-batch candidates: 'uniform' (1/(V−1), scalar `logq_batch_uniform`) or 'given' (`logq_batch` [V]). */
  inBatchSampling?: 'uniform' | 'given';
  /**
   * The loss rows are rows positions[i] of E (E [NE, D], positions [N], distinct): no [N, D] copy of the rows
   * that carry a loss. dE is [NE, D]; rows of it no position names are left as they were (zero them first).
   */
  positions?: boolean;
  /**
   * Sampled mode, vocabulary-parallel: C is the shard [V, D] of items vocab_start..vocab_end−1 of a catalog of VG
   * items (candidate ids stay global). The forward writes per-row partial statistics of the owned candidates
   * (running max, sum of exponentials, accepted count, the target logit where owned); the backward takes the
   * merged lse, count and the other candidates' share and writes this shard's dC and its part of dE.
   */
  vocabShard?: boolean;
  /**
   * Sampled mode, negatives 'tensor': the element type of the index tensor. 'i32' (default); 'i64': an int64
   * little-endian tensor read in place as its low 32-bit words, so a framework's int64 indices need no copy.
   * The kernel parameter is then an i32 tensor [N, K2] ([G, K2] shared), K2 = 2·K, and slot j of row i is
   * word 2·(i·K + j). The low word is the item id only for values in [0, 2^31): the caller must have
   * range-checked the int64 values (0 ≤ n < V), since the kernels never see the high words.
   */
  negativesDtype?: 'i32' | 'i64';
  /**
   * Sampled mode: row-tile-shared negatives. Each group of `share` consecutive rows (one program) shares its
   * K negatives (index tensor [G, K], G = ⌈N/share⌉, or Philox stream 1 keyed by the group). Every row still
   * sees K i.i.d. draws from q, so its estimator is unchanged; logits and gradients become tile contractions
   * (tensor cores) and dC gets one update per group and candidate instead of one per row.
   */
  share?: number;
  /**
   * dC without float atomics: int64 fixed point (units of 1/dC_scale) added with integer atomics, so dC is
   * bit-identical from run to run whatever order the programs run in. The runtime picks the scale from a
   * bound of |dC| (runtime/fixed.ts) and converts to float afterwards.
   */
  deterministic?: boolean;
  /** Backward: 'scalar' upstream gradient (mean / sum) or 'perRow' (reduction none). */
  grad: 'scalar' | 'perRow';
  /** Logit transform f(x) applied to every dot product (identity when absent). */
  transform?: ScalarFn;
  /** Sampling correction from log q (−log q when absent). */
  correction?: ScalarFn;
}

export const DEFAULT_OPTIONS: CceOptions = { mode: 'sampled', dtype: 'f32', sampling: 'uniform', grad: 'scalar' };

/** A stable key of the options that change generated code (never shapes). */
export function optionsKey(o: CceOptions): string {
  const fn = (f?: ScalarFn) => (f ? `${f.name}(${f.args.join(',')})=${JSON.stringify(f.body)}` : '-');
  const sampled = o.mode === 'sampled';
  const share = sampled && o.share ? `share${o.share}` : '';
  return [
    o.mode,
    o.dtype,
    sampled ? o.sampling : '',
    sampled ? o.negatives ?? 'tensor' : '',
    o.grad,
    fn(o.transform),
    fn(o.correction),
    share,
    ...(o.deterministic ? ['det'] : []),
    ...(o.negativesDtype === 'i64' ? ['neg64'] : []),
    ...(sampled && o.inBatch ? [`inbatch-${o.inBatch}-${o.inBatchSampling ?? 'uniform'}`] : []),
    ...(o.positions ? ['pos'] : []),
    ...(o.vocabShard ? ['vocab'] : []),
  ].join('|');
}

export const transformOf = (o: CceOptions) => (x: Val<'f32'>) => (o.transform ? applyScalarFn(o.transform, [x]) : x);

export const derivativeOf = (o: CceOptions) =>
  o.transform ? (x: Val<'f32'>) => applyScalarFn(derivative(o.transform!, o.transform!.args[0]), [x]) : undefined;

/** Correction added to the logit of a negative with log q = lq: corr(lq), −lq by default. */
export const correctionFor = (o: CceOptions, lq: Val<'f32'>): Val<'f32'> =>
  o.correction ? applyScalarFn(o.correction, [lq]) : lq.neg();

/**
 * Why dC by item (dsl/byitem.ts) does not apply to these options, or undefined: it is for per-row sampled
 * negatives with float dC.
 */
export function byItemRefusal(o: CceOptions): string | undefined {
  return o.mode !== 'sampled' || o.share || o.deterministic || o.inBatch || o.negatives === 'none' || o.positions ||
    o.vocabShard
    ? 'dC by item: per-row sampled negatives with float dC only'
    : undefined;
}

/** The negatives index tensor of a kernel and how to read slot `flat` = row·K + slot of it. */
export interface Negatives {
  tensor: Tensor<'i32', readonly [string, string]>;
  /** The item id of slot `flat` (row·K + slot, in slots of the [rows, K] index tensor). */
  load(flat: Val<'i32'>, mask: Val<'bool'>): Val<'i32'>;
}

/** Refuses negativesDtype where no index tensor is read, or an unknown one. */
export function checkNegativesDtype(o: CceOptions): void {
  const d = o.negativesDtype;
  if (d === undefined || d === 'i32') return;
  if (d !== 'i64') throw new DslError(`negativesDtype: must be 'i32' or 'i64', got ${JSON.stringify(d)}`);
  if (o.mode !== 'sampled') throw new DslError("negativesDtype 'i64': full mode reads no negatives tensor");
  if (o.negatives === 'philox' || o.negatives === 'none')
    throw new DslError(`negativesDtype 'i64': negatives '${o.negatives}' have no index tensor to read`);
}

/** Refuses candidate options that do not go together, naming the option. */
export function checkCandidates(o: CceOptions): void {
  checkNegativesDtype(o);
  const neg = o.negatives ?? 'tensor';
  if (!['tensor', 'philox', 'none'].includes(neg))
    throw new DslError(`negatives: must be 'tensor', 'philox' or 'none', got ${JSON.stringify(neg)}`);
  if (o.inBatch !== undefined && o.inBatch !== 'batch' && o.inBatch !== 'group')
    throw new DslError(`inBatch: must be 'batch' or 'group', got ${JSON.stringify(o.inBatch)}`);
  if (o.mode !== 'sampled' && (o.inBatch || o.negatives === 'none'))
    throw new DslError('inBatch: full mode has every item as a candidate already');
  if (neg === 'none' && !o.inBatch) throw new DslError("negatives 'none': needs inBatch (the only candidates)");
  if (o.inBatch === 'group' && !o.share) throw new DslError("inBatch 'group': needs share (the rows of a group)");
  if (o.inBatchSampling && !o.inBatch) throw new DslError('inBatchSampling: only with inBatch');
  if (o.vocabShard && (o.mode !== 'sampled' || o.inBatch))
    throw new DslError('vocabShard: for drawn or given negatives (sampled mode, no in-batch candidates)');
  if (o.share !== undefined && !(Number.isInteger(o.share) && o.share >= 1))
    throw new DslError(`share: must be a positive integer, got ${o.share}`);
}

/**
 * Declares the negatives index tensor, [rows, K] of i32 or, with negativesDtype 'i64', [rows, K2] of i32 words
 * (K2 = 2·K): the low word of each int64 element (see CceOptions.negativesDtype).
 */
export function negativesInput(kb: KernelBuilder<'D'>, o: CceOptions, rows: 'N' | 'G', doc: string): Negatives {
  checkNegativesDtype(o);
  if (o.negativesDtype !== 'i64') {
    const tensor = kb.input('negatives', 'i32', [rows, 'K'] as const, doc);
    return { tensor, load: (flat, mask) => kb.load(tensor, flat, mask) };
  }
  const wide = `${doc}: int64 read as i32 words, the low word of each (K2 = 2·K; values range-checked by the caller)`;
  const tensor = kb.input('negatives', 'i32', [rows, 'K2'] as const, wide);
  return { tensor, load: (flat, mask) => kb.load(tensor, flat.mul(2), mask) };
}
