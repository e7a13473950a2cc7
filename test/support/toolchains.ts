// Test helpers that run real toolchains over emitted sources: nvcc/ptxas (CUDA), python3's py_compile
// (Triton), wgsl_reflect (WGSL bindings). Each returns plain data the tests assert on; none throws on a
// compile error of the input (only when the tool itself cannot run). Also where each toolchain is found,
// and the one rule for a missing one: skipped with its reason here, a failure under CI.
import { execFile, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { availableParallelism, homedir, tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeEach, expect } from 'vitest';
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import { loadNvrtc, type Nvrtc } from '../../runtime/cuda/nvrtc.js';
import { acquireWebgpu, type WebgpuContext } from '../../runtime/webgpu/device.js';
import type { NvrtcJob, NvrtcProgramResult } from './nvrtc-programs.js';
import { SETUP_COMMAND, SKIP_DIR_ENV } from './skip-env.js';
import type { Schedule } from '../../codegen/schedule.js';
import type { ParamDoc } from '../../codegen/target.js';

// ---------------------------------------------------------------------------------------------------------
// Processes and temp dirs

export interface RunResult {
  code: number;
  output: string;
  ms: number;
}

/** Run a program to completion; stdout and stderr are returned together (ptxas -v writes to stderr). */
export function runTool(file: string, args: readonly string[], cwd?: string): Promise<RunResult> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, maxBuffer: 64 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      const ms = performance.now() - t0;
      if (err && typeof (err as NodeJS.ErrnoException).code === 'string') return reject(err); // ENOENT, EACCES: the tool did not run
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, output: `${stdout}${stderr}`, ms });
    });
  });
}

/** Run `jobs` with at most `limit` in flight; results in the order of `jobs`. */
export async function parallel<T>(jobs: readonly (() => Promise<T>)[], limit = availableParallelism()): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, jobs.length)) }, worker));
  return out;
}

