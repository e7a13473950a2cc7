// Deterministic dC: int64 fixed point added with integer atomics (CceOptions.deterministic). Checked against
// the float64 reference on fresh random inputs at odd sizes (per-row, drawn, shared, full CE), at the scale the
// runtime picks and at a small scale where most adds take WGSL's one-word path; near the overflow bound; run
// twice on WebGPU (lavapipe in CI) with bit-identical dC; and the emitted code uses no float atomics for dC.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cceBackward, cceFused, type CceOptions } from '../dsl/cce.js';
import { CAPS } from '../targets/registry.js';
import { DEFAULT_SCHEDULE } from '../codegen/schedule.js';
import { compileKernel } from '../targets/registry.js';
import { relErr } from '../runtime/check.js';
import { runCceCpu, type RunOptions } from '../runtime/cpu/run.js';
import { referenceCce } from '../runtime/cpu/reference.js';
import { fixedScale, fixedToFloat, TRANSFORM_HEADROOM } from '../runtime/fixed.js';
import type { FloatDType } from '../runtime/numeric.js';
import type { CceProblem } from '../runtime/problem.js';
import { releaseWebgpu, type WebgpuContext } from '../runtime/webgpu/device.js';
import { runCceWebgpu } from '../runtime/webgpu/run.js';
import { type ProblemCase, caseName, caseProblem } from './support/cases.js';
import { QUICK_WGSL_SCHEDULE, WEBGPU_ADAPTER, skipTest, testWebgpu } from './support/toolchains.js';

interface Case extends ProblemCase {
  fused?: boolean;
}
const CASES: Case[] = [
  { N: 37, D: 13, V: 50, K: 9, dtype: 'f32', reduction: 'mean' },
  { N: 129, D: 64, V: 301, K: 77, dtype: 'f16', reduction: 'none', popularity: true },
  { N: 70, D: 33, V: 1031, K: 40, dtype: 'bf16', reduction: 'sum', philox: true, fused: true },
  { N: 97, D: 31, V: 211, K: 21, dtype: 'f32', reduction: 'mean', share: 16, philox: true },
  { N: 50, D: 57, V: 97, K: 33, dtype: 'f16', reduction: 'sum', share: 32, fused: true },
  { N: 41, D: 19, V: 123, K: 0, dtype: 'f32', reduction: 'mean', mode: 'full', fused: true },
];
const name = (c: Case) => `${caseName(c)}${c.fused ? ' fused' : ''}`;
const problemOf = (c: Case): CceProblem => caseProblem(c, { collisionRate: c.share ? 0 : 0.1 });
const gradOf = (p: CceProblem) => (p.reduction === 'none' ? Float64Array.from({ length: p.N }, (_, i) => 0.25 + (i % 5) * 0.5) : 1.5);
const tol = (dtype: FloatDType) => (dtype === 'f32' ? 1e-4 : 1e-3);

describe('fixedScale', () => {
  it('is a power of two that maps the bound 2·Σ|g|·max|E| (× the transform headroom) into (2^61, 2^62]', () => {
    for (let t = 0; t < 200; t++) {
      const m = Math.exp(Math.random() * 20 - 10);
      const g = Math.exp(Math.random() * 20 - 10);
      const tr = t % 2 === 1;
      const s = fixedScale(m, g, tr);
      expect(Number.isInteger(Math.log2(s))).toBe(true);
      const bound = 2 * m * g * (tr ? TRANSFORM_HEADROOM : 1);
      expect(bound * s).toBeLessThanOrEqual(2 ** 62);
      expect(bound * s).toBeGreaterThan(2 ** 61);
    }
    expect(fixedScale(0, 1, false)).toBe(1);
  });
  it('fixedToFloat reads two\'s-complement int64 words', () => {
    const w = BigInt64Array.from([0n, -1n, 3n << 40n, -(5n << 50n)]);
    expect(Array.from(fixedToFloat(w, 2 ** 10))).toEqual([0, -1 / 1024, 3 * 2 ** 30, -5 * 2 ** 40]);
  });
});

