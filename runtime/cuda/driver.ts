// The CUDA driver API through koffi (libcuda.so.1): context, memory, modules, launches, events. Every
// non-zero CUresult becomes a CudaError naming the call and the error (cuGetErrorName).
import koffi, { type LibraryHandle } from 'koffi';
import { CUDA_CAPS } from '../../targets/cuda/caps.js';
import type { DeviceCaps } from '../../codegen/target.js';

export class CudaError extends Error {
  constructor(
    readonly call: string,
    readonly code: number,
    readonly errorName: string,
  ) {
    super(`${call} failed: ${errorName} (${code})`);
    this.name = 'CudaError';
  }
}

export type DevicePtr = bigint;
type Handle = unknown;

const ATTR = {
  maxThreadsPerBlock: 1, maxGridX: 5, maxSharedPerBlock: 8, maxRegistersPerBlock: 12, smCount: 16, l2Bytes: 38,
  ccMajor: 75, ccMinor: 76, maxSharedOptin: 97,
} as const;
const FUNC_ATTR = { maxThreads: 0, sharedBytes: 1, localBytes: 3, numRegs: 4, maxDynamicShared: 8 } as const;

export interface CudaDeviceInfo {
  name: string;
  ordinal: number;
  cc: [number, number];
  /** NVRTC / nvcc target: sm_90a on Hopper (wgmma, setmaxnreg), sm_XY elsewhere. */
  arch: string;
  sms: number;
  l2Bytes: number;
  totalBytes: number;
  driverVersion: number;
  maxSharedOptin: number;
}

export interface KernelAttributes {
  registers: number;
  localBytes: number;
  staticShared: number;
  maxThreads: number;
}

let typesDeclared = false;

function bind(lib: LibraryHandle) {
  if (!typesDeclared) {
    koffi.pointer('CUcontext', koffi.opaque('CUctx_st'));
    koffi.pointer('CUmodule', koffi.opaque('CUmod_st'));
    koffi.pointer('CUfunction', koffi.opaque('CUfunc_st'));
    koffi.pointer('CUevent', koffi.opaque('CUevent_st'));
    typesDeclared = true;
  }
  return {
    cuGetErrorName: lib.func('int cuGetErrorName(int error, _Out_ const char **str)'),
    cuInit: lib.func('int cuInit(unsigned int flags)'),
    cuDriverGetVersion: lib.func('int cuDriverGetVersion(_Out_ int *v)'),
    cuDeviceGetCount: lib.func('int cuDeviceGetCount(_Out_ int *n)'),
    cuDeviceGet: lib.func('int cuDeviceGet(_Out_ int *dev, int ordinal)'),
    cuDeviceGetName: lib.func('int cuDeviceGetName(_Out_ uint8_t *name, int len, int dev)'),
    cuDeviceGetAttribute: lib.func('int cuDeviceGetAttribute(_Out_ int *v, int attrib, int dev)'),
    cuDeviceTotalMem: lib.func('int cuDeviceTotalMem_v2(_Out_ size_t *bytes, int dev)'),
    cuDevicePrimaryCtxRetain: lib.func('int cuDevicePrimaryCtxRetain(_Out_ CUcontext *ctx, int dev)'),
    cuCtxSetCurrent: lib.func('int cuCtxSetCurrent(CUcontext ctx)'),
    cuCtxSynchronize: lib.func('int cuCtxSynchronize()'),
    cuMemAlloc: lib.func('int cuMemAlloc_v2(_Out_ uint64_t *dptr, size_t bytes)'),
    cuMemFree: lib.func('int cuMemFree_v2(uint64_t dptr)'),
    cuMemcpyHtoD: lib.func('int cuMemcpyHtoD_v2(uint64_t dst, const void *src, size_t bytes)'),
    cuMemcpyDtoH: lib.func('int cuMemcpyDtoH_v2(_Out_ void *dst, uint64_t src, size_t bytes)'),
    cuMemsetD32: lib.func('int cuMemsetD32_v2(uint64_t dst, unsigned int value, size_t count)'),
    cuMemGetInfo: lib.func('int cuMemGetInfo_v2(_Out_ size_t *free, _Out_ size_t *total)'),
    cuModuleLoadData: lib.func('int cuModuleLoadData(_Out_ CUmodule *mod, const void *image)'),
    cuModuleUnload: lib.func('int cuModuleUnload(CUmodule mod)'),
    cuModuleGetFunction: lib.func('int cuModuleGetFunction(_Out_ CUfunction *fn, CUmodule mod, const char *name)'),
    cuFuncGetAttribute: lib.func('int cuFuncGetAttribute(_Out_ int *v, int attrib, CUfunction fn)'),
    cuLaunchKernel: lib.func(
      'int cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, ' +
        'unsigned int bx, unsigned int by, unsigned int bz, unsigned int shared, ' +
        'void *stream, void **params, void **extra)',
    ),
    cuEventCreate: lib.func('int cuEventCreate(_Out_ CUevent *ev, unsigned int flags)'),
    cuEventRecord: lib.func('int cuEventRecord(CUevent ev, void *stream)'),
    cuEventSynchronize: lib.func('int cuEventSynchronize(CUevent ev)'),
    cuEventElapsedTime: lib.func('int cuEventElapsedTime(_Out_ float *ms, CUevent start, CUevent end)'),
    cuEventDestroy: lib.func('int cuEventDestroy_v2(CUevent ev)'),
  };
}

