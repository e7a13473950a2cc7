// The one CCE- step (runtime/step.ts) on every backend here: each kind of step (separate passes, fused, frozen
// items, dC by item; deterministic and shared variants) on the CPU executor and on WebGPU (lavapipe in CI),
// against the float64 reference on fresh random inputs at odd sizes; the rule table; the timed loop times the
// passes the step runs. With CI=true a missing adapter fails instead of skipping.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relErr } from '../runtime/check.js';
import { referenceCce } from '../runtime/cpu/reference.js';
import { runCceCpu } from '../runtime/cpu/run.js';
import type { FloatDType } from '../runtime/numeric.js';
import type { CceProblem, Reduction } from '../runtime/problem.js';
import { randomProblem } from '../runtime/random.js';
import { type ProblemCase, caseName, caseProblem } from './support/cases.js';
import { type RunOptions, STEP_RULES, type StepResult, planStep, stepKind } from '../runtime/step.js';
import { defaultSchedules } from '../runtime/defaults.js';
import { releaseWebgpu, type WebgpuContext } from '../runtime/webgpu/device.js';
import { runCceWebgpu } from '../runtime/webgpu/run.js';
import { CAPS } from '../targets/registry.js';
import { WEBGPU_ADAPTER, skipTest, testWebgpu } from './support/toolchains.js';

let ctx: WebgpuContext | null = null;
beforeAll(async () => {
  ctx = await testWebgpu();
});
afterAll(() => {
  if (ctx) releaseWebgpu(ctx);
});

const seed = () => Math.floor(Math.random() * 1e9);

interface Case extends ProblemCase {
  o: RunOptions;
}

const CASES: Case[] = [
  { N: 37, D: 19, V: 101, K: 9, dtype: 'f32', reduction: 'mean', o: { fused: true } },
  { N: 70, D: 64, V: 503, K: 23, dtype: 'f16', reduction: 'sum', o: { fused: true }, popularity: true },
  { N: 45, D: 33, V: 211, K: 13, dtype: 'bf16', reduction: 'mean', o: { fused: true }, share: 16 },
  { N: 29, D: 31, V: 97, K: 7, dtype: 'f32', reduction: 'sum', o: { fused: true, deterministic: true }, philox: true },
  { N: 41, D: 57, V: 301, K: 17, dtype: 'f16', reduction: 'mean', o: { frozenC: true } },
  { N: 33, D: 64, V: 127, K: 11, dtype: 'bf16', reduction: 'sum', o: { frozenC: true }, share: 32, philox: true },
  { N: 53, D: 65, V: 199, K: 15, dtype: 'f32', reduction: 'mean', o: { byItem: true }, popularity: true },
  { N: 31, D: 24, V: 89, K: 5, dtype: 'f16', reduction: 'none', o: { deterministic: true } },
];

const name = (c: Case) => `${caseName(c)} ${Object.keys(c.o).join('+')}`;
const problem = (c: Case) => caseProblem(c, { ignoreFraction: 0.15, collisionRate: 0.15 });

/** What a step of this kind returns, against the reference; the outputs it does not return are empty. */
function expectStep(got: StepResult, p: CceProblem, o: RunOptions): void {
  const ref = referenceCce(p, { gradOutput: o.gradOutput });
  const [tl, tg] = p.dtype === 'f32' ? [1e-5, 1e-4] : [1e-3, 1e-3];
  const l = (x: number | Float64Array) => (typeof x === 'number' ? [x] : x);
  expect(relErr(l(got.loss), l(ref.loss))).toBeLessThan(tl);
  expect(relErr(got.rowLoss, ref.rowLoss)).toBeLessThan(tl);
  expect(relErr(got.dE, ref.dE)).toBeLessThan(tg);
  const kind = stepKind(p, o);
  expect(got.passes).toEqual(STEP_RULES[kind].passes.slice(0, kind === 'byItem' && p.K === 0 ? 1 : undefined));
  if (kind === 'frozen') expect(got.dC.length).toBe(0);
  else expect(relErr(got.dC, ref.dC)).toBeLessThan(tg);
  if (kind === 'separate') {
    expect(relErr(got.lse, ref.lse)).toBeLessThan(tl);
    if (p.mode === 'sampled') expect(Array.from(got.kAccepted)).toEqual(Array.from(ref.kAccepted));
  } else {
    expect(got.lse.length).toBe(0);
    expect(got.kAccepted.length).toBe(0);
  }
}

