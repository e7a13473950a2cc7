// `ccekit emit --target torch`: an importable Python package around the emitted CUDA C++ kernels. The package's
// Python sources are the files next to this one (packages/torch/ccekit_torch/*.py, packages/torch/setup.py),
// copied as they are; this file adds the kernels, manifest.json (kernels, tiles, the step table), tuning.json and
// plan_model.json (the planner's cost model).
// Kernels are specialised by schedule (not by shapes), so the package carries, per dtype and sampling mode, the
// schedules that cover the hidden sizes asked for (heuristic defaults, a vec=1 fallback for sizes the vector
// width does not divide, and the tuned schedules of the chosen device), each for every pass of STEP_PASSES.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CODEGEN_VERSION } from '../../codegen/version.js';
import { compileKernel } from '../../targets/registry.js';
import { sharedBytes } from '../../codegen/target.js';
import { type CceOptions, optionsKey } from '../../dsl/cce.js';
import { CAPS } from '../../targets/registry.js';
import { type Schedule, fitD, fitProblem, heuristicSchedule, warps } from '../../codegen/schedule.js';
import { type ManifestKernel, SOURCE_KINDS, sourceOptions, variantTag } from '../../targets/variants.js';
import type { TuneEntry } from '../../runtime/autotune/db.js';
import { SCAN_WIDTH, SEGMENT } from '../../dsl/byitem.js';
import { COUNTER_SCHEDULE, reduceSchedule } from '../../codegen/schedule.js';
import { BY_ITEM_PAIR_BYTES } from '../../runtime/byitem.js';
import { passKernel } from '../../dsl/passes.js';
import { STEP_RULES } from '../../runtime/step.js';
import { packagedModel } from '../../runtime/costmodel.js';
import { DEFAULT_CALIBRATION } from '../../runtime/memplan.js';

export interface TorchPackageOptions {
  /** Hidden sizes to cover (each rounded up to a power of two); default 32..1024. */
  dValues?: number[];
  dtypes?: ('f32' | 'f16' | 'bf16')[];
  /** Tuning DB entries to ship (the chosen device's); their schedules are emitted too. */
  tuning?: TuneEntry[];
}

type Pass = ManifestKernel['pass'];

/**
 * The kernel passes of one training step, by kind of step (the passes from runtime/step.ts's rule table). The package's
 * host code (ccekit_torch/_cuda.py, step_for) takes the first entry whose conditions the call meets and runs its
 * passes; the emission below carries a kernel for each. Conditions: `reductions`; `needs`, the gradients autograd asks
 * for ('dc': the item table's, 'de': only the hidden states', 'none'); `byItem: true`, only when dC by item is asked.
 * `host` is how the host runs the passes: 'one', one launch in autograd's forward that writes the loss rows and
 * `outputs` (gradients for the upstream scale known before the launch; backward rescales only when the upstream
 * gradient is not 1); 'byItem', the chunk plan of runtime/byitem.ts over `forward` in that order (sweep, count, scan,
 * scan add, fill, reduce); 'split', `forward` in autograd's forward (loss, lse, accepted count) and `backward` in its
 * backward. `deterministic`: the passes that take the int64 fixed-point dC variant when deterministic=True; `packed`:
 * passes with a one-word-per-pair variant; `shared`: whether row-tile-shared negatives run it.
 */
