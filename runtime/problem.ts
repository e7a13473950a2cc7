/**
 * The CCE- problem description shared by the reference, the generator and the
 * runtimes, plus input validation.
 */
import { isFloatDType, type FloatDType } from './numeric.js';

export type Reduction = 'mean' | 'sum' | 'none';

export interface CceProblem {
  mode: 'sampled' | 'full';
  N: number;
  D: number;
  V: number;
  /** Negatives per row; 0 in full mode. */
  K: number;
  dtype: FloatDType;
  /** N*D hidden states, row-major. */
  E: Float32Array | Uint16Array;
  /** V*D item embeddings (classifier), row-major. */
  C: Float32Array | Uint16Array;
  /** N target item ids (or ignoreIndex). */
  targets: Int32Array;
  /** N*K negative item ids, sampled mode (G*K with shareRows). */
  negatives?: Int32Array;
  /**
   * Row-tile-shared negatives: each group of shareRows consecutive rows shares one set of K negatives
   * (negatives is then [G, K], G = ⌈N/shareRows⌉; drawn ones come from Philox stream 1 keyed by the group).
   */
  shareRows?: number;
  /**
   * Sampled mode without a negatives tensor: the kernels draw them (Philox4x32-10 with this seed,
   * runtime/philox.ts).
   */
  philoxSeed?: number;
  /** V sampling probabilities q(v) (popularity sampling); absent = uniform q = 1/(V-1). */
  itemProbs?: Float64Array;
  /**
   * In-batch candidates (CceOptions.inBatch): the targets of all rows ('batch') or of each group of shareRows
   * rows ('group'), besides the K drawn negatives; K = 0 without negatives and philoxSeed: in-batch only.
   */
  inBatch?: 'batch' | 'group';
  /** V item frequencies, the q of the in-batch candidates; absent = uniform q = 1/(V-1). */
  inBatchProbs?: Float64Array;
  /** Loss row i reads row positions[i] of E (distinct); E and dE then have NE rows. */
  positions?: Int32Array;
  /** Rows of E with positions. */
  NE?: number;
  ignoreIndex: number;
  reduction: Reduction;
}

/** Error for an invalid argument; `message` always starts with `argument`. */
export class CceInputError extends Error {
  readonly argument: string;
  constructor(argument: string, message: string) {
    super(message.startsWith(argument) ? message : `${argument}: ${message}`);
    this.name = 'CceInputError';
    this.argument = argument;
  }
}

/** Largest element offset a kernel may index with a signed 32-bit integer. */
export const MAX_I32_OFFSET = 2 ** 31 - 1;

const REDUCTIONS: readonly string[] = ['mean', 'sum', 'none'];

/** Group sizes of row-tile-shared negatives (rows per group). */
export const SHARE_ROWS: readonly number[] = [16, 32, 64, 128];
/** "16, 32, 64 or 128", for messages. */
export const SHARE_ROWS_TEXT = `${SHARE_ROWS.slice(0, -1).join(', ')} or ${SHARE_ROWS[SHARE_ROWS.length - 1]}`;

function fail(argument: string, detail: string): never {
  throw new CceInputError(argument, `${argument}: ${detail}`);
}

function checkPositiveInt(name: string, x: unknown, min: number): void {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min) {
    fail(name, `must be an integer >= ${min}, got ${String(x)}`);
  }
}

/** The sizes of a problem, before any array exists. */
export interface ProblemSizes {
  N: number;
  V: number;
  /** Negatives per row (sampled mode); 0 or ignored in full mode. */
  K: number;
  D: number;
  /** Default 'sampled'. */
  mode?: 'sampled' | 'full';
  shareRows?: number;
  /** dC as int64 fixed point: two 32-bit words an element, indexed 2·i and 2·i + 1. */
  deterministic?: boolean;
  /**
   * The negatives as an int64 tensor read in place (CceOptions.negativesDtype 'i64'): two 32-bit words an
   * element, the kernels index word 2·(row·K + slot).
   */
  negativesDtype?: 'i32' | 'i64';
  /** In-batch candidates: K may be 0 (no drawn negatives). */
  inBatch?: 'batch' | 'group';
  /** Rows of E when loss rows read positions of it. */
  NE?: number;
}

/** How messages call each size: the library says N, V, K, D; the CLI passes its flags (--n, ...). */
export type SizeNames = Partial<Record<'N' | 'V' | 'K' | 'D' | 'shareRows' | 'NE', string>>;

