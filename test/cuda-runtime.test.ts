// The CUDA runtime pieces that need no GPU: NVRTC through koffi (Debian's NVRTC 11.8 in CI), the on-disk
// module cache, error mapping, driver discovery, the autotuner's candidate space. GPU checks run on the
// device machine (ccekit check --device cuda; bench/device-session.sh).
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lower } from '../codegen/lower.js';
import { cceBackward, cceForward } from '../dsl/cce.js';
import { CAPS } from '../targets/registry.js';
import { heuristicSchedule } from '../codegen/schedule.js';
import { candidateSchedules } from '../runtime/autotune/tune.js';
import { Cuda, CudaError, cudaErrorName } from '../runtime/cuda/driver.js';
import { NvrtcError } from '../runtime/cuda/nvrtc.js';
import { buildCubin } from '../runtime/cuda/run.js';
import { emitCuda } from '../targets/cuda/emit.js';
import { findNvrtc, skipTest } from './support/toolchains.js';

const nvrtc = findNvrtc();
/** Skip (CI: fail) without NVRTC: libnvrtc11.2 from Debian non-free, which .ci/setup-system installs. */
const needNvrtc = (t: { skip: (note?: string) => void }) => skipTest(t, 'NVRTC (libnvrtc)', !!nvrtc);

let saved: string | undefined;
beforeAll(() => {
  saved = process.env.CCEKIT_CACHE;
  process.env.CCEKIT_CACHE = mkdtempSync(join(tmpdir(), 'ccekit-cache-'));
});
afterAll(() => {
  if (saved === undefined) delete process.env.CCEKIT_CACHE;
  else process.env.CCEKIT_CACHE = saved;
});

describe('CUDA runtime without a GPU', () => {
  it('maps CUresult codes to names', () => {
    expect(cudaErrorName(700)).toBe('CUDA_ERROR_ILLEGAL_ADDRESS');
    expect(cudaErrorName(2)).toBe('CUDA_ERROR_OUT_OF_MEMORY');
    expect(cudaErrorName(12345)).toBe('CUDA_ERROR_12345');
    const e = new CudaError('cuLaunchKernel(cce_minus_bwd)', 719, 'CUDA_ERROR_LAUNCH_FAILED');
    expect(e.message).toBe('cuLaunchKernel(cce_minus_bwd) failed: CUDA_ERROR_LAUNCH_FAILED (719)');
  });

  it('reports no device where there is no driver (this machine) instead of throwing', () => {
    // CCEKIT_EXPECT_GPU: run on the device machine, where the driver and a GPU are there.
    if (process.env.CCEKIT_EXPECT_GPU) expect(Cuda.open()).not.toBeNull();
    else expect(Cuda.open()).toBeNull();
  });

  it('compiles an emitted kernel to a cubin once, then loads it from the disk cache', (t) => {
    if (needNvrtc(t)) return;
    const s = heuristicSchedule(256, 'f16');
    const src = emitCuda(lower(cceBackward({ mode: 'sampled', dtype: 'f16', sampling: 'given', grad: 'perRow' }), s, CAPS.cuda), 'test').source;
    const a = buildCubin(nvrtc!, src, 'cce_minus_bwd', 'sm_90');
    expect(a.fromDiskCache).toBe(false);
    expect(a.cubin.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    const b = buildCubin(nvrtc!, src, 'cce_minus_bwd', 'sm_90');
    expect(b.fromDiskCache).toBe(true);
    expect(b.key).toBe(a.key);
    expect(Buffer.compare(a.cubin, b.cubin)).toBe(0);
    // A different arch or source is a different entry, and so is the build without element guards (D = BLOCK_D).
    expect(buildCubin(nvrtc!, src + '\n', 'cce_minus_bwd', 'sm_90').key).not.toBe(a.key);
    const exact = buildCubin(nvrtc!, src, 'cce_minus_bwd', 'sm_90', true);
    expect(exact.key).not.toBe(a.key);
    expect(Buffer.compare(exact.cubin, a.cubin)).not.toBe(0);
    const files = readdirSync(join(process.env.CCEKIT_CACHE!, 'cuda'));
    expect(files.filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('NVRTC errors carry the call, the error name and the compiler log', (t) => {
    if (needNvrtc(t)) return;
    let err: unknown;
    try {
      nvrtc!.compile('extern "C" __global__ void k(float* p) { p[0] = undeclared_name; }', 'bad.cu', ['--gpu-architecture=compute_90']);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NvrtcError);
    const e = err as NvrtcError;
    expect(e.call).toBe('nvrtcCompileProgram');
    expect(e.errorName).toBe('NVRTC_ERROR_COMPILATION');
    expect(e.log).toMatch(/bad\.cu\(1\): error: identifier "undeclared_name" is undefined/);
  });

  it('a corrupt cache entry is not returned as a cubin by the cache key of another source', (t) => {
    if (needNvrtc(t)) return;
    const s = heuristicSchedule(64, 'bf16');
    const src = emitCuda(lower(cceForward({ mode: 'full', dtype: 'bf16', sampling: 'uniform', grad: 'scalar' }), s, CAPS.cuda), 'test').source;
    const a = buildCubin(nvrtc!, src, 'ce_full_fwd', 'sm_90');
    writeFileSync(join(process.env.CCEKIT_CACHE!, 'cuda', `${a.key}.cubin`), 'garbage');
    // The runtime reloads such an entry through the driver, which rejects it; it then deletes and rebuilds
    // (CudaRuntime.kernel). Here: the cache returns what is on disk, flagged as cached.
    const b = buildCubin(nvrtc!, src, 'ce_full_fwd', 'sm_90');
    expect(b.fromDiskCache).toBe(true);
    expect(b.cubin.toString()).toBe('garbage');
  });

  it('the autotuner searches valid schedules only, the heuristic default first', () => {
    for (const [D, dtype] of [[256, 'f16'], [64, 'bf16'], [257, 'f32'], [3, 'f16']] as const) {
      const c = candidateSchedules(D, dtype, CAPS.cuda, heuristicSchedule(D, dtype));
      expect(c[0]).toEqual(heuristicSchedule(D, dtype));
      expect(new Set(c.map((s) => JSON.stringify(s))).size).toBe(c.length);
      for (const s of c) {
        expect(s.lanes * s.vec * s.dChunks).toBeGreaterThanOrEqual(D);
        expect(D % s.vec).toBe(0);
        expect(() => lower(cceForward({ mode: 'sampled', dtype, sampling: 'uniform', grad: 'scalar' }), s, CAPS.cuda)).not.toThrow();
      }
    }
  });
});