/** Map a CUresult to its name; exported for tests (no GPU needed). */
export function cudaErrorName(code: number): string {
  return CU_ERRORS[code] ?? `CUDA_ERROR_${code}`;
}
const CU_ERRORS: Record<number, string> = {
  1: 'CUDA_ERROR_INVALID_VALUE', 2: 'CUDA_ERROR_OUT_OF_MEMORY', 3: 'CUDA_ERROR_NOT_INITIALIZED',
  100: 'CUDA_ERROR_NO_DEVICE', 101: 'CUDA_ERROR_INVALID_DEVICE', 200: 'CUDA_ERROR_INVALID_IMAGE',
  209: 'CUDA_ERROR_NO_BINARY_FOR_GPU', 218: 'CUDA_ERROR_INVALID_PTX', 400: 'CUDA_ERROR_INVALID_HANDLE',
  500: 'CUDA_ERROR_NOT_FOUND', 700: 'CUDA_ERROR_ILLEGAL_ADDRESS', 701: 'CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES',
  702: 'CUDA_ERROR_LAUNCH_TIMEOUT', 719: 'CUDA_ERROR_LAUNCH_FAILED', 999: 'CUDA_ERROR_UNKNOWN',
};

export class Cuda {
  private readonly fn: ReturnType<typeof bind>;
  private readonly allocations = new Map<DevicePtr, number>();
  /** Bytes currently allocated through this object, and the most at any time. */
  allocated = 0;
  peakAllocated = 0;

  private constructor(
    lib: LibraryHandle,
    readonly info: CudaDeviceInfo,
  ) {
    this.fn = bind(lib);
  }

  private static lib: LibraryHandle | null | undefined;
  /** Open device `ordinal`; null when there is no driver or no device. */
  static open(ordinal = 0): Cuda | null {
    if (Cuda.lib === undefined) {
      try {
        Cuda.lib = koffi.load('libcuda.so.1');
      } catch {
        Cuda.lib = null;
      }
    }
    if (!Cuda.lib) return null;
    const fn = bind(Cuda.lib);
    const check = (call: string, code: number) => {
      if (code !== 0) throw new CudaError(call, code, errorNameVia(fn, code));
    };
    const init = fn.cuInit(0) as number;
    if (init === 100) return null; // no device
    check('cuInit', init);
    const n: [number] = [0];
    check('cuDeviceGetCount', fn.cuDeviceGetCount(n));
    if (n[0] <= ordinal) return null;
    const dev: [number] = [0];
    check('cuDeviceGet', fn.cuDeviceGet(dev, ordinal));
    const attr = (a: number) => {
      const v: [number] = [0];
      check('cuDeviceGetAttribute', fn.cuDeviceGetAttribute(v, a, dev[0]));
      return v[0];
    };
    const nameBuf = Buffer.alloc(256);
    check('cuDeviceGetName', fn.cuDeviceGetName(nameBuf, 256, dev[0]));
    const total: [number | bigint] = [0];
    check('cuDeviceTotalMem', fn.cuDeviceTotalMem(total, dev[0]));
    const ver: [number] = [0];
    check('cuDriverGetVersion', fn.cuDriverGetVersion(ver));
    const cc: [number, number] = [attr(ATTR.ccMajor), attr(ATTR.ccMinor)];
    const info: CudaDeviceInfo = {
      name: nameBuf.toString('utf8', 0, nameBuf.indexOf(0)),
      ordinal,
      cc,
      arch: `sm_${cc[0]}${cc[1]}${cc[0] === 9 && cc[1] === 0 ? 'a' : ''}`,
      sms: attr(ATTR.smCount),
      l2Bytes: attr(ATTR.l2Bytes),
      totalBytes: Number(total[0]),
      driverVersion: ver[0],
      maxSharedOptin: attr(ATTR.maxSharedOptin),
    };
    const cuda = new Cuda(Cuda.lib, info);
    const ctx: [Handle] = [null];
    cuda.check('cuDevicePrimaryCtxRetain', fn.cuDevicePrimaryCtxRetain(ctx, dev[0]));
    cuda.check('cuCtxSetCurrent', fn.cuCtxSetCurrent(ctx[0]));
    return cuda;
  }

