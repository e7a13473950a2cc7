// The ccekit command line: `emit` (kernels + manifest for a target), `run` (a random problem on a device,
// checked against the float64 reference), `start` (the main job on the best device available).
// Usage mistakes and library errors print one line `ccekit: ...` to stderr and exit 2, never a stack.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { emitTorchPackage } from '../packages/torch/package.js';
import { type CceOptions } from '../dsl/cce.js';
import { type ScalarFn, derivative, evalScalarFn } from '../dsl/scalarfn.js';
import { DEFAULT_SCHEDULE, type Schedule, ScheduleError, checkScheduleShape } from '../dsl/schedule.js';
import { DslError } from '../dsl/values.js';
import { DEFAULT_SHARE, allVariants, emitVariants } from '../targets/variants.js';
import { VerifyError } from '../codegen/verify.js';
import { SOURCE_TARGET_NAMES, type TargetName } from '../targets/registry.js';
import { type CceResult, optionsFor } from '../runtime/cpu/run.js';
import { type Device, DeviceError, openDevice, runOn } from '../runtime/devices.js';
import { TuningDb } from '../runtime/autotune/db.js';
import { scheduleFor } from '../runtime/autotune/tune.js';
import { WebgpuError } from '../runtime/webgpu/device.js';
import { WEBGPU_SCHEDULE } from '../runtime/defaults.js';
import type { KernelTiming } from '../runtime/step.js';
import { type ReferenceOptions, referenceCce } from '../runtime/cpu/reference.js';
import { CceInputError, type CceProblem, checkSizes } from '../runtime/problem.js';
import { type GenOptions, randomProblem } from '../runtime/random.js';
import type { FloatDType } from '../runtime/numeric.js';
import { type FlagTable, UsageError, checkShare, intList, isHelp, parseFlags, table, usage } from './args.js';
import { givenFlags, oneLine, readUserFile, scheduleFlag, scheduleValue } from './args.js';
import { OutPathError, checkOutDir, makeOutDir, writeOutFile } from '../runtime/fsout.js';
import { gpuTolerance, relErr } from '../runtime/check.js';
import { BENCH_HELP, CHECK_HELP, TUNE_HELP, cmdBench, cmdCheck, cmdTune } from './gpu.js';
import { openDb, openDbStrict } from './gpu.js';

/** An error with a message fit for the user as it is (bad input file, unwritable directory, ...). */
class CliError extends Error {}

const TARGETS: readonly TargetName[] = SOURCE_TARGET_NAMES;
const DTYPES: readonly FloatDType[] = ['f32', 'f16', 'bf16'];

const out = (s = '') => process.stdout.write(s + '\n');
const err = (s: string) => process.stderr.write(s + '\n');

// ---------------------------------------------------------------- shared flags

const SCHED = 'schedule (defaults: ' + JSON.stringify(DEFAULT_SCHEDULE) + ')';
const SCHEDULE_FLAGS = {
  rows: { kind: 'int', help: 'row slots per program (CTA / workgroup / Triton program)', group: SCHED },
  lanes: { kind: 'int', help: 'lanes that share one row vector', group: SCHED },
  vec: { kind: 'int', help: 'consecutive elements per lane per chunk (1, 2, 4, 8)', group: SCHED },
  'd-chunks': { kind: 'int', help: 'register chunks per lane (BLOCK_D = lanes·vec·d-chunks)', group: SCHED },
  'samples-per-step': { kind: 'int', help: 'candidates gathered per loop step (1..16; shared negatives: the candidate tile, up to 64)', group: SCHED },
  stages: { kind: 'int', help: 'software-pipelining depth (Triton num_stages, 1..5)', group: SCHED },
  schedule: { kind: 'str', metavar: 'JSON', help: 'schedule as JSON (whole or partial, or a .json file); the flags above override it', group: SCHED },
} as const satisfies FlagTable;

const FN_FLAGS = {
  transform: { kind: 'str', metavar: 'FILE:NAME', help: 'logit transform f(x): the TS function NAME exported from FILE (e.g. a soft cap)', group: 'scalar functions' },
  correction: { kind: 'str', metavar: 'FILE:NAME', help: 'sampling correction g(log q) added to negative logits (default −log q)', group: 'scalar functions' },
} as const satisfies FlagTable;

type ScheduleFlags = { [K in keyof typeof SCHEDULE_FLAGS]: K extends 'schedule' ? string | undefined : number | undefined };

