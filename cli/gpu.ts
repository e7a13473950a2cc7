// Device commands of the CLI: `check` (the correctness suite) and `bench` (paper-matched settings), each over
// any backend of the device list (runtime/devices.ts) through the one step; `tune` is in tune.ts. Also what
// other commands take from here: the tuning-DB openers, requireDevice and settingNames.
import type { CceOptions } from '../dsl/cce.js';
import { DEFAULT_SCHEDULE, type Schedule, checkScheduleShape } from '../codegen/schedule.js';
import { driveAsync } from '../runtime/backend.js';
import { type BenchTiming, benchStep } from '../runtime/bench.js';
import { type CheckRow, checkCases, runChecks } from '../runtime/check.js';
import { WARMUP_MS, WEBGPU_SCHEDULE, stepDefaults } from '../runtime/defaults.js';
import { type Device, DeviceError, openDevice, runOn } from '../runtime/devices.js';
import type { CceProblem } from '../runtime/problem.js';
import { SETTINGS } from '../runtime/presets.js';
import { checkOutFile, writeOutFile } from '../runtime/fsout.js';
import { TuningDb, TuningDbError } from '../runtime/autotune/db.js';
import { scheduleFor } from '../runtime/autotune/tune.js';
import { type FlagTable, UsageError, checkShare, parseFlags, table, usage } from './args.js';
import { scheduleFlag, scheduleListFlag } from './args.js';

const out = (s = '') => process.stdout.write(s + '\n');
const fmt = (x: number) => (Number.isNaN(x) ? 'NaN' : !Number.isFinite(x) ? 'inf' : x === 0 ? '0' : x.toExponential(1));

function writeJson(path: string | undefined, data: unknown): void {
  if (!path) return;
  writeOutFile(path, JSON.stringify(data, null, 2) + '\n', '--out');
  out(`wrote ${path}`);
}

/** Tuning DB warnings already printed by this process (each is printed once). */
const printedDbWarnings = new Set<string>();

/** Prints the DB's warnings (corrupt file, skipped entries) that this process has not printed yet, to stderr. */
export function printDbWarnings(db: TuningDb): void {
  for (const w of db.takeWarnings()) {
    const text = String(w);
    if (printedDbWarnings.has(text)) continue;
    printedDbWarnings.add(text);
    process.stderr.write(`ccekit: warning: ${text}\n`);
  }
}

/** Opens a tuning DB and prints its load warnings once. */
export function openDb(path: string): TuningDb {
  const db = new TuningDb(path);
  printDbWarnings(db);
  return db;
}

/**
 * A tuning DB the user named with --db for reading (emit --target torch, bench): opened strictly, so a
 * missing, empty, truncated or foreign file, or a malformed entry, is one error naming --db (and the file is
 * left as it is, never moved aside); its warnings (stale entries) are printed once.
 */
export function openDbStrict(cmd: string, path: string): TuningDb {
  let db: TuningDb;
  try {
    db = TuningDb.readStrict(path);
  } catch (e) {
    if (e instanceof TuningDbError) throw new UsageError(`--db '${path}': ${e.detail}`, cmd);
    throw e;
  }
  printDbWarnings(db);
  return db;
}

/** `--settings a,b,c`: names of bench settings, each known. */
export function settingNames(text: string, cmd: string): string[] {
  const names = text.split(',').map((s) => s.trim());
  for (const n of names) {
    if (!SETTINGS.some((s) => s.name === n)) throw new UsageError(`--settings: unknown setting '${n}'`, cmd);
  }
  return names;
}

/** A device of the list, required: a missing one is one usage error naming --device. */
export async function requireDevice(kind: Device['kind'], cmd: string): Promise<Device> {
  try {
    return (await openDevice(kind, true))!;
  } catch (e) {
    if (e instanceof DeviceError) throw new UsageError(e.message, cmd);
    throw e;
  }
}

const DEVICES = ['cuda', 'webgpu', 'cpu'] as const;

// ---------------------------------------------------------------- check

const CHECK_FLAGS = {
  device: { kind: 'enum', values: DEVICES, default: 'cuda', help: 'device to check' },
  seed: { kind: 'int', help: 'seed of the random inputs (default: time-based, fresh every run)' },
  quick: { kind: 'bool', help: 'a smaller grid of sizes' },
  fused: { kind: 'bool', help: 'check the fused forward+backward kernels (cases with reduction none are left out)' },
  share: {
    kind: 'int', default: 0, min: 0,
    help: 'check row-tile-shared negatives: groups of this many rows (16, 32, 64, 128) share theirs',
  },
  deterministic: {
    kind: 'bool',
    help: 'check the deterministic dC (int64 fixed point): each case runs twice and dC must be bit-identical',
  },
  'frozen-c': {
    kind: 'bool',
    help: 'check the one-sweep forward + dE kernels for item embeddings without a gradient (mean / sum cases)',
  },
  'by-item': {
    kind: 'bool',
    help: 'check dC reduced by item (per-row sampled negatives, mean / sum cases): forward + dE in one sweep, then ' +
      'count, scan, fill, reduce',
  },
  schedule: { kind: 'str', metavar: 'JSON', help: 'schedule to check (default: the runtime default)' },
  out: { kind: 'str', metavar: 'FILE', help: 'write the rows as JSON' },
} as const satisfies FlagTable;

