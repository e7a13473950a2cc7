import { describe, it, expect } from 'vitest';
import {
  bf16BitsToF32,
  decode,
  encode,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  roundTo,
  type FloatDType,
} from '../runtime/numeric.js';
import { Rng, randomProblem, type GenOptions } from '../runtime/random.js';
import type { CceProblem, Reduction } from '../runtime/problem.js';
import { referenceCce, referenceCceF64, type ReferenceOptions, type ScalarMap } from '../runtime/cpu/reference.js';

describe('numeric: f16', () => {
  const cases: Array<[number, number]> = [
    [1, 0x3c00],
    [-2, 0xc000],
    [0, 0x0000],
    [-0, 0x8000],
    [65504, 0x7bff],
    [2 ** -14, 0x0400], // smallest normal, 6.1035e-5
    [6.1e-5, 0x03ff], // just below it: largest subnormal
    [5.96e-8, 0x0001], // smallest subnormal 2^-24
    [0.1, 0x2e66],
    [0.5, 0x3800],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
  ];
  it.each(cases)('encodes %s as bits %i', (x, bits) => {
    expect(f32ToF16Bits(x)).toBe(bits);
  });
  it('decodes known values', () => {
    expect(f16BitsToF32(0x3c00)).toBe(1);
    expect(f16BitsToF32(0xc000)).toBe(-2);
    expect(f16BitsToF32(0x7bff)).toBe(65504);
    expect(f16BitsToF32(0x0400)).toBe(2 ** -14);
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24);
    expect(f16BitsToF32(0x2e66)).toBe(0.0999755859375);
    expect(f16BitsToF32(0x7c00)).toBe(Infinity);
    expect(f16BitsToF32(0xfc00)).toBe(-Infinity);
    expect(Object.is(f16BitsToF32(0x8000), -0)).toBe(true);
    expect(f16BitsToF32(0x7e00)).toBeNaN();
  });
  it('rounds ties to even', () => {
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie between 0x3c00 and 0x3c01 -> even
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie between 0x3c01 and 0x3c02 -> even
    expect(f32ToF16Bits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // just above the tie
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000); // subnormal tie with zero
    expect(f32ToF16Bits(3 * 2 ** -25)).toBe(0x0002); // subnormal tie 1|2 -> 2
    expect(f32ToF16Bits(2 ** -25 + 2 ** -35)).toBe(0x0001);
    expect(f32ToF16Bits(2 ** -14 - 2 ** -25)).toBe(0x0400); // subnormal rounding carries into the smallest normal
    expect(f32ToF16Bits(65519)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // tie above max rounds to inf
    expect(f32ToF16Bits(1e6)).toBe(0x7c00);
    expect(f32ToF16Bits(-1e-10)).toBe(0x8000);
  });
  it('handles nan', () => {
    const h = f32ToF16Bits(NaN);
    expect(h & 0x7c00).toBe(0x7c00);
    expect(h & 0x03ff).not.toBe(0);
    expect(f16BitsToF32(h)).toBeNaN();
  });
  it('round-trips every non-NaN bit pattern', () => {
    for (let h = 0; h < 0x10000; h++) {
      const x = f16BitsToF32(h);
      if (Number.isNaN(x)) continue;
      if (f32ToF16Bits(x) !== h) throw new Error(`f16 0x${h.toString(16)} does not round-trip`);
    }
  });
});