export function makeTempDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), `ccekit-${prefix}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Write `files` (name → text) into `dir`; returns their paths in insertion order. */
export function writeFiles(dir: string, files: ReadonlyMap<string, string>): string[] {
  return [...files].map(([name, text]) => {
    const path = join(dir, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
    return path;
  });
}

/** An executable on PATH, or null. */
export function which(program: string, extraDirs: readonly (string | undefined)[] = []): string | null {
  const dirs = [...extraDirs.filter((d): d is string => !!d), ...(process.env.PATH ?? '').split(delimiter)];
  for (const d of dirs) {
    const p = join(d, program);
    if (d && existsSync(p)) return p;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------
// Missing toolchains: a skip with its reason (a failure under CI), counted by test/support/skip-summary.ts

export { SETUP_COMMAND };

/**
 * What the tests look for, by the names CCEKIT_TOOLCHAINS_HIDE takes (a comma list, or `all`): a hidden tool
 * is reported missing, to see what a fresh machine runs and says (`CCEKIT_TOOLCHAINS_HIDE=all npm test`).
 */
export type Toolchain = 'nvcc' | 'nvrtc' | 'python3' | 'torch' | 'webgpu' | 'data';
const TOOLCHAINS: readonly Toolchain[] = ['nvcc', 'nvrtc', 'python3', 'torch', 'webgpu', 'data'];

export function hidden(tool: Toolchain): boolean {
  const list = (process.env.CCEKIT_TOOLCHAINS_HIDE ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = list.filter((s) => s !== 'all' && !TOOLCHAINS.includes(s as Toolchain));
  if (unknown.length)
    throw new Error(`CCEKIT_TOOLCHAINS_HIDE: unknown ${unknown.join(', ')} (known: all, ${TOOLCHAINS.join(', ')})`);
  return list.includes('all') || list.includes(tool);
}

/** Note a skip reason for the current test file, for the summary line at the end of the run. */
function recordSkip(what: string): void {
  const dir = process.env[SKIP_DIR_ENV];
  if (!dir || !existsSync(dir)) return;
  let file = '';
  try {
    file = expect.getState().testPath ?? '';
  } catch {
    // outside a test file
  }
  appendFileSync(join(dir, `${process.pid}.jsonl`), `${JSON.stringify({ file, what })}\n`);
}

/** The message of a test that needs `what` where it is missing under CI. */
export const missingUnderCi = (what: string): string =>
  `${what} not found, and CI is set: tests that need it fail instead of skipping (install: ${SETUP_COMMAND})`;

/**
 * A missing toolchain fails under CI (it is part of the test environment there) and skips elsewhere.
 * Returns true when the tests that need it should be skipped, after saying why (the reason is counted in the
 * run's last line). Under CI it returns false: the tests run, and `must` fails them with one clear message.
 */
export function skipMissing(what: string, found: boolean): boolean {
  if (found) return false;
  if (process.env.CI) return false;
  recordSkip(what);
  console.warn(`[skip] ${what} not found: its tests are skipped (they fail when CI is set)`);
  return true;
}

/** `value`, or one clear error naming what is missing (the CI case of skipMissing). */
export function must<T>(what: string, value: T | null | undefined): T {
  if (value === null || value === undefined || value === false) throw new Error(missingUnderCi(what));
  return value;
}

/**
 * Skip the running test for a missing `what` (t.skip with the reason, which the summary counts), or fail it
 * with one clear message under CI. Returns true when skipped: `if (skipTest(t, 'nvcc', !!nvcc)) return;`.
 */
export function skipTest(t: { skip: (note?: string) => void }, what: string, found: boolean): boolean {
  if (found) return false;
  if (process.env.CI) throw new Error(missingUnderCi(what));
  t.skip(`${what} not found`);
  return true;
}

/**
 * For the tests of the enclosing describe (or file) that need `what`: where it is missing, each is skipped with
 * the reason (counted in the run's last line), or under CI failed with one clear message, before it starts.
 * Returns true when missing, so that a beforeAll that would use it can return at once.
 */
export function needs(what: string, found: boolean): boolean {
  if (found) return false;
  if (!process.env.CI) console.warn(`[skip] ${what} not found: its tests are skipped (they fail when CI is set)`);
  beforeEach((t) => void skipTest(t, what, false));
  return true;
}

/** The WebGPU adapter's description in the skip line: what a fresh machine lacks. */
export const WEBGPU_ADAPTER = 'a WebGPU adapter (Vulkan: lavapipe or a GPU driver)';

/** What the torch tests need, in the skip line. */
export const TORCH_PYTHON = 'python3 with torch (python3-torch)';

/**
 * A WebGPU device for the tests of a describe (call in beforeAll): null where Dawn finds no adapter (or it is
 * hidden); under CI that throws one clear message instead. The tests then skip with
 * `skipTest(t, WEBGPU_ADAPTER, !!ctx)`.
 */
export async function testWebgpu(): Promise<WebgpuContext | null> {
  const ctx = hidden('webgpu') ? null : await acquireWebgpu();
  if (!ctx) {
    if (process.env.CI) throw new Error(missingUnderCi(WEBGPU_ADAPTER));
    console.warn(`[skip] ${WEBGPU_ADAPTER} not found: its tests are skipped (they fail when CI is set)`);
  }
  return ctx;
}

/**
 * A schedule lavapipe compiles several times faster than the WebGPU defaults (one element a lane, no unrolled
 * vector chunks; fitted to D by the runtime): feature tests on WebGPU run one case at the runtime's default
 * schedules and the others at this one (webgpu.test.ts covers the defaults themselves).
 */
export const QUICK_WGSL_SCHEDULE: Schedule = { rows: 4, lanes: 16, vec: 1, dChunks: 1, samplesPerStep: 2, stages: 1 };

// ---------------------------------------------------------------------------------------------------------
// Compiler answers kept between runs: the same input, compiler and flags get the same answer

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Beside the tuning DB ($CCEKIT_CACHE or ~/.cache/ccekit), so that a fresh clone and `npm ci` keep it. */
const COMPILE_CACHE = join(process.env.CCEKIT_CACHE ?? join(homedir(), '.cache', 'ccekit'), 'compile');

/** A compiler's identity for cache keys: its resolved path, size, mtime and `--version` output. */
const identities = new Map<string, string>();
function toolIdentity(tool: string): string {
  if (!identities.has(tool)) {
    const real = realpathSync(tool);
    const st = statSync(real);
    const version = spawnSync(tool, ['--version'], { encoding: 'utf8' }).stdout ?? '';
    identities.set(tool, `${real} ${st.size} ${st.mtimeMs} ${version}`);
  }
  return identities.get(tool)!;
}

/** Compiler runs in this process: answers read from the cache, and compiles. */
export const compileCache = { kept: 0, compiled: 0 };

/**
 * `compile()`'s answer, kept on disk (COMPILE_CACHE) under a hash of `key`, which holds
 * the compiler's identity, its flags and the whole input: a later run with the same key reads the answer
 * instead of compiling again, and a changed kernel is a new key, so each distinct kernel is compiled once per
 * compiler. A failure of the tool itself throws and is not kept. CCEKIT_COMPILE_CACHE=0 compiles everything,
 * as on a fresh machine.
 */
async function cachedCompile<T>(key: readonly string[], compile: () => Promise<T>): Promise<T> {
  if (process.env.CCEKIT_COMPILE_CACHE === '0') return (compileCache.compiled++, compile());
  const hash = createHash('sha256');
  for (const k of key) hash.update(`${k.length}:${k}`);
  const path = join(COMPILE_CACHE, `${hash.digest('hex')}.json`);
  if (existsSync(path)) {
    try {
      const answer = JSON.parse(readFileSync(path, 'utf8')) as T;
      compileCache.kept++;
      return answer;
    } catch {
      // a torn or foreign file: compile again and replace it
    }
  }
  const answer = await compile();
  compileCache.compiled++;
  mkdirSync(COMPILE_CACHE, { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(answer));
  renameSync(tmp, path);
  return answer;
}

// ---------------------------------------------------------------------------------------------------------
// CUDA: nvcc + ptxas

export const findNvcc = (): string | null =>
  hidden('nvcc')
    ? null
    : which('nvcc', [process.env.CUDA_HOME && join(process.env.CUDA_HOME, 'bin'), '/usr/local/cuda/bin']);

/** ptxas beside nvcc (the same toolkit), or null where nvcc is missing or hidden. */
export const findPtxas = (): string | null => {
  const nvcc = findNvcc();
  const ptxas = nvcc && join(dirname(realpathSync(nvcc)), 'ptxas');
  return ptxas && existsSync(ptxas) ? ptxas : null;
};

/** ptxas's flags for NVRTC's PTX: machine code for sm_90a (compute_90 PTX assembles for it), with resources. */
export const PTXAS_SM90A = ['-arch=sm_90a', '-v'];

/** NVRTC (libnvrtc through koffi), or null where it is not installed or hidden. */
export const findNvrtc = (): Nvrtc | null => (hidden('nvrtc') ? null : loadNvrtc());

export const NVCC_SM90A = ['-cubin', '-gencode=arch=compute_90a,code=sm_90a', '-Xptxas', '-v'];

export interface PtxasKernel {
  name: string;
  arch: string;
  stackFrame: number;
  spillStores: number;
  spillLoads: number;
  registers: number;
}

/** The per-entry resource lines of `ptxas -v`. */
export function parsePtxas(output: string): Map<string, PtxasKernel> {
  const out = new Map<string, PtxasKernel>();
  let current: PtxasKernel | undefined;
  for (const line of output.split('\n')) {
    let m = /Compiling entry function '([^']+)' for '([^']+)'/.exec(line);
    if (m) {
      current = { name: m[1]!, arch: m[2]!, stackFrame: NaN, spillStores: NaN, spillLoads: NaN, registers: NaN };
      out.set(current.name, current);
      continue;
    }
    if (!current) continue;
    m = /(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads/.exec(line);
    if (m) {
      current.stackFrame = Number(m[1]);
      current.spillStores = Number(m[2]);
      current.spillLoads = Number(m[3]);
      continue;
    }
    m = /Used (\d+) registers/.exec(line);
    if (m) current.registers = Number(m[1]);
  }
  return out;
}

export interface CudaUnit {
  /** File name (`<entry>__<tag>.cu`); unique within one bundle. */
  file: string;
  entry: string;
  source: string;
}

export interface CudaBundleResult {
  /** Renamed entry (the file name without `.cu`) → ptxas resources. */
  kernels: Map<string, PtxasKernel>;
  /** File name → the diagnostics nvcc printed for it (errors and warnings, one line each). */
  diagnostics: Map<string, string[]>;
  code: number;
  output: string;
  ms: number;
}

/** The name an entry gets inside a bundle: the file name without its extension. */
export const bundledName = (file: string): string => file.replace(/\.cu$/, '');

/**
 * Compile several kernels in one nvcc run: a bundle .cu #includes each file with its entry renamed (by a
 * macro) to the file's base name, so every kernel keeps its own line in ptxas's report. The generated
 * helpers are guarded by CCEKIT_HELPERS, so they are defined once. Much faster than one nvcc per file.
 */
export async function compileCudaBundle(
  nvcc: string,
  dir: string,
  units: readonly CudaUnit[],
  extraFlags: readonly string[] = [],
): Promise<CudaBundleResult> {
  const bundle = units
    .map((u) => `#define ${u.entry} ${bundledName(u.file)}\n#include "${u.file}"\n#undef ${u.entry}\n`)
    .join('');
  const flags = [...NVCC_SM90A, ...extraFlags];
  const inputs = [bundle, ...units.flatMap((u) => [u.file, u.source])];
  const r = await cachedCompile(['nvcc', toolIdentity(nvcc), ...flags, ...inputs], async () => {
    writeFiles(dir, new Map(units.map((u) => [u.file, u.source])));
    writeFileSync(join(dir, 'bundle.cu'), bundle);
    return runTool(nvcc, [...flags, 'bundle.cu', '-o', 'bundle.cubin'], dir);
  });
  const diagnostics = new Map<string, string[]>(units.map((u) => [u.file, []]));
  for (const line of r.output.split('\n')) {
    const m = /^(?:.*\/)?([^/(]+\.cu)\((\d+)\): (error|warning)/.exec(line);
    if (m && diagnostics.has(m[1]!)) diagnostics.get(m[1]!)!.push(line.trim());
  }
  return { kernels: parsePtxas(r.output), diagnostics, ...r };
}

