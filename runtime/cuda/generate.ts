// The CUDA backend's input generator (runtime/bench.ts): hash-based kernels fill buffers on the device, so
// benchmark inputs of gigabytes need no upload.
import type { Generated } from '../bench.js';
import type { BufferDType } from '../backend.js';
import type { Cuda, DevicePtr } from './driver.js';

export const GEN_SOURCE = `
__device__ __forceinline__ unsigned ccekit_hash(unsigned x) {
  x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16; return x;
}
__device__ __forceinline__ unsigned short ccekit_f2h(float f) {
  unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h;
}
__device__ __forceinline__ unsigned short ccekit_f2bf(float f) {
  unsigned u = __float_as_uint(f); u += 0x7fffu + ((u >> 16) & 1u); return (unsigned short)(u >> 16);
}
// Normal(0, scale) values via Box-Muller from two hashed uniforms; kind 0 f32, 1 f16, 2 bf16.
extern "C" __global__ void gen_normal(void* out, long long n, unsigned seed, float scale, int kind) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    unsigned a = ccekit_hash((unsigned)i * 2u + seed * 0x9e3779b9u);
    unsigned b = ccekit_hash(a ^ ((unsigned)(i >> 32) + 0x632be5abu));
    float u1 = ((a >> 8) + 1u) * (1.0f / 16777217.0f), u2 = (b >> 8) * (1.0f / 16777216.0f);
    float z = sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2) * scale;
    if (kind == 0) ((float*)out)[i] = z;
    else if (kind == 1) ((unsigned short*)out)[i] = ccekit_f2h(z);
    else ((unsigned short*)out)[i] = ccekit_f2bf(z);
  }
}
// Uniform integers in [0, hi).
extern "C" __global__ void gen_index(int* out, long long n, unsigned seed, int hi) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    unsigned a = ccekit_hash((unsigned)i ^ ccekit_hash(seed + (unsigned)(i >> 32) * 0x85ebca6bu));
    out[i] = (int)(((unsigned long long)a * (unsigned)hi) >> 32);
  }
}
`;

const KIND: Partial<Record<BufferDType, number>> = { f32: 0, f16: 1, bf16: 2 };

/** Fill `n` elements at `ptr` of dtype `dtype`; `build` compiles GEN_SOURCE once (the backend's cubin cache). */
export class CudaGenerator {
  private fns?: { normal: unknown; index: unknown };
  constructor(
    private readonly cuda: Cuda,
    private readonly build: (source: string, name: string) => Buffer,
  ) {}

  private functions() {
    if (!this.fns) {
      const m = this.cuda.loadModule(this.build(GEN_SOURCE, 'ccekit_gen'));
      this.fns = { normal: this.cuda.getFunction(m, 'gen_normal'), index: this.cuda.getFunction(m, 'gen_index') };
    }
    return this.fns;
  }

  fill(ptr: DevicePtr, dtype: BufferDType, n: number, g: Generated): void {
    const f = this.functions();
    const common = [new BigUint64Array([ptr]), new BigInt64Array([BigInt(n)]), new Uint32Array([g.seed >>> 0])];
    if (g.kind === 'index') {
      if (dtype !== 'i32') throw new Error(`generate: indices into an ${dtype} buffer`);
      this.cuda.launch(f.index, [4096, 1, 1], [256, 1, 1], 0, [...common, new Int32Array([g.hi])], 'gen_index');
      return;
    }
    const kind = KIND[dtype];
    if (kind === undefined) throw new Error(`generate: normal values into an ${dtype} buffer`);
    const args = [...common, new Float32Array([g.scale]), new Int32Array([kind])];
    this.cuda.launch(f.normal, [4096, 1, 1], [256, 1, 1], 0, args, 'gen_normal');
  }
}

