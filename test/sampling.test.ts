// In-kernel negative sampling (Philox4x32-10 + Walker alias tables): known-answer vectors, the statistics of
// the draws, and bit-for-bit agreement of the host twin, the compiled CPU kernel and the WGSL kernel (Dawn).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lower } from '../codegen/lower.js';
import { cceSamples } from '../dsl/cce.js';
import { CAPS } from '../targets/registry.js';
import { referenceCce } from '../runtime/cpu/reference.js';
import { compileJs } from '../targets/js/emit.js';
import { runCceCpu } from '../runtime/cpu/run.js';
import { buildAlias, mulhi32, philox4x32, philoxNegatives, samplerInputs } from '../runtime/philox.js';
import type { CceProblem } from '../runtime/problem.js';
import { randomProblem, Rng } from '../runtime/random.js';
import { releaseWebgpu, type WebgpuContext } from '../runtime/webgpu/device.js';
import { runCceWebgpu, samplesWebgpu } from '../runtime/webgpu/run.js';
import { QUICK_WGSL_SCHEDULE, WEBGPU_ADAPTER, skipTest, testWebgpu } from './support/toolchains.js';

const hex = (xs: number[]) => xs.map((x) => x.toString(16).padStart(8, '0'));

/** Upper tail of chi-square through the Wilson–Hilferty normal approximation: the z score. */
function chiSquareZ(counts: number[], expected: number[]): number {
  let chi = 0;
  let df = -1;
  counts.forEach((c, i) => {
    if (expected[i]! > 0) {
      chi += (c - expected[i]!) ** 2 / expected[i]!;
      df++;
    }
  });
  const a = 2 / (9 * df);
  return ((chi / df) ** (1 / 3) - (1 - a)) / Math.sqrt(a);
}

function philoxProblem(popularity: boolean, seed: number): CceProblem {
  const p = randomProblem({ N: 61, D: 5, V: 211, K: 37, dtype: 'f32', seed: 5, popularity, ignoreFraction: 0.1 });
  return { ...p, negatives: undefined, philoxSeed: seed };
}

function cpuSamples(p: CceProblem): Int32Array {
  const s = { rows: 8, lanes: 1, vec: 1, dChunks: 1, samplesPerStep: 4, stages: 1 } as const;
  const fn = compileJs(lower(cceSamples({ sampling: p.itemProbs ? 'given' : 'uniform' }), s, CAPS.cpu));
  const smp = samplerInputs(p);
  const samples = new Int32Array(p.N * p.K).fill(-1);
  fn({ samples, alias_table: smp.alias ?? new Uint32Array(0) }, { N: p.N, D: p.D, V: p.V, K: p.K, V2: smp.V2, seed_lo: smp.seed_lo, seed_hi: smp.seed_hi }, Math.ceil(p.N / 8));
  return samples;
}

describe('Philox4x32-10', () => {
  it('matches the published known-answer vectors', () => {
    expect(hex(philox4x32([0, 0, 0, 0], [0, 0]))).toEqual(['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
    const f = 0xffffffff;
    expect(hex(philox4x32([f, f, f, f], [f, f]))).toEqual(['408f276d', '41c83b0e', 'a20bc7c6', '6d5451fd']);
    expect(hex(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]))).toEqual(['d16cfe09', '94fdcceb', '5001e420', '24126ea1']);
  });

  it('mulhi32 is the high word of the exact product', () => {
    const r = new Rng(9);
    for (let i = 0; i < 2000; i++) {
      const a = r.nextU32(), b = r.nextU32();
      expect(mulhi32(a, b)).toBe(Number((BigInt(a) * BigInt(b)) >> 32n));
    }
    expect(mulhi32(0xffffffff, 0xffffffff)).toBe(0xfffffffe);
  });
});

