// Every emitted kernel goes through a real toolchain: CUDA through nvcc/ptxas for sm_90a (no register
// spills at the default schedule) and NVRTC for compute_90, Triton through python3's byte compiler, WGSL
// through Dawn's validator (shader module and compute pipeline) with its bindings checked against the
// manifest. Each toolchain has a negative control, so a checker that accepts anything fails here.
// Each distinct kernel compiles once per compiler: many kernels a compiler run (nvcc bundles, NVRTC programs),
// several runs at once, and the answers kept between runs (toolchains.ts cachedCompile; CCEKIT_COMPILE_CACHE=0
// compiles everything). A missing nvcc / NVRTC / python3 skips its tests, except under CI, where it fails them.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allVariants, emitVariants, type ManifestKernel } from '../targets/variants.js';
import type { FloatDType } from '../dsl/cce.js';
import { DEFAULT_SCHEDULE, type Schedule, invocations } from '../codegen/schedule.js';
import { NvrtcError } from '../runtime/cuda/nvrtc.js';
import { closeWebgpu, validateWgsl } from '../runtime/webgpu/validate.js';
import { CAPS, type TargetName } from '../targets/registry.js';
import {
  type CudaBundleResult,
  type CudaUnit,
  type NvrtcUnitResult,
  bundledName,
  compileCache,
  compileCudaBundle,
  compileNvrtcBundles,
  errorsOf,
  findNvcc,
  findPtxas,
  findNvrtc,
  findPython,
  makeTempDir,
  must,
  parallel,
  pyCompileAll,
  needs,
  wgslBindingMismatches,
  writeFiles,
} from './support/toolchains.js';

const SCHEDULES: Record<string, Schedule> = {
  default: DEFAULT_SCHEDULE,
  // one row per program, two warps per row (cross-warp reduction through shared memory), wide gathers
  r1l64: { rows: 1, lanes: 64, vec: 2, dChunks: 2, samplesPerStep: 8, stages: 3 },
  // eight rows of four lanes in one warp, vec4 elements, narrow gathers; BLOCK_D 128 (dChunks 16 would
  // need ~344 registers a thread for the backward's five vectors, which the CUDA caps check rejects)
  r8l4: { rows: 8, lanes: 4, vec: 4, dChunks: 8, samplesPerStep: 2, stages: 1 },
};
const DTYPES: readonly FloatDType[] = ['f32', 'f16', 'bf16'];

interface Case {
  /** `<schedule>/<file>`: unique over all cases of a target. */
  id: string;
  schedule: string;
  dtype: FloatDType;
  file: string;
  source: string;
  kernel: ManifestKernel;
}

/** Emission failures, `<target> <schedule> <dtype>: message`; a test below asserts there are none. */
const emitErrors: string[] = [];

/** Every case of a target, emitted once per file (the CUDA cases feed both nvcc and NVRTC). */
const emitted = new Map<TargetName, Case[]>();
function emitAll(target: TargetName): Case[] {
  if (!emitted.has(target)) emitted.set(target, emitCases(target));
  return emitted.get(target)!;
}

function emitCases(target: TargetName): Case[] {
  const out: Case[] = [];
  for (const [schedule, s] of Object.entries(SCHEDULES))
    for (const dtype of DTYPES) {
      try {
        const { files, manifest } = emitVariants(target, allVariants(dtype), s);
        for (const kernel of manifest.kernels)
          out.push({ id: `${schedule}/${kernel.file}`, schedule, dtype, file: kernel.file, source: files.get(kernel.file)!, kernel });
      } catch (e) {
        emitErrors.push(`${target} ${schedule} ${dtype}: ${(e as Error).message}`);
      }
    }
  return out;
}

/** A compile phase's limit: minutes of nvcc / NVRTC work spread over the cores, on a busy machine too. */
const COMPILE_TIMEOUT = 900_000;
const BROKEN_CUDA = 'extern "C" __global__ void broken(float* out) { out[threadIdx.x] = undeclared_identifier; }\n';
const timings: string[] = [];
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
afterAll(() => {
  const { kept, compiled } = compileCache;
  if (kept) timings.push(`${kept} of ${kept + compiled} compiler answers from node_modules/.cache/ccekit-compile`);
  if (timings.length) console.info(`[emit-compile] ${timings.join('; ')}`);
});

