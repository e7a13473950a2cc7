// What the CLI's commands share: errors, output, the schedule and scalar-function flags, and the comparison of
// a device's step with the float64 reference (run and start).
import { type ScalarFn, derivative, evalScalarFn } from '../dsl/scalarfn.js';
import { DEFAULT_SCHEDULE, type Schedule, checkScheduleShape } from '../codegen/schedule.js';
import { SOURCE_TARGET_NAMES, type TargetName } from '../targets/registry.js';
import { type CceResult } from '../runtime/cpu/run.js';
import { type Device, DeviceError, openDevice, runOn } from '../runtime/devices.js';
import { type KernelTiming } from '../runtime/step.js';
import { type ReferenceOptions, referenceCce } from '../runtime/cpu/reference.js';
import { type CceProblem } from '../runtime/problem.js';
import { type FloatDType } from '../runtime/numeric.js';
import { type FlagTable, UsageError, readUserFile, scheduleFlag, scheduleValue } from './args.js';
import { gpuTolerance, relErr } from '../runtime/check.js';

/** An error with a message fit for the user as it is (bad input file, unwritable directory, ...). */
export class CliError extends Error {}

export const TARGETS: readonly TargetName[] = SOURCE_TARGET_NAMES;
export const DTYPES: readonly FloatDType[] = ['f32', 'f16', 'bf16'];

export const out = (s = '') => process.stdout.write(s + '\n');
export const err = (s: string) => process.stderr.write(s + '\n');

// ---------------------------------------------------------------- shared flags

const SCHED = 'schedule (defaults: ' + JSON.stringify(DEFAULT_SCHEDULE) + ')';
export const SCHEDULE_FLAGS = {
  rows: { kind: 'int', help: 'row slots per program (CTA / workgroup / Triton program)', group: SCHED },
  lanes: { kind: 'int', help: 'lanes that share one row vector', group: SCHED },
  vec: { kind: 'int', help: 'consecutive elements per lane per chunk (1, 2, 4, 8)', group: SCHED },
  'd-chunks': { kind: 'int', help: 'register chunks per lane (BLOCK_D = lanes·vec·d-chunks)', group: SCHED },
  'samples-per-step': {
    kind: 'int',
    help: 'candidates gathered per loop step (1..16; shared negatives: the candidate tile, up to 64)',
    group: SCHED,
  },
  stages: { kind: 'int', help: 'software-pipelining depth (Triton num_stages, 1..5)', group: SCHED },
  schedule: {
    kind: 'str',
    metavar: 'JSON',
    help: 'schedule as JSON (whole or partial, or a .json file); the flags above override it',
    group: SCHED,
  },
} as const satisfies FlagTable;

export const FN_FLAGS = {
  transform: {
    kind: 'str',
    metavar: 'FILE:NAME',
    help: 'logit transform f(x): the TS function NAME exported from FILE (e.g. a soft cap)',
    group: 'scalar functions',
  },
  correction: {
    kind: 'str',
    metavar: 'FILE:NAME',
    help: 'sampling correction g(log q) added to negative logits (default −log q)',
    group: 'scalar functions',
  },
} as const satisfies FlagTable;

type ScheduleFlags = {
  [K in keyof typeof SCHEDULE_FLAGS]: K extends 'schedule' ? string | undefined : number | undefined;
};

/** The schedule of --schedule (JSON or a file, whole or partial) over `base`, then the single-field flags. */
export function scheduleFrom(cmd: string, o: ScheduleFlags, base: Schedule = DEFAULT_SCHEDULE): Schedule {
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
export async function scalarFnFrom(
  cmd: string, flag: string, spec: string | undefined, differentiate: boolean,
): Promise<ScalarFn | undefined> {
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


export interface Comparison {
  res: CceResult;
  timings: KernelTiming[];
  ref: ReturnType<typeof referenceCce>;
  errors: { loss: number; lse: number; dE: number; dC: number };
  ms: number;
  refMs: number;
}


/** A device of the list (runtime/devices.ts) and the timed repetitions asked of it (none on the CPU). */
export interface RunDevice {
  dev: Device;
  repeats: number;
}

export async function compare(
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
    errors: {
      loss: relErr(res.loss, ref.loss),
      lse: relErr(res.lse, ref.lse),
      dE: relErr(res.dE, ref.dE),
      dC: relErr(res.dC, ref.dC),
    },
    ms: t1 - t0,
    refMs: t2 - t1,
  };
}

export function fmtErr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return 'inf';
  if (x === 0) return '0';
  return x.toExponential(2);
}
export const fmtMs = (x: number) => x.toFixed(1);
export const fmtVal = (x: number | Float64Array) => (typeof x === 'number' ? x.toPrecision(12) : `[${x.length}]`);
export const passes = (c: Comparison, tol: number) => Object.values(c.errors).every((e) => e <= tol);

/** Tolerance of a device: float64 executor vs float32 GPU arithmetic (f32: 1e-4, 16-bit inputs: 1e-3). */
export const defaultTol = (dev: Device['kind'], dtype: FloatDType) =>
  dev === 'cpu' ? 1e-9 : gpuTolerance(dtype).grad;

export async function openRunDevice(
  kind: Device['kind'], repeats: number, required: boolean,
): Promise<RunDevice | null> {
  try {
    const dev = await openDevice(kind, required);
    return dev && { dev, repeats };
  } catch (e) {
    if (e instanceof DeviceError) throw new CliError(e.message);
    throw e;
  }
}
export const timingText = (ts: KernelTiming[]) =>
  ts.map((t) => `${t.kernel} ${t.ms.toFixed(3)} ms`).join(', ') +
  (ts.length ? ` (median of ${ts[0]!.samples.length}, ${ts[0]!.method})` : '');
