// Emitting a set of CCE- kernel variants for one target: sources plus a manifest the runtimes read
// (kernel names, parameters and bindings, schedule, dtypes, launch geometry).
import { type DeviceCaps, type ParamDoc, sharedBytes } from '../codegen/target.js';
import { CODEGEN_VERSION } from '../codegen/version.js';
import type { CceOptions } from '../dsl/cce.js';
import { type PassName, passKernel } from '../dsl/passes.js';
import { type Schedule, fitShare, warps } from '../codegen/schedule.js';
import { CAPS, EXT, type TargetName, compileKernel } from './registry.js';

export interface ManifestKernel {
  file: string;
  entry: string;
  /** The CCE- passes, and the kernels of dC by item (dsl/byitem.ts; the PyTorch package carries them). */
  pass: PassName;
  options: {
    mode: string;
    dtype: string;
    sampling: string;
    grad: string;
    negatives?: string;
    share?: number;
    inBatch?: string;
    inBatchSampling?: string;
    positions?: boolean;
    vocabShard?: boolean;
    deterministic?: boolean;
    transform?: string;
    correction?: string;
    packed?: boolean;
  };
  schedule: Schedule;
  launch: {
    rowsPerProgram: number;
    threadsPerProgram: number;
    warps: number;
    blockD: number;
    sharedBytes: number;
    maxD: number;
  };
  parameters: ParamDoc[];
}

export interface Manifest {
  generator: string;
  version: string;
  target: TargetName;
  device: string;
  kernels: ManifestKernel[];
}

/** The candidate-source options of a kernel (dsl/sources/), as manifests record them. */
export const sourceOptions = (o: CceOptions) => ({
  ...(o.inBatch ? { inBatch: o.inBatch, inBatchSampling: o.inBatchSampling ?? 'uniform' } : {}),
  ...(o.positions ? { positions: true } : {}),
  ...(o.vocabShard ? { vocabShard: true } : {}),
});

/** File-name tag of a variant: sampling (or full), dtype, upstream-gradient kind, deterministic dC. */
export function variantTag(o: CceOptions): string {
  const sampled = o.mode === 'sampled';
  return [
    o.mode === 'full' ? 'full' : o.sampling,
    sampled && o.negatives === 'philox' ? 'philox' : '',
    sampled && o.share ? `share${o.share}` : '',
    sampled && o.inBatch ? `inbatch${o.inBatch === 'group' ? 'group' : ''}${o.negatives === 'none' ? '' : 'mix'}` : '',
    sampled && o.inBatch && o.inBatchSampling === 'given' ? 'qbatch' : '',
    o.positions ? 'pos' : '',
    o.vocabShard ? 'vocab' : '',
    o.dtype,
    o.grad === 'perRow' ? 'rowgrad' : '',
    o.deterministic ? 'det' : '',
  ]
    .filter(Boolean)
    .join('_');
}

/**
 * The forward kernel ignores the upstream-gradient kind and the dC mode: variants that differ only there share
 * it.
 */
const forwardTag = (o: CceOptions) => variantTag({ ...o, grad: 'scalar', deterministic: undefined });