export const STEP_PASSES = [
  {
    step: 'by_item', host: 'byItem', reductions: ['mean', 'sum'], needs: ['dc'], byItem: true, shared: false,
    forward: STEP_RULES.byItem.passes,
    backward: [], outputs: ['dE', 'dC'], deterministic: [], packed: ['fill_pairs', 'dc_by_item'],
  },
  {
    step: 'fused', host: 'one', reductions: ['mean', 'sum'], needs: ['dc'], shared: true,
    forward: STEP_RULES.fused.passes, backward: [], outputs: ['dE', 'dC'], deterministic: ['fused'], packed: [],
  },
  {
    step: 'frozen', host: 'one', reductions: ['mean', 'sum'], needs: ['de'], shared: true,
    forward: STEP_RULES.frozen.passes, backward: [], outputs: ['dE'], deterministic: [], packed: [],
  },
  {
    step: 'split', host: 'split', reductions: ['mean', 'sum', 'none'], needs: ['dc', 'de', 'none'], shared: true,
    forward: STEP_RULES.separate.passes.slice(0, 1), backward: STEP_RULES.separate.passes.slice(1),
    outputs: ['dE', 'dC'], deterministic: ['backward'], packed: [],
  },
] as const satisfies readonly {
  step: string; host: 'one' | 'byItem' | 'split'; reductions: readonly string[]; needs: readonly string[];
  byItem?: boolean; shared: boolean; forward: readonly Pass[]; backward: readonly Pass[];
  outputs: readonly ('dE' | 'dC')[]; deterministic: readonly Pass[]; packed: readonly Pass[];
}[];

/** Kernels of dC by item that hold no embeddings: one schedule (COUNTER_SCHEDULE) for every D and dtype. */
const COUNTERS = ['count_pairs', 'fill_pairs', 'scan_blocks', 'scan_add'] as const satisfies readonly Pass[];
/** Passes at the reduction's schedules (reduceSchedule), not the sweep's. */
const REDUCE_PASSES: readonly Pass[] = ['dc_by_item'];