/** The schedule of --schedule (JSON or a file, whole or partial) over `base`, then the single-field flags. */
function scheduleFrom(cmd: string, o: ScheduleFlags, base: Schedule = DEFAULT_SCHEDULE): Schedule {
  const given = o.schedule !== undefined ? scheduleFlag(cmd, '--schedule', o.schedule) : {};
  const s: Record<string, unknown> = { ...base, ...given };
  const fromFlag: [keyof ScheduleFlags, keyof Schedule][] = [
    ['rows', 'rows'],
    ['lanes', 'lanes'],
    ['vec', 'vec'],
    ['d-chunks', 'dChunks'],
    ['samples-per-step', 'samplesPerStep'],
    ['stages', 'stages'],
  ];
  for (const [flag, field] of fromFlag) {
    if (o[flag] !== undefined) s[field] = scheduleValue(cmd, `--${flag}`, field, o[flag]);
  }
  checkScheduleShape(s as unknown as Schedule);
  return s as unknown as Schedule;
}

/** Compile `FILE:NAME` with the ts-morph front end (loaded only when needed: it pulls in TypeScript). */
async function scalarFnFrom(cmd: string, flag: string, spec: string | undefined, differentiate: boolean): Promise<ScalarFn | undefined> {
  if (spec === undefined) return undefined;
  const at = spec.lastIndexOf(':');
  if (at <= 0 || at === spec.length - 1) throw new UsageError(`--${flag} expects FILE:NAME, got '${spec}'`, cmd);
  const file = spec.slice(0, at);
  const name = spec.slice(at + 1);
  const text = readUserFile(cmd, `--${flag}`, file);
  const { compileScalarSource } = await import('../dsl/frontend.js');
  try {
    const fn = compileScalarSource(file, text, name, { arity: 1, role: flag });
    if (differentiate) derivative(fn, fn.args[0]!);
    return fn;
  } catch (e) {
    throw new CliError(`--${flag} ${spec}: ${(e as Error).message}`);
  }
}

// ---------------------------------------------------------------- emit

const EMIT_FLAGS = {
  target: {
    kind: 'enum',
    values: [...SOURCE_TARGET_NAMES, 'torch', 'all'],
    help:
      `target language (all: ${SOURCE_TARGET_NAMES.join(', ')}, one subfolder each); ` +
      'torch: an importable PyTorch package',
  },
  'd-values': { kind: 'str', metavar: 'LIST', help: 'torch: hidden sizes the package covers (default 32,64,128,256,512,1024)' },
  db: { kind: 'str', metavar: 'FILE', help: 'torch: ship this tuning DB\'s entries (and their schedules) in the package' },
  out: { kind: 'str', metavar: 'DIR', help: 'output directory (created if missing)' },
  dtype: { kind: 'enum', values: ['f32', 'f16', 'bf16', 'all'], default: 'f32', help: 'storage dtype of E and C' },
  variants: { kind: 'enum', values: ['all', 'sampled', 'shared', 'full'], default: 'all', help: 'sampled: CCE- (uniform and given q, per-row and shared negatives); shared: only row-tile-shared negatives; full: full-catalog CE' },
  share: { kind: 'int', default: DEFAULT_SHARE, min: 16, help: 'rows per group of the shared-negative variants (16, 32, 64, 128)' },
  ...SCHEDULE_FLAGS,
  ...FN_FLAGS,
} as const satisfies FlagTable;

const EMIT_HELP = usage(
  'ccekit emit --target wgsl|cuda|triton|torch|all --out DIR [flags]',
  'Generate the forward and backward kernels of every variant (scalar and per-row upstream gradient)\n' +
    'and a manifest.json (entries, parameters, bindings, schedule, launch geometry). Prints each file written.\n' +
    "torch: an importable PyTorch package (ccekit_torch) of the kernels for --d-values, with --db's tuned schedules.",
  EMIT_FLAGS,
);