export const errorsOf = (lines: readonly string[] | undefined): string[] => (lines ?? []).filter((l) => /\): error/.test(l));

// ---------------------------------------------------------------------------------------------------------
// CUDA: NVRTC, many kernels a program, several programs at once (each in a process of its own)

/** What NVRTC made of one unit: the `.visible .entry` lines of the program that held it, or its compile error. */
export type NvrtcUnitResult =
  | { ptx: string; error?: undefined; sm90a?: PtxasKernel; ptxasErrors?: string }
  | { ptx?: undefined; error: string };
/** A program's answer: NVRTC's (entries only) and, when asked for, ptxas's report on its whole PTX. */
type NvrtcAnswer = (NvrtcProgramResult & { ptxas?: undefined }) | { ptx: string; ptxas: RunResult };

const NVRTC_SCRIPT = fileURLToPath(new URL('./nvrtc-programs.ts', import.meta.url));
/** One NVRTC program of several units, as compileCudaBundle's bundle: each entry renamed to bundledName(file). */
export const nvrtcBundleSource = (units: readonly CudaUnit[]): string =>
  units
    .map((u) => `#define ${u.entry} ${bundledName(u.file)}\n#line 1 "${u.file}"\n${u.source}\n#undef ${u.entry}\n`)
    .join('');

