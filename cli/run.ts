// `ccekit run`: a random problem on a device, checked against the float64 reference.
import { DEFAULT_SCHEDULE, type Schedule } from '../codegen/schedule.js';
import { optionsFor } from '../runtime/cpu/run.js';
import { TuningDb } from '../runtime/autotune/db.js';
import { scheduleFor } from '../runtime/autotune/tune.js';
import { WEBGPU_SCHEDULE } from '../runtime/defaults.js';
import { CceInputError, type CceProblem, checkSizes } from '../runtime/problem.js';
import { type GenOptions, randomProblem } from '../runtime/random.js';
import { type FloatDType } from '../runtime/numeric.js';
import { type FlagTable, UsageError, parseFlags, table, usage, givenFlags } from './args.js';
import { openDb } from './gpu.js';
import {
  type Comparison, DTYPES, FN_FLAGS, SCHEDULE_FLAGS, compare, defaultTol, fmtErr, fmtMs, fmtVal, openRunDevice, out,
  passes, scalarFnFrom, scheduleFrom, timingText,
} from './common.js';

const RUN_FLAGS = {
  device: {
    kind: 'enum',
    values: ['cpu', 'webgpu', 'cuda'],
    default: 'cpu',
    help:
      'where the kernels run: cpu (float64 executor of the compiled IR) or webgpu (the emitted WGSL through Dawn)',
  },
  n: { kind: 'int', default: 513, min: 1, help: 'rows N (sequence positions)' },
  v: { kind: 'int', default: 1000, min: 2, help: 'items V in the catalog' },
  k: { kind: 'int', default: 64, min: 1, help: 'negatives K per row (sampled mode)' },
  d: { kind: 'int', default: 64, min: 1, help: 'hidden size D' },
  dtype: { kind: 'enum', values: DTYPES, default: 'f32', help: 'storage dtype of E and C' },
  seed: { kind: 'int', default: 1, help: 'random seed' },
  reduction: { kind: 'enum', values: ['mean', 'sum', 'none'], default: 'mean', help: 'loss reduction' },
  mode: {
    kind: 'enum',
    values: ['sampled', 'full'],
    default: 'sampled',
    help: 'sampled: CCE- with K negatives; full: CE over all V items',
  },
  popularity: { kind: 'bool', help: 'draw negatives from a Zipf-like q (log q tensor) instead of uniform' },
  collisions: {
    kind: 'num',
    default: 0,
    min: 0,
    max: 1,
    metavar: 'RATE',
    help: 'probability that a negative equals the target (rejected)',
  },
  ignore: {
    kind: 'num',
    default: 0,
    min: 0,
    max: 1,
    metavar: 'FRACTION',
    help: 'share of rows whose target is ignore_index',
  },
  tol: {
    kind: 'num',
    min: 0,
    help:
      'largest relative error that passes (exit 1 above it); ' +
      'default 1e-9 on cpu, on webgpu 1e-4 for f32 inputs and 1e-3 for f16/bf16',
  },
  repeats: { kind: 'int', default: 10, min: 0, max: 100_000, help: 'webgpu: timed repetitions (median per kernel)' },
  'max-gib': {
    kind: 'num',
    default: 4,
    min: 0,
    metavar: 'GIB',
    help: 'refuse a problem whose host memory (inputs, outputs and the float64 reference) would exceed this',
  },
  ...SCHEDULE_FLAGS,
  ...FN_FLAGS,
} as const satisfies FlagTable;

export const RUN_HELP = usage(
  'ccekit run --device cpu [flags]',
  'Run CCE- (or full CE) on a random problem and compare loss, lse, dE and dC with the float64 reference.\n' +
    'Relative error = max|a − b| / max(max|b|, tiny).',
  RUN_FLAGS,
);

/** Flag names of the sizes, for checkSizes' messages. */
const SIZE_FLAGS = { N: '--n', V: '--v', K: '--k', D: '--d' } as const;

/**
 * Host bytes `run` needs, roughly: per element of E and C the generator's float64 draws, the stored values,
 * the device result's and the reference's float64 copies of the inputs and of the gradients; the negatives
 * twice (the tensor and the reference's view); per row and item a few float64 vectors.
 */
function runHostBytes(N: number, V: number, K: number, D: number, dtype: FloatDType): number {
  const stored = dtype === 'f32' ? 4 : 2;
  return (N + V) * D * (8 + stored + 4 * 8) + 8 * N * K + 64 * N + 48 * V;
}