export const CHECK_HELP = usage(
  'ccekit check --device cuda|webgpu|cpu [--quick] [--seed N] [--out FILE]',
  'The correctness suite on a device: fresh random inputs at odd sizes ' +
    '(N ∈ {1, 7, 513, 4099}, D ∈ {1, 3, 64, 257},\n' +
    'K ∈ {1, 5, 1000}), f32/f16/bf16, collisions, ignored rows, popularity q, mean/sum/none, full CE; outputs are\n' +
    'poisoned before each run and compared with the float64 reference (f32: 1e-5 loss / 1e-4 gradients; ' +
    '16-bit: 1e-3).',
  CHECK_FLAGS,
);

/** check's --schedule (JSON or a file, whole or partial) over the device's default schedule, as `run` merges it. */
export function checkSchedule(device: 'cuda' | 'webgpu' | 'cpu', raw: string): Schedule {
  const base = device === 'webgpu' ? WEBGPU_SCHEDULE : DEFAULT_SCHEDULE;
  const s = { ...base, ...scheduleFlag('check', '--schedule', raw) };
  checkScheduleShape(s);
  return s;
}

export async function cmdCheck(argv: string[]): Promise<number> {
  const o = parseFlags('check', argv, CHECK_FLAGS);
  const seed = o.seed ?? Date.now() % 1_000_000;
  const schedule = o.schedule !== undefined ? checkSchedule(o.device, o.schedule) : undefined;
  checkShare(o.share, 'check');
  if (o.out !== undefined) checkOutFile(o.out, '--out');
  const scalarOnly = o.fused || o['frozen-c'] || o['by-item'];
  const cases = checkCases(seed, o.quick)
    .filter((c) => !scalarOnly || c.problem.reduction !== 'none')
    .filter((c) => !(o['by-item'] || o.share) || c.problem.mode === 'sampled')
    .map((c) => (o.share ? { ...c, label: `${c.label} R=${o.share}`, problem: shareProblem(c.problem, o.share) } : c));
  const dev = await requireDevice(o.device, 'check');
  const step = {
    schedule, fused: o.fused, frozenC: o['frozen-c'], byItem: o['by-item'], deterministic: o.deterministic,
  };
  let run: Parameters<typeof runChecks>[1] = (c) => runOn(dev, c.problem, { ...step, gradOutput: c.gradOutput });
  if (o.deterministic) run = twice(run);
  out(`ccekit check on ${dev.line}, seed ${seed}, ${cases.length} cases`);
  const rows: CheckRow[] = [];
  try {
    await runChecks(cases, run, (r) => {
      rows.push(r);
      const e = r.errors;
      const errs = `loss ${fmt(e.loss)} lse ${fmt(e.lse)} dE ${fmt(e.dE)} dC ${fmt(e.dC)}`;
      const note = r.note ? '  ' + r.note : '';
      out(`${r.pass ? 'ok  ' : 'FAIL'} ${r.dtype.padEnd(4)} ${r.label.padEnd(44)} ${errs}${note}`);
    });
  } finally {
    dev.close();
  }
  const failed = rows.filter((r) => !r.pass).length;
  out(`${rows.length - failed} passed, ${failed} failed`);
  writeJson(o.out, { device: dev.line, seed, rows });
  return failed ? 1 : 0;
}

/** Run a case twice; a dC that is not bit-identical between the runs fails it. */
function twice(run: Parameters<typeof runChecks>[1]): Parameters<typeof runChecks>[1] {
  return async (c) => {
    const a = await run(c);
    const b = await run(c);
    const differ = a.dC.reduce((n, x, i) => (Object.is(x, b.dC[i]) ? n : n + 1), 0);
    if (differ) throw new Error(`deterministic: ${differ} elements of dC differ between two runs`);
    return a;
  };
}

/** A sampled problem with its negatives shared by groups of `share` rows: group g takes row g's negatives. */
function shareProblem(p: CceProblem, share: number): CceProblem {
  if (!p.negatives) return { ...p, shareRows: share };
  return { ...p, shareRows: share, negatives: p.negatives.slice(0, Math.ceil(p.N / share) * p.K) };
}