/** (pass, deterministic dC) of every kernel at a sweep schedule, for the steps that `keep` selects. */
function sweepPasses(keep: (s: (typeof STEP_PASSES)[number]) => boolean): [Pass, boolean][] {
  const out = new Map<string, [Pass, boolean]>();
  for (const s of STEP_PASSES.filter(keep))
    for (const p of [...s.forward, ...s.backward] as Pass[]) {
      if ((COUNTERS as readonly Pass[]).includes(p) || REDUCE_PASSES.includes(p)) continue;
      out.set(`${p}`, [p, false]);
      if ((s.deterministic as readonly Pass[]).includes(p)) out.set(`${p}/det`, [p, true]);
    }
  return [...out.values()];
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

/** A manifest kernel, with the int64 negatives option (`negativesDtype: 'i64'`) where it reads them so. */
type TorchKernel = Omit<ManifestKernel, 'options'> & {
  options: ManifestKernel['options'] & { negativesDtype?: 'i64' };
};

export interface TileKernel {
  file: string;
  entry: string;
  pass: 'forward' | 'backward' | 'fused' | 'fused_de';
  options: TorchKernel['options'];
  schedule: Schedule;
  launch: { wide: [number, number]; narrow: [number, number] };
  parameters: ManifestKernel['parameters'];
}

/** The DSL kernel of a pass (runtime/kernels.ts: the one registry from a pass name to its factory). */
const kernelOf = (pass: Pass, o: CceOptions, packed = false) => passKernel(pass, o, packed);
const tag = (s: Schedule) => `r${s.rows}l${s.lanes}v${s.vec}c${s.dChunks}s${s.samplesPerStep}`;

/**
 * Options of the kernels that read an int64 negatives tensor as its low 32-bit words, or undefined while the DSL
 * has no such option (`CceOptions.negativesDtype`: it then changes optionsKey, the key of what changes the code).
 */
function i64Of(o: CceOptions): CceOptions | undefined {
  const i64 = { ...o, negativesDtype: 'i64' } as CceOptions;
  return optionsKey(i64) !== optionsKey(o) ? i64 : undefined;
}
const readsNegatives = (parameters: ManifestKernel['parameters']) =>
  parameters.some((p) => p.kind === 'tensor' && p.name === 'negatives');

/** The folder of the package's Python sources: next to this file, or (bundled CLI in dist/) in the repository. */
function sourceDir(): string {
  for (const rel of ['.', '../packages/torch']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${dir}/ccekit_torch/__init__.py`)) return dir;
  }
  throw new Error('emit --target torch: the package sources (packages/torch/ccekit_torch) are missing');
}

type KernelAt = (o: CceOptions, s: Schedule, pass: Pass, suffix: string) => void;
type OptsFor = (pass: Pass, det: boolean, base: Omit<CceOptions, 'grad'>) => CceOptions;

/** Per-row negatives a positions kernel reads: an index tensor (uniform or given q), uniform in-kernel draws. */
const PER_ROW_DRAWS = [['uniform', 'tensor'], ['given', 'tensor'], ['uniform', 'philox']] as const;

/**
 * Kernels of the candidate sources (targets/variants.ts SOURCE_KINDS, dsl/sources/) for one dtype, by rule: in-batch
 * parts of the whole batch with uniform or frequency q; draws shared by groups of PACKAGE_SHARES rows; positions
 * for per-row draws and for in-batch alone. Every candidate shared by the program's rows: Triton tile kernels
 * (programs of the group, or of 128 rows) and SIMT kernels; per-row parts: SIMT kernels at the sweep schedules.
 * In-batch groups are not carried (the PyTorch path serves them).
 */
function sourceKernels(
  dtype: CceOptions['dtype'], dValues: number[], schedules: Map<string, Schedule>, cudaKernel: KernelAt,
  tileKernel: KernelAt, optsFor: OptsFor, shared: [Pass, boolean][],
): void {
  const float = shared.filter(([, det]) => !det).map(([p]) => p);
  const tileAt = (rows: number): Schedule => ({ rows: rows as Schedule['rows'], lanes: 1, vec: 1, dChunks: 16,
    samplesPerStep: TILE_LAUNCH[rows]!.cands, stages: TILE_LAUNCH[rows]!.wide[1] as Schedule['stages'] });
  const simtAt = (rows: number) => new Map(dValues
    .map((d) => fitProblem(heuristicSchedule(d, dtype), d, CAPS.cuda, Math.min(rows, heuristicSchedule(d, dtype).rows)))
    .map((x) => [tag(x), x]));
  for (const kind of SOURCE_KINDS) {
    if (kind.inBatch === 'group') continue;
    const allShared = !!kind.inBatch && (kind.negatives === 'none' || !!kind.share);
    const draws = kind.positions && !kind.inBatch ? PER_ROW_DRAWS
      : kind.vocabShard ? PER_ROW_DRAWS.filter(([, n]) => n === kind.negatives)
        : [['uniform', kind.negatives ?? 'tensor'] as const];
    const placed = kind.positions ? [true] : kind.inBatch && kind.negatives === 'none' ? [false, true] : [false];
    for (const share of kind.share ? PACKAGE_SHARES : [undefined])
      for (const qb of kind.inBatch ? (['uniform', 'given'] as const) : [undefined])
        for (const [sampling, negatives] of draws)
          for (const positions of placed) {
            const base = {
              mode: 'sampled', dtype, sampling, negatives, ...(share ? { share } : {}),
              ...(kind.inBatch ? { inBatch: kind.inBatch, inBatchSampling: qb } : {}),
              ...(positions ? { positions } : {}), ...(kind.vocabShard ? { vocabShard: true } : {}),
            } as const;
            const name = variantTag({ ...base, grad: 'scalar' });
            const at = allShared ? simtAt(share ?? 128) : schedules;
            // A vocabulary shard: its forward (statistics) and backward, per-row gradient (ccekit_torch/_vocab.py).
            const passes = kind.vocabShard ? (['forward', 'backward'] as const) : float;
            for (const pass of passes) {
              const opts = kind.vocabShard ? { ...base, grad: 'perRow' as const } : optsFor(pass, false, base);
              if (allShared) tileKernel(opts, tileAt(share ?? 128), pass, name);
              for (const sch of at.values()) cudaKernel(opts, sch, pass, `${name}__${tag(sch)}`);
            }
          }
  }
}

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
  const kernels: TorchKernel[] = [];
  const tiles: TileKernel[] = [];
  // One kernel; with index-tensor negatives also its int64-negatives twin where the DSL has one and the kernel
  // reads them (the loop ends after a kernel without a negatives tensor).
  const cudaKernel = (opts: CceOptions, s: Schedule, pass: Pass, suffix: string, packed = false) => {
    const i64 = opts.negatives !== 'philox' ? i64Of(opts) : undefined;
    for (const [o2, sfx] of [[opts, suffix], ...(i64 ? [[i64, `${suffix}_i64`] as const] : [])] as const) {
      const k = kernelOf(pass, o2, packed);
      const out = compileKernel(k, s, 'cuda', CAPS.cuda);
      const file = `${k.name}__${sfx}.cu`;
      files.set(`ccekit_torch/kernels/${file}`, out.source);
      const { lowered } = out;
      kernels.push({
        file,
        entry: out.entry,
        pass,
        options: {
          mode: 'sampled', dtype: o2.dtype, sampling: o2.sampling, grad: o2.grad, negatives: o2.negatives,
          share: o2.share, deterministic: !!o2.deterministic, ...(packed ? { packed } : {}),
          ...(o2 !== opts ? { negativesDtype: 'i64' as const } : {}), ...sourceOptions(o2),
        },
        schedule: s,
        launch: {
          rowsPerProgram: s.rows, threadsPerProgram: lowered.invocations, warps: warps(s), blockD: lowered.blockD,
          sharedBytes: sharedBytes(lowered, CAPS.cuda), maxD: lowered.blockD,
        },
        parameters: out.parameters,
      });
      if (!readsNegatives(out.parameters)) return;
    }
  };
  const tileKernel = (opts: CceOptions, ts: Schedule, pass: TileKernel['pass'], suffix: string) => {
    const t = TILE_LAUNCH[opts.share ?? ts.rows]!;
    const i64 = opts.negatives !== 'philox' ? i64Of(opts) : undefined;
    for (const [o2, sfx] of [[opts, suffix], ...(i64 ? [[i64, `${suffix}_i64`] as const] : [])] as const) {
      const k = kernelOf(pass, o2);
      const out = compileKernel(k, ts, 'triton', CAPS.triton);
      const file = `${k.name}__${sfx}.py`;
      files.set(`ccekit_torch/triton/${file}`, out.source);
      const options = {
        mode: 'sampled', dtype: o2.dtype, sampling: o2.sampling, grad: o2.grad, negatives: o2.negatives,
        share: o2.share, deterministic: !!o2.deterministic,
        ...(o2 !== opts ? { negativesDtype: 'i64' as const } : {}), ...sourceOptions(o2),
      };
      tiles.push({ file, entry: out.entry, pass, options, schedule: ts, launch: { wide: t.wide, narrow: t.narrow },
        parameters: out.parameters });
      if (!readsNegatives(out.parameters)) return;
    }
  };
  // The fused kernels (mean / sum: an upstream scale known before the launch) take a scalar gradient; the
  // others a per-row one.
  const optsFor = (pass: Pass, det: boolean, base: Omit<CceOptions, 'grad'>): CceOptions =>
    ({ ...base, grad: pass === 'backward' || pass === 'forward' ? 'perRow' : 'scalar',
      ...(det ? { deterministic: true } : {}) });
  const perRowPasses = sweepPasses(() => true);
  const sharedPasses = sweepPasses((s) => s.shared);
  // dC by item (per-row negatives, mean / sum): the scan kernels once, counting and filling per kind of
  // negatives (no embeddings involved), the sweep per schedule and the reduction per D, for every dtype.
  const f32Opts = (sampling: CceOptions['sampling'], negatives: CceOptions['negatives']): CceOptions =>
    ({ mode: 'sampled', dtype: 'f32', sampling, negatives, grad: 'scalar' });
  const KINDS = [['uniform', 'tensor'], ['given', 'tensor'], ['uniform', 'philox']] as const;
  const kindOf = (sampling: string, negatives: string) => `${sampling}${negatives === 'philox' ? '_philox' : ''}`;
  for (const pass of ['scan_blocks', 'scan_add'] as const)
    cudaKernel(f32Opts('uniform', 'tensor'), COUNTER_SCHEDULE, pass, 'all');
  for (const [sampling, negatives] of KINDS)
    for (const [pass, packed] of [['count_pairs', false], ['fill_pairs', false], ['fill_pairs', true]] as const)
      cudaKernel(f32Opts(sampling, negatives), COUNTER_SCHEDULE, pass, kindOf(sampling, negatives), packed);
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
    for (const [sampling, negatives] of KINDS) {
      const kind = kindOf(sampling, negatives);
      const base = { mode: 'sampled', dtype, sampling, negatives } as const;
      for (const s of schedules.values())
        for (const [pass, det] of perRowPasses)
          cudaKernel(optsFor(pass, det, base), s, pass, `${kind}_${dtype}${det ? '_det' : ''}__${tag(s)}`);
      const reduces = new Map(dValues
        .flatMap((d) => [reduceSchedule(d), fitD({ ...reduceSchedule(d), vec: 1, dChunks: 1 }, d)])
        .map((x) => [tag(x), x]));
      for (const s of reduces.values())
        for (const packed of [false, true])
          cudaKernel(optsFor('dc_by_item', false, base), s, 'dc_by_item', `${kind}_${dtype}__${tag(s)}`, packed);
      // Shared negatives: SIMT kernels (any NVIDIA GPU) at the heuristic schedules, Triton tile kernels
      // (tensor cores; one file serves every D, BLOCK_D is a launch argument).
      for (const share of PACKAGE_SHARES) {
        const shareSchedules = new Map(dValues
          .map((d) => fitProblem(heuristicSchedule(d, dtype), d, CAPS.cuda, share))
          .map((x) => [tag(x), x]));
        const sbase = { ...base, share };
        const sfx = (det: boolean) => `${kind}_share${share}_${dtype}${det ? '_det' : ''}`;
        for (const s of shareSchedules.values())
          for (const [pass, det] of sharedPasses)
            cudaKernel(optsFor(pass, det, sbase), s, pass, `${sfx(det)}__${tag(s)}`);
        const t = TILE_LAUNCH[share]!;
        const ts: Schedule = { rows: share as Schedule['rows'], lanes: 1, vec: 1, dChunks: 16,
          samplesPerStep: t.cands, stages: t.wide[1] as Schedule['stages'] };
        for (const [pass, det] of sharedPasses)
          tileKernel(optsFor(pass, det, sbase), ts, pass as TileKernel['pass'], sfx(det));
      }
    }
    const tileAny: KernelAt = (x, s, pass, sfx) => tileKernel(x, s, pass as TileKernel['pass'], sfx);
    sourceKernels(dtype, dValues, schedules, cudaKernel, tileAny, optsFor, sweepPasses((s) => s.shared));
  }
  // Constants the package's dC-by-item driver shares with the kernels (runtime/byitem.ts is its TypeScript twin).
  const byItem = { segment: SEGMENT, scanWidth: SCAN_WIDTH, pairBytes: BY_ITEM_PAIR_BYTES, counters: COUNTERS };
  const steps = STEP_PASSES;
  const manifest = {
    generator: 'ccekit', version: CODEGEN_VERSION, target: 'torch', dValues, byItem, steps, kernels, tiles,
  };
  files.set('ccekit_torch/manifest.json', JSON.stringify(manifest, null, 1) + '\n');
  const entries = Object.fromEntries((o.tuning ?? []).map((e, i) => [String(i), e]));
  files.set('ccekit_torch/tuning.json', JSON.stringify({ schema: 'ccekit-tuning/1', entries }, null, 1) + '\n');
  // The planner's cost model and default coefficients, for ccekit_torch/plan.py (runtime/costmodel.ts).
  const plan = { ...packagedModel(), default_calibration: DEFAULT_CALIBRATION };
  files.set('ccekit_torch/plan_model.json', JSON.stringify(plan, null, 1) + '\n');
  const src = sourceDir();
  for (const f of readdirSync(`${src}/ccekit_torch`).filter((f) => f.endsWith('.py')).sort())
    files.set(`ccekit_torch/${f}`, readFileSync(`${src}/ccekit_torch/${f}`, 'utf8'));
  files.set('setup.py', readFileSync(`${src}/setup.py`, 'utf8'));
  return files;
}