describe('sampling distributions', () => {
  it('the alias table reproduces q exactly (up to 2^-32 per column)', () => {
    const r = new Rng(4);
    const q = Array.from({ length: 97 }, (_, v) => (v % 7 === 0 ? 0 : r.next() ** 3));
    const total = q.reduce((a, b) => a + b, 0);
    const t = buildAlias(q);
    const got = new Float64Array(q.length);
    for (let v = 0; v < q.length; v++) {
      const keep = t.threshold[v] === 0xffffffff ? 1 : t.threshold[v]! / 2 ** 32;
      got[v] += keep / q.length;
      got[t.alias[v]!] += (1 - keep) / q.length;
    }
    q.forEach((x, v) => expect(Math.abs(got[v]! - x / total)).toBeLessThan(1e-8));
  });

  it('uniform draws pass a chi-square test', () => {
    const V = 101;
    const counts = new Array(V).fill(0);
    philoxNegatives(400, 250, V, Date.now() % 1e6).forEach((n) => counts[n]++);
    expect(Math.abs(chiSquareZ(counts, new Array(V).fill(100000 / V)))).toBeLessThan(4.5);
  });

  it('alias draws follow a skewed q (chi-square), and never draw a zero-probability item', () => {
    const V = 301;
    const q = Array.from({ length: V }, (_, v) => (v % 10 === 3 ? 0 : 1 / (v + 1) ** 1.1));
    const total = q.reduce((a, b) => a + b, 0);
    const counts = new Array(V).fill(0);
    const draws = philoxNegatives(500, 400, V, Date.now() % 1e6, buildAlias(q));
    draws.forEach((n) => counts[n]++);
    q.forEach((x, v) => x === 0 && expect(counts[v]).toBe(0));
    expect(Math.abs(chiSquareZ(counts, q.map((x) => (x / total) * draws.length)))).toBeLessThan(4.5);
    // A wrong distribution fails the same test (the test can fail).
    expect(chiSquareZ(counts, new Array(V).fill(draws.length / V))).toBeGreaterThan(10);
  });
});

describe('in-kernel sampling: the same indices on every target', () => {
  let ctx: WebgpuContext | null = null;
  beforeAll(async () => {
    ctx = await testWebgpu();
  });
  afterAll(() => ctx && releaseWebgpu(ctx));

  const hostDraws = (p: CceProblem) =>
    philoxNegatives(p.N, p.K, p.V, p.philoxSeed!, p.itemProbs ? buildAlias(p.itemProbs) : undefined);
  for (const popularity of [false, true]) {
    const label = popularity ? 'alias (given q)' : 'uniform';
    it(`${label}: host twin = compiled CPU kernel`, () => {
      const p = philoxProblem(popularity, 2 ** 40 + 12345);
      const host = hostDraws(p);
      expect(Array.from(cpuSamples(p))).toEqual(Array.from(host));
      // A different seed draws different items.
      expect(Array.from(philoxNegatives(p.N, p.K, p.V, p.philoxSeed! + 1))).not.toEqual(Array.from(host));
    });
    it(`${label}: host twin = WGSL kernel`, async (t) => {
      if (skipTest(t, WEBGPU_ADAPTER, !!ctx) || !ctx) return;
      const p = philoxProblem(popularity, 2 ** 40 + 12345);
      expect(Array.from(await samplesWebgpu(ctx, p))).toEqual(Array.from(hostDraws(p)));
    });
  }

  const sumProblem = (popularity: boolean) => ({ ...philoxProblem(popularity, 77), reduction: 'sum' as const });
  const relLoss = (a: number | Float64Array, b: number | Float64Array) =>
    Math.abs((a as number) - (b as number)) / Math.abs(b as number);
  it('CCE- with in-kernel negatives equals the reference on the same draws (CPU executor)', () => {
    for (const popularity of [false, true]) {
      const p = sumProblem(popularity);
      const ref = referenceCce(p);
      const cpu = runCceCpu(p);
      expect(relLoss(cpu.loss, ref.loss)).toBeLessThan(1e-12);
      expect(Array.from(cpu.kAccepted)).toEqual(Array.from(ref.kAccepted));
    }
  });

  it('CCE- with in-kernel negatives equals the reference on the same draws (WebGPU)', async (t) => {
    if (skipTest(t, WEBGPU_ADAPTER, !!ctx) || !ctx) return;
    for (const popularity of [false, true]) {
      const p = sumProblem(popularity);
      const ref = referenceCce(p);
      // uniform at the default schedules, alias at a schedule lavapipe compiles faster
      const gpu = await runCceWebgpu(ctx, p, { schedule: popularity ? QUICK_WGSL_SCHEDULE : undefined });
      expect(relLoss(gpu.loss, ref.loss)).toBeLessThan(1e-5);
      expect(Array.from(gpu.kAccepted)).toEqual(Array.from(ref.kAccepted));
    }
  });
});