/**
 * Every size limit of the kernels, in one place; checks scalars only, so call it before allocating anything.
 * Sizes are integers (N, D ≥ 1, V ≥ 2, K ≥ 1 sampled), each fits an i32, and every element offset a kernel
 * computes in 32-bit arithmetic stays ≤ MAX_I32_OFFSET: E and dE [N, D], C and dC [V, D], the negatives and
 * the (row, negative) pairs [N, K] (dC by item numbers them, the reference expands shared groups' [G, K]
 * to them: G·K ≤ N·K), deterministic dC's 2·V·D words and int64 negatives' 2·N·K words. Throws
 * CceInputError naming the first argument.
 */
export function checkSizes(s: ProblemSizes, names: SizeNames = {}): void {
  const name = (x: keyof SizeNames) => names[x] ?? x;
  const say = (x: keyof SizeNames, v: number) => (names[x] ? `${names[x]} ${v}` : `${x} = ${v}`);
  const sampled = s.mode !== 'full';
  checkPositiveInt(name('N'), s.N, 1);
  checkPositiveInt(name('D'), s.D, 1);
  checkPositiveInt(name('V'), s.V, 2);
  checkPositiveInt(name('K'), s.K, sampled && !s.inBatch ? 1 : 0);
  if (s.NE !== undefined) checkPositiveInt(name('NE'), s.NE, 1);
  if (s.inBatch !== undefined && s.inBatch !== 'batch' && s.inBatch !== 'group')
    fail('inBatch', `must be 'batch' or 'group', got ${String(s.inBatch)}`);
  if (s.inBatch && !sampled) fail('inBatch', 'in-batch candidates need sampled mode');
  if (s.inBatch === 'group' && s.shareRows === undefined) fail('inBatch', "'group' needs shareRows");
  const { N, V, D } = s;
  const K = sampled ? s.K : 0;
  for (const [x, v] of [['N', N], ['V', V], ['K', K], ['D', D]] as const) {
    if (v > MAX_I32_OFFSET) {
      fail(name(x), `${v} exceeds ${MAX_I32_OFFSET}, the largest size a kernel holds (a 32-bit int)`);
    }
  }
  if (s.shareRows !== undefined) {
    if (!sampled) fail(name('shareRows'), 'shared negatives need sampled mode');
    if (!SHARE_ROWS.includes(s.shareRows)) {
      fail(name('shareRows'), `must be ${SHARE_ROWS_TEXT} rows, got ${String(s.shareRows)}`);
    }
  }
  const limit = (a: keyof SizeNames, b: keyof SizeNames, product: number, what: string, words = 1) => {
    if (words * product <= MAX_I32_OFFSET + (words > 1 ? 1 : 0)) return;
    const n = words > 1 ? `${words}·${a}·${b}` : `${a}·${b}`;
    const args = `${say(a, a === 'N' ? N : V)}, ${say(b, b === 'D' ? D : K)}`;
    const over = `exceeds ${MAX_I32_OFFSET}, the largest 32-bit offset, in ${what}`;
    fail(name(a), `${n} = ${words * product} (${args}) ${over}; lower ${name(a)} or ${name(b)}`);
  };
  limit('N', 'D', N * D, 'E and dE [N, D]');
  if (s.NE !== undefined && s.NE * D > MAX_I32_OFFSET)
    fail(name('NE'), `NE·D = ${s.NE * D} exceeds ${MAX_I32_OFFSET}, the largest 32-bit offset, in E and dE [NE, D]`);
  limit('V', 'D', V * D, 'C and dC [V, D]');
  if (s.deterministic) limit('V', 'D', V * D, 'the deterministic dC (int64 fixed point, two words an element)', 2);
  const pairs = s.shareRows ? 'the (row, shared negative) pairs [N, K]' : 'the negatives and pairs [N, K]';
  if (sampled) limit('N', 'K', N * K, pairs);
  // Shared groups index 2·(g·K + slot) < 2·G·K ≤ 2·N·K: checked as N·K (conservative for groups).
  if (sampled && s.negativesDtype === 'i64') limit('N', 'K', N * K, 'the int64 negatives (two words an element)', 2);
}

function checkStorage(name: string, data: unknown, dtype: FloatDType, length: number, shape: string): void {
  const wantF32 = dtype === 'f32';
  const ok = wantF32 ? data instanceof Float32Array : data instanceof Uint16Array;
  if (!ok) {
    const want = wantF32 ? 'Float32Array' : 'Uint16Array (bit patterns)';
    fail(name, `dtype ${dtype} needs a ${want}, got ${describe(data)}`);
  }
  const arr = data as Float32Array | Uint16Array;
  if (arr.length !== length) fail(name, `length ${arr.length} does not match ${shape} = ${length}`);
}

function describe(x: unknown): string {
  if (x === undefined || x === null) return String(x);
  if (typeof x === 'object') return (x as object).constructor?.name ?? 'object';
  return typeof x;
}