async function cmdEmit(argv: string[]): Promise<number> {
  const o = parseFlags('emit', argv, EMIT_FLAGS);
  if (o.target === undefined) throw new UsageError('emit needs --target', 'emit');
  if (o.out === undefined) throw new UsageError('emit needs --out DIR', 'emit');
  if (o.target === 'torch') {
    const sched = Object.keys(SCHEDULE_FLAGS).find((f) => o[f as keyof typeof o] !== undefined);
    const fn = Object.keys(FN_FLAGS).find((f) => o[f as keyof typeof o] !== undefined);
    const why = sched ? 'the package fits its schedules to each D' : 'the package has no scalar functions';
    if (sched ?? fn) throw new UsageError(`--${sched ?? fn} does not apply to --target torch (${why})`, 'emit');
    const other = ['share', 'variants'].find((f) => givenFlags(argv).has(f));
    if (other) throw new UsageError(`--${other} does not apply to --target torch (it holds every variant)`, 'emit');
    return emitTorch(o.out, o.dtype, o['d-values'], o.db);
  }
  for (const f of ['d-values', 'db'] as const) {
    if (o[f] !== undefined) throw new UsageError(`--${f} applies to --target torch only`, 'emit');
  }
  const schedule = scheduleFrom('emit', o);
  checkShare(o.share, 'emit', false);
  checkOutDir(o.out, '--out');
  const transform = await scalarFnFrom('emit', 'transform', o.transform, true);
  const correction = await scalarFnFrom('emit', 'correction', o.correction, false);
  const dtypes = o.dtype === 'all' ? DTYPES : [o.dtype];
  const variants = dtypes
    .flatMap((dt) => allVariants(dt, { transform, correction }))
    .map((v) => (v.mode === 'sampled' && v.share ? { ...v, share: o.share } : v))
    .filter((v) => o.variants === 'all' || (o.variants === 'shared' ? v.mode === 'sampled' && !!v.share : v.mode === o.variants));
  const targets = o.target === 'all' ? TARGETS : [o.target];
  for (const t of targets) {
    const dir = o.target === 'all' ? join(o.out, t) : o.out;
    for (const path of writeTarget(t, variants, schedule, dir, o.out).paths) out(path);
  }
  return 0;
}

function emitTorch(dir: string, dtype: FloatDType | 'all', dValues?: string, dbPath?: string): number {
  const ds = dValues === undefined ? undefined : intList('emit', '--d-values', dValues, 1, 8192);
  checkOutDir(dir, '--out');
  const tuning = dbPath !== undefined ? openDbStrict('emit', dbPath).entries() : [];
  const files = emitTorchPackage({ dValues: ds, dtypes: dtype === 'all' ? [...DTYPES] : [dtype], tuning });
  for (const [name, text] of files) writeOutFile(join(dir, name), text, '--out', dir);
  const n = [...files.keys()].filter((f) => f.endsWith('.cu')).length;
  const use = `pip install ${dir}, or sys.path.insert(0, '${dir}'); then from ccekit_torch import cce_minus_loss`;
  out(`${join(dir, 'ccekit_torch')}: ${n} kernels, ${tuning.length} tuning entries (${use})`);
  return 0;
}

/** Emits one target into `dir` (created as needed); `outPath` is the --out value that errors name. */
function writeTarget(
  target: TargetName,
  variants: CceOptions[],
  schedule: Schedule,
  dir: string,
  outPath = dir,
): { paths: string[]; kernels: number; bytes: number } {
  const { files, manifest } = emitVariants(target, variants, schedule);
  const all: [string, string][] = [...files, ['manifest.json', JSON.stringify(manifest, null, 2) + '\n']];
  const paths: string[] = [];
  let bytes = 0;
  makeOutDir(dir, '--out');
  for (const [name, text] of all) {
    const path = join(dir, name);
    writeOutFile(path, text, '--out', outPath);
    paths.push(path);
    bytes += Buffer.byteLength(text);
  }
  return { paths, kernels: manifest.kernels.length, bytes };
}

// ---------------------------------------------------------------- run