// ---------------------------------------------------------------- bench

const BENCH_FLAGS = {
  device: {
    kind: 'enum', values: DEVICES, default: 'cuda',
    help: 'device to time (inputs generated on the device where it has a generator, else on the host)',
  },
  settings: { kind: 'str', default: SETTINGS.map((s) => s.name).join(','), help: 'comma-separated settings' },
  dtype: { kind: 'enum', values: ['f16', 'bf16', 'f32'], default: 'f16', help: 'storage dtype of E and C' },
  repeats: { kind: 'int', default: 20, min: 1, max: 100_000, help: 'timed repetitions (median, p20, p80)' },
  schedules: {
    kind: 'str', metavar: 'JSON',
    help: 'a JSON list of (partial) schedules to time at every setting, over the default (default: [{}])',
  },
  out: { kind: 'str', metavar: 'FILE', help: 'write the rows as JSON (bench/results/...)' },
  db: {
    kind: 'str', metavar: 'FILE',
    help: 'tuning DB (default $CCEKIT_CACHE/tuning.json or ~/.cache/ccekit/tuning.json); tuned schedules are used ' +
      'where it has them',
  },
  negatives: {
    kind: 'enum', values: ['tensor', 'philox'], default: 'tensor',
    help: 'per-row negatives from an int32 index tensor, or drawn in the kernel (Philox, no index tensor)',
  },
  fused: { kind: 'bool', help: 'forward and backward in one kernel (mean reduction)' },
  share: { kind: 'int', default: 0, min: 0, help: 'negatives shared by groups of this many rows (16, 32, 64, 128)' },
  deterministic: {
    kind: 'bool',
    help: 'dC in int64 fixed point with integer atomics (bit-identical from run to run; converted after the step)',
  },
  'frozen-c': { kind: 'bool', help: 'item embeddings without a gradient: forward + dE in one sweep (no dC)' },
  'by-item': {
    kind: 'bool',
    help: 'per-row negatives: forward + dE in one sweep, then dC reduced by item (chunks of rows: count, scan, fill, ' +
      'reduce) instead of one float atomic per pair',
  },
  'pair-mib': {
    kind: 'int', default: 48, min: 1, max: 1 << 20,
    help: 'with --by-item: MiB of the pair buffers (sets the chunk of rows)',
  },
  'two-word-pairs': {
    kind: 'bool', help: 'with --by-item: keep two i32 words per pair where one packed u32 would fit',
  },
  'reduce-schedule': {
    kind: 'str', metavar: 'JSON',
    help: "with --by-item: the reduction's (partial) schedule over its default; register chunks are fitted to D",
  },
  'repeat-check': {
    kind: 'bool', help: 'also run each setting twice on the same inputs and count the elements of dC that differ',
  },
} as const satisfies FlagTable;

export const BENCH_HELP = usage(
  'ccekit bench --device cuda|webgpu|cpu [--settings beauty,...] [--dtype f16] [--out FILE]',
  'Time the CCE- step (fwd+bwd; per-row negatives from an index tensor unless told) at the paper-matched settings.',
  BENCH_FLAGS,
);

const benchImpl = (kind: string, o: ReturnType<typeof parseBench>) =>
  [
    `ccekit-${kind}`, o.negatives === 'philox' ? '-philox' : '', o.share ? `-shared${o.share}` : '',
    o['frozen-c'] ? '-frozenC' : o['by-item'] ? '-byitem' : o.fused ? '-fused' : '', o.deterministic ? '-det' : '',
  ].join('');

const parseBench = (argv: string[]) => parseFlags('bench', argv, BENCH_FLAGS);

function benchLine(n: string, row: Record<string, unknown>): string {
  if (row.ms === null) return `${n.padEnd(11)} error: ${row.note}`;
  const ms = (k: string) => (row[k] as number).toFixed(3);
  const parts = [`${n.padEnd(11)} ${ms('ms')} ms (fwd ${ms('fwd_ms')}, rest ${ms('bwd_ms')})`];
  parts.push(JSON.stringify(row.schedule), `regs ${JSON.stringify(row.registers ?? {})}`);
  if (row.dC_differ_between_runs !== undefined) {
    parts.push(`dC elements differing between two runs: ${row.dC_differ_between_runs}`);
  }
  if (row.by_item_ms) {
    const each = Object.entries(row.by_item_ms as Record<string, number>).map(([k, v]) => `${k} ${v.toFixed(2)}`);
    parts.push(`by item (${row.chunks} chunks${row.packed_pairs ? ', packed' : ''}, ms): ${each.join(', ')}`);
  }
  return parts.join(' ');
}