/** Position [row, col] of flat index k in a row-major matrix with `cols` columns. */
function at(k: number, cols: number): string {
  return `[${Math.floor(k / cols)}, ${k % cols}]`;
}

function checkFinite(name: string, data: Float32Array | Uint16Array, dtype: FloatDType, cols: number): void {
  if (dtype === 'f32') {
    for (let k = 0; k < data.length; k++) {
      const v = data[k]!;
      if (!Number.isFinite(v)) fail(name, `non-finite value ${v} at ${at(k, cols)}`);
    }
    return;
  }
  // Exponent all ones = inf or nan in both 16-bit formats.
  const expMask = dtype === 'f16' ? 0x7c00 : 0x7f80;
  const mantMask = dtype === 'f16' ? 0x03ff : 0x007f;
  for (let k = 0; k < data.length; k++) {
    const b = data[k]!;
    if ((b & expMask) === expMask) {
      const what = (b & mantMask) !== 0 ? 'NaN' : b & 0x8000 ? '-Infinity' : 'Infinity';
      fail(name, `non-finite value ${what} (bits 0x${b.toString(16).padStart(4, '0')}) at ${at(k, cols)}`);
    }
  }
}

/**
 * Throws CceInputError naming the first invalid argument. `deterministic`: the run accumulates dC in int64
 * fixed point (two 32-bit words an element), which halves the largest V·D (see checkSizes).
 */
export function validateProblem(p: CceProblem, opts: { deterministic?: boolean } = {}): void {
  if (p === null || typeof p !== 'object') throw new CceInputError('problem', 'problem: must be an object');

  // ---- scalars (no array is touched before the size checks) ----
  if (p.mode !== 'sampled' && p.mode !== 'full') fail('mode', `must be 'sampled' or 'full', got ${String(p.mode)}`);
  if (!isFloatDType(p.dtype)) fail('dtype', `must be one of f32, f16, bf16, got ${String(p.dtype)}`);
  if (!REDUCTIONS.includes(p.reduction as string)) {
    fail('reduction', `must be 'mean', 'sum' or 'none', got ${String(p.reduction)}`);
  }
  if (typeof p.ignoreIndex !== 'number' || !Number.isSafeInteger(p.ignoreIndex)) {
    fail('ignoreIndex', `must be an integer, got ${String(p.ignoreIndex)}`);
  }
  // Kernels compare targets with ignore_index as 32-bit ints: a wider value would wrap onto a real item.
  if (p.ignoreIndex < -(2 ** 31) || p.ignoreIndex > MAX_I32_OFFSET) {
    fail('ignoreIndex', `must fit a 32-bit int (targets are an Int32Array), got ${p.ignoreIndex}`);
  }
  const sampled = p.mode === 'sampled';
  checkSizes({ ...p, deterministic: opts.deterministic });
  const { N, D, V, K } = p;
  const negRows = p.shareRows ? Math.ceil(N / p.shareRows) : N;

  // ---- array types and lengths ----
  const NE = p.positions ? p.NE ?? -1 : N;
  if (p.positions && p.NE === undefined) fail('NE', 'required with positions (the rows of E)');
  checkStorage('E', p.E, p.dtype, NE * D, p.positions ? `NE*D (${NE}*${D})` : `N*D (${N}*${D})`);
  checkStorage('C', p.C, p.dtype, V * D, `V*D (${V}*${D})`);
  if (!(p.targets instanceof Int32Array)) fail('targets', `must be an Int32Array, got ${describe(p.targets)}`);
  if (p.targets.length !== N) fail('targets', `length ${p.targets.length} does not match N = ${N}`);
  const drawn = sampled && p.philoxSeed !== undefined;
  const noDrawn = sampled && !!p.inBatch && K === 0;
  if (noDrawn) {
    if (drawn || (p.negatives !== undefined && p.negatives.length > 0))
      fail('K', 'K = 0 (in-batch candidates only) takes no negatives and no philoxSeed');
  } else if (drawn) {
    if (p.negatives !== undefined) fail('negatives', 'give either negatives or philoxSeed, not both');
    if (!Number.isSafeInteger(p.philoxSeed) || p.philoxSeed! < 0)
      fail('philoxSeed', `must be a non-negative safe integer, got ${p.philoxSeed}`);
  } else if (sampled) {
    if (p.negatives === undefined || p.negatives === null)
      fail('negatives', 'required in sampled mode (or philoxSeed to draw them in the kernels)');
    if (!(p.negatives instanceof Int32Array)) fail('negatives', `must be an Int32Array, got ${describe(p.negatives)}`);
    if (p.negatives.length !== negRows * K) {
      const shape = p.shareRows ? `G*K (⌈${N}/${p.shareRows}⌉*${K})` : `N*K (${N}*${K})`;
      fail('negatives', `length ${p.negatives.length} does not match ${shape} = ${negRows * K}`);
    }
  }
  if (p.itemProbs !== undefined) {
    if (!(p.itemProbs instanceof Float64Array))
      fail('itemProbs', `must be a Float64Array, got ${describe(p.itemProbs)}`);
    if (p.itemProbs.length !== V) fail('itemProbs', `length ${p.itemProbs.length} does not match V = ${V}`);
  }

  if (p.inBatchProbs !== undefined) {
    if (!p.inBatch) fail('inBatchProbs', 'only with inBatch');
    checkProbs('inBatchProbs', p.inBatchProbs, V);
  }
  if (p.positions !== undefined) {
    if (!(p.positions instanceof Int32Array)) fail('positions', `must be an Int32Array, got ${describe(p.positions)}`);
    if (p.positions.length !== N) fail('positions', `length ${p.positions.length} does not match N = ${N}`);
    const seen = new Uint8Array(NE);
    for (let i = 0; i < N; i++) {
      const r = p.positions[i]!;
      if (r < 0 || r >= NE) fail('positions', `row ${r} at [${i}] is outside [0, NE=${NE})`);
      if (seen[r]) fail('positions', `row ${r} at [${i}] is listed twice (positions must be distinct)`);
      seen[r] = 1;
    }
  }

  // ---- values ----
  for (let i = 0; i < N; i++) {
    const t = p.targets[i]!;
    if (t !== p.ignoreIndex && (t < 0 || t >= V)) {
      fail('targets', `item id ${t} at [${i}] is outside [0, V=${V}) and is not ignoreIndex (${p.ignoreIndex})`);
    }
  }
  if (sampled && !drawn && !noDrawn) {
    const neg = p.negatives!;
    for (let k = 0; k < neg.length; k++) {
      const n = neg[k]!;
      if (n < 0 || n >= V) fail('negatives', `item id ${n} at ${at(k, K)} is outside [0, V=${V})`);
    }
  }
  checkFinite('E', p.E, p.dtype, D);
  checkFinite('C', p.C, p.dtype, D);
  if (p.itemProbs !== undefined) {
    const q = p.itemProbs;
    let total = 0;
    for (let v = 0; v < V; v++) {
      const x = q[v]!;
      if (!Number.isFinite(x)) fail('itemProbs', `non-finite value ${x} at [${v}]`);
      if (x < 0) fail('itemProbs', `negative probability ${x} at [${v}]`);
      total += x;
    }
    if (!(total > 0)) fail('itemProbs', 'all probabilities are zero');
    if (sampled && !drawn && !noDrawn) {
      const neg = p.negatives!;
      for (let k = 0; k < neg.length; k++) {
        const n = neg[k]!;
        if (q[n] === 0)
          fail('negatives', `item id ${n} at ${at(k, K)} has q = 0 in itemProbs, so it cannot have been sampled`);
      }
    }
  }
}

