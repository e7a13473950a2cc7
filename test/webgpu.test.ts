// The emitted WGSL executed through Dawn (lavapipe in CI, any Vulkan GPU elsewhere) against the float64
// reference on fresh random inputs. With CI=true a missing adapter fails the run instead of skipping.
import { relErr } from '../runtime/check.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { referenceCce, type ReferenceResult } from '../runtime/cpu/reference.js';
import type { FloatDType } from '../runtime/numeric.js';
import type { CceProblem, Reduction } from '../runtime/problem.js';
import { randomProblem } from '../runtime/random.js';
import { acquireWebgpu, releaseWebgpu, type WebgpuContext } from '../runtime/webgpu/device.js';
import { checkBindings, runCceWebgpu, WEBGPU_SCHEDULE, type WebgpuResult } from '../runtime/webgpu/run.js';
import { WebgpuError } from '../runtime/webgpu/device.js';

let ctx: WebgpuContext | null = null;
beforeAll(async () => {
  ctx = await acquireWebgpu();
  if (!ctx && process.env.CI) throw new Error('CI=true but no WebGPU adapter: install Mesa lavapipe (.ci/setup-system)');
});
afterAll(() => {
  if (ctx) releaseWebgpu(ctx);
});


/** f32 inputs: 1e-5 loss / 1e-4 gradients; f16, bf16: 1e-3 (both relative to the float64 reference). */
function expectClose(got: WebgpuResult, ref: ReferenceResult, dtype: FloatDType): void {
  const [tl, tg] = dtype === 'f32' ? [1e-5, 1e-4] : [1e-3, 1e-3];
  const l = (x: number | Float64Array) => (typeof x === 'number' ? [x] : x);
  expect(relErr(l(got.loss), l(ref.loss))).toBeLessThan(tl);
  expect(relErr(got.rowLoss, ref.rowLoss)).toBeLessThan(tl);
  expect(relErr(got.lse, ref.lse)).toBeLessThan(tl);
  expect(relErr(got.dE, ref.dE)).toBeLessThan(tg);
  expect(relErr(got.dC, ref.dC)).toBeLessThan(tg);
  if (ref.kAccepted.length) expect(Array.from(got.kAccepted)).toEqual(Array.from(ref.kAccepted));
}

const seed = () => Math.floor(Math.random() * 1e9);