describe('deterministic dC on the CPU executor vs the float64 reference', () => {
  for (const c of CASES)
    it(name(c), () => {
      const p = problemOf(c);
      const gradOutput = gradOf(p);
      const ref = referenceCce(p, { gradOutput });
      for (const o of [{}, { dCScale: 2 ** 40 }] as RunOptions[]) {
        const got = runCceCpu(p, { gradOutput, fused: c.fused, deterministic: true, ...o });
        expect(relErr(got.dC, ref.dC)).toBeLessThan(1e-9);
        expect(relErr(got.dE, ref.dE)).toBeLessThan(1e-9);
      }
    });

  it('a dC row at half the bound (every row pushes its target\'s row the same way) does not overflow', () => {
    // E rows all +m, one target whose logit is very negative (p0 ≈ 0): dC[t] = −Σ g·e = −m·Σ|g|, half the bound.
    const N = 50, D = 5, V = 20, K = 7, m = 3;
    const E = new Float32Array(N * D).fill(m);
    const C = new Float32Array(V * D);
    for (let d = 0; d < D; d++) C[d] = -10;
    const negatives = Int32Array.from({ length: N * K }, (_, i) => 1 + (i % (V - 1)));
    const p: CceProblem = { mode: 'sampled', N, D, V, K, dtype: 'f32', E, C, targets: new Int32Array(N), negatives, ignoreIndex: -100, reduction: 'sum' };
    const ref = referenceCce(p, { gradOutput: 1 });
    const got = runCceCpu(p, { gradOutput: 1, deterministic: true });
    expect(ref.dC[0]).toBeLessThan(-0.99 * m * N);
    expect(relErr(got.dC, ref.dC)).toBeLessThan(1e-12);
  });
});

describe('deterministic dC on WebGPU (Dawn; lavapipe in CI)', () => {
  let ctx: WebgpuContext | null = null;
  beforeAll(async () => {
    ctx = await testWebgpu();
  });
  afterAll(() => ctx && releaseWebgpu(ctx));
  // Per-row negatives: the first case at the default schedules, the others at one lavapipe compiles faster.
  const quick = (c: Case, i: number) => i > 0 && !c.share;
  CASES.filter((x) => !x.fused).forEach((c, i) => {
    const title = `${name(c)}${quick(c, i) ? ' (quick schedule)' : ''}`;
    it(`${title}: close to the reference, bit-identical twice, at the default scale and at 2^40`, async (t) => {
      if (skipTest(t, WEBGPU_ADAPTER, !!ctx) || !ctx) return;
      const p = problemOf(c);
      const gradOutput = gradOf(p);
      const ref = referenceCce(p, { gradOutput });
      const schedule = quick(c, i) ? QUICK_WGSL_SCHEDULE : undefined;
      for (const o of [{}, { dCScale: 2 ** 40 }] as RunOptions[]) {
        const a = await runCceWebgpu(ctx, p, { gradOutput, deterministic: true, schedule, ...o });
        const b = await runCceWebgpu(ctx, p, { gradOutput, deterministic: true, schedule, ...o });
        expect(relErr(a.dC, ref.dC)).toBeLessThan(tol(c.dtype));
        expect(relErr(a.dE, ref.dE)).toBeLessThan(tol(c.dtype));
        expect(Buffer.from(a.dC.buffer).equals(Buffer.from(b.dC.buffer))).toBe(true);
      }
    });
  });
});

describe('emitted deterministic kernels', () => {
  const variants: CceOptions[] = [
    { mode: 'sampled', dtype: 'f16', sampling: 'uniform', grad: 'scalar', deterministic: true },
    { mode: 'sampled', dtype: 'bf16', sampling: 'given', negatives: 'philox', share: 64, grad: 'perRow', deterministic: true },
  ];
  for (const o of variants)
    for (const k of [cceBackward(o), ...(o.grad === 'scalar' ? [cceFused(o)] : [])]) {
      it(`${k.name} ${o.share ? 'shared' : 'per row'}: dC is int64 with integer atomics on every target`, () => {
        expect(k.params.find((p) => p.name === 'dC')).toMatchObject({ access: 'atomic', fixed: true });
        expect(k.params.some((p) => p.name === 'dC_scale' && p.kind === 'scalar')).toBe(true);
        const s = o.share ? { ...DEFAULT_SCHEDULE, rows: 4 as const } : DEFAULT_SCHEDULE;
        const cuda = compileKernel(k, s, 'cuda', CAPS.cuda).source;
        expect(cuda).toMatch(/unsigned long long\* __restrict__ dC/);
        expect(cuda).toMatch(/ccekit_fixed_add\(&dC\[/);
        expect(cuda).not.toMatch(/ccekit_red[24]\(&dC|atomicAdd\(&dC/);
        const wgsl = compileKernel(k, s, 'wgsl', CAPS.wgsl).source;
        const helper = wgsl.slice(wgsl.indexOf('fn ccekit_atomic_add_dC'));
        expect(helper).toMatch(/atomicAdd\(&dC\[2i \* i\]/);
        expect(helper.slice(0, helper.indexOf('\n}'))).not.toMatch(/atomicCompareExchangeWeak/);
        const triton = compileKernel(k, { ...s, rows: o.share ? 64 : s.rows, lanes: 1 }, 'triton', CAPS.triton).source;
        expect(triton).toMatch(/tl\.atomic_add\(dC \+ [^\n]*libdevice\.rint\([^\n]*dC_scale\)\.to\(tl\.int64\)/);
      });
    }
});
