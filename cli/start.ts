// `ccekit start`: the main job on the best device available.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_SCHEDULE } from '../codegen/schedule.js';
import { type Device } from '../runtime/devices.js';
import { WEBGPU_SCHEDULE } from '../runtime/defaults.js';
import { type GenOptions, randomProblem } from '../runtime/random.js';
import { type FlagTable, parseFlags, table, usage, oneLine } from './args.js';
import { checkOutDir } from '../runtime/fsout.js';
import {
  CliError, DTYPES, type RunDevice, TARGETS, compare, defaultTol, fmtErr, fmtMs, fmtVal, openRunDevice, out, passes,
} from './common.js';

const START_FLAGS = {
  out: { kind: 'str', metavar: 'DIR', default: 'out', help: 'where the kernels of every target go (DIR/<target>/)' },
} as const satisfies FlagTable;

export const START_HELP = usage(
  'ccekit start [--out DIR]',
  'The main job on the best device available: run CCE- on a few problems for every dtype and check it\n' +
    'against the float64 reference, then emit all variants for WGSL, CUDA and Triton into DIR/<target>/.',
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
  'sampled popularity: N=513 V=4099 K=127 D=64, Zipf-like q, 2% of negatives collide with the target, ' +
    '5% of rows ignored',
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
  // This file under tsx, or the bundle (one file): the program's entry is main.ts beside it, or the bundle itself.
  const here = fileURLToPath(import.meta.url);
  const self = here.endsWith('.ts') ? join(dirname(here), 'main.ts') : here;
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

export async function cmdStart(argv: string[]): Promise<number> {
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
  out(
    ok ? 'all errors relative to the float64 reference are within tolerance' : 'FAIL: some errors are above tolerance',
  );
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