export async function cmdRun(argv: string[]): Promise<number> {
  const o = parseFlags('run', argv, RUN_FLAGS);
  const given = givenFlags(argv);
  const sampledOnly = o.popularity ? 'popularity' : o.collisions > 0 ? 'collisions' : given.has('k') ? 'k' : '';
  if (o.mode === 'full' && sampledOnly) {
    throw new UsageError(`--${sampledOnly} applies to --mode sampled (full CE has no negatives)`, 'run');
  }
  const negK = o.mode === 'full' ? 0 : o.k;
  try {
    checkSizes({ N: o.n, V: o.v, K: negK, D: o.d, mode: o.mode }, SIZE_FLAGS);
  } catch (e) {
    if (e instanceof CceInputError) throw new UsageError(e.message, 'run');
    throw e;
  }
  const bytes = runHostBytes(o.n, o.v, negK, o.d, o.dtype);
  if (bytes > o['max-gib'] * 2 ** 30) {
    const sizes = `--n ${o.n} --v ${o.v}${o.mode === 'sampled' ? ` --k ${o.k}` : ''} --d ${o.d}`;
    const need = `need about ${(bytes / 2 ** 30).toFixed(1)} GiB of host memory, more than --max-gib ${o['max-gib']}`;
    throw new UsageError(`${sizes} ${need}; lower them or raise --max-gib`, 'run');
  }
  const scheduleFlagNames = ['rows', 'lanes', 'vec', 'd-chunks', 'samples-per-step', 'stages', 'schedule'] as const;
  const noScheduleFlags = scheduleFlagNames.every((f) => o[f] === undefined);
  const base = o.device === 'webgpu' ? WEBGPU_SCHEDULE : DEFAULT_SCHEDULE;
  let schedule: Schedule | undefined = scheduleFrom('run', o, base);
  // On CUDA without schedule flags: the tuning DB's schedule for this problem size, else the heuristic default.
  if (o.device === 'cuda' && noScheduleFlags) schedule = undefined;
  const transform = await scalarFnFrom('run', 'transform', o.transform, true);
  const correction = await scalarFnFrom('run', 'correction', o.correction, false);
  const gen: GenOptions = {
    N: o.n,
    V: o.v,
    K: o.k,
    D: o.d,
    dtype: o.dtype,
    seed: o.seed,
    mode: o.mode,
    popularity: o.popularity,
    collisionRate: o.collisions,
    ignoreFraction: o.ignore,
  };
  // The device first (a missing one is reported before the problem is built), then the problem.
  const rd = (await openRunDevice(o.device, o.repeats, true))!;
  const dev = rd.dev;
  let c: Comparison;
  let p: CceProblem;
  try {
    p = { ...randomProblem(gen), reduction: o.reduction };
    if (dev.kind === 'cuda' && !schedule) {
      const db = openDb(TuningDb.defaultPath());
      const picked = scheduleFor(dev.backend, db, p, optionsFor(p, { transform, correction }));
      schedule = picked.schedule;
      const from = picked.tuned ? 'from the tuning DB' : 'heuristic default (not tuned for this size: ccekit tune)';
      out(`schedule: ${from}`);
    }
    c = await compare(rd, p, transform, correction, schedule);
  } finally {
    dev.close();
  }
  const tol = o.tol ?? defaultTol(dev.kind, o.dtype);
  const { N, V, K, D } = p;
  const shape = o.mode === 'sampled' ? `N=${N} V=${V} K=${K} D=${D}` : `N=${N} V=${V} D=${D}`;
  const q = o.mode === 'sampled' ? (o.popularity ? ' (popularity q)' : ' (uniform q)') : '';
  out(`device: ${dev.line}`);
  out(
    `problem: ${o.mode}${q} ${shape} dtype=${o.dtype} reduction=${o.reduction} seed=${o.seed}` +
      (o.mode === 'sampled' ? ` collisions=${o.collisions}` : '') +
      ` ignore=${o.ignore}`,
  );
  if (transform) out(`transform: ${transform.origin}`);
  if (correction) out(`correction: ${correction.origin}`);
  out(`schedule: ${JSON.stringify(schedule)}`);
  out();
  out(
    table([
      ['quantity', 'ccekit', 'reference', 'max rel error'],
      ['loss', fmtVal(c.res.loss), fmtVal(c.ref.loss), fmtErr(c.errors.loss)],
      ['lse', `[${N}]`, `[${N}]`, fmtErr(c.errors.lse)],
      ['dE', `[${N}x${D}]`, `[${N}x${D}]`, fmtErr(c.errors.dE)],
      ['dC', `[${V}x${D}]`, `[${V}x${D}]`, fmtErr(c.errors.dC)],
      ['time ms', fmtMs(c.ms), fmtMs(c.refMs), ''],
    ]),
  );
  if (c.timings.length) out(`kernel times: ${timingText(c.timings)}`);
  out();
  if (passes(c, tol)) {
    out(`ok: every relative error is at most ${tol}`);
    return 0;
  }
  out(`MISMATCH: a relative error is above ${tol}`);
  return 1;
}