const RUN_FLAGS = {
  device: { kind: 'enum', values: ['cpu', 'webgpu', 'cuda'], default: 'cpu', help: 'where the kernels run: cpu (float64 executor of the compiled IR) or webgpu (the emitted WGSL through Dawn)' },
  n: { kind: 'int', default: 513, min: 1, help: 'rows N (sequence positions)' },
  v: { kind: 'int', default: 1000, min: 2, help: 'items V in the catalog' },
  k: { kind: 'int', default: 64, min: 1, help: 'negatives K per row (sampled mode)' },
  d: { kind: 'int', default: 64, min: 1, help: 'hidden size D' },
  dtype: { kind: 'enum', values: DTYPES, default: 'f32', help: 'storage dtype of E and C' },
  seed: { kind: 'int', default: 1, help: 'random seed' },
  reduction: { kind: 'enum', values: ['mean', 'sum', 'none'], default: 'mean', help: 'loss reduction' },
  mode: { kind: 'enum', values: ['sampled', 'full'], default: 'sampled', help: 'sampled: CCE- with K negatives; full: CE over all V items' },
  popularity: { kind: 'bool', help: 'draw negatives from a Zipf-like q (log q tensor) instead of uniform' },
  collisions: { kind: 'num', default: 0, min: 0, max: 1, metavar: 'RATE', help: 'probability that a negative equals the target (rejected)' },
  ignore: { kind: 'num', default: 0, min: 0, max: 1, metavar: 'FRACTION', help: 'share of rows whose target is ignore_index' },
  tol: { kind: 'num', min: 0, help: 'largest relative error that passes (exit 1 above it); default 1e-9 on cpu, on webgpu 1e-4 for f32 inputs and 1e-3 for f16/bf16' },
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

const RUN_HELP = usage(
  'ccekit run --device cpu [flags]',
  'Run CCE- (or full CE) on a random problem and compare loss, lse, dE and dC with the float64 reference.\nRelative error = max|a − b| / max(max|b|, tiny).',
  RUN_FLAGS,
);

interface Comparison {
  res: CceResult;
  timings: KernelTiming[];
  ref: ReturnType<typeof referenceCce>;
  errors: { loss: number; lse: number; dE: number; dC: number };
  ms: number;
  refMs: number;
}


/** A device of the list (runtime/devices.ts) and the timed repetitions asked of it (none on the CPU). */
interface RunDevice {
  dev: Device;
  repeats: number;
}

async function compare(
  d: RunDevice, p: CceProblem, transform?: ScalarFn, correction?: ScalarFn, schedule?: Schedule,
): Promise<Comparison> {
  const t0 = performance.now();
  const repeats = d.dev.kind === 'cpu' ? 0 : d.repeats;
  const res = await runOn(d.dev, p, { transform, correction, schedule, repeats });
  const timings = res.timings;
  const t1 = performance.now();
  const ro: ReferenceOptions = {};
  if (transform) {
    const df = derivative(transform, transform.args[0]!);
    ro.transform = { f: (x) => evalScalarFn(transform, [x]), df: (x) => evalScalarFn(df, [x]) };
  }
  if (correction) ro.correction = (lq) => evalScalarFn(correction, [lq]);
  const ref = referenceCce(p, ro);
  const t2 = performance.now();
  return {
    res,
    timings,
    ref,
    errors: { loss: relErr(res.loss, ref.loss), lse: relErr(res.lse, ref.lse), dE: relErr(res.dE, ref.dE), dC: relErr(res.dC, ref.dC) },
    ms: t1 - t0,
    refMs: t2 - t1,
  };
}

const fmtErr = (x: number) => (Number.isNaN(x) ? 'NaN' : !Number.isFinite(x) ? 'inf' : x === 0 ? '0' : x.toExponential(2));
const fmtMs = (x: number) => x.toFixed(1);
const fmtVal = (x: number | Float64Array) => (typeof x === 'number' ? x.toPrecision(12) : `[${x.length}]`);
const passes = (c: Comparison, tol: number) => Object.values(c.errors).every((e) => e <= tol);

/** Tolerance of a device: float64 executor vs float32 GPU arithmetic (f32: 1e-4, 16-bit inputs: 1e-3). */
const defaultTol = (dev: Device['kind'], dtype: FloatDType) => (dev === 'cpu' ? 1e-9 : gpuTolerance(dtype).grad);

async function openRunDevice(kind: Device['kind'], repeats: number, required: boolean): Promise<RunDevice | null> {
  try {
    const dev = await openDevice(kind, required);
    return dev && { dev, repeats };
  } catch (e) {
    if (e instanceof DeviceError) throw new CliError(e.message);
    throw e;
  }
}
const timingText = (ts: KernelTiming[]) => ts.map((t) => `${t.kernel} ${t.ms.toFixed(3)} ms`).join(', ') + (ts.length ? ` (median of ${ts[0]!.samples.length}, ${ts[0]!.method})` : '');

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

async function cmdRun(argv: string[]): Promise<number> {
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
  const noScheduleFlags = (['rows', 'lanes', 'vec', 'd-chunks', 'samples-per-step', 'stages', 'schedule'] as const).every((f) => o[f] === undefined);
  let schedule: Schedule | undefined = scheduleFrom('run', o, o.device === 'webgpu' ? WEBGPU_SCHEDULE : DEFAULT_SCHEDULE);
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
      const picked = scheduleFor(dev.backend, openDb(TuningDb.defaultPath()), p, optionsFor(p, { transform, correction }));
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
  out(`problem: ${o.mode}${q} ${shape} dtype=${o.dtype} reduction=${o.reduction} seed=${o.seed}` + (o.mode === 'sampled' ? ` collisions=${o.collisions}` : '') + ` ignore=${o.ignore}`);
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

// ---------------------------------------------------------------- start

const START_FLAGS = {
  out: { kind: 'str', metavar: 'DIR', default: 'out', help: 'where the kernels of every target go (DIR/<target>/)' },
} as const satisfies FlagTable;

const START_HELP = usage(
  'ccekit start [--out DIR]',
  'The main job on the best device available: run CCE- on a few problems for every dtype and check it\nagainst the float64 reference, then emit all variants for WGSL, CUDA and Triton into DIR/<target>/.',
  START_FLAGS,
);

const START_SETTINGS: { label: string; gen: Omit<GenOptions, 'dtype' | 'seed'> }[] = [
  { label: 'sampled uniform', gen: { mode: 'sampled', N: 513, V: 4099, K: 127, D: 64 } },
  {
    label: 'sampled popularity',
    gen: {
      mode: 'sampled', N: 513, V: 4099, K: 127, D: 64,
      popularity: true, collisionRate: 0.02, ignoreFraction: 0.05,
    },
  },
  { label: 'full', gen: { mode: 'full', N: 131, V: 523, K: 0, D: 64 } },
];
const START_NOTE = [
  'sampled uniform:    N=513 V=4099 K=127 D=64, q = 1/(V−1)',
  'sampled popularity: N=513 V=4099 K=127 D=64, Zipf-like q, 2% of negatives collide with the target, 5% of rows ignored',
  'full:               N=131 V=523 D=64, softmax over all items',
  'reduction mean, seed 1; errors are max|a − b| / max|reference| against the float64 reference',
];
/** The short WGSL check on a software WebGPU adapter: one small sampled problem per dtype, D not a power of 2. */
const SOFTWARE_CHECK: Omit<GenOptions, 'dtype' | 'seed'> = {
  mode: 'sampled',
  N: 67,
  V: 509,
  K: 31,
  D: 72,
  collisionRate: 0.05,
};

/**
 * The best device this build can use: CUDA, then a hardware WebGPU adapter, then the CPU executor. A software
 * adapter (lavapipe) is slower than the CPU executor, so it is kept only for a short WGSL check.
 */
async function bestDevice(): Promise<{ device: RunDevice; note: string; software?: Device }> {
  const cuda = await openRunDevice('cuda', 5, false);
  if (cuda) return { device: cuda, note: 'the emitted CUDA C++ runs through NVRTC and the driver API' };
  const gpu = await openRunDevice('webgpu', 5, false);
  if (gpu && !gpu.dev.software) return { device: gpu, note: 'no CUDA device, so the emitted WGSL runs through Dawn' };
  const cpu = (await openRunDevice('cpu', 0, true))!;
  if (gpu) {
    const note = `no GPU; the WebGPU adapter ${gpu.dev.backend.device} is software, so it runs only a short WGSL check`;
    return { device: cpu, note, software: gpu.dev };
  }
  return { device: cpu, note: 'no GPU and no WebGPU adapter' };
}

/**
 * `ccekit emit --target all --dtype all --out DIR` in a child process (the same program), so that the kernels are
 * generated on a second core while the checks run. Resolves with its exit code and its stderr.
 */
function emitInBackground(dir: string): Promise<{ code: number; stderr: string }> {
  const self = fileURLToPath(import.meta.url);
  const pre = self.endsWith('.ts') ? ['--import', import.meta.resolve('tsx')] : [];
  const args = [...pre, self, 'emit', '--target', 'all', '--dtype', 'all', '--out', dir];
  return new Promise((done) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (e) => done({ code: 1, stderr: e.message }));
    child.on('close', (code) => done({ code: code ?? 1, stderr }));
  });
}