describe('every kind of step on every backend', () => {
  for (const c of CASES) {
    const o = (): RunOptions => ({
      ...c.o, gradOutput: c.reduction === 'none' ? Float64Array.from({ length: c.N }, (_, i) => 0.5 + (i % 3)) : 1.25,
    });
    it(`CPU ${name(c)}`, () => {
      const p = problem(c);
      const ro = o();
      expectStep(runCceCpu(p, ro), p, ro);
    });
    it(`WebGPU ${name(c)}`, async (t) => {
      if (skipTest(t, WEBGPU_ADAPTER, !!ctx) || !ctx) return;
      const p = problem(c);
      const ro = o();
      expectStep(await runCceWebgpu(ctx, p, ro), p, ro);
    });
  }

  it('the timed loop times the passes the step runs: one fused kernel, or forward then the rest', async (t) => {
    if (skipTest(t, WEBGPU_ADAPTER, !!ctx) || !ctx) return;
    const p = { ...randomProblem({ N: 64, D: 32, V: 211, K: 16, dtype: 'f32', seed: seed() }), reduction: 'mean' as const };
    const fused = await runCceWebgpu(ctx, p, { fused: true, repeats: 2, warmupMs: 0 });
    expect(fused.timings.map((x) => x.kernel)).toEqual(['cce_minus_fused']);
    const frozen = await runCceWebgpu(ctx, p, { frozenC: true, repeats: 2, warmupMs: 0 });
    expect(frozen.timings.map((x) => x.kernel)).toEqual(['cce_minus_fused_de']);
    const byItem = runCceCpu(p, { byItem: true, repeats: 2 });
    expect(byItem.timings).toHaveLength(2);
    expect(byItem.timings[1]!.kernel).toMatch(/count.*scan.*fill.*reduce|count/);
    for (const x of [...fused.timings, ...frozen.timings, ...byItem.timings]) expect(x.samples).toHaveLength(2);
  });
});

describe('the plan of a step', () => {
  const base = () => ({ ...randomProblem({ N: 21, D: 16, V: 50, K: 6, dtype: 'f16', seed: seed() }), reduction: 'mean' as const });
  const plan = (p: CceProblem, o: RunOptions) =>
    planStep(p, o, CAPS.cpu, defaultSchedules('cpu', { D: p.D, dtype: p.dtype, shared: false, byItem: !!o.byItem }));

  it('allocates only the buffers its passes write, and poisons every output it reads back', () => {
    const names = (o: RunOptions) => plan(base(), o).buffers.filter((b) => b.role !== 'input').map((b) => b.name);
    expect(names({})).toEqual(['loss', 'lse', 'kacc', 'dE', 'dC']);
    expect(names({ fused: true })).toEqual(['loss', 'dE', 'dC']);
    expect(names({ frozenC: true })).toEqual(['loss', 'dE']);
    expect(names({ byItem: true }).slice(0, 4)).toEqual(['loss', 'dE', 'lse_k', 'dC']);
    const poisoned = plan(base(), {}).buffers.filter((b) => b.poison !== undefined).map((b) => b.name);
    expect(poisoned).toEqual(['loss', 'lse', 'kacc', 'dE']);
    expect(plan(base(), { deterministic: true }).buffers.find((b) => b.name === 'dC')!.dtype).toBe('i64');
  });

  it('refuses what the kernels do not serve, naming the option, before anything is compiled', () => {
    const none = { ...base(), reduction: 'none' as const };
    expect(() => plan(none, { fused: true })).toThrow(/^fused: needs a scalar upstream gradient/);
    expect(() => plan(none, { frozenC: true })).toThrow(/^frozenC: needs a scalar upstream gradient/);
    expect(() => plan(base(), { byItem: true, deterministic: true })).toThrow(/^byItem: .*not deterministic/);
    const shared = randomProblem({ N: 21, D: 16, V: 50, K: 6, dtype: 'f16', seed: seed(), shareRows: 16 });
    expect(() => plan({ ...shared, reduction: 'mean' }, { byItem: true })).toThrow(/^byItem: is for per-row/);
  });

  it('one cache key per kernel: the same spec for the same pass, options, schedule and exactness', () => {
    const a = plan(base(), {}).kernels.map((k) => k.key);
    const b = plan(base(), {}).kernels.map((k) => k.key);
    expect(a).toEqual(b);
    expect(new Set(a).size).toBe(2);
    const det = plan(base(), { deterministic: true }).kernels.map((k) => k.key);
    expect(det.some((k) => a.includes(k))).toBe(false);
  });
});

describe('the tuner over any backend', () => {
  it('CPU executor: rejects none of its valid candidates, stores the winner keyed by the device, then hits', async () => {
    const { tune, tuneKey } = await import('../runtime/autotune/tune.js');
    const { TuningDb } = await import('../runtime/autotune/db.js');
    const { cpuBackend } = await import('../runtime/cpu/run.js');
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const db = new TuningDb(join(mkdtempSync(join(tmpdir(), 'ccekit-tune-')), 'tuning.json'));
    const p = { N: 64, V: 300, K: 8, D: 16 };
    const o = { mode: 'sampled', dtype: 'f32', sampling: 'uniform', grad: 'scalar', negatives: 'tensor' } as const;
    const lines: string[] = [];
    const r = tune(cpuBackend, db, p, o, { repeats: 1, finalists: 1, progress: (l) => lines.push(l) });
    expect(r.cacheHit).toBe(false);
    expect(r.entry!.key).toEqual(tuneKey(cpuBackend, p, o));
    expect(r.entry!.key.device).toEqual(cpuBackend.identity);
    expect(lines.some((l) => l.startsWith('best '))).toBe(true);
    expect(r.entry!.candidates.filter((c) => c.ms === null)).toEqual([]);
    const again = tune(cpuBackend, db, p, o, {});
    expect(again.cacheHit).toBe(true);
    expect(again.entry!.schedule).toEqual(r.entry!.schedule);
  });
});
