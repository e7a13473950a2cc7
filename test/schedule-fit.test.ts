// A schedule fit never yields a kernel that miscomputes: fitD's output suits D for every D in 1..8193, every
// runtime refuses a (schedule, D) pair that does not (checkScheduleForD), and random D × random schedules,
// fitted as the runtimes fit them, match the float64 reference on the CPU executor and on WebGPU (lavapipe in
// CI). The draws take a fresh seed per run; every failure names it (CCEKIT_TEST_SEED=<seed> replays a run).
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DEFAULT_SCHEDULE, SCHEDULE_SPACE, type Schedule, ScheduleError, blockD, checkScheduleForD, fitD, fitProblem } from '../codegen/schedule.js';
import { CAPS } from '../targets/registry.js';
import { gpuTolerance, relErr } from '../runtime/check.js';
import { type CceResult, runCceCpu } from '../runtime/cpu/run.js';
import { referenceCce } from '../runtime/cpu/reference.js';
import { type CudaKernel, CudaRuntime } from '../runtime/cuda/run.js';
import { kernelSpec } from '../runtime/kernels.js';
import { lower } from '../codegen/lower.js';
import { cceForward } from '../dsl/cce.js';
import type { Cuda } from '../runtime/cuda/driver.js';
import type { Nvrtc } from '../runtime/cuda/nvrtc.js';
import type { FloatDType } from '../runtime/numeric.js';
import type { CceProblem, Reduction } from '../runtime/problem.js';
import { Rng, randomProblem } from '../runtime/random.js';
import { releaseWebgpu, type WebgpuContext } from '../runtime/webgpu/device.js';
import { runCceWebgpu } from '../runtime/webgpu/run.js';
import { WEBGPU_ADAPTER, skipTest, testWebgpu } from './support/toolchains.js';

