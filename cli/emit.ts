// `ccekit emit`: kernels and a manifest for a target, or the PyTorch package.
import { join } from 'node:path';
import { emitTorchPackage } from '../packages/torch/package.js';
import { type CceOptions } from '../dsl/cce.js';
import { type Schedule } from '../codegen/schedule.js';
import { DEFAULT_SHARE, allVariants, emitVariants } from '../targets/variants.js';
import { SOURCE_TARGET_NAMES, type TargetName } from '../targets/registry.js';
import { type FloatDType } from '../runtime/numeric.js';
import { type FlagTable, UsageError, checkShare, intList, parseFlags, usage, givenFlags } from './args.js';
import { checkOutDir, makeOutDir, writeOutFile } from '../runtime/fsout.js';
import { openDbStrict } from './gpu.js';
import { TARGETS, DTYPES, out, SCHEDULE_FLAGS, FN_FLAGS, scheduleFrom, scalarFnFrom } from './common.js';

const EMIT_FLAGS = {
  target: {
    kind: 'enum',
    values: [...SOURCE_TARGET_NAMES, 'torch', 'all'],
    help:
      `target language (all: ${SOURCE_TARGET_NAMES.join(', ')}, one subfolder each); ` +
      'torch: an importable PyTorch package',
  },
  'd-values': {
    kind: 'str',
    metavar: 'LIST',
    help: 'torch: hidden sizes the package covers (default 32,64,128,256,512,1024)',
  },
  db: {
    kind: 'str',
    metavar: 'FILE',
    help: 'torch: ship this tuning DB\'s entries (and their schedules) in the package',
  },
  out: { kind: 'str', metavar: 'DIR', help: 'output directory (created if missing)' },
  dtype: { kind: 'enum', values: ['f32', 'f16', 'bf16', 'all'], default: 'f32', help: 'storage dtype of E and C' },
  variants: {
    kind: 'enum',
    values: ['all', 'sampled', 'shared', 'full'],
    default: 'all',
    help:
      'sampled: CCE- (uniform and given q, per-row and shared negatives); ' +
      'shared: only row-tile-shared negatives; full: full-catalog CE',
  },
  share: {
    kind: 'int',
    default: DEFAULT_SHARE,
    min: 16,
    help: 'rows per group of the shared-negative variants (16, 32, 64, 128)',
  },
  ...SCHEDULE_FLAGS,
  ...FN_FLAGS,
} as const satisfies FlagTable;

export const EMIT_HELP = usage(
  'ccekit emit --target wgsl|cuda|triton|torch|all --out DIR [flags]',
  'Generate the forward and backward kernels of every variant (scalar and per-row upstream gradient)\n' +
    'and a manifest.json (entries, parameters, bindings, schedule, launch geometry). Prints each file written.\n' +
    "torch: an importable PyTorch package (ccekit_torch) of the kernels for --d-values, with --db's tuned schedules.",
  EMIT_FLAGS,
);

export async function cmdEmit(argv: string[]): Promise<number> {
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
    .filter(
      (v) =>
        o.variants === 'all' ||
        (o.variants === 'shared' ? v.mode === 'sampled' && !!v.share : v.mode === o.variants),
    );
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