/** Files, kernels (manifest.json) and bytes of an emitted target folder. */
function emittedSummary(dir: string): { files: number; kernels: number; bytes: number } {
  const names = readdirSync(dir);
  const bytes = names.reduce((n, f) => n + statSync(join(dir, f)).size, 0);
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { kernels: unknown[] };
  return { files: names.length, kernels: manifest.kernels.length, bytes };
}

async function cmdStart(argv: string[]): Promise<number> {
  const o = parseFlags('start', argv, START_FLAGS);
  for (const t of TARGETS) checkOutDir(join(o.out, t), '--out', o.out);
  const t0 = performance.now();
  const secs = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
  const emitting = emitInBackground(o.out);
  out(`ccekit start: emitting every kernel into ${o.out}/ in the background; looking for a device ...`);
  const { device: rd, note, software } = await bestDevice();
  const dev = rd.dev;
  out(`device: ${dev.line} (${note}) [${secs()}]`);
  out();
  for (const line of START_NOTE) out(line);
  out();
  const header = ['setting', 'dtype', 'loss', 'loss err', 'lse err', 'dE err', 'dC err', 'fwd ms', 'bwd ms', 'tol'];
  header.push('', 'at');
  const widths = [18, 5, 14, 8, 8, 8, 8, 8, 8, 6, 4, 7];
  const pad = (c: string, i: number) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!));
  const line = (cells: string[]) => cells.map(pad).join('  ');
  out(line(header));
  let ok = true;
  try {
    for (const s of START_SETTINGS) {
      for (const dtype of DTYPES) {
        const p = randomProblem({ ...s.gen, dtype, seed: 1 });
        const c = await compare(rd, p, undefined, undefined, dev.kind === 'webgpu' ? WEBGPU_SCHEDULE : undefined);
        const tol = defaultTol(dev.kind, dtype);
        const pass = passes(c, tol);
        ok &&= pass;
        const e = c.errors;
        const [f, b] = c.timings.length ? c.timings.map((t) => t.ms.toFixed(3)) : [fmtMs(c.ms), ''];
        const errs = [e.loss, e.lse, e.dE, e.dC].map(fmtErr);
        out(line([s.label, dtype, fmtVal(c.res.loss), ...errs, f!, b!, String(tol), pass ? 'ok' : 'FAIL', secs()]));
      }
    }
    out();
    out(
      dev.kind === 'cpu'
        ? 'fwd ms: wall time of forward + backward in the CPU executor'
        : `fwd / bwd ms: median kernel times of 5 runs (${dev.kind === 'cuda' ? 'CUDA events' : 'GPU timestamps'})`,
    );
    if (software) {
      out();
      const what = 'sampled, N=67 V=509 K=31 D=72, 5% collisions, f32 and bf16 storage';
      out(`short WGSL check on ${software.backend.device} (software Vulkan): ${what}`);
      const wgsl: RunDevice = { dev: software, repeats: 1 };
      // Two dtypes: lavapipe compiles each pipeline from scratch (seconds a kernel on a cold shader cache).
      for (const dtype of ['f32', 'bf16'] as const) {
        const p = randomProblem({ ...SOFTWARE_CHECK, dtype, seed: 1 });
        const c = await compare(wgsl, p, undefined, undefined, WEBGPU_SCHEDULE);
        const tol = defaultTol('webgpu', dtype);
        const pass = passes(c, tol);
        ok &&= pass;
        const errs = Object.entries(c.errors).map(([k, v]) => `${k} ${fmtErr(v)}`).join(', ');
        out(`  ${dtype.padEnd(4)} ${errs} (tol ${tol}) ${pass ? 'ok' : 'FAIL'} [${secs()}]`);
      }
    }
  } finally {
    dev.close();
    software?.close();
  }
  out(ok ? 'all errors relative to the float64 reference are within tolerance' : 'FAIL: some errors are above tolerance');
  out();
  out(`waiting for the emit ... [${secs()}]`);
  const emitted = await emitting;
  if (emitted.code !== 0) {
    throw new CliError(`emit into ${o.out} failed: ${oneLine(emitted.stderr) || `exit ${emitted.code}`}`);
  }
  const summary: string[][] = [['target', 'files', 'kernels', 'bytes', 'directory']];
  for (const t of TARGETS) {
    const dir = join(o.out, t);
    const w = emittedSummary(dir);
    summary.push([t, String(w.files), String(w.kernels), String(w.bytes), dir]);
  }
  out(
    `emitted every variant (${DTYPES.join(', ')}; sampled uniform / given q from an index tensor or drawn in-kernel, ` +
      `full; scalar and per-row gradients), schedule ${JSON.stringify(DEFAULT_SCHEDULE)}:`,
  );
  out(table(summary));
  out();
  out(`done in ${secs()}`);
  return ok ? 0 : 1;
}

