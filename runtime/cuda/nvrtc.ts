// NVRTC through koffi: CUDA C++ → PTX in process. The library is found by soname (libnvrtc.so.13, .so.12,
// Debian's libnvrtc.so.11.2) or under $CUDA_HOME/lib64 / /usr/local/cuda/lib64. Every non-zero
// nvrtcResult becomes an NvrtcError naming the call and the error (with the program log for compiles).
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import koffi, { type LibraryHandle } from 'koffi';

export class NvrtcError extends Error {
  constructor(
    readonly call: string,
    readonly code: number,
    readonly errorName: string,
    readonly log?: string,
  ) {
    super(`${call} failed: ${errorName} (${code})${log ? `\n${log}` : ''}`);
    this.name = 'NvrtcError';
  }
}

export interface Nvrtc {
  /** NVRTC's own version, [major, minor]. */
  version: [number, number];
  /** The library that was loaded. */
  path: string;
  /** Compile one translation unit to PTX; options as for nvcc (e.g. `--gpu-architecture=compute_90`). */
  compile(source: string, name: string, options: string[]): { ptx: string; log: string };
  /** Compile for a real architecture (`--gpu-architecture=sm_90a`) and return the CUBIN. */
  compileCubin(source: string, name: string, options: string[]): { cubin: Buffer; log: string };
}

const SONAMES = ['libnvrtc.so.13', 'libnvrtc.so.12', 'libnvrtc.so.11.2', 'libnvrtc.so'];

/** Places to look, most specific first: $CUDA_HOME, then the default CUDA prefix, then the loader's path. */
function candidates(): string[] {
  const out: string[] = [];
  for (const home of [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda']) {
    if (!home) continue;
    const dir = join(home, 'lib64');
    if (!existsSync(dir)) continue;
    const names = readdirSync(dir).filter((f) => /^libnvrtc\.so(\.\d+)*$/.test(f));
    // Prefer the shortest soname-like entry of each version (libnvrtc.so.12 over libnvrtc.so.12.4.127).
    names.sort((a, b) => a.length - b.length || b.localeCompare(a));
    out.push(...names.map((n) => join(dir, n)));
  }
  out.push(...SONAMES); // resolved by the dynamic loader (ld.so.cache, LD_LIBRARY_PATH)
  return out;
}

function open(): { lib: LibraryHandle; path: string } | null {
  if (process.platform !== 'linux') return null;
  for (const path of candidates()) {
    try {
      return { lib: koffi.load(path), path };
    } catch {
      // not there, or not loadable: try the next one
    }
  }
  return null;
}

// koffi type names are process-global: declare them once, bind the library once.
let typesDeclared = false;
let cached: Nvrtc | null | undefined;

/** Bind NVRTC (once per process), or null when no library is found. */
export function loadNvrtc(): Nvrtc | null {
  if (cached === undefined) cached = bind();
  return cached;
}

function bind(): Nvrtc | null {
  const found = open();
  if (!found) return null;
  const { lib, path } = found;
  if (!typesDeclared) {
    koffi.pointer('nvrtcProgram', koffi.opaque('_nvrtcProgram'));
    typesDeclared = true;
  }
  const fn = {
    nvrtcGetErrorString: lib.func('const char *nvrtcGetErrorString(int result)'),
    nvrtcVersion: lib.func('int nvrtcVersion(_Out_ int *major, _Out_ int *minor)'),
    nvrtcCreateProgram: lib.func(
      'int nvrtcCreateProgram(_Out_ nvrtcProgram *prog, const char *src, const char *name, int numHeaders, ' +
        'const char **headers, const char **includeNames)',
    ),
    nvrtcCompileProgram: lib.func('int nvrtcCompileProgram(nvrtcProgram prog, int numOptions, const char **options)'),
    nvrtcGetProgramLogSize: lib.func('int nvrtcGetProgramLogSize(nvrtcProgram prog, _Out_ size_t *logSize)'),
    nvrtcGetProgramLog: lib.func('int nvrtcGetProgramLog(nvrtcProgram prog, _Out_ uint8_t *log)'),
    nvrtcGetPTXSize: lib.func('int nvrtcGetPTXSize(nvrtcProgram prog, _Out_ size_t *ptxSize)'),
    nvrtcGetPTX: lib.func('int nvrtcGetPTX(nvrtcProgram prog, _Out_ uint8_t *ptx)'),
    nvrtcDestroyProgram: lib.func('int nvrtcDestroyProgram(_Inout_ nvrtcProgram *prog)'),
    nvrtcGetCUBINSize: lib.func('int nvrtcGetCUBINSize(nvrtcProgram prog, _Out_ size_t *size)'),
    nvrtcGetCUBIN: lib.func('int nvrtcGetCUBIN(nvrtcProgram prog, _Out_ uint8_t *cubin)'),
  };

  const errorName = (code: number): string => {
    try {
      return (fn.nvrtcGetErrorString(code) as string | null) ?? `NVRTC_ERROR_${code}`;
    } catch {
      return `NVRTC_ERROR_${code}`;
    }
  };
  const check = (call: string, code: number, log?: string): void => {
    if (code !== 0) throw new NvrtcError(call, code, errorName(code), log);
  };
  /** Read a NUL-terminated text of a size reported by `sizeCall` into a string. */
  const readText = (
    prog: unknown,
    sizeCall: 'nvrtcGetProgramLogSize' | 'nvrtcGetPTXSize',
    call: 'nvrtcGetProgramLog' | 'nvrtcGetPTX',
  ): string => {
    const size: [number | bigint] = [0];
    check(sizeCall, fn[sizeCall](prog, size));
    const n = Number(size[0]);
    if (n <= 1) return '';
    const buf = Buffer.alloc(n);
    check(call, fn[call](prog, buf));
    return buf.toString('utf8', 0, buf.indexOf(0) >= 0 ? buf.indexOf(0) : n);
  };

  const major: [number] = [0];
  const minor: [number] = [0];
  check('nvrtcVersion', fn.nvrtcVersion(major, minor));

  /** Create, compile, read the result with `take`, destroy; the first error is the one reported. */
  const run = <T>(source: string, name: string, options: string[], take: (prog: unknown, log: string) => T): T => {
    const holder: [unknown] = [null];
    check('nvrtcCreateProgram', fn.nvrtcCreateProgram(holder, source, name, 0, null, null));
    const prog = holder[0];
    let result: T;
    try {
      const code = fn.nvrtcCompileProgram(prog, options.length, options) as number;
      const log = readText(prog, 'nvrtcGetProgramLogSize', 'nvrtcGetProgramLog');
      check('nvrtcCompileProgram', code, log);
      result = take(prog, log);
    } catch (e) {
      fn.nvrtcDestroyProgram(holder);
      throw e;
    }
    check('nvrtcDestroyProgram', fn.nvrtcDestroyProgram(holder));
    return result;
  };

  return {
    version: [major[0], minor[0]],
    path,
    compile: (source, name, options) =>
      run(source, name, options, (prog, log) => ({ ptx: readText(prog, 'nvrtcGetPTXSize', 'nvrtcGetPTX'), log })),
    compileCubin: (source, name, options) =>
      run(source, name, options, (prog, log) => {
        const size: [number | bigint] = [0];
        check('nvrtcGetCUBINSize', fn.nvrtcGetCUBINSize(prog, size));
        const cubin = Buffer.alloc(Number(size[0]));
        check('nvrtcGetCUBIN', fn.nvrtcGetCUBIN(prog, cubin));
        return { cubin, log };
      }),
  };
}