describe('numeric: bf16', () => {
  it('encodes known values', () => {
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(f32ToBf16Bits(-2)).toBe(0xc000);
    expect(f32ToBf16Bits(1 / 3)).toBe(0x3eab);
    expect(f32ToBf16Bits(65504)).toBe(0x4780); // 65536
    expect(f32ToBf16Bits(Infinity)).toBe(0x7f80);
    expect(f32ToBf16Bits(-Infinity)).toBe(0xff80);
    expect(f32ToBf16Bits(-0)).toBe(0x8000);
    expect(f32ToBf16Bits(3.4e38)).toBe(0x7f80); // rounds past the largest finite bf16
  });
  it('decodes known values', () => {
    expect(bf16BitsToF32(0x3f80)).toBe(1);
    expect(bf16BitsToF32(0xc000)).toBe(-2);
    expect(bf16BitsToF32(0x3eab)).toBe(0.333984375);
    expect(bf16BitsToF32(0x7f80)).toBe(Infinity);
    expect(bf16BitsToF32(0x0001)).toBe(2 ** -133);
  });
  it('rounds ties to even', () => {
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie -> even
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie -> even
    expect(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
  });
  it('handles nan', () => {
    const b = f32ToBf16Bits(NaN);
    expect(b & 0x7f80).toBe(0x7f80);
    expect(b & 0x007f).not.toBe(0);
    expect(bf16BitsToF32(b)).toBeNaN();
  });
  it('round-trips every non-NaN bit pattern', () => {
    for (let b = 0; b < 0x10000; b++) {
      const x = bf16BitsToF32(b);
      if (Number.isNaN(x)) continue;
      if (f32ToBf16Bits(x) !== b) throw new Error(`bf16 0x${b.toString(16)} does not round-trip`);
    }
  });
});

describe('numeric: roundTo / encode / decode', () => {
  it('roundTo matches encode+decode', () => {
    const xs = [0.1, -1 / 3, 123.456, 1e-7, 7e4];
    for (const dt of ['f32', 'f16', 'bf16'] as FloatDType[]) {
      const dec = decode(dt, encode(dt, xs));
      xs.forEach((x, k) => expect(dec[k]).toBe(roundTo(dt, x)));
    }
    expect(roundTo('f32', 0.1)).toBe(Math.fround(0.1));
    expect(roundTo('f16', 0.1)).toBe(0.0999755859375);
    expect(roundTo('bf16', 1 / 3)).toBe(0.333984375);
    expect(roundTo('f16', 7e4)).toBe(Infinity);
  });
  it('uses the documented storage types', () => {
    expect(encode('f32', [1, 2])).toBeInstanceOf(Float32Array);
    expect(encode('f16', [1, 2])).toBeInstanceOf(Uint16Array);
    expect(encode('bf16', [1, 2])).toBeInstanceOf(Uint16Array);
    expect(Array.from(encode('f16', [1, -2]))).toEqual([0x3c00, 0xc000]);
  });
});

describe('random', () => {
  it('Rng is deterministic and in range', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    let same = 0;
    let sum = 0;
    for (let k = 0; k < 1000; k++) {
      const x = a.next();
      expect(x).toBe(b.next());
      if (x === c.next()) same++;
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThan(1);
      sum += x;
    }
    expect(same).toBe(0);
    expect(sum / 1000).toBeGreaterThan(0.45);
    expect(sum / 1000).toBeLessThan(0.55);
    const r = new Rng(7);
    for (let k = 0; k < 200; k++) {
      const n = r.int(5);
      expect(Number.isInteger(n) && n >= 0 && n < 5).toBe(true);
    }
    let m = 0;
    let s2 = 0;
    for (let k = 0; k < 4000; k++) {
      const z = r.normal();
      m += z;
      s2 += z * z;
    }
    expect(Math.abs(m / 4000)).toBeLessThan(0.1);
    expect(Math.abs(s2 / 4000 - 1)).toBeLessThan(0.1);
  });
  it('randomProblem is reproducible per seed and rounded to dtype', () => {
    const o: GenOptions = { N: 4, D: 3, V: 9, K: 4, dtype: 'bf16', seed: 5 };
    const p1 = randomProblem(o);
    const p2 = randomProblem(o);
    const p3 = randomProblem({ ...o, seed: 6 });
    expect(Array.from(p1.E)).toEqual(Array.from(p2.E));
    expect(Array.from(p1.negatives!)).toEqual(Array.from(p2.negatives!));
    expect(Array.from(p1.E)).not.toEqual(Array.from(p3.E));
    expect(p1.E).toBeInstanceOf(Uint16Array);
    // Uniform negatives never collide without collisionRate.
    for (let i = 0; i < o.N; i++) for (let j = 0; j < o.K; j++) expect(p1.negatives![i * o.K + j]).not.toBe(p1.targets[i]);
    const full = randomProblem({ ...o, mode: 'full' });
    expect(full.K).toBe(0);
    expect(full.negatives).toBeUndefined();
    const pop = randomProblem({ ...o, popularity: true });
    const q = pop.itemProbs!;
    expect(q.length).toBe(o.V);
    expect(q.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
  });
});

// ---------------------------------------------------------------------------
// Reference

function lossScalar(p: CceProblem, E: Float64Array, C: Float64Array, o: ReferenceOptions): number {
  const r = referenceCceF64(p, E, C, o);
  if (typeof r.loss === 'number') return r.loss * (typeof o.gradOutput === 'number' ? o.gradOutput : 1);
  // 'none': the scalar whose gradient is reported is sum_i g_i * loss_i.
  const g = o.gradOutput;
  let s = 0;
  for (let i = 0; i < r.loss.length; i++) s += r.loss[i]! * (g === undefined ? 1 : typeof g === 'number' ? g : g[i]!);
  return s;
}

function checkGradients(p: CceProblem, o: ReferenceOptions = {}): void {
  const E = decode(p.dtype, p.E);
  const C = decode(p.dtype, p.C);
  const res = referenceCceF64(p, E, C, o);
  const h = 1e-6;
  const fd = (arr: Float64Array, k: number): number => {
    const x0 = arr[k]!;
    arr[k] = x0 + h;
    const up = lossScalar(p, E, C, o);
    arr[k] = x0 - h;
    const down = lossScalar(p, E, C, o);
    arr[k] = x0;
    return (up - down) / (2 * h);
  };
  let maxGrad = 0;
  for (const g of [res.dE, res.dC]) for (const x of g) maxGrad = Math.max(maxGrad, Math.abs(x));
  expect(maxGrad).toBeGreaterThan(0);
  for (let k = 0; k < E.length; k++) {
    const num = fd(E, k);
    expect(Math.abs(num - res.dE[k]!), `dE[${k}]`).toBeLessThan(1e-7 + 1e-6 * Math.abs(num));
  }
  for (let k = 0; k < C.length; k++) {
    const num = fd(C, k);
    expect(Math.abs(num - res.dC[k]!), `dC[${k}]`).toBeLessThan(1e-7 + 1e-6 * Math.abs(num));
  }
}

const softcap = (c: number): ScalarMap => ({
  f: (x) => c * Math.tanh(x / c),
  df: (x) => 1 - Math.tanh(x / c) ** 2,
});

describe('reference: gradients vs central finite differences', () => {
  const reductions: Reduction[] = ['mean', 'sum', 'none'];
  const variants: Array<{ name: string; gen: Partial<GenOptions>; opts?: ReferenceOptions }> = [
    { name: 'plain', gen: {} },
    { name: 'collisions + ignored rows', gen: { collisionRate: 0.35, ignoreFraction: 0.3 } },
    { name: 'popularity q', gen: { popularity: true, collisionRate: 0.2 } },
    { name: 'softcap transform', gen: { collisionRate: 0.2, ignoreFraction: 0.2, scale: 2 }, opts: { transform: softcap(1.5) } },
    { name: 'custom correction', gen: { popularity: true }, opts: { correction: (lq) => -0.5 * lq } },
    { name: 'full mode', gen: { mode: 'full', ignoreFraction: 0.25 } },
    { name: 'full mode softcap', gen: { mode: 'full', scale: 2 }, opts: { transform: softcap(2) } },
  ];
  let seed = 100;
  for (const v of variants) {
    for (const reduction of reductions) {
      const s = seed++;
      it(`${v.name}, ${reduction}`, () => {
        const N = 3 + (s % 5);
        const base = randomProblem({ N, D: 3, V: 11, K: 5, dtype: 'f32', seed: s, ...v.gen });
        const p: CceProblem = { ...base, reduction };
        const gradOutput: ReferenceOptions['gradOutput'] =
          reduction === 'none' ? Float64Array.from({ length: N }, (_, i) => 0.5 + 0.25 * i) : 0.7;
        checkGradients(p, { ...v.opts, gradOutput });
      });
    }
  }
  it('exercises collisions and ignored rows in the generated problems', () => {
    const p = randomProblem({ N: 7, D: 3, V: 11, K: 5, dtype: 'f32', seed: 101, collisionRate: 0.35, ignoreFraction: 0.3 });
    const r = referenceCce(p);
    expect(r.nValid).toBeLessThan(7);
    expect(r.nValid).toBeGreaterThan(0);
    let rejected = 0;
    for (let i = 0; i < 7; i++) if (p.targets[i] !== p.ignoreIndex) rejected += 5 - r.kAccepted[i]!;
    expect(rejected).toBeGreaterThan(0);
  });
});

/** Build an f32 problem from exact small values. */
type HandSpec = Omit<Partial<CceProblem>, 'E' | 'C' | 'D'> & { E: number[]; C: number[]; D: number };
function handProblem(spec: HandSpec): CceProblem {
  const { E, C, D, ...rest } = spec;
  return {
    mode: 'sampled',
    N: E.length / D,
    V: C.length / D,
    K: 0,
    dtype: 'f32',
    targets: new Int32Array(0),
    ignoreIndex: -100,
    reduction: 'mean',
    ...rest,
    D,
    E: new Float32Array(E),
    C: new Float32Array(C),
  };
}

describe('reference: independent checks', () => {
  it('matches a hand computation for one row', () => {
    // D=2, V=4; e = (1, 0.5); target 2; negatives 0, 3, 2 (the last collides).
    const C = [0.5, -1, 0.25, 0.75, 1, 2, -0.5, 0.5];
    const p = handProblem({ D: 2, E: [1, 0.5], C, K: 3, targets: new Int32Array([2]), negatives: new Int32Array([0, 3, 2]) });
    const r = referenceCce(p);
    const s0 = 1 * 1 + 0.5 * 2; // 2
    const k = 2;
    const corr = Math.log(3); // -log q with q = 1/(V-1) = 1/3
    const s1 = 1 * 0.5 + 0.5 * -1 + corr - Math.log(k); // 0 + log(3/2)
    const s2 = 1 * -0.5 + 0.5 * 0.5 + corr - Math.log(k);
    const expected = Math.log(Math.exp(s0) + Math.exp(s1) + Math.exp(s2)) - s0;
    expect(r.loss).toBeCloseTo(expected, 14);
    expect(r.rowLoss[0]).toBeCloseTo(expected, 14);
    expect(r.lse[0]).toBeCloseTo(expected + s0, 14);
    expect(r.kAccepted[0]).toBe(2);
    expect(r.nValid).toBe(1);
    // dE = (p0-1) c_t + p1 c_0 + p2 c_3
    const z = Math.exp(s0) + Math.exp(s1) + Math.exp(s2);
    const [p0, p1, p2] = [Math.exp(s0) / z, Math.exp(s1) / z, Math.exp(s2) / z];
    expect(r.dE[0]).toBeCloseTo((p0 - 1) * 1 + p1 * 0.5 + p2 * -0.5, 14);
    expect(r.dE[1]).toBeCloseTo((p0 - 1) * 2 + p1 * -1 + p2 * 0.5, 14);
    expect(r.dC[2 * 2]).toBeCloseTo((p0 - 1) * 1, 14);
    expect(r.dC[1 * 2]).toBe(0); // item 1 never used
  });

  it('counts a repeated negative twice', () => {
    const C = [0.5, -1, 0.25, 0.75, 1, 2];
    const p = handProblem({ D: 2, E: [1, 0.5], C, K: 2, targets: new Int32Array([2]), negatives: new Int32Array([0, 0]), reduction: 'sum' });
    const r = referenceCce(p);
    const s0 = 2;
    const s = 0 + Math.log(2) - Math.log(2); // two copies of item 0, each f + log(V-1) - log(2)
    const expected = Math.log(Math.exp(s0) + 2 * Math.exp(s)) - s0;
    expect(r.loss).toBeCloseTo(expected, 14);
    const pn = Math.exp(s) / Math.exp(expected + s0);
    expect(r.dC[0]).toBeCloseTo(2 * pn * 1, 14);
    expect(r.dC[1]).toBeCloseTo(2 * pn * 0.5, 14);
  });

  it('is invariant to a constant shift of all logits of a row', () => {
    const p = randomProblem({ N: 6, D: 3, V: 11, K: 5, dtype: 'f32', seed: 9, collisionRate: 0.2, popularity: true });
    for (const mode of ['sampled', 'full'] as const) {
      const q: CceProblem = mode === 'full' ? { ...p, mode, K: 0 } : p;
      const a = referenceCce({ ...q, reduction: 'none' });
      const b = referenceCce({ ...q, reduction: 'none' }, { transform: { f: (x) => x + 3.25, df: () => 1 } });
      for (let i = 0; i < 6; i++) {
        expect((b.loss as Float64Array)[i]).toBeCloseTo((a.loss as Float64Array)[i]!, 12);
        expect(b.lse[i]).toBeCloseTo(a.lse[i]! + 3.25, 12);
      }
      for (let k = 0; k < a.dE.length; k++) expect(b.dE[k]).toBeCloseTo(a.dE[k]!, 12);
      for (let k = 0; k < a.dC.length; k++) expect(b.dC[k]).toBeCloseTo(a.dC[k]!, 12);
    }
  });

  it('gives loss 0 and no gradient for a row whose negatives all equal the target', () => {
    const p = randomProblem({ N: 3, D: 3, V: 11, K: 5, dtype: 'f32', seed: 3 });
    const neg = p.negatives!;
    for (let j = 0; j < 5; j++) neg[1 * 5 + j] = p.targets[1]!;
    const r = referenceCce({ ...p, reduction: 'none' });
    expect(r.kAccepted[1]).toBe(0);
    expect(r.rowLoss[1]).toBe(0);
    const E = decode('f32', p.E);
    const C = decode('f32', p.C);
    let s0 = 0;
    for (let d = 0; d < 3; d++) s0 += E[3 + d]! * C[p.targets[1]! * 3 + d]!;
    expect(r.lse[1]).toBe(s0);
    for (let d = 0; d < 3; d++) expect(r.dE[3 + d]).toBe(0);
    expect(r.rowLoss[0]).toBeGreaterThan(0);
  });

  it('drops ignored rows from the mean', () => {
    const p = randomProblem({ N: 5, D: 3, V: 11, K: 5, dtype: 'f32', seed: 4 });
    p.targets[0] = p.ignoreIndex;
    p.targets[3] = p.ignoreIndex;
    const none = referenceCce({ ...p, reduction: 'none' });
    const mean = referenceCce({ ...p, reduction: 'mean' });
    const sum = referenceCce({ ...p, reduction: 'sum' });
    expect(none.nValid).toBe(3);
    const rl = none.loss as Float64Array;
    expect(rl[0]).toBe(0);
    expect(rl[3]).toBe(0);
    expect(none.lse[0]).toBe(0);
    expect(sum.loss).toBeCloseTo(rl[1]! + rl[2]! + rl[4]!, 14);
    expect(mean.loss).toBeCloseTo((rl[1]! + rl[2]! + rl[4]!) / 3, 14);
    for (let d = 0; d < 3; d++) {
      expect(mean.dE[d]).toBe(0);
      expect(mean.dE[9 + d]).toBe(0);
    }
    // Mean gradient is the sum gradient over nValid.
    for (let k = 0; k < sum.dC.length; k++) expect(mean.dC[k]).toBeCloseTo(sum.dC[k]! / 3, 14);
    // All rows ignored: mean is 0, gradients 0.
    p.targets.fill(p.ignoreIndex);
    const empty = referenceCce({ ...p, reduction: 'mean' });
    expect(empty.loss).toBe(0);
    expect(empty.nValid).toBe(0);
    expect(empty.dE.every((x) => x === 0)).toBe(true);
  });

  it('full mode equals a direct softmax formula', () => {
    const p = randomProblem({ N: 4, D: 3, V: 7, K: 0, dtype: 'f32', seed: 12, mode: 'full' });
    const E = decode('f32', p.E);
    const C = decode('f32', p.C);
    const r = referenceCce({ ...p, reduction: 'none' });
    for (let i = 0; i < 4; i++) {
      const t = p.targets[i]!;
      const z: number[] = [];
      for (let v = 0; v < 7; v++) z.push(E[i * 3]! * C[v * 3]! + E[i * 3 + 1]! * C[v * 3 + 1]! + E[i * 3 + 2]! * C[v * 3 + 2]!);
      const denom = z.reduce((a, x) => a + Math.exp(x), 0);
      expect(r.rowLoss[i]).toBeCloseTo(-Math.log(Math.exp(z[t]!) / denom), 12);
      for (let d = 0; d < 3; d++) {
        let g = 0;
        for (let v = 0; v < 7; v++) g += (Math.exp(z[v]!) / denom - (v === t ? 1 : 0)) * C[v * 3 + d]!;
        expect(r.dE[i * 3 + d]).toBeCloseTo(g, 12);
      }
    }
  });

  it('full mode equals sampled mode with every non-target item as a negative under uniform q and the default correction', () => {
    // s_j = f(r) - log(1/(V-1)) - log(V-1) = f(r): the sampled softmax is the full one.
    const V = 6;
    const full = randomProblem({ N: 3, D: 3, V, K: 0, dtype: 'f32', seed: 21, mode: 'full' });
    const K = V - 1;
    const negatives = new Int32Array(3 * K);
    for (let i = 0; i < 3; i++) {
      let j = 0;
      for (let v = 0; v < V; v++) if (v !== full.targets[i]) negatives[i * K + j++] = v;
    }
    const sampled: CceProblem = { ...full, mode: 'sampled', K, negatives };
    const a = referenceCce(full);
    const b = referenceCce(sampled);
    expect(b.loss as number).toBeCloseTo(a.loss as number, 12);
    for (let k = 0; k < a.dE.length; k++) expect(b.dE[k]).toBeCloseTo(a.dE[k]!, 12);
    for (let k = 0; k < a.dC.length; k++) expect(b.dC[k]).toBeCloseTo(a.dC[k]!, 12);
  });

  it('validates the problem and decodes f16/bf16 inputs', () => {
    const p = randomProblem({ N: 3, D: 3, V: 11, K: 5, dtype: 'f16', seed: 2 });
    const r = referenceCce(p);
    const r64 = referenceCceF64(p, decode('f16', p.E), decode('f16', p.C));
    expect(r.loss).toBe(r64.loss);
    expect(() => referenceCce({ ...p, V: 1 })).toThrow(/^V:/);
  });
});