export function emitVariants(
  target: TargetName,
  variants: readonly CceOptions[],
  base: Schedule,
  caps: DeviceCaps = CAPS[target],
): { files: Map<string, string>; manifest: Manifest } {
  const files = new Map<string, string>();
  const kernels: ManifestKernel[] = [];
  for (const o of variants) {
    const schedule = o.mode === 'sampled' && (o.share || o.negatives === 'none')
      ? fitShare(base, o.share ?? base.rows, caps)
      : base;
    // The fused kernels serve scalar upstream gradients (mean / sum); fused_de (forward + dE, no dC) does not
    // depend on the dC mode, so the float-atomic variant carries it.
    // A vocabulary shard's statistics merge between its forward and backward: no fused kernels.
    const passes =
      o.grad === 'perRow' || o.vocabShard
        ? (['forward', 'backward'] as const)
        : o.deterministic
          ? (['forward', 'backward', 'fused'] as const)
          : (['forward', 'backward', 'fused', 'fused_de'] as const);
    // A forward kernel that a scalar-gradient, float-atomic variant of the same forward tag already emits.
    const forwardShared =
      (o.grad === 'perRow' || o.deterministic) &&
      variants.some((v) => v !== o && v.grad === 'scalar' && !v.deterministic && forwardTag(v) === forwardTag(o));
    for (const pass of passes) {
      if (pass === 'forward' && forwardShared) continue;
      const k = passKernel(pass, o);
      const out = compileKernel(k, schedule, target, caps);
      const file = `${k.name}__${pass === 'forward' ? forwardTag(o) : variantTag(o)}.${EXT[target]}`;
      files.set(file, out.source);
      kernels.push({
        file,
        entry: out.entry,
        pass,
        options: {
          mode: o.mode,
          dtype: o.dtype,
          sampling: o.sampling,
          grad: o.grad,
          negatives: o.mode === 'sampled' ? (o.negatives ?? 'tensor') : undefined,
          share: o.mode === 'sampled' ? o.share : undefined,
          ...sourceOptions(o),
          ...(o.deterministic ? { deterministic: true } : {}),
          transform: o.transform?.origin,
          correction: o.correction?.origin,
        },
        schedule,
        launch: {
          rowsPerProgram: schedule.rows,
          threadsPerProgram: out.lowered.invocations,
          warps: warps(schedule),
          blockD: out.lowered.blockD,
          sharedBytes: sharedBytes(out.lowered, caps),
          maxD: out.lowered.blockD,
        },
        parameters: out.parameters,
      });
    }
  }
  return { files, manifest: { generator: 'ccekit', version: CODEGEN_VERSION, target, device: caps.name, kernels } };
}

/** Rows per group of the shared-negative variants emitted by default. */
export const DEFAULT_SHARE = 64;

/** The candidate-source variants beyond the drawn ones: in-batch, mixed, positions (dsl/sources/). */
export const SOURCE_KINDS: readonly Partial<CceOptions>[] = [
  { negatives: 'none', inBatch: 'batch' },
  { negatives: 'none', inBatch: 'group', inBatchSampling: 'given', share: DEFAULT_SHARE },
  { negatives: 'philox', inBatch: 'batch', share: DEFAULT_SHARE },
  { negatives: 'tensor', positions: true },
  { negatives: 'tensor', vocabShard: true },
  { negatives: 'philox', vocabShard: true },
];

/**
 * Every variant of one dtype: sampled (uniform, given q; index tensor or in-kernel draws; per row or shared by
 * a row tile; in-batch, mixed, positions) and full CE, scalar and per-row upstream gradients; each with
 * float-atomic and deterministic dC.
 */
export function allVariants(dtype: CceOptions['dtype'], extra: Partial<CceOptions> = {}): CceOptions[] {
  const out: CceOptions[] = [];
  const kinds = [
    ['sampled', 'uniform', 'tensor', 0],
    ['sampled', 'given', 'tensor', 0],
    ['sampled', 'uniform', 'philox', 0],
    ['sampled', 'given', 'philox', 0],
    ['sampled', 'uniform', 'tensor', DEFAULT_SHARE],
    ['sampled', 'uniform', 'philox', DEFAULT_SHARE],
    ['sampled', 'given', 'philox', DEFAULT_SHARE],
    ['full', 'uniform', 'tensor', 0],
  ] as const;
  for (const deterministic of [false, true])
    for (const [mode, sampling, negatives, share] of kinds)
      for (const grad of ['scalar', 'perRow'] as const) {
        const o: CceOptions = { mode, sampling, negatives, grad, dtype };
        out.push({ ...o, ...(share ? { share } : {}), ...(deterministic ? { deterministic } : {}), ...extra });
      }
  for (const kind of SOURCE_KINDS)
    for (const grad of ['scalar', 'perRow'] as const)
      out.push({ mode: 'sampled', sampling: 'uniform', grad, dtype, ...kind, ...extra });
  return out;
}