const SEED = Number(process.env.CCEKIT_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
const SEED_NOTE = `seed ${SEED} (replay: CCEKIT_TEST_SEED=${SEED} npx vitest run test/schedule-fit.test.ts)`;
const rng = new Rng(SEED);
const int = (n: number) => Math.floor(rng.next() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;

/** The vector lengths of the issue that computed wrong gradients on WebGPU before fitD kept vec | D. */
const ISSUE_DS = [257, 385, 513, 769, 1002, 1025, 8193];
const MAX_D = 8193;
/** The issue's schedule: `--lanes 1 --vec 1 --d-chunks 1`, the rest the CLI's defaults. */
const ISSUE_SCHEDULE: Schedule = { rows: 4, lanes: 1, vec: 1, dChunks: 1, samplesPerStep: 2, stages: 1 };

/**
 * A random schedule of SCHEDULE_SPACE with at most `maxInvocations` rows·lanes (what a device accepts) and
 * samplesPerStep among `steps` (it plays no part in the fit; lavapipe's compile time grows with it, ~1 s at 1 and
 * over a minute at 64, so WebGPU draws from the small ones).
 */
function randomSchedule(maxInvocations = 256, steps: readonly number[] = SCHEDULE_SPACE.samplesPerStep): Schedule {
  const lanes = pick(SCHEDULE_SPACE.lanes.filter((l) => l <= maxInvocations));
  const rows = pick(SCHEDULE_SPACE.rows.filter((r) => r * lanes <= maxInvocations));
  const { vec, dChunks, stages } = SCHEDULE_SPACE;
  const samplesPerStep = pick(steps);
  return { rows, lanes, vec: pick(vec), dChunks: pick(dChunks), samplesPerStep, stages: pick(stages) } as Schedule;
}

const suits = (s: Schedule, D: number): boolean => {
  try {
    checkScheduleForD(s, D);
    return true;
  } catch {
    return false;
  }
};

describe(`fitD and checkScheduleForD (${SEED_NOTE})`, () => {
  it('every D in 1..8193: the fit of random and edge schedules suits D; one that suits D stays as it is', () => {
    const edges: Schedule[] = [
      ISSUE_SCHEDULE,
      { ...ISSUE_SCHEDULE, lanes: 2 },
      { ...ISSUE_SCHEDULE, vec: 8 },
      { rows: 1, lanes: 256, vec: 8, dChunks: 256, samplesPerStep: 64, stages: 5 },
      DEFAULT_SCHEDULE,
    ];
    // Plain checks in the loop (66 000 fits), one assertion at the end with every pair that failed.
    const wrong: string[] = [];
    let fitted = 0;
    const same = (a: Schedule, b: Schedule) => JSON.stringify(a) === JSON.stringify(b);
    for (let D = 1; D <= MAX_D; D++) {
      for (const s of [...edges, randomSchedule(), randomSchedule(), randomSchedule(CAPS.cpu.maxInvocations)]) {
        const f = fitD(s, D);
        const w = fitProblem(s, D, CAPS.wgsl);
        const why = [
          !suits(f, D) && 'fitD output does not suit D',
          (D % f.vec !== 0 || blockD(f) < D) && 'vec ∤ D or BLOCK_D < D',
          // Only lanes, vec and dChunks change; a schedule that already suits D stays as it is.
          !same({ ...f, lanes: 1, vec: 1, dChunks: 1 }, { ...s, lanes: 1, vec: 1, dChunks: 1 }) &&
            'changed rows, samplesPerStep or stages',
          suits(s, D) && !same(f, s) && 'changed a schedule that suits D',
          // The runtimes' fit (fitProblem) keeps a device's invocations where it grew lanes.
          !suits(w, D) && 'fitProblem output does not suit D',
          w.lanes > s.lanes && w.rows * w.lanes > CAPS.wgsl.maxInvocations && w.rows > 1 &&
            'fitProblem kept rows past the invocations',
        ].filter(Boolean);
        if (why.length) wrong.push(`D = ${D}, ${JSON.stringify(s)} → ${JSON.stringify(f)}: ${why.join('; ')}`);
        fitted++;
      }
    }
    expect(wrong.slice(0, 20), SEED_NOTE).toEqual([]);
    expect(fitted).toBe(MAX_D * 8);
  });

  it('the issue’s pairs: lanes 1 or 2 at the bad D and the default WebGPU schedule at 8193 fit with vec | D', () => {
    for (const D of ISSUE_DS)
      for (const lanes of [1, 2] as const) expect(D % fitD({ ...ISSUE_SCHEDULE, lanes }, D).vec).toBe(0);
    expect(fitD({ rows: 4, lanes: 32, vec: 4, dChunks: 2, samplesPerStep: 2, stages: 1 }, 8193).vec).toBe(1);
  });

  it('a D that no schedule covers, or not a positive integer, is a ScheduleError naming D', () => {
    // Odd D: vec 1, so at most 256 lanes · 256 chunks; even D may take wider vectors.
    expect(() => fitD(ISSUE_SCHEDULE, 65537)).toThrow(ScheduleError);
    expect(() => fitD(ISSUE_SCHEDULE, 65537)).toThrow(/D = 65537 does not fit any schedule/);
    expect(() => fitD(ISSUE_SCHEDULE, 2 * 65537)).toThrow(/D = 131074 .*vec 2/);
    expect(fitD(ISSUE_SCHEDULE, 65536 * 8).vec).toBe(8);
    for (const D of [0, -3, 2.5, NaN])
      expect(() => fitD(ISSUE_SCHEDULE, D)).toThrow(new RegExp(`D = ${D}: the vector length must be a positive`));
  });

  it('checkScheduleForD refuses vec ∤ D and BLOCK_D < D, naming the field and D', () => {
    expect(() => checkScheduleForD({ ...ISSUE_SCHEDULE, vec: 2, dChunks: 256 }, 257))
      .toThrow(/schedule\.vec = 2 does not divide D = 257/);
    expect(() => checkScheduleForD({ ...ISSUE_SCHEDULE, lanes: 32, dChunks: 8 }, 257))
      .toThrow(/BLOCK_D = lanes·vec·dChunks = 32·1·8 = 256 is below D = 257/);
    expect(() => checkScheduleForD({ ...ISSUE_SCHEDULE, rows: 3 as 4 }, 4)).toThrow(/schedule\.rows = 3 is not one of/);
    expect(() => checkScheduleForD(ISSUE_SCHEDULE, 1)).not.toThrow();
  });
});

/** One property case: a D, the schedule handed to the runtime (undefined: its default), the problem's draws. */
interface Case {
  label: string;
  D: number;
  schedule?: Schedule;
  N: number;
  V: number;
  K: number;
  dtype: FloatDType;
  reduction: Reduction;
  seed: number;
}
const DTYPES: readonly FloatDType[] = ['f32', 'f16', 'bf16'];
const REDUCTIONS: readonly Reduction[] = ['mean', 'sum', 'none'];
function drawCase(label: string, D: number, schedule: Schedule | undefined): Case {
  const [N, V, K] = [1 + int(9), 2 + int(49), 1 + int(5)];
  return { label, D, schedule, N, V, K, dtype: pick(DTYPES), reduction: pick(REDUCTIONS), seed: int(2 ** 31) };
}
const problemOf = (c: Case): CceProblem => ({
  ...randomProblem({
    N: c.N, D: c.D, V: c.V, K: c.K, dtype: c.dtype, seed: c.seed, collisionRate: 0.2, ignoreFraction: c.N > 1 ? 0.2 : 0,
  }),
  reduction: c.reduction,
});
const gradOutputOf = (c: Case): number | Float64Array =>
  c.reduction === 'none' ? Float64Array.from({ length: c.N }, (_, i) => 0.5 + (i % 3)) : 1.25;

/** Loss, lse, dE and dC against the float64 reference, with runtime/check.ts's tolerances. */
function expectMatches(got: CceResult, p: CceProblem, c: Case, where: string): void {
  const gradOutput = gradOutputOf(c);
  const ref = referenceCce(p, { gradOutput });
  const tol = gpuTolerance(p.dtype);
  const sizes = `N=${c.N} V=${c.V} K=${c.K} D=${c.D} ${c.dtype} ${c.reduction}`;
  const at = `${where}: ${c.label} ${sizes} schedule ${JSON.stringify(c.schedule ?? 'default')}, ${SEED_NOTE}`;
  const list = (x: number | Float64Array) => (typeof x === 'number' ? [x] : x);
  expect(relErr(list(got.loss), list(ref.loss)), `loss, ${at}`).toBeLessThanOrEqual(tol.loss);
  expect(relErr(got.lse, ref.lse), `lse, ${at}`).toBeLessThanOrEqual(tol.loss);
  expect(relErr(got.dE, ref.dE), `dE, ${at}`).toBeLessThanOrEqual(tol.grad);
  expect(relErr(got.dC, ref.dC), `dC, ${at}`).toBeLessThanOrEqual(tol.grad);
  expect(Array.from(got.kAccepted), `accepted counts, ${at}`).toEqual(Array.from(ref.kAccepted));
}

// The issue's failing pairs (fixed), then random D × random schedules. lavapipe compiles each new pipeline
// from scratch (seconds apiece, more under load), so WebGPU takes the fixed cases and a few random ones;
// the CPU executor many.
const FIXED: Case[] = [
  ...ISSUE_DS.map((D) => drawCase('issue: lanes 1, vec 1, dChunks 1', D, ISSUE_SCHEDULE)),
  drawCase('issue: lanes 2', 513, { ...ISSUE_SCHEDULE, lanes: 2 }),
  drawCase('issue: the default schedule', 8193, undefined),
];
const RANDOM_D = (): number => (int(4) === 0 ? pick(ISSUE_DS) + pick([-1, 1]) : 1 + int(MAX_D));
const CPU_RANDOM: Case[] = Array.from({ length: 24 }, () => drawCase('random', RANDOM_D(), randomSchedule()));
const WEBGPU_RANDOM: Case[] = [drawCase('random', RANDOM_D(), randomSchedule(256, [1, 2]))];
// WebGPU: one odd and one even D of the issue at lanes 1, lanes 2 at 513, the default at 8193 (the other odd
// Ds fit to the same shapes; the CPU executor runs them all), in f32 (the fit does not depend on the dtype, and
// test/webgpu.test.ts covers the 16-bit paths).
const WEBGPU_FIXED = FIXED.filter((c) => c.schedule !== ISSUE_SCHEDULE || c.D === 257 || c.D === 1002);
// The fixed cases keep one kernel variant (mean) so that Mesa's shader cache serves them on later runs; their
// inputs stay fresh.
const WEBGPU_CASES: Case[] = [...WEBGPU_FIXED.map((c) => ({ ...c, reduction: 'mean' as const })), ...WEBGPU_RANDOM]
  .map((c) => ({ ...c, dtype: 'f32' }));

describe(`random D × random schedules against the float64 reference (${SEED_NOTE})`, () => {
  it.each([...FIXED, ...CPU_RANDOM].map((c) => [`${c.label} D=${c.D}`, c] as const))('CPU executor: %s', (_, c) => {
    const p = problemOf(c);
    expectMatches(runCceCpu(p, { schedule: c.schedule, gradOutput: gradOutputOf(c) }), p, c, 'CPU executor');
  });

  describe('WebGPU', () => {
    // A strong reference for the file's lifetime: Dawn's instance must outlive its device.
    let ctx: WebgpuContext | null = null;
    beforeAll(async () => {
      ctx = await testWebgpu();
    });
    afterAll(() => {
      if (ctx) releaseWebgpu(ctx);
    });
    it.for(WEBGPU_CASES.map((c) => [`${c.label} D=${c.D}`, c] as const))('%s', async ([, c], t) => {
      if (skipTest(t, WEBGPU_ADAPTER, !!ctx)) return;
      const p = problemOf(c);
      const got = await runCceWebgpu(ctx!, p, { schedule: c.schedule, gradOutput: gradOutputOf(c) });
      const ran = JSON.stringify([got.schedule, got.bwdSchedule]);
      expect(suits(got.schedule, c.D) && suits(got.bwdSchedule, c.D), ran).toBe(true);
      expectMatches(got, p, c, `WebGPU (${ctx!.name})`);
    });
  });
});

// A pair that does not suit D never reaches a kernel: with the fit made a no-op (as if it had a bug), every
// runtime entry point refuses the issue's vec 2 at D = 257, and CUDA's kernel and launch paths refuse it
// before NVRTC or the driver (host side only: a stub device, no GPU).
describe('every runtime refuses a (schedule, D) pair that does not suit D', () => {
  const BAD: Schedule = { ...ISSUE_SCHEDULE, vec: 2, dChunks: 256 };
  const BAD_REDUCE: Schedule = { ...ISSUE_SCHEDULE, vec: 4, dChunks: 128 };
  /** A schedule that suits D = 257 (the forward's, next to a bad reduction schedule). */
  const GOOD = fitD(ISSUE_SCHEDULE, 257);
  const problem = () => randomProblem({ N: 5, D: 257, V: 11, K: 3, dtype: 'f32', seed: SEED });
  const stubRuntime = (rt: typeof CudaRuntime) =>
    new rt({ caps: () => CAPS.cuda } as unknown as Cuda, {} as unknown as Nvrtc);

  it('CUDA: kernel() and launch() check (schedule, D) before compiling or launching', () => {
    const rt = stubRuntime(CudaRuntime);
    const o = { mode: 'sampled', sampling: 'uniform', dtype: 'f32', grad: 'scalar' } as const;
    // Warps of whole rows and few registers: what the CUDA lowering accepts, but vec ∤ D.
    const bad: Schedule = { ...BAD, rows: 32, dChunks: 8 };
    expect(() => rt.compile(kernelSpec('forward', o, bad, 257))).toThrow(ScheduleError);
    expect(() => rt.compile(kernelSpec('backward', o, bad, 257)))
      .toThrow(/cce_minus_bwd: schedule\.vec = 2 does not divide D = 257/);
    expect(() => rt.compile(kernelSpec('dc_by_item', o, { ...bad, vec: 4 }, 257, true)))
      .toThrow(/schedule\.vec = 4 does not divide D = 257/);
    // launch() checks the D it is given against the kernel it launches (a kernel built for another D).
    const kernel = cceForward(o);
    const lowered = lower(kernel, bad, CAPS.cuda);
    const built = { spec: kernelSpec('forward', o, bad), kernel, lowered, fn: null, attrs: {}, source: '' };
    const scalars = {
      N: 5, D: 257, V: 11, K: 3, G: 5, ignore_index: -100, logq_uniform: 0, grad_scale: 1, dC_scale: 1, seed_lo: 0,
      seed_hi: 0, V2: 22,
    };
    const buffers = Object.fromEntries(built.kernel.params.map((q) => [q.name, { name: q.name, dtype: 'f32' as const, length: 0, ptr: 0n }]));
    expect(() => rt.launch(built as unknown as CudaKernel, 5, buffers, scalars))
      .toThrow(/schedule\.vec = 2 does not divide D = 257/);
  });

  describe('with fitD and fitProblem replaced by no-ops', () => {
    type Mods = {
      schedule: typeof import('../codegen/schedule.js');
      cpu: typeof import('../runtime/cpu/run.js');
      webgpu: typeof import('../runtime/webgpu/run.js');
      cuda: typeof import('../runtime/cuda/run.js');
    };
    let m: Mods;
    let ctx: WebgpuContext | null = null;
    beforeAll(async () => {
      vi.resetModules();
      vi.doMock('../codegen/schedule.js', async (importOriginal) => {
        const real = await importOriginal<typeof import('../codegen/schedule.js')>();
        return { ...real, fitD: (s: Schedule) => s, fitProblem: (s: Schedule) => s };
      });
      m = {
        schedule: await import('../codegen/schedule.js'),
        cpu: await import('../runtime/cpu/run.js'),
        webgpu: await import('../runtime/webgpu/run.js'),
        cuda: await import('../runtime/cuda/run.js'),
      };
      ctx = await testWebgpu();
    });
    afterAll(() => {
      vi.doUnmock('../codegen/schedule.js');
      vi.resetModules();
      if (ctx) releaseWebgpu(ctx);
    });
    const refused = (f: () => unknown, field: string) => {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(m.schedule.ScheduleError);
      expect((err as Error).message).toMatch(new RegExp(`${field}\\.vec = \\d does not divide D = 257`));
    };

    it('the mock is in place: an unfitted pair reaches the runtimes', () => {
      expect(m.schedule.fitD(BAD, 257)).toBe(BAD);
      expect(fitD(BAD, 257)).not.toEqual(BAD);
    });

    it('CPU executor: fused-less, fused, frozen C and dC by item', () => {
      for (const o of [{}, { fused: true }, { frozenC: true }, { byItem: true }])
        refused(() => m.cpu.runCceCpu(problem(), { ...o, schedule: BAD }), 'schedule');
      const byItem = { byItem: true, schedule: GOOD, reduceSchedule: BAD_REDUCE };
      refused(() => m.cpu.runCceCpu(problem(), byItem), 'reduceSchedule');
    });

    it('CUDA: runCceCuda and dC by item refuse before any device allocation', () => {
      const rt = stubRuntime(m.cuda.CudaRuntime);
      refused(() => m.cuda.runCceCuda(rt, problem(), { schedule: BAD }), 'schedule');
      // The stub device has no memory: an allocation before the check would fail with a TypeError instead.
      const byItem = { byItem: true, schedule: GOOD, reduceSchedule: BAD_REDUCE };
      refused(() => m.cuda.runCceCuda(rt, problem(), byItem), 'reduceSchedule');
    });

    it('WebGPU: forward + backward and dC by item', async (t) => {
      if (skipTest(t, WEBGPU_ADAPTER, !!ctx)) return;
      const byItem = { byItem: true, schedule: GOOD, reduceSchedule: BAD_REDUCE };
      const runs = [[{ schedule: BAD }, 'schedule'], [byItem, 'reduceSchedule']] as const;
      for (const [o, field] of runs) {
        const err = await m.webgpu.runCceWebgpu(ctx!, problem(), o).then(() => undefined, (e: unknown) => e);
        expect(err).toBeInstanceOf(m.schedule.ScheduleError);
        expect((err as Error).message).toMatch(new RegExp(`${field}\\.vec = \\d does not divide D = 257`));
      }
    });
  });
});
