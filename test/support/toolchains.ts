// Test helpers that run real toolchains over emitted sources: nvcc/ptxas (CUDA), python3's py_compile
// (Triton), wgsl_reflect (WGSL bindings). Each returns plain data the tests assert on; none throws on a
// compile error of the input (only when the tool itself cannot run).
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import type { ParamDoc } from '../../targets/common.js';

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

/**
 * A missing toolchain fails under CI (it is part of the test environment there) and skips elsewhere.
 * Returns true when the tests that need it should be skipped, after saying why.
 */
export function skipMissing(what: string, found: boolean): boolean {
  if (found) return false;
  if (process.env.CI) return false; // the tests run and fail on the missing tool
  console.warn(`[skip] ${what} not found: its tests are skipped (they fail when CI is set)`);
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// CUDA: nvcc + ptxas

export const findNvcc = (): string | null => which('nvcc', [process.env.CUDA_HOME && join(process.env.CUDA_HOME, 'bin'), '/usr/local/cuda/bin']);

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
export async function compileCudaBundle(nvcc: string, dir: string, units: readonly CudaUnit[], extraFlags: readonly string[] = []): Promise<CudaBundleResult> {
  writeFiles(dir, new Map(units.map((u) => [u.file, u.source])));
  const bundle = units.map((u) => `#define ${u.entry} ${bundledName(u.file)}\n#include "${u.file}"\n#undef ${u.entry}\n`).join('');
  writeFileSync(join(dir, 'bundle.cu'), bundle);
  const r = await runTool(nvcc, [...NVCC_SM90A, ...extraFlags, 'bundle.cu', '-o', 'bundle.cubin'], dir);
  const diagnostics = new Map<string, string[]>(units.map((u) => [u.file, []]));
  for (const line of r.output.split('\n')) {
    const m = /^(?:.*\/)?([^/(]+\.cu)\((\d+)\): (error|warning)/.exec(line);
    if (m && diagnostics.has(m[1]!)) diagnostics.get(m[1]!)!.push(line.trim());
  }
  return { kernels: parsePtxas(r.output), diagnostics, ...r };
}

export const errorsOf = (lines: readonly string[] | undefined): string[] => (lines ?? []).filter((l) => /\): error/.test(l));

// ---------------------------------------------------------------------------------------------------------
// Triton: python3 -m py_compile, all files in one interpreter

export const findPython = (): string | null => which('python3');

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
