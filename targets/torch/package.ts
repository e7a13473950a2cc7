// `ccekit emit --target torch`: an importable Python package around the emitted CUDA C++ kernels.
// Kernels are specialised by schedule (not by shapes), so the package carries, per dtype and sampling mode,
// the schedules that cover the hidden sizes asked for (heuristic defaults, a vec=1 fallback for sizes the
// vector width does not divide, and the tuned schedules of the chosen device), each as forward + backward.
import Handlebars from 'handlebars';
import { CODEGEN_VERSION, compileKernel } from '../../codegen/compile.js';
import { sharedBytes } from '../../codegen/lower.js';
import { type CceOptions, cceBackward, cceForward, cceFused, cceFusedDE } from '../../dsl/cce.js';
import { CAPS, type Schedule, fitD, fitProblem, heuristicSchedule, warps } from '../../dsl/schedule.js';
import type { ManifestKernel } from '../../codegen/package.js';
import type { TuneEntry } from '../../runtime/autotune/db.js';
import { COUNTER_SCHEDULE, SCAN_WIDTH, SEGMENT, reduceSchedule } from '../../dsl/byitem.js';
import { BY_ITEM_PAIR_BYTES, type ByItemKernel, byItemKernel } from '../../runtime/byitem.js';
import { CUDA_PY, INIT_PY, LOSS_PY, REFERENCE_PY, SETUP_PY, TILE_PY } from './python.js';

export interface TorchPackageOptions {
  /** Hidden sizes to cover (each rounded up to a power of two); default 32..1024. */
  dValues?: number[];
  dtypes?: ('f32' | 'f16' | 'bf16')[];
  /** Tuning DB entries to ship (the chosen device's); their schedules are emitted too. */
  tuning?: TuneEntry[];
}

const pow2 = (d: number) => 2 ** Math.ceil(Math.log2(Math.max(1, d)));

/** Row groups of the shared-negative kernels the package carries (re-emit for others). */
export const PACKAGE_SHARES = [64, 128] as const;

/**
 * Launch defaults of the Triton tile kernels (shared negatives on tensor cores), from the H100 search in
 * bench/results/triton-shared-h100.json: candidate tile, and (warps, stages) for D ≥ 128 and below.
 */
const TILE_LAUNCH: Record<number, { cands: 32 | 64; wide: [number, number]; narrow: [number, number] }> = {
  64: { cands: 32, wide: [8, 3], narrow: [4, 2] },
  128: { cands: 64, wide: [8, 3], narrow: [4, 2] },
};

export interface TileKernel {
  file: string;
  entry: string;
  pass: 'forward' | 'backward' | 'fused' | 'fused_de';
  options: ManifestKernel['options'];
  schedule: Schedule;
  launch: { wide: [number, number]; narrow: [number, number] };
  parameters: ManifestKernel['parameters'];
}
const BY_ITEM_KERNELS: Partial<Record<ManifestKernel['pass'], ByItemKernel>> = { count_pairs: 'count', fill_pairs: 'fill', scan_blocks: 'scan', scan_add: 'scanAdd', dc_by_item: 'reduce' };
const kernelOf = (pass: ManifestKernel['pass'], o: CceOptions, s: Schedule, packed = false) => {
  const b = BY_ITEM_KERNELS[pass];
  if (b) return byItemKernel(b, o, s, packed).kernel;
  return pass === 'forward' ? cceForward(o, s) : pass === 'backward' ? cceBackward(o, s) : pass === 'fused' ? cceFused(o, s) : cceFusedDE(o, s, pass === 'fused_de_by_item');
};
const tag = (s: Schedule) => `r${s.rows}l${s.lanes}v${s.vec}c${s.dChunks}s${s.samplesPerStep}`;