describe('schedules under test', () => {
  it('every variant emits for every target at every schedule', () => {
    expect(emitErrors).toEqual([]);
  });

  it.each(Object.entries(SCHEDULES))('%s fits the CUDA caps (whole warps, ≤ maxInvocations)', (_, s) => {
    expect(invocations(s) % CAPS.cuda.warpSize!).toBe(0);
    expect(invocations(s)).toBeLessThanOrEqual(CAPS.cuda.maxInvocations);
    expect(invocations(s)).toBeLessThanOrEqual(CAPS.wgsl.maxInvocations);
  });
});

/** The CUDA cases by bundle (one a schedule and dtype: file names are unique there), each source once. */
function cudaBundles(cases: readonly Case[]): Map<string, CudaUnit[]> {
  const groups = new Map<string, CudaUnit[]>();
  const seen = new Set<string>();
  for (const c of cases) {
    if (seen.has(c.source)) continue;
    seen.add(c.source);
    const g = groups.get(groupOf(c)) ?? [];
    g.push({ file: c.file, entry: c.kernel.entry, source: c.source });
    groups.set(groupOf(c), g);
  }
  return groups;
}
const groupOf = (c: { schedule: string; dtype: string }) => `${c.schedule}_${c.dtype}`;
/** The case that compiled a source (the first with that text): where the results of a repeated source are. */
function firstBySource(cases: readonly Case[]): (c: Case) => Case {
  const first = new Map<string, Case>();
  for (const c of cases) if (!first.has(c.source)) first.set(c.source, c);
  return (c) => first.get(c.source)!;
}

// nvcc builds the default schedule's kernels (the runtime's toolkit: registers and spills are checked there);
// every kernel, at every schedule, is compiled by NVRTC and its PTX assembled for sm_90a by ptxas below.
describe('CUDA: nvcc -cubin sm_90a, ptxas -v (default schedule)', () => {
  const nvcc = findNvcc();
  const cases = emitAll('cuda').filter((c) => c.schedule === 'default');
  const compiledAs = firstBySource(cases);
  const results = new Map<string, CudaBundleResult>();
  let broken: CudaBundleResult;
  let forcedSpill: CudaBundleResult;
  const spillUnit = cases.find((c) => c.schedule === 'default' && c.dtype === 'f32' && c.kernel.pass === 'backward')!;
  // The same kernel asked to fit 16 blocks per SM: 65536 / (threads · 16) registers a thread, so it spills.
  // (-maxrregcount does not apply to a kernel with __launch_bounds__.)
  const starved = spillUnit?.source.replace(/__launch_bounds__\((\d+)\)/, '__launch_bounds__($1, 16)');

  describe('', () => {
    const missing = needs('nvcc', !!nvcc);
    let tmp: ReturnType<typeof makeTempDir>;
    beforeAll(async () => {
      if (missing) return;
      const tool = must('nvcc', nvcc);
      tmp = makeTempDir('nvcc');
      const groups = cudaBundles(cases);
      const units = [...groups.values()].reduce((a, g) => a + g.length, 0);
      const t0 = performance.now();
      // One bundle per (schedule, dtype) plus the two controls, as many nvcc processes at once as cores.
      const jobs: (() => Promise<void>)[] = [
        ...[...groups].map(([key, g]) => async () => {
          results.set(key, await compileCudaBundle(tool, join(tmp.dir, key), g));
        }),
        async () => {
          const unit = { file: 'broken.cu', entry: 'broken', source: BROKEN_CUDA };
          broken = await compileCudaBundle(tool, join(tmp.dir, 'broken'), [unit]);
        },
        async () => {
          const unit = { file: spillUnit.file, entry: spillUnit.kernel.entry, source: starved };
          forcedSpill = await compileCudaBundle(tool, join(tmp.dir, 'spill'), [unit]);
        },
      ];
      await parallel(jobs);
      const cpu = [...results.values()].reduce((a, r) => a + r.ms, 0);
      const wall = seconds(performance.now() - t0);
      const what = `${units} distinct kernels of ${cases.length} in ${results.size} bundles`;
      timings.push(`nvcc: ${what}, ${wall} wall (${seconds(cpu)} summed)`);
    }, COMPILE_TIMEOUT);
    afterAll(() => tmp?.remove());

    it.each(cases)('$id compiles for sm_90a', (c0) => {
      const c = compiledAs(c0);
      const r = results.get(groupOf(c))!;
      expect(errorsOf(r.diagnostics.get(c.file)), `nvcc errors in ${c.file}`).toEqual([]);
      const k = r.kernels.get(bundledName(c.file));
      expect(k, `ptxas reported no entry for ${c.file} (nvcc exit ${r.code}):\n${r.output.slice(-4000)}`).toBeDefined();
      expect(k!.arch).toBe('sm_90a');
    });

    it.each(cases)('$id does not spill at the default schedule', (c0) => {
      const c = compiledAs(c0);
      const k = results.get(groupOf(c))!.kernels.get(bundledName(c.file));
      expect(k, `ptxas reported no entry for ${c.file}`).toBeDefined();
      expect({ kernel: k!.name, spillStores: k!.spillStores, spillLoads: k!.spillLoads }).toEqual({ kernel: bundledName(c.file), spillStores: 0, spillLoads: 0 });
    });

    it('negative control: an undeclared identifier is a compile error', () => {
      expect(broken.code).not.toBe(0);
      const errors = errorsOf(broken.diagnostics.get('broken.cu'));
      expect(errors.length).toBeGreaterThan(0);
      expect(errors.join('\n')).toMatch(/undeclared_identifier/);
    });

    it('negative control: a kernel starved of registers makes ptxas report spills', () => {
      expect(starved, 'the emitted kernel has no __launch_bounds__(threads) to tighten').not.toBe(spillUnit.source);
      const k = forcedSpill.kernels.get(bundledName(spillUnit.file));
      expect(k).toBeDefined();
      expect(k!.spillStores + k!.spillLoads).toBeGreaterThan(0);
    });
  });
});