const ptxEntries = (ptx: string): string => ptx.split('\n').filter((l) => l.startsWith('.visible .entry ')).join('\n');
const nvrtcIdentity = (): string => {
  const lib = loadNvrtc();
  return lib ? `${lib.path} ${lib.version.join('.')}` : 'none';
};

/**
 * Compile programs (name → source) in up to `limit` NVRTC processes; results in the order of `programs`, each
 * PTX cut down to its `.visible .entry` lines.
 */
async function nvrtcPrograms(
  dir: string,
  programs: readonly { name: string; source: string }[],
  options: readonly string[],
  limit: number,
  ptxas?: string,
): Promise<NvrtcAnswer[]> {
  mkdirSync(dir, { recursive: true });
  const assembler = ptxas ? [toolIdentity(ptxas), ...PTXAS_SM90A] : [];
  return parallel(
    programs.map((p, i) => () =>
      cachedCompile(['nvrtc', nvrtcIdentity(), ...options, ...assembler, p.name, p.source], async () => {
        const job = join(dir, `job${i}.json`);
        const result = join(dir, `result${i}.json`);
        writeFileSync(job, JSON.stringify({ options: [...options], programs: [p] } satisfies NvrtcJob));
        const r = await runTool(process.execPath, ['--import', 'tsx', NVRTC_SCRIPT, job, result], REPO_ROOT);
        if (r.code !== 0) throw new Error(`NVRTC process failed (exit ${r.code}):\n${r.output}`);
        const answer = (JSON.parse(readFileSync(result, 'utf8')) as NvrtcProgramResult[])[0]!;
        if (!('ptx' in answer)) return answer;
        // The entries are what the tests read of the PTX (megabytes a program otherwise); ptxas reads it whole.
        if (!ptxas) return { ptx: ptxEntries(answer.ptx) };
        writeFileSync(join(dir, `program${i}.ptx`), answer.ptx);
        const asm = await runTool(ptxas, [...PTXAS_SM90A, `program${i}.ptx`, '-o', `program${i}.cubin`], dir);
        return { ptx: ptxEntries(answer.ptx), ptxas: asm };
      }),
    ),
    limit,
  );
}