export async function cmdBench(argv: string[]): Promise<number> {
  const o = parseBench(argv);
  const names = settingNames(o.settings, 'bench');
  const given = o.schedules !== undefined;
  const extra: Partial<Schedule>[] = given ? scheduleListFlag('bench', '--schedules', o.schedules!) : [{}];
  const reduceRaw = o['reduce-schedule'];
  const reduceOver = reduceRaw !== undefined ? scheduleFlag('bench', '--reduce-schedule', reduceRaw) : undefined;
  for (const f of ['reduce-schedule', 'two-word-pairs'] as const) {
    if (o[f] && !o['by-item']) throw new UsageError(`--${f} applies with --by-item only`, 'bench');
  }
  checkShare(o.share, 'bench');
  if (o.out !== undefined) checkOutFile(o.out, '--out');
  const named = o.db !== undefined ? openDbStrict('bench', o.db) : undefined;
  const dev = await requireDevice(o.device, 'bench');
  const db = named ?? openDb(TuningDb.defaultPath());
  const card = dev.backend.device;
  out(`ccekit bench on ${dev.line}, dtype ${o.dtype}`);
  const rows: Record<string, unknown>[] = [];
  const share = o.share || undefined;
  const opts: CceOptions = {
    mode: 'sampled', dtype: o.dtype, sampling: 'uniform', grad: 'scalar', negatives: o.negatives,
    ...(share ? { share } : {}), ...(o.deterministic ? { deterministic: true } : {}),
  };
  const impl = benchImpl(dev.kind, o);
  try {
    for (const n of names) {
      const st = SETTINGS.find((s) => s.name === n)!;
      const bp = { ...st, shareRows: share };
      const base = scheduleFor(dev.backend, db, st, opts);
      const defaults = stepDefaults(dev.backend, { ...bp, dtype: o.dtype }, { byItem: o['by-item'] });
      const reduce = reduceOver ? ({ ...defaults.reduce, dChunks: 1, ...reduceOver } as Schedule) : undefined;
      for (const s of extra.map((x) => (Object.keys(x).length ? { ...base.schedule, ...x } : base.schedule))) {
        const sizes = { impl, setting: n, N: st.N, V: st.V, K: st.K, D: st.D, dtype: o.dtype };
        let row: Record<string, unknown>;
        try {
          const t: BenchTiming = await driveAsync(benchStep(dev.backend, bp, {
            dtype: o.dtype, negatives: o.negatives, deterministic: o.deterministic, fused: o.fused,
            frozenC: o['frozen-c'], byItem: o['by-item'], pairBytes: o['pair-mib'] * 2 ** 20,
            packPairs: !o['two-word-pairs'], reduceSchedule: reduce, repeatCheck: o['repeat-check'],
            schedule: given || base.tuned ? s : undefined, repeats: o.repeats, warmupMs: WARMUP_MS[dev.kind],
          }, defaults));
          row = {
            ...sizes, ms: t.ms, p20: t.p20, p80: t.p80, fwd_ms: t.fwdMs, bwd_ms: t.bwdMs,
            peak_mib: t.extraBytes / 2 ** 20, card, schedule: t.schedule, bwd_schedule: t.bwdSchedule,
            passes: t.passes, method: t.method, tuned: base.tuned && s === base.schedule, registers: t.registers,
            ...(t.dCDiffer !== undefined ? { dC_differ_between_runs: t.dCDiffer } : {}),
            ...(t.byItemMs ? {
              by_item_ms: t.byItemMs, reduce_schedule: t.reduceSchedule, chunks: t.chunks, packed_pairs: t.packed,
            } : {}),
            note: 'dC cleared outside the timed passes' +
              (o.deterministic ? '; int64 dC converted after the step, untimed' : ''),
          };
        } catch (e) {
          const note = (e as Error).message.split('\n')[0];
          row = { ...sizes, ms: null, peak_mib: null, card, schedule: s, note };
        }
        rows.push(row);
        out(benchLine(n, row));
      }
    }
  } finally {
    dev.close();
  }
  const cell = (r: Record<string, unknown>, k: string) =>
    typeof r[k] === 'number' ? (r[k] as number).toFixed(3) : 'n/a';
  const body = rows.map((r) => [
    String(r.setting), cell(r, 'ms'), cell(r, 'fwd_ms'), cell(r, 'bwd_ms'),
    r.peak_mib === null ? 'n/a' : (r.peak_mib as number).toFixed(2), JSON.stringify(r.schedule),
  ]);
  out(table([['setting', 'ms', 'fwd', 'rest', 'extra MiB', 'schedule'], ...body]));
  writeJson(o.out, rows);
  return 0;
}