  check(call: string, code: number): void {
    if (code !== 0) throw new CudaError(call, code, errorNameVia(this.fn, code));
  }

  caps(): DeviceCaps {
    return { ...CUDA_CAPS, name: `${this.info.name} (${this.info.arch})`, arch: this.info.arch };
  }

  malloc(bytes: number): DevicePtr {
    const p: [bigint | number] = [0n];
    this.check('cuMemAlloc', this.fn.cuMemAlloc(p, Math.max(bytes, 4)));
    const ptr = BigInt(p[0]);
    this.allocations.set(ptr, bytes);
    this.allocated += bytes;
    this.peakAllocated = Math.max(this.peakAllocated, this.allocated);
    return ptr;
  }
  free(ptr: DevicePtr): void {
    this.check('cuMemFree', this.fn.cuMemFree(ptr));
    this.allocated -= this.allocations.get(ptr) ?? 0;
    this.allocations.delete(ptr);
  }
  upload(ptr: DevicePtr, data: ArrayBufferView): void {
    this.check('cuMemcpyHtoD', this.fn.cuMemcpyHtoD(ptr, data, data.byteLength));
  }
  download(ptr: DevicePtr, bytes: number): ArrayBuffer {
    const out = Buffer.alloc(bytes);
    this.check('cuMemcpyDtoH', this.fn.cuMemcpyDtoH(out, ptr, bytes));
    return out.buffer.slice(out.byteOffset, out.byteOffset + bytes);
  }
  /** Fill `count` 32-bit words (zeros, or NaN bits 0x7fc00000 to poison an output). */
  fill32(ptr: DevicePtr, value: number, count: number): void {
    this.check('cuMemsetD32', this.fn.cuMemsetD32(ptr, value >>> 0, count));
  }
  memInfo(): { free: number; total: number } {
    const f: [number | bigint] = [0];
    const t: [number | bigint] = [0];
    this.check('cuMemGetInfo', this.fn.cuMemGetInfo(f, t));
    return { free: Number(f[0]), total: Number(t[0]) };
  }
  loadModule(image: Buffer): Handle {
    const m: [Handle] = [null];
    this.check('cuModuleLoadData', this.fn.cuModuleLoadData(m, image));
    return m[0];
  }
  getFunction(module: Handle, name: string): Handle {
    const f: [Handle] = [null];
    this.check(`cuModuleGetFunction(${name})`, this.fn.cuModuleGetFunction(f, module, name));
    return f[0];
  }
  attributes(f: Handle): KernelAttributes {
    const get = (a: number) => {
      const v: [number] = [0];
      this.check('cuFuncGetAttribute', this.fn.cuFuncGetAttribute(v, a, f));
      return v[0];
    };
    return {
      registers: get(FUNC_ATTR.numRegs),
      localBytes: get(FUNC_ATTR.localBytes),
      staticShared: get(FUNC_ATTR.sharedBytes),
      maxThreads: get(FUNC_ATTR.maxThreads),
    };
  }
  /** Launch with parameters given as one typed array per argument (pointers as BigUint64Array). */
  launch(
    f: Handle,
    grid: [number, number, number],
    block: [number, number, number],
    sharedBytes: number,
    params: ArrayBufferView[],
    name = 'kernel',
  ): void {
    const code = this.fn.cuLaunchKernel(
      f, grid[0], grid[1], grid[2], block[0], block[1], block[2], sharedBytes, null, params, null,
    );
    this.check(`cuLaunchKernel(${name})`, code);
  }
  synchronize(what = 'cuCtxSynchronize'): void {
    this.check(what, this.fn.cuCtxSynchronize());
  }
  event(): Handle {
    const e: [Handle] = [null];
    this.check('cuEventCreate', this.fn.cuEventCreate(e, 0));
    return e[0];
  }
  record(e: Handle): void {
    this.check('cuEventRecord', this.fn.cuEventRecord(e, null));
  }
  elapsed(a: Handle, b: Handle): number {
    this.check('cuEventSynchronize', this.fn.cuEventSynchronize(b));
    const ms: [number] = [0];
    this.check('cuEventElapsedTime', this.fn.cuEventElapsedTime(ms, a, b));
    return ms[0];
  }
  destroyEvent(e: Handle): void {
    this.check('cuEventDestroy', this.fn.cuEventDestroy(e));
  }
}

function errorNameVia(fn: ReturnType<typeof bind>, code: number): string {
  try {
    const s: [string | null] = [null];
    if ((fn.cuGetErrorName(code, s) as number) === 0 && s[0]) return s[0];
  } catch {
    // fall through to the table
  }
  return cudaErrorName(code);
}