/**
 * Compile bundles of kernels with NVRTC: one program a bundle, as many at once as cores. A bundle that does not
 * compile is compiled again one unit a program, so that each unit gets its own result. Bundle key → unit file →
 * result; the PTX of a unit that compiled holds its entry as `.visible .entry <bundledName(file)>(`.
 */
export async function compileNvrtcBundles(
  dir: string,
  bundles: ReadonlyMap<string, readonly CudaUnit[]>,
  options: readonly string[],
  limit = availableParallelism(),
  ptxas?: string,
): Promise<Map<string, Map<string, NvrtcUnitResult>>> {
  const keys = [...bundles.keys()];
  const programs = keys.map((k) => ({ name: `${k}.cu`, source: nvrtcBundleSource(bundles.get(k)!) }));
  const first = await nvrtcPrograms(join(dir, 'bundles'), programs, options, limit, ptxas);
  const unitOf = (r: NvrtcAnswer & { ptx: string }, file: string): NvrtcUnitResult => {
    if (!r.ptxas) return { ptx: r.ptx };
    const errors = r.ptxas.code === 0 ? undefined : r.ptxas.output.trim() || `ptxas exit ${r.ptxas.code}`;
    return { ptx: r.ptx, sm90a: parsePtxas(r.ptxas.output).get(bundledName(file)), ptxasErrors: errors };
  };
  const out = new Map<string, Map<string, NvrtcUnitResult>>();
  const retry: { key: string; unit: CudaUnit }[] = [];
  keys.forEach((k, i) => {
    const r = first[i]!;
    const units = new Map<string, NvrtcUnitResult>();
    for (const u of bundles.get(k)!) if ('ptx' in r) units.set(u.file, unitOf(r, u.file));
    else retry.push({ key: k, unit: u });
    out.set(k, units);
  });
  const singles = retry.map(({ unit }) => ({ name: unit.file, source: nvrtcBundleSource([unit]) }));
  const second = await nvrtcPrograms(join(dir, 'units'), singles, options, limit, ptxas);
  retry.forEach(({ key, unit }, i) => {
    const r = second[i]!;
    const result: NvrtcUnitResult =
      'ptx' in r ? unitOf(r, unit.file) : { error: `${r.error.call}: ${r.error.errorName}\n${r.error.log}` };
    out.get(key)!.set(unit.file, result);
  });
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Triton: python3 -m py_compile, all files in one interpreter

export const findPython = (): string | null => (hidden('python3') ? null : which('python3'));

/** A python3 that imports torch: Debian's /usr/bin/python3 (python3-torch), else the one on PATH; or null. */
let torchPython: string | null | undefined;
const importsTorch = (py: string): boolean =>
  existsSync(py) && spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore', timeout: 120_000 }).status === 0;
export function findTorchPython(): string | null {
  if (hidden('torch') || hidden('python3')) return null;
  if (torchPython === undefined)
    torchPython = ['/usr/bin/python3', which('python3')].find((py) => py && importsTorch(py)) ?? null;
  return torchPython;
}

const PY_COMPILE_ALL = `
import json, py_compile, sys
errors = {}
for f in sys.argv[1:]:
    try:
        py_compile.compile(f, doraise=True)
    except py_compile.PyCompileError as e:
        errors[f] = e.msg
print(json.dumps(errors))
`;

/** Byte-compile every file; path → error message for those that fail. */
export async function pyCompileAll(python: string, paths: readonly string[]): Promise<{ errors: Map<string, string>; ms: number }> {
  const r = await runTool(python, ['-c', PY_COMPILE_ALL, ...paths]);
  const last = r.output.trim().split('\n').at(-1) ?? '';
  let parsed: Record<string, string>;
  try {
    parsed = JSON.parse(last) as Record<string, string>;
  } catch {
    throw new Error(`python3 py_compile did not run (exit ${r.code}):\n${r.output}`);
  }
  return { errors: new Map(Object.entries(parsed)), ms: r.ms };
}

// ---------------------------------------------------------------------------------------------------------
// WGSL: bindings the shader declares vs. the manifest

interface ReflectedVar {
  name: string;
  group: number;
  binding: number;
  resourceType: number; // 0 uniform, 1 storage
  access: string;
  type: { name: string; members?: { name: string; type: { name: string } }[] | null };
}

/**
 * Differences between the resources a WGSL kernel declares and what the manifest says a runtime must bind:
 * every tensor at its binding in group 0 as storage (read or read_write by its access), the `params`
 * uniform at its binding with one member per scalar / dim, in manifest order. Empty when they agree.
 */
export function wgslBindingMismatches(source: string, parameters: readonly ParamDoc[]): string[] {
  const reflect = new WgslReflect(source);
  const groups = reflect.getBindGroups() as (ReflectedVar | undefined)[][];
  const problems: string[] = [];
  if (groups.length !== 1) problems.push(`expected one bind group (0), found ${groups.length}`);
  const found = new Map<number, ReflectedVar>();
  groups.forEach((g, gi) =>
    g.forEach((v) => {
      if (!v) return;
      if (gi !== 0 || v.group !== 0) problems.push(`${v.name} is in group ${v.group}`);
      else found.set(v.binding, v);
    }),
  );
  const bound = parameters.filter((p) => p.binding !== undefined);
  for (const p of bound) {
    const v = found.get(p.binding!);
    if (!v) {
      problems.push(`manifest ${p.name} @binding(${p.binding}) is not declared`);
      continue;
    }
    found.delete(p.binding!);
    if (v.name !== p.name) problems.push(`@binding(${p.binding}) is ${v.name} in WGSL, ${p.name} in the manifest`);
    if (p.kind === 'tensor') {
      if (v.resourceType !== 1) problems.push(`${p.name} is not a storage buffer`);
      const access = p.access === 'read' ? 'read' : 'read_write';
      if (v.access !== access) problems.push(`${p.name} is var<storage, ${v.access}>, manifest access ${p.access} needs ${access}`);
    } else {
      if (v.resourceType !== 0) problems.push(`${p.name} is not a uniform buffer`);
      const members = (v.type.members ?? []).map((m) => `${m.name}: ${m.type.name}`);
      const expected = parameters.filter((q) => (q.kind === 'scalar' && q.binding === undefined) || q.kind === 'dim').map((q) => `${q.name}: ${q.dtype}`);
      if (members.join(', ') !== expected.join(', ')) problems.push(`${v.type.name} members [${members.join(', ')}] ≠ manifest [${expected.join(', ')}]`);
    }
  }
  for (const v of found.values()) problems.push(`WGSL ${v.name} @binding(${v.binding}) is not in the manifest`);
  if (!bound.some((p) => p.name === 'params')) problems.push('the manifest has no params uniform');
  return problems;
}