describe('WebGPU runtime (Dawn)', () => {
  const cases: [number, number, number, number, FloatDType, Reduction, boolean][] = [
    // N, D, V, K, dtype, reduction, popularity
    [1, 1, 2, 1, 'f32', 'mean', false],
    [7, 3, 61, 5, 'f16', 'sum', false],
    [513, 64, 1031, 100, 'bf16', 'none', false],
    [129, 57, 97, 33, 'f32', 'mean', true],
    [37, 64, 2003, 9, 'f16', 'mean', true],
    [45, 31, 300, 21, 'bf16', 'none', true], // given q + per-row gradient: 10 storage buffers
  ];
  for (const [N, D, V, K, dtype, reduction, popularity] of cases)
    it(`sampled N=${N} D=${D} V=${V} K=${K} ${dtype} ${reduction}${popularity ? ' popularity-q' : ''}`, async (t) => {
      if (!ctx) return t.skip();
      const p = { ...randomProblem({ N, D, V, K, dtype, seed: seed(), collisionRate: 0.1, ignoreFraction: N > 1 ? 0.2 : 0, popularity }), reduction };
      const gradOutput = reduction === 'none' ? Float64Array.from({ length: N }, (_, i) => 1 + (i % 3)) : 1.5;
      expectClose(await runCceWebgpu(ctx, p, { gradOutput }), referenceCce(p, { gradOutput }), dtype);
    });

  it('D = 257 (several register chunks per lane) and full-catalog CE', async (t) => {
    if (!ctx) return t.skip();
    const p = randomProblem({ N: 19, D: 257, V: 53, K: 7, dtype: 'bf16', seed: seed(), collisionRate: 0.2 });
    expectClose(await runCceWebgpu(ctx, p), referenceCce(p), 'bf16');
    const f = randomProblem({ N: 33, D: 64, V: 301, K: 0, dtype: 'f32', seed: seed(), mode: 'full', ignoreFraction: 0.1 });
    expectClose(await runCceWebgpu(ctx, f), referenceCce(f), 'f32');
  });

  it('lane reductions through subgroup operations where subgroups are fixed-size runs of invocations', async (t) => {
    if (!ctx) return t.skip();
    const size = ctx.caps.subgroupSize;
    if (!size) return t.skip(); // the adapter has no usable subgroups: the workgroup-memory path covers it
    const { lower } = await import('../codegen/lower.js');
    const { emitWgsl } = await import('../targets/wgsl/emit.js');
    const { cceForward } = await import('../dsl/cce.js');
    const schedule = { ...WEBGPU_SCHEDULE, lanes: size as 8, rows: (128 / size) as 16, vec: 4 as const, dChunks: 1 as const };
    const src = emitWgsl(lower(cceForward({ mode: 'sampled', dtype: 'f16', sampling: 'uniform', grad: 'scalar' }), schedule, ctx.caps), 't').source;
    expect(src).toMatch(/subgroupAdd\(/);
    expect(src).not.toMatch(/workgroupBarrier/);
    for (const [dtype, popularity] of [['f16', false], ['f32', true]] as const) {
      const p = { ...randomProblem({ N: 77, D: 4 * size - 4, V: 401, K: 19, dtype, seed: seed(), collisionRate: 0.1, ignoreFraction: 0.1, popularity }), reduction: 'mean' as const };
      expectClose(await runCceWebgpu(ctx, p, { schedule }), referenceCce(p), dtype);
    }
  });

  it('a dominant target (loss ≈ 1e-7): loss and gradients stay accurate in fp32, sampled and full CE', async (t) => {
    if (!ctx) return t.skip();
    for (const mode of ['sampled', 'full'] as const) {
      // Every row's target logit is 16, the others about 0: loss ≈ Σ exp(s_j − 16); lse − s_t would lose it.
      const N = 5, D = 4, V = 7, K = mode === 'sampled' ? 3 : 0;
      const E = new Float32Array(N * D).fill(2);
      const C = Float32Array.from({ length: V * D }, () => (Math.random() - 0.5) * 0.1);
      const targets = new Int32Array(N);
      for (let d = 0; d < D; d++) C[d] = 2;
      const negatives = mode === 'sampled' ? Int32Array.from({ length: N * K }, (_, i) => 1 + (i % 6)) : undefined;
      const p: CceProblem = { mode, N, D, V, K, dtype: 'f32', E, C, targets, negatives, ignoreIndex: -100, reduction: 'sum' };
      const ref = referenceCce(p, { gradOutput: 1 });
      expect(Math.max(...ref.rowLoss)).toBeLessThan(1e-5);
      const got = await runCceWebgpu(ctx, p, { gradOutput: 1 });
      expect(relErr(got.rowLoss, ref.rowLoss)).toBeLessThan(1e-4);
      expect(relErr(got.dE, ref.dE)).toBeLessThan(1e-4);
      expect(relErr(got.dC, ref.dC)).toBeLessThan(1e-4);
    }
  });

  it('more programs than one dispatch dimension holds (2-D grid)', async (t) => {
    if (!ctx) return t.skip();
    // rows = 1 → N programs; N > 65535 forces the second dispatch dimension.
    const p = randomProblem({ N: 70001, D: 2, V: 37, K: 2, dtype: 'f32', seed: seed(), collisionRate: 0.1, ignoreFraction: 0.05 });
    const r = await runCceWebgpu(ctx, p, { schedule: { ...WEBGPU_SCHEDULE, rows: 1, lanes: 32, dChunks: 1 } });
    expectClose(r, referenceCce(p), 'f32');
  });

  it('times kernels (timestamp queries where the adapter has them)', async (t) => {
    if (!ctx) return t.skip();
    const p = randomProblem({ N: 64, D: 64, V: 211, K: 16, dtype: 'f32', seed: seed() });
    const r = await runCceWebgpu(ctx, p, { repeats: 3 });
    expect(r.timings.map((x) => x.kernel)).toEqual(['cce_minus_fwd', 'cce_minus_bwd']);
    for (const x of r.timings) {
      expect(x.samples).toHaveLength(3);
      expect(x.ms).toBeGreaterThan(0);
    }
  });

  it('clear errors: a tensor over the binding limit, a binding mismatch', async (t) => {
    if (!ctx) return t.skip();
    const small = { ...ctx, caps: { ...ctx.caps, maxStorageBindingBytes: 4096 } };
    const p = randomProblem({ N: 9, D: 64, V: 211, K: 4, dtype: 'f32', seed: 1 });
    await expect(runCceWebgpu(small, p)).rejects.toThrow(/^C: 54016 bytes exceed the adapter's maxStorageBufferBindingSize \(4096\)/);
    const src = '@group(0) @binding(0) var<storage, read> A: array<f32>;\n@group(0) @binding(1) var<uniform> params: vec4<f32>;';
    expect(() => checkBindings('k', src, [{ name: 'B', kind: 'tensor', dtype: 'f32', access: 'read', binding: 0 }, { name: 'params', kind: 'scalar', dtype: 'uniform struct', binding: 1 }])).toThrow(WebgpuError);
    expect(() => checkBindings('k', src, [{ name: 'A', kind: 'tensor', dtype: 'f32', access: 'write', binding: 0 }, { name: 'params', kind: 'scalar', dtype: 'uniform struct', binding: 1 }])).toThrow(/binding A is read-only-storage in WGSL, storage in the manifest/);
  });
});