// ---------------------------------------------------------------- dispatch

const COMMANDS: Record<string, { help: string; summary: string; run: (argv: string[]) => Promise<number> }> = {
  emit: { help: EMIT_HELP, summary: 'generate WGSL / CUDA / Triton kernels and a manifest.json', run: cmdEmit },
  run: { help: RUN_HELP, summary: 'run on a random problem and compare with the float64 reference', run: cmdRun },
  start: { help: START_HELP, summary: 'the main job on the best device available (npm start)', run: cmdStart },
  check: { help: CHECK_HELP, summary: 'the correctness suite on a GPU (cuda or webgpu) against the float64 reference', run: cmdCheck },
  bench: { help: BENCH_HELP, summary: 'time CCE- at the paper-matched settings on a GPU', run: cmdBench },
  tune: { help: TUNE_HELP, summary: 'autotune schedules per problem size into the persistent tuning DB', run: cmdTune },
};

const MAIN_HELP = [
  'ccekit: a compiler of GPU kernels for CCE- (cross-entropy with negative sampling, no materialized logits)',
  '',
  'usage: ccekit <command> [flags]',
  '',
  'commands:',
  ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(6)}  ${c.summary}`),
  `  ${'help'.padEnd(6)}  ccekit help <command> prints the flags of a command`,
  '',
  'examples:',
  '  ccekit emit --target cuda --dtype bf16 --out out/cuda',
  '  ccekit emit --target all --out out --transform softcap.ts:softcap',
  '  ccekit run --device cpu --n 513 --v 1000 --k 64 --d 64 --popularity',
  '  ccekit start',
  '',
  'Run `ccekit <command> --help` for its flags.',
].join('\n');

const LIBRARY_ERRORS = [CliError, CceInputError, ScheduleError, VerifyError, DslError, WebgpuError, OutPathError];

export async function main(argv: readonly string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  let name = cmd ?? '';
  try {
    if (cmd === undefined || cmd === '--help' || cmd === '-h') {
      out(MAIN_HELP);
      return 0;
    }
    if (cmd === 'help') {
      const words = rest.filter((a) => a !== '--help' && a !== '-h');
      const which = words[0];
      if (words.length > 1) throw new UsageError(`help takes one command, got ${words.length}: ${words.join(' ')}`, '');
      if (which === undefined || which === 'help') out(MAIN_HELP);
      else if (Object.hasOwn(COMMANDS, which)) out(COMMANDS[which]!.help);
      else throw new UsageError(`unknown command '${which}'`, '');
      return 0;
    }
    const c = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
    if (!c) {
      name = '';
      throw new UsageError(cmd.startsWith('-') ? `unknown flag ${cmd.split('=')[0]}; flags go after the command` : `unknown command '${cmd}'`, '');
    }
    if (isHelp(rest)) {
      out(c.help);
      return 0;
    }
    return await c.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      err(`ccekit: ${oneLine(e.message)} (see ccekit ${e.command ? e.command + ' ' : ''}--help)`);
      return 2;
    }
    const msg = oneLine(e instanceof Error ? e.message : String(e));
    if (LIBRARY_ERRORS.some((k) => e instanceof k) || (e instanceof Error && e.name === 'FrontendError')) {
      err(`ccekit: ${msg}`);
      return 2;
    }
    if (process.env.CCEKIT_DEBUG) err(e instanceof Error && e.stack ? e.stack : String(e));
    err(`ccekit: internal error in '${name}': ${msg} (CCEKIT_DEBUG=1 shows the stack)`);
    return 1;
  }
}

/**
 * Whether this module is the program: `node cli/main.ts`, `tsx cli/main.ts`, or the bundle imported by
 * bin/ccekit.js. Tests import it and call main() in-process, which must not run the command line.
 */
function isProgram(): boolean {
  const argv1 = process.argv[1];
  if (!argv1) return false;
  let entry: string;
  try {
    entry = realpathSync(argv1);
  } catch {
    entry = resolve(argv1);
  }
  const self = fileURLToPath(import.meta.url);
  return entry === self || entry === resolve(dirname(self), '..', 'bin', 'ccekit.js');
}

if (isProgram()) {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  process.exitCode = await main(process.argv.slice(2));
}