describe('CUDA: NVRTC compute_90, its PTX through ptxas for sm_90a', () => {
  const nvrtc = findNvrtc();
  const ptxas = findPtxas();
  const cases = emitAll('cuda');
  const compiledAs = firstBySource(cases);
  const OPTIONS = ['--gpu-architecture=compute_90'];
  let results = new Map<string, Map<string, NvrtcUnitResult>>();

  describe('', () => {
    const missing = needs('NVRTC (libnvrtc)', !!nvrtc) || needs('ptxas (beside nvcc)', !!ptxas);
    let tmp: ReturnType<typeof makeTempDir>;
    beforeAll(async () => {
      if (missing) return;
      const lib = must('NVRTC (libnvrtc)', nvrtc);
      const assembler = must('ptxas (beside nvcc)', ptxas);
      tmp = makeTempDir('nvrtc');
      const groups = cudaBundles(cases);
      const t0 = performance.now();
      // One program per (schedule, dtype), as many NVRTC processes at once as cores; a program that fails is
      // compiled again one kernel at a time, so each case below reports its own error.
      results = await compileNvrtcBundles(tmp.dir, groups, OPTIONS, undefined, assembler);
      const units = [...groups.values()].reduce((a, g) => a + g.length, 0);
      const wall = seconds(performance.now() - t0);
      timings.push(`NVRTC ${lib.version.join('.')}: ${units} distinct kernels in ${groups.size} programs, ${wall}`);
    }, COMPILE_TIMEOUT);
    afterAll(() => tmp?.remove());

    it.each(cases)('$id compiles to PTX', (c0) => {
      const c = compiledAs(c0);
      const r = results.get(groupOf(c))?.get(c.file);
      expect(r?.error, `NVRTC error in ${c.file}`).toBeUndefined();
      expect(r?.ptx).toMatch(new RegExp(`\\.visible \\.entry ${bundledName(c.file)}\\(`));
    });

    it.each(cases)('$id assembles for sm_90a (ptxas on NVRTC\'s PTX)', (c0) => {
      const c = compiledAs(c0);
      const r = results.get(groupOf(c))?.get(c.file);
      expect(r?.ptx, `NVRTC error in ${c.file}`).toBeDefined();
      const ok = r as NvrtcUnitResult & { ptx: string };
      expect(ok.ptxasErrors, `ptxas errors in the program of ${c.file}`).toBeUndefined();
      expect(ok.sm90a, `ptxas reported no entry for ${c.file}`).toBeDefined();
      expect(ok.sm90a!.arch).toBe('sm_90a');
    });

    it('negative control: an undeclared identifier is an NvrtcError with the log', () => {
      let error: unknown;
      try {
        must('NVRTC', nvrtc).compile(BROKEN_CUDA, 'broken.cu', OPTIONS);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(NvrtcError);
      const e = error as NvrtcError;
      expect([e.call, e.errorName]).toEqual(['nvrtcCompileProgram', 'NVRTC_ERROR_COMPILATION']);
      expect(e.log).toMatch(/undeclared_identifier/);
    });

    it('negative control: PTX that ptxas refuses (too much shared memory for sm_90a) is reported', async () => {
      // NVRTC emits this PTX; only the assembler knows the 227 KiB limit of a block's shared memory.
      const source = 'extern "C" __global__ void big(float* o) {\n  __shared__ float s[100000];\n' +
        '  s[threadIdx.x] = 1.0f;\n  __syncthreads();\n  o[threadIdx.x] = s[255 - threadIdx.x];\n}\n';
      const unit = { file: 'big.cu', entry: 'big', source };
      const r = await compileNvrtcBundles(join(tmp.dir, 'big'), new Map([['big', [unit]]]), OPTIONS, 1, ptxas!);
      const u = r.get('big')!.get('big.cu')!;
      expect(u.ptx).toMatch(/\.visible \.entry big\(/);
      expect((u as { ptxasErrors?: string }).ptxasErrors).toMatch(/shared/i);
    });

    it('negative control: an unknown option is an NvrtcError', () => {
      expect(() => must('NVRTC', nvrtc).compile('', 'empty.cu', ['--no-such-option'])).toThrow(NvrtcError);
    });
  });
});

describe('Triton: python3 py_compile', () => {
  const python = findPython();
  const cases = emitAll('triton');
  const path = (c: Case) => `${c.schedule}_${c.dtype}/${c.file}`;
  let errors = new Map<string, string>();
  let brokenPath = '';

  describe('', () => {
    const missing = needs('python3', !!python);
    let tmp: ReturnType<typeof makeTempDir>;
    beforeAll(async () => {
      if (missing) return;
      const py = must('python3', python);
      tmp = makeTempDir('triton');
      const paths = cases.map((c) => writeFiles(tmp.dir, new Map([[path(c), c.source]]))[0]!);
      brokenPath = writeFiles(tmp.dir, new Map([['broken.py', 'def broken(x:\n    return x\n']]))[0]!;
      const r = await pyCompileAll(py, [...paths, brokenPath]);
      errors = new Map([...r.errors].map(([p, m]) => [p.slice(tmp.dir.length + 1), m]));
      timings.push(`py_compile: ${cases.length} files, ${seconds(r.ms)}`);
    });
    afterAll(() => tmp?.remove());

    it.each(cases)('$id byte-compiles', (c) => {
      expect(errors.get(path(c))).toBeUndefined();
      expect(c.source).toContain(`def ${c.kernel.entry}(`);
    });

    it('negative control: a syntax error is reported', () => {
      expect(errors.get('broken.py')).toMatch(/SyntaxError|invalid syntax|never closed/);
    });
  });
});

describe('WGSL: Dawn validation and bindings', () => {
  const cases = emitAll('wgsl');
  let ms = 0;
  afterAll(async () => {
    await closeWebgpu();
    if (ms) timings.push(`Dawn: ${cases.length} kernels, ${seconds(ms)}`);
  });

  it.each(cases)('$id validates (shader module and compute pipeline)', async (c) => {
    const t0 = performance.now();
    const messages = await validateWgsl(c.source);
    ms += performance.now() - t0;
    expect(messages.filter((m) => m.type === 'error')).toEqual([]);
    // Only kernels over the null device's 8 storage buffers skip pipeline creation, and none above CAPS.wgsl.
    if (messages.some((m) => m.type === 'info')) expect(c.kernel.parameters.filter((p) => p.kind === 'tensor').length).toBeGreaterThan(8);
    expect(c.kernel.parameters.filter((p) => p.kind === 'tensor').length).toBeLessThanOrEqual(10);
  });

  it.each(cases)('$id declares the manifest bindings (group 0, params uniform)', (c) => {
    expect(wgslBindingMismatches(c.source, c.kernel.parameters)).toEqual([]);
  });

  it('negative control: a type error is reported with its line', async () => {
    const messages = await validateWgsl('@compute @workgroup_size(1)\nfn main() {\n  let x: i32 = 1.0;\n}\n');
    expect(messages.filter((m) => m.type === 'error')).toEqual([expect.objectContaining({ type: 'error', line: 3 })]);
  });

  it('negative control: a pipeline error (workgroup too large) is reported', async () => {
    const messages = await validateWgsl('@compute @workgroup_size(4096)\nfn main() {}\n');
    expect(messages.map((m) => m.type)).toContain('error');
  });

  it('negative control: swapped manifest bindings are reported', () => {
    const c = cases[0]!;
    const params = c.kernel.parameters.map((p) => ({ ...p }));
    const [a, b] = params.filter((p) => p.kind === 'tensor');
    [a!.binding, b!.binding] = [b!.binding, a!.binding];
    expect(wgslBindingMismatches(c.source, params).length).toBeGreaterThan(0);
  });
});
