// Memory floors of the CCE- step on this GPU, measured directly (nvcc -O3 -arch=sm_90a floors.cu -o floors):
//   copy        device-to-device copy bandwidth (bytes read + written)
//   gather      random whole-row reads of a [V, D] 16-bit table, one row per (row, negative) — the forward
//   scatter32   random whole-row fp32 float4 atomics into a [V, D] fp32 table — the dC update of the backward
//   scatter16   the same with f16x2 atomics into a 16-bit table (what fp16-atomic kernels pay)
// Usage: ./floors V D pairs   (pairs = number of (row, negative) updates, e.g. N·K)
#include <cstdio>
#include <cstdlib>
#include <cuda_fp16.h>

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); exit(1); } } while (0)

__device__ __forceinline__ unsigned hash32(unsigned x) { x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16; return x; }

// One warp per pair; each lane moves 16 bytes of the row (D·2 bytes for 16-bit data).
__global__ void gather(const uint4* __restrict__ table, long long pairs, int V, int rowVecs, float* sink) {
  int lane = threadIdx.x & 31;
  float acc = 0.f;
  for (long long p = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5; p < pairs; p += ((long long)gridDim.x * blockDim.x) >> 5) {
    int item = (int)(((unsigned long long)hash32((unsigned)p) * (unsigned)V) >> 32);
    for (int c = lane; c < rowVecs; c += 32) { uint4 v = table[(long long)item * rowVecs + c]; acc += __uint_as_float(v.x ^ v.y ^ v.z ^ v.w); }
  }
  if (acc == 12345.f) *sink = acc;
}

__global__ void scatter32(float4* table, long long pairs, int V, int rowVecs) {
  int lane = threadIdx.x & 31;
  for (long long p = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5; p < pairs; p += ((long long)gridDim.x * blockDim.x) >> 5) {
    int item = (int)(((unsigned long long)hash32((unsigned)p) * (unsigned)V) >> 32);
    for (int c = lane; c < rowVecs; c += 32) atomicAdd(&table[(long long)item * rowVecs + c], make_float4(1e-6f, 1e-6f, 1e-6f, 1e-6f));
  }
}

__global__ void scatter16(__half2* table, long long pairs, int V, int rowWords) {
  int lane = threadIdx.x & 31;
  for (long long p = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5; p < pairs; p += ((long long)gridDim.x * blockDim.x) >> 5) {
    int item = (int)(((unsigned long long)hash32((unsigned)p) * (unsigned)V) >> 32);
    for (int c = lane; c < rowWords; c += 32) atomicAdd(&table[(long long)item * rowWords + c], __floats2half2_rn(1e-3f, 1e-3f));
  }
}

template <typename F>
float timeIt(F f) {
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  f();
  CHECK(cudaDeviceSynchronize());
  float best = 1e30f;
  for (int r = 0; r < 5; r++) {
    CHECK(cudaEventRecord(a));
    f();
    CHECK(cudaEventRecord(b));
    CHECK(cudaEventSynchronize(b));
    float ms;
    CHECK(cudaEventElapsedTime(&ms, a, b));
    best = ms < best ? ms : best;
  }
  return best;
}

int main(int argc, char** argv) {
  int V = argc > 1 ? atoi(argv[1]) : 893022;
  int D = argc > 2 ? atoi(argv[2]) : 256;
  long long pairs = argc > 3 ? atoll(argv[3]) : 131072LL * 2047;
  size_t t16 = (size_t)V * D * 2, t32 = (size_t)V * D * 4, copyBytes = 1ull << 31;
  void *a16, *a32, *c0, *c1;
  float* sink;
  CHECK(cudaMalloc(&a16, t16));
  CHECK(cudaMalloc(&a32, t32));
  CHECK(cudaMalloc(&c0, copyBytes));
  CHECK(cudaMalloc(&c1, copyBytes));
  CHECK(cudaMalloc(&sink, 4));
  CHECK(cudaMemset(a16, 0, t16));
  CHECK(cudaMemset(a32, 0, t32));
  CHECK(cudaMemset(c0, 1, copyBytes));
  int sms;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  dim3 grid(sms * 16), block(256);
  float copy = timeIt([&] { CHECK(cudaMemcpyAsync(c1, c0, copyBytes, cudaMemcpyDeviceToDevice)); });
  float g = timeIt([&] { gather<<<grid, block>>>((const uint4*)a16, pairs, V, D * 2 / 16, sink); });
  float s32 = timeIt([&] { scatter32<<<grid, block>>>((float4*)a32, pairs, V, D * 4 / 16); });
  float s16 = timeIt([&] { scatter16<<<grid, block>>>((__half2*)a16, pairs, V, D / 2); });
  CHECK(cudaGetLastError());
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  printf("card %s, V=%d D=%d pairs=%lld (table 16-bit %.0f MiB, fp32 %.0f MiB, L2 %.0f MiB)\n", prop.name, V, D, pairs, t16 / 1048576.0, t32 / 1048576.0, prop.l2CacheSize / 1048576.0);
  printf("copy      %8.3f ms  %6.2f TB/s (read + write)\n", copy, 2.0 * copyBytes / copy / 1e9);
  printf("gather    %8.3f ms  %6.2f TB/s (16-bit rows read)\n", g, (double)pairs * D * 2 / g / 1e9);
  printf("scatter32 %8.3f ms  %6.2f G row-updates/s, %6.2f TB/s of fp32 payload\n", s32, pairs / s32 / 1e6, (double)pairs * D * 4 / s32 / 1e9);
  printf("scatter16 %8.3f ms  %6.2f G row-updates/s, %6.2f TB/s of f16 payload\n", s16, pairs / s16 / 1e6, (double)pairs * D * 2 / s16 / 1e9);
  return 0;
}
