// `ccekit emit --target torch`: an importable Python package around the emitted CUDA C++ kernels.
// Kernels are specialised by schedule (not by shapes), so the package carries, per dtype and sampling mode,
// the schedules that cover the hidden sizes asked for (heuristic defaults, a vec=1 fallback for sizes the
// vector width does not divide, and the tuned schedules of the chosen device), each as forward + backward.
import Handlebars from 'handlebars';
import { CODEGEN_VERSION, compileKernel } from '../../codegen/compile.js';
import { sharedBytes } from '../../codegen/lower.js';
import { type CceOptions, cceBackward, cceForward, cceFused } from '../../dsl/cce.js';
import { CAPS, type Schedule, fitD, heuristicSchedule, warps } from '../../dsl/schedule.js';
import type { ManifestKernel } from '../../codegen/package.js';
import type { TuneEntry } from '../../runtime/autotune/db.js';
import { CUDA_PY, INIT_PY, LOSS_PY, REFERENCE_PY, SETUP_PY } from './python.js';

export interface TorchPackageOptions {
  /** Hidden sizes to cover (each rounded up to a power of two); default 32..1024. */
  dValues?: number[];
  dtypes?: ('f32' | 'f16' | 'bf16')[];
  /** Tuning DB entries to ship (the chosen device's); their schedules are emitted too. */
  tuning?: TuneEntry[];
}

const pow2 = (d: number) => 2 ** Math.ceil(Math.log2(Math.max(1, d)));
const tag = (s: Schedule) => `r${s.rows}l${s.lanes}v${s.vec}c${s.dChunks}s${s.samplesPerStep}`;

/** Files of the package, relative to the output directory. */
export function emitTorchPackage(o: TorchPackageOptions = {}): Map<string, string> {
  const files = new Map<string, string>();
  const dValues = [...new Set((o.dValues ?? [32, 64, 128, 256, 512, 1024]).map(pow2))].sort((a, b) => a - b);
  const kernels: ManifestKernel[] = [];
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
    for (const [sampling, negatives] of [['uniform', 'tensor'], ['given', 'tensor'], ['uniform', 'philox']] as const)
      for (const s of schedules.values())
        for (const pass of ['forward', 'backward', 'fused'] as const) {
          // The fused kernel (mean / sum: gradients for a unit upstream scale, computed with the loss).
          const opts: CceOptions = { mode: 'sampled', dtype, sampling, grad: pass === 'fused' ? 'scalar' : 'perRow', negatives };
          const k = pass === 'forward' ? cceForward(opts, s) : pass === 'backward' ? cceBackward(opts, s) : cceFused(opts, s);
          const out = compileKernel(k, s, 'cuda', CAPS.cuda);
          const file = `${k.name}__${sampling}${negatives === 'philox' ? '_philox' : ''}_${dtype}__${tag(s)}.cu`;
          files.set(`ccekit_torch/kernels/${file}`, out.source);
          kernels.push({
            file,
            entry: out.entry,
            pass,
            options: { mode: 'sampled', dtype, sampling, grad: opts.grad, negatives },
            schedule: s,
            launch: { rowsPerProgram: s.rows, threadsPerProgram: out.lowered.invocations, warps: warps(s), blockD: out.lowered.blockD, sharedBytes: sharedBytes(out.lowered, CAPS.cuda), maxD: out.lowered.blockD },
            parameters: out.parameters,
          });
        }
  }
  const manifest = { generator: 'ccekit', version: CODEGEN_VERSION, target: 'torch', kernels };
  const fill = (t: string) => Handlebars.compile(t, { noEscape: true })({ version: CODEGEN_VERSION });
  files.set('ccekit_torch/manifest.json', JSON.stringify(manifest, null, 1) + '\n');
  files.set('ccekit_torch/tuning.json', JSON.stringify({ schema: 'ccekit-tuning/1', entries: Object.fromEntries((o.tuning ?? []).map((e, i) => [String(i), e])) }, null, 1) + '\n');
  files.set('ccekit_torch/__init__.py', fill(INIT_PY));
  files.set('ccekit_torch/loss.py', LOSS_PY);
  files.set('ccekit_torch/_reference.py', REFERENCE_PY);
  files.set('ccekit_torch/_cuda.py', CUDA_PY);
  files.set('setup.py', fill(SETUP_PY));
  return files;
}