/** Checks a probability vector of length V: finite, non-negative, not all zero. */
function checkProbs(name: string, q: Float64Array, V: number): void {
  if (!(q instanceof Float64Array)) fail(name, `must be a Float64Array, got ${describe(q)}`);
  if (q.length !== V) fail(name, `length ${q.length} does not match V = ${V}`);
  let total = 0;
  for (let v = 0; v < V; v++) {
    const x = q[v]!;
    if (!Number.isFinite(x) || x < 0) fail(name, `invalid probability ${x} at [${v}]`);
    total += x;
  }
  if (!(total > 0)) fail(name, 'all probabilities are zero');
}

/** log q of the in-batch candidates: log of the normalized inBatchProbs, or uniform -log(V-1). */
export function logQBatch(p: CceProblem): Float64Array {
  const out = new Float64Array(p.V).fill(-Math.log(p.V - 1));
  if (p.inBatchProbs === undefined) return out;
  let total = 0;
  for (let v = 0; v < p.V; v++) total += p.inBatchProbs[v]!;
  for (let v = 0; v < p.V; v++) out[v] = Math.log(p.inBatchProbs[v]! / total);
  return out;
}

/** log q(v) for every item v: log(itemProbs[v]) as given, or uniform -log(V-1). */
export function logQ(p: CceProblem): Float64Array {
  const out = new Float64Array(p.V);
  if (p.itemProbs === undefined) {
    out.fill(-Math.log(p.V - 1));
  } else {
    for (let v = 0; v < p.V; v++) out[v] = Math.log(p.itemProbs[v]!);
  }
  return out;
}
