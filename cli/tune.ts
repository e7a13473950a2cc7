// `ccekit tune`: the schedule search of runtime/autotune at the paper-matched settings (runtime/presets.ts), each
// winner stored in the persistent tuning DB.
import type { CceOptions } from '../dsl/cce.js';
import { SETTINGS } from '../runtime/presets.js';
import { checkOutFile } from '../runtime/fsout.js';
import { TuningDb } from '../runtime/autotune/db.js';
import { tuneAsync } from '../runtime/autotune/tune.js';
import { type FlagTable, checkShare, intList, parseFlags, table, usage } from './args.js';
import { out } from './common.js';
import { openDb, printDbWarnings, requireDevice, settingNames } from './gpu.js';

const TUNE_FLAGS = {
  device: { kind: 'enum', values: ['cuda', 'webgpu'], default: 'cuda', help: 'device to tune for' },
  settings: { kind: 'str', default: SETTINGS.map((s) => s.name).join(','), help: 'comma-separated settings' },
  dtype: { kind: 'enum', values: ['f16', 'bf16', 'f32'], default: 'f16', help: 'storage dtype of E and C' },
  repeats: {
    kind: 'int', default: 5, min: 1, max: 100_000, help: 'timed repetitions per candidate (finalists: 15)',
  },
  db: {
    kind: 'str', metavar: 'FILE', help: 'tuning DB (default $CCEKIT_CACHE/tuning.json or ~/.cache/ccekit/tuning.json)',
  },
  negatives: {
    kind: 'enum', values: ['tensor', 'philox'], default: 'tensor',
    help: 'negatives from an index tensor or drawn in the kernel',
  },
  share: {
    kind: 'str', default: '0', metavar: 'R[,R...]',
    help: 'tune the shared-negative kernels of groups of R rows (16, 32, 64, 128); a list tunes each and compares ' +
      'them (R changes the estimator: it is reported, never chosen for you)',
  },
  deterministic: { kind: 'bool', help: 'tune the deterministic-dC kernels (int64 fixed point)' },
} as const satisfies FlagTable;

export const TUNE_HELP = usage(
  'ccekit tune --device cuda|webgpu [--settings beauty,...] [--dtype f16] [--share 16,32,64,128] [--db FILE]',
  'Search schedules for each problem size: prune by device limits and spills, reject candidates that disagree with\n' +
    'the float64 reference, time the rest, store the winner in the persistent tuning DB keyed by the device (a\n' +
    'second run is a cache hit).',
  TUNE_FLAGS,
);

export async function cmdTune(argv: string[]): Promise<number> {
  const o = parseFlags('tune', argv, TUNE_FLAGS);
  const names = settingNames(o.settings, 'tune');
  const shares = intList('tune', '--share', o.share, 0, 128);
  for (const r of shares) checkShare(r, 'tune');
  // tune writes the DB: its folder must be there or creatable (a corrupt file is moved aside by the DB).
  if (o.db !== undefined) checkOutFile(o.db, '--db');
  const dev = await requireDevice(o.device, 'tune');
  const db = openDb(o.db ?? TuningDb.defaultPath());
  out(`ccekit tune on ${dev.line}, dtype ${o.dtype}, DB ${db.path}`);
  const withR = shares.length > 1 || !!shares[0];
  const rows: string[][] = [['setting', ...(withR ? ['R'] : []), 'result', 'ms', 'p20', 'p80', 'schedule']];
  try {
    for (const n of names) {
      const st = SETTINGS.find((s) => s.name === n)!;
      for (const share of shares) {
        const opts: CceOptions = {
          mode: 'sampled', dtype: o.dtype, sampling: 'uniform', grad: 'scalar', negatives: o.negatives,
          ...(share ? { share } : {}), ...(o.deterministic ? { deterministic: true } : {}),
        };
        out(`-- ${n} (N=${st.N} V=${st.V} K=${st.K} D=${st.D})${share ? ` negatives shared by ${share} rows` : ''}`);
        const t0 = performance.now();
        const r = await tuneAsync(dev.backend, db, st, opts, { repeats: o.repeats, progress: (l) => out(`   ${l}`) });
        const secs = `${((performance.now() - t0) / 1000).toFixed(1)} s`;
        const e = r.entry;
        const R = withR ? [String(share || '-')] : [];
        if (!e) {
          rows.push([n, ...R, `default kept (${secs})`, r.defaultMs!.toFixed(3), '', '', 'the default step']);
          continue;
        }
        const ms = [e.ms, e.p20, e.p80].map((x) => x.toFixed(3));
        rows.push([n, ...R, r.cacheHit ? 'cache hit' : `tuned in ${secs}`, ...ms, JSON.stringify(e.schedule)]);
      }
    }
  } finally {
    dev.close();
  }
  printDbWarnings(db);
  out(table(rows));
  return 0;
}