/** Files of the package, relative to the output directory. */
export function emitTorchPackage(o: TorchPackageOptions = {}): Map<string, string> {
  const files = new Map<string, string>();
  const asked = o.dValues ?? [32, 64, 128, 256, 512, 1024];
  const bad = asked.find((d) => !Number.isSafeInteger(d) || d < 1);
  if (bad !== undefined || asked.length === 0)
    throw new RangeError(`dValues: expected positive integers, got ${bad ?? 'none'}`);
  // The default and fallback schedules below come from fitD at these sizes, so each serves its D
  // (checkScheduleForD). At run time the package picks a kernel whose schedule serves the caller's D (the same
  // condition, in _cuda.py) and refuses, with a ValueError before any work, a D that none serves: one above the
  // largest size, or with shared negatives (no vec=1 fallback there) one that their vector width does not divide.
  const dValues = [...new Set(asked.map(pow2))].sort((a, b) => a - b);
  const kernels: ManifestKernel[] = [];
  const tiles: TileKernel[] = [];
  const cudaKernel = (opts: CceOptions, s: Schedule, pass: ManifestKernel['pass'], suffix: string, packed = false) => {
    const k = kernelOf(pass, opts, s, packed);
    const out = compileKernel(k, s, 'cuda', CAPS.cuda);
    const file = `${k.name}__${suffix}.cu`;
    files.set(`ccekit_torch/kernels/${file}`, out.source);
    kernels.push({
      file,
      entry: out.entry,
      pass,
      options: { mode: 'sampled', dtype: opts.dtype, sampling: opts.sampling, grad: opts.grad, negatives: opts.negatives, share: opts.share, deterministic: !!opts.deterministic, ...(packed ? { packed } : {}) },
      schedule: s,
      launch: { rowsPerProgram: s.rows, threadsPerProgram: out.lowered.invocations, warps: warps(s), blockD: out.lowered.blockD, sharedBytes: sharedBytes(out.lowered, CAPS.cuda), maxD: out.lowered.blockD },
      parameters: out.parameters,
    });
  };
  // Passes and dC modes: the forward once; backward and fused with float atomics and with the deterministic
  // (int64 fixed-point) dC; forward + dE in one sweep for item tables without a gradient.
  const PASSES = [['forward', false], ['backward', false], ['fused', false], ['backward', true], ['fused', true], ['fused_de', false]] as const;
  // The fused kernel (mean / sum: gradients for a unit upstream scale, computed with the loss); the others for
  // a per-row upstream gradient.
  const optsFor = (pass: ManifestKernel['pass'], det: boolean, base: Omit<CceOptions, 'grad'>): CceOptions => ({ ...base, grad: pass === 'backward' || pass === 'forward' ? 'perRow' : 'scalar', ...(det ? { deterministic: true } : {}) });
  // dC by item (per-row negatives, mean / sum): the scan kernels once, counting and filling per kind of
  // negatives (no embeddings involved), the forward per schedule and the reduction per D, for every dtype.
  const f32Opts = (sampling: CceOptions['sampling'], negatives: CceOptions['negatives']): CceOptions => ({ mode: 'sampled', dtype: 'f32', sampling, negatives, grad: 'scalar' });
  for (const pass of ['scan_blocks', 'scan_add'] as const) cudaKernel(f32Opts('uniform', 'tensor'), COUNTER_SCHEDULE, pass, 'all');
  for (const [sampling, negatives] of [['uniform', 'tensor'], ['given', 'tensor'], ['uniform', 'philox']] as const)
    for (const [pass, packed] of [['count_pairs', false], ['fill_pairs', false], ['fill_pairs', true]] as const) cudaKernel(f32Opts(sampling, negatives), COUNTER_SCHEDULE, pass, `${sampling}${negatives === 'philox' ? '_philox' : ''}`, packed);
  for (const dtype of o.dtypes ?? ['f32', 'f16', 'bf16']) {
    const schedules = new Map<string, Schedule>();
    for (const d of dValues) {
      const h = heuristicSchedule(d, dtype);
      schedules.set(tag(h), h);
      const scalar = fitD({ ...h, vec: 1 }, d);
      schedules.set(tag(scalar), scalar);
    }
    for (const e of o.tuning ?? []) if (e.key.dtype === dtype) schedules.set(tag(e.schedule), e.schedule);
    // Index-tensor kernels for uniform and given q; in-kernel (Philox) sampling for uniform q.
    for (const [sampling, negatives] of [['uniform', 'tensor'], ['given', 'tensor'], ['uniform', 'philox']] as const) {
      const kind = `${sampling}${negatives === 'philox' ? '_philox' : ''}`;
      for (const s of schedules.values())
        for (const [pass, det] of [...PASSES, ['fused_de_by_item', false] as const]) cudaKernel(optsFor(pass, det, { mode: 'sampled', dtype, sampling, negatives }), s, pass, `${kind}_${dtype}${det ? '_det' : ''}__${tag(s)}`);
      const reduces = new Map(dValues.flatMap((d) => [reduceSchedule(d), fitD({ ...reduceSchedule(d), vec: 1, dChunks: 1 }, d)]).map((x) => [tag(x), x]));
      for (const s of reduces.values()) for (const packed of [false, true]) cudaKernel(optsFor('dc_by_item', false, { mode: 'sampled', dtype, sampling, negatives }), s, 'dc_by_item', `${kind}_${dtype}__${tag(s)}`, packed);
      // Shared negatives: SIMT kernels (any NVIDIA GPU) at the heuristic schedules, Triton tile kernels
      // (tensor cores; one file serves every D, BLOCK_D is a launch argument).
      for (const share of PACKAGE_SHARES) {
        const shareSchedules = new Map(dValues.map((d) => fitProblem(heuristicSchedule(d, dtype), d, CAPS.cuda, share)).map((x) => [tag(x), x]));
        for (const s of shareSchedules.values()) {
          for (const [pass, det] of PASSES) cudaKernel(optsFor(pass, det, { mode: 'sampled', dtype, sampling, negatives, share }), s, pass, `${kind}_share${share}_${dtype}${det ? '_det' : ''}__${tag(s)}`);
        }
        const t = TILE_LAUNCH[share]!;
        const ts: Schedule = { rows: share as Schedule['rows'], lanes: 1, vec: 1, dChunks: 16, samplesPerStep: t.cands, stages: t.wide[1] as Schedule['stages'] };
        for (const [pass, det] of PASSES) {
          const opts = optsFor(pass, det, { mode: 'sampled', dtype, sampling, negatives, share });
          const k = kernelOf(pass, opts, ts);
          const out = compileKernel(k, ts, 'triton', CAPS.triton);
          const file = `${k.name}__${kind}_share${share}_${dtype}${det ? '_det' : ''}.py`;
          files.set(`ccekit_torch/triton/${file}`, out.source);
          tiles.push({ file, entry: out.entry, pass, options: { mode: 'sampled', dtype, sampling, grad: opts.grad, negatives, share, deterministic: det }, schedule: ts, launch: { wide: t.wide, narrow: t.narrow }, parameters: out.parameters });
        }
      }
    }
  }
  // Constants the package's dC-by-item driver shares with the kernels (runtime/byitem.ts is its TypeScript twin).
  const byItem = { segment: SEGMENT, scanWidth: SCAN_WIDTH, pairBytes: BY_ITEM_PAIR_BYTES };
  const manifest = { generator: 'ccekit', version: CODEGEN_VERSION, target: 'torch', dValues, byItem, kernels, tiles };
  const fill = (t: string) => Handlebars.compile(t, { noEscape: true })({ version: CODEGEN_VERSION });
  files.set('ccekit_torch/manifest.json', JSON.stringify(manifest, null, 1) + '\n');
  files.set('ccekit_torch/tuning.json', JSON.stringify({ schema: 'ccekit-tuning/1', entries: Object.fromEntries((o.tuning ?? []).map((e, i) => [String(i), e])) }, null, 1) + '\n');
  files.set('ccekit_torch/__init__.py', fill(INIT_PY));
  files.set('ccekit_torch/loss.py', LOSS_PY);
  files.set('ccekit_torch/_reference.py', REFERENCE_PY);
  files.set('ccekit_torch/_cuda.py', CUDA_PY);
  files.set('ccekit_torch/_tile.py', TILE_PY);
  files.set('setup.py', fill(SETUP_PY));
  return files;
}
