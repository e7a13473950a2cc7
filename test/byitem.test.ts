// dC reduced by item (dsl/byitem.ts, runtime/byitem.ts): the forward with dE in one sweep, then per chunk of
// rows count, scan, fill and reduce. Checked against the float64 reference on fresh random inputs at odd sizes
// (index tensor and Philox draws, uniform and popularity q, ignored rows, collisions, a logit transform, one
// to many chunks, three scan levels, one to four pairs a step), the scan on its own against a JS prefix sum,
// the IR's counters (fetch-add) through the verifier and every emitter, the emitted kernels through nvcc,
// Dawn and python3, and the whole sequence on WebGPU (lavapipe in CI).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CAPS, compileKernel } from '../targets/registry.js';
import { lower } from '../codegen/lower.js';
import { VerifyError } from '../codegen/verify.js';
import { SCAN_WIDTH, cceReduceByItem } from '../dsl/byitem.js';
import { COUNTER_SCHEDULE, reduceSchedule } from '../codegen/schedule.js';
import { KernelBuilder } from '../dsl/builder.js';
import { type CceOptions, cceFusedDE } from '../dsl/cce.js';
import { type Schedule, fitD } from '../codegen/schedule.js';
import { i32 } from '../dsl/values.js';
import { compileScalarFunction } from '../dsl/frontend.js';
import { byItemPlan, runScan, scanLevels } from '../runtime/byitem.js';
import { type ByItemPass, passKernel } from '../dsl/passes.js';
import { passSchedule } from '../runtime/kernels.js';
import { relErr } from '../runtime/check.js';
import { compileJs } from '../targets/js/emit.js';
import { referenceCce } from '../runtime/cpu/reference.js';
import { runCceCpu } from '../runtime/cpu/run.js';
import type { CceProblem } from '../runtime/problem.js';
import { releaseWebgpu, type WebgpuContext } from '../runtime/webgpu/device.js';
import { runCceWebgpu } from '../runtime/webgpu/run.js';
import { closeWebgpu, validateWgsl } from '../runtime/webgpu/validate.js';
import { type ProblemCase, caseName, caseProblem } from './support/cases.js';
import {
  WEBGPU_ADAPTER,
  bundledName,
  compileCudaBundle,
  errorsOf,
  findNvcc,
  findPython,
  makeTempDir,
  must,
  pyCompileAll,
  needs,
  skipTest,
  testWebgpu,
  wgslBindingMismatches,
  writeFiles,
} from './support/toolchains.js';

interface Case extends ProblemCase {
  reduction: 'mean' | 'sum';
  /** Bytes of the pair buffers: small values make many chunks of rows. */
  pairBytes?: number;
  reduce?: Partial<Schedule>;
  /** false: two i32 words a pair even where one packed u32 fits; a number: item bits of packed entries. */
  pack?: boolean | number;
}
const CASES: Case[] = [
  { N: 1, D: 1, V: 2, K: 1, dtype: 'f32', reduction: 'mean' },
  { N: 37, D: 13, V: 50, K: 9, dtype: 'f16', reduction: 'sum', pairBytes: 8 * 9 * 5 },
  { N: 37, D: 13, V: 50, K: 9, dtype: 'f16', reduction: 'sum', pairBytes: 8 * 9 * 5, pack: false },
  { N: 129, D: 64, V: 301, K: 77, dtype: 'bf16', reduction: 'mean', popularity: true, reduce: { samplesPerStep: 2 } },
  { N: 70, D: 33, V: 5031, K: 40, dtype: 'f32', reduction: 'sum', philox: true, scale: 3, pairBytes: 8 * 40 * 3 },
  { N: 70, D: 33, V: 5031, K: 40, dtype: 'f32', reduction: 'sum', philox: true, scale: 3, pairBytes: 8 * 40 * 3, pack: false },
  // 28 item bits: 16-row chunks whose packed entries reach the top bit of a u32
  { N: 70, D: 9, V: 300, K: 11, dtype: 'f32', reduction: 'mean', pairBytes: 8 * 11 * 16, pack: 28 },
  { N: 97, D: 31, V: 211, K: 21, dtype: 'f16', reduction: 'mean', philox: true, popularity: true, reduce: { samplesPerStep: 4, lanes: 2 } },
  // few items, many pairs each: long runs that span segments
  { N: 203, D: 17, V: 3, K: 50, dtype: 'f32', reduction: 'sum', pairBytes: 8 * 50 * 7, reduce: { samplesPerStep: 2 } },
];
const name = (c: Case) => {
  const plan = byItemPlan(c, c.pairBytes, c.pack);
  return `${caseName(c)} ${Math.ceil(c.N / plan.chunkRows)} chunks ${plan.packed ? 'packed' : 'two words'}${c.reduce ? ` reduce ${JSON.stringify(c.reduce)}` : ''}`;
};
const schedule: Schedule = { rows: 4, lanes: 4, vec: 1, dChunks: 4, samplesPerStep: 2, stages: 1 };
const reduceOf = (c: Case): Schedule | undefined => (c.reduce ? fitD({ rows: 2, lanes: 4, vec: 1, dChunks: 1, samplesPerStep: 1, stages: 1, ...c.reduce }, c.D) : undefined);

describe('dC by item on the CPU executor vs the float64 reference', () => {
  for (const c of CASES)
    it(name(c), () => {
      const p = caseProblem(c, { collisionRate: 0.1 });
      const ref = referenceCce(p, { gradOutput: 1.5 });
      const got = runCceCpu(p, { gradOutput: 1.5, byItem: true, pairBytes: c.pairBytes, packPairs: c.pack, reduceSchedule: reduceOf(c), schedule });
      expect(relErr(got.rowLoss, ref.rowLoss)).toBeLessThan(1e-10);
      expect(got.lse.length + got.kAccepted.length).toBe(0); // kept on the device as lse + log k
      expect(relErr(got.dE, ref.dE)).toBeLessThan(1e-10);
      expect(relErr(got.dC, ref.dC)).toBeLessThan(1e-10);
    });

  it('a soft-capped logit (transform): f\'(raw) weighs each pair in the reduction too', () => {
    const cap = 20;
    const softcap = compileScalarFunction((x: number) => cap * Math.tanh(x / cap), { constants: { cap } });
    const transform = { f: (x: number) => 20 * Math.tanh(x / 20), df: (x: number) => 1 - Math.tanh(x / 20) ** 2 };
    const p = caseProblem({ N: 50, D: 19, V: 120, K: 13, dtype: 'f32', reduction: 'sum', scale: 3 });
    const ref = referenceCce(p, { transform, gradOutput: 0.75 });
    const got = runCceCpu(p, { transform: softcap, byItem: true, pairBytes: 8 * 13 * 4, gradOutput: 0.75, schedule });
    expect(relErr(got.dE, ref.dE)).toBeLessThan(1e-10);
    expect(relErr(got.dC, ref.dC)).toBeLessThan(1e-10);
  });

  it('refuses what it does not do: reduction none, shared negatives, full CE, deterministic dC, a frozen item table', () => {
    const p = caseProblem({ N: 9, D: 4, V: 20, K: 3, dtype: 'f32', reduction: 'mean' });
    expect(() => runCceCpu({ ...p, reduction: 'none' }, { byItem: true })).toThrow(/reduction mean or sum/);
    expect(() => runCceCpu({ ...p, shareRows: 16, negatives: p.negatives!.slice(0, 3) }, { byItem: true })).toThrow(/per-row sampled/);
    expect(() => runCceCpu(p, { byItem: true, deterministic: true })).toThrow(/not deterministic/);
    expect(() => runCceCpu(p, { byItem: true, frozenC: true })).toThrow(/frozenC/);
    const full = caseProblem({ N: 9, D: 4, V: 20, K: 0, dtype: 'f32', reduction: 'mean', mode: 'full' });
    expect(() => runCceCpu(full, { byItem: true })).toThrow(/per-row sampled/);
  });
});

describe('the chunk plan', () => {
  it('fits the pair buffers to the budget, one chunk row at least, and counts the extra memory', () => {
    // beauty: 18-bit items, so 2^14 rows a chunk fit one packed u32 a pair (two chunks instead of three)
    const plan = byItemPlan({ N: 32768, K: 511, V: 176450 });
    expect(plan).toMatchObject({ packed: true, itemBits: 18, chunkRows: 16384 });
    expect(plan.capacity * 4).toBeLessThanOrEqual(48 << 20);
    expect(plan.extraBytes).toBeLessThan(64 << 20);
    expect(byItemPlan({ N: 32768, K: 511, V: 176450 }, undefined, false)).toMatchObject({ packed: false, chunkRows: Math.floor((48 << 20) / 8 / 511) });
    // megamarket: 21-bit items leave 2^11 rows, fewer than two words a pair allow: not packed
    expect(byItemPlan({ N: 32768, K: 255, V: 1661327 })).toMatchObject({ packed: false, chunkRows: Math.floor((48 << 20) / 8 / 255) });
    // a power-of-two catalog takes one more bit (V itself must stay below 2^itemBits)
    expect(byItemPlan({ N: 10, K: 3, V: 1024 }).itemBits).toBe(11);
    expect(byItemPlan({ N: 10, K: 1000, V: 5 }, 100).chunkRows).toBe(1);
    // megamarket, the largest catalog: still under 64 MiB with the counters and the scan's buffers
    expect(byItemPlan({ N: 32768, K: 255, V: 1661327 }).extraBytes).toBeLessThan(64 << 20);
    expect(() => byItemPlan({ N: 2 ** 21, K: 1024, V: 10 })).toThrow(/i32/);
  });
});

describe('the scan (exclusive prefix sums in blocks, then the blocks\' bases)', () => {
  const fns = new Map<ByItemPass, ReturnType<typeof compileJs>>();
  const o: CceOptions = { mode: 'sampled', dtype: 'f32', sampling: 'uniform', grad: 'scalar' };
  for (const k of ['scan_blocks', 'scan_add'] as const) {
    const s = passSchedule(k, reduceSchedule(8));
    const kernel = passKernel(k, o);
    fns.set(k, compileJs(lower(kernel, s, CAPS.cpu)));
  }
  for (const n of [1, SCAN_WIDTH - 1, SCAN_WIDTH, SCAN_WIDTH + 1, 4097, SCAN_WIDTH ** 3 + 5])
    it(`n = ${n} (${scanLevels(n).length} levels) matches a JS prefix sum`, () => {
      const x = Int32Array.from({ length: n }, () => Math.floor(Math.random() * 7));
      const L = scanLevels(n);
      const b = { counts: x.slice(), local: L.map((l) => new Int32Array(l.n).fill(-7)), totals: L.map((l) => new Int32Array(l.blocks).fill(-7)) };
      const ops = {
        launch: (k: ByItemPass, rows: number, bufs: Record<string, Int32Array>, sc: Record<string, number>) => fns.get(k)!(bufs, { ...sc, D: 1 }, Math.ceil(rows / COUNTER_SCHEDULE.rows)),
        clear: (buf: Int32Array, words: number) => buf.fill(0, 0, words),
      };
      const out = runScan(ops, L, b, {});
      const want = new Int32Array(n);
      for (let i = 1; i < n; i++) want[i] = want[i - 1]! + x[i - 1]!;
      // The first wrong entry (a diff of 262k-element arrays would take minutes to print).
      const bad = want.findIndex((w, i) => out[i] !== w);
      expect(bad === -1 ? 'all equal' : `entry ${bad}: ${out[bad]} instead of ${want[bad]}`).toBe('all equal');
    });
});

describe('i32 counters in the IR (fetch-add)', () => {
  const counterKernel = (old: boolean) => {
    const kb = new KernelBuilder({ name: 'k', doc: '', rowDim: 'N', vecDim: 'D' });
    const c = kb.counter('cnt', ['V'] as const);
    const out = kb.output('out', 'i32', ['N'] as const);
    if (old) kb.store(out, kb.row, kb.fetchAdd('at', c, kb.row, 1, kb.rowValid), kb.rowValid);
    else kb.atomicAdd(c, kb.row, i32(1), kb.rowValid);
    return kb.build();
  };
  const s1: Schedule = { rows: 32, lanes: 1, vec: 1, dChunks: 1, samplesPerStep: 1, stages: 1 };
  it('every target prints the add and binds the value before it', () => {
    const k = counterKernel(true);
    expect(compileKernel(k, s1, 'cuda', CAPS.cuda).source).toMatch(/at = atomicAdd\(&cnt\[row\], 1\);/);
    const wgsl = compileKernel(k, s1, 'wgsl', CAPS.wgsl).source;
    expect(wgsl).toMatch(/cnt: array<atomic<i32>>/);
    expect(wgsl).toMatch(/at = atomicAdd\(&cnt\[row\], 1i\);/);
    expect(compileKernel(k, s1, 'triton', CAPS.triton).source).toMatch(/at = tl\.where\(row_valid, tl\.atomic_add\(cnt \+ rows, 1, mask=row_valid\), 0\)/);
  });
  it('hands out distinct slots on the CPU executor, 0 where the mask is off', () => {
    const fn = compileJs(lower(counterKernel(true), s1, CAPS.cpu));
    const cnt = new Int32Array(40).fill(5);
    const out = new Int32Array(33).fill(-1);
    fn({ cnt, out }, { N: 33, D: 1, V: 40 }, 2);
    expect(Array.from(out)).toEqual(new Array(33).fill(5));
    expect(Array.from(cnt.slice(0, 33))).toEqual(new Array(33).fill(6));
    expect(cnt[33]).toBe(5);
  });
  it('the verifier and the caps check refuse misuse', () => {
    // lanes > 1 on SIMT targets: every lane of a row would add
    expect(() => lower(counterKernel(false), { ...s1, rows: 4, lanes: 8 }, CAPS.cuda)).toThrow(/i32 counters need lanes = 1/);
    expect(() => lower(counterKernel(false), { ...s1, rows: 4, lanes: 8 }, CAPS.wgsl)).toThrow(/i32 counters need lanes = 1/);
    const k = counterKernel(true);
    const bad = { ...k, body: k.body.map((st) => (st.k === 'atomicAdd' ? { ...st, value: { op: 'const', t: 'f32', s: 'uniform', v: 1 } } : st)) } as typeof k;
    expect(() => lower(bad, s1)).toThrow(VerifyError);
    const kb = new KernelBuilder({ name: 'k2', doc: '', rowDim: 'N', vecDim: 'D' });
    const acc = kb.accumulator('acc', ['N', 'D'] as const);
    kb.emit({ k: 'atomicAdd', tensor: 'acc', index: kb.row.e, value: { op: 'const', t: 'f32', s: 'uniform', v: 1 }, old: 'x' });
    expect(() => lower(kb.build(), s1)).toThrow(/i32 counters only/);
    void acc;
  });
  it('names the skeletons declare are reserved: fresh() steps around them, claim() refuses them', () => {
    const kb = new KernelBuilder({ name: 'k3', doc: '', rowDim: 'N', vecDim: 'D' });
    expect(kb.let('pid', kb.row).e).toMatchObject({ name: 'pid_1' });
    expect(() => kb.input('tid', 'f32', ['N'] as const)).toThrow(/reserved/);
  });
});

// The kernels of the sequence for one set of options, as every target prints them.
const VARIANTS: CceOptions[] = [
  { mode: 'sampled', dtype: 'f16', sampling: 'uniform', negatives: 'tensor', grad: 'scalar' },
  { mode: 'sampled', dtype: 'bf16', sampling: 'given', negatives: 'philox', grad: 'scalar' },
  { mode: 'sampled', dtype: 'f32', sampling: 'uniform', negatives: 'philox', grad: 'scalar' },
];
const KINDS: ByItemPass[] = ['count_pairs', 'fill_pairs', 'scan_blocks', 'scan_add', 'dc_by_item'];
function emitted(target: 'cuda' | 'wgsl' | 'triton') {
  return VARIANTS.flatMap((o, vi) => {
    const s = fitD({ rows: 4, lanes: 32, vec: 4, dChunks: 1, samplesPerStep: 2, stages: 1 }, 256);
    const fwd = { kind: 'forward', ...compileKernel(cceFusedDE(o, true), s, target, CAPS[target]) };
    const kernels = [false, true].flatMap((packed) =>
      KINDS.filter((k) => !packed || k === 'fill_pairs' || k === 'dc_by_item').map((k) => {
        const x = { kernel: passKernel(k, o, packed), schedule: passSchedule(k, reduceSchedule(256)) };
        return { kind: k, ...compileKernel(x.kernel, x.schedule, target, CAPS[target]) };
      }),
    );
    return [fwd, ...kernels].map((x) => ({ ...x, file: `${x.entry}__v${vi}` }));
  });
}

describe('emitted by-item kernels', () => {
  it('the reduction adds to dC only where a run of one item ends (masked by the run start), with vector atomics on CUDA', () => {
    const o = VARIANTS[0]!;
    const s = reduceSchedule(256);
    const cuda = compileKernel(cceReduceByItem(o), s, 'cuda', CAPS.cuda).source;
    const adds = cuda.split('\n').filter((l) => /ccekit_red4\(&dC/.test(l));
    expect(adds.length).toBe(2); // one in the loop, one for the last run
    expect(cuda).toMatch(/if \(\(\(fresh_0 && \(item >= 0\)\)\) && CCEKIT_IN_D\(d0\)\) \{\n\s*ccekit_red4\(&dC\[item \* D/);
    expect(cuda).not.toMatch(/negatives\[|seed_lo/); // the fill wrote each pair's item: nothing is drawn again
  });

  describe('CUDA: nvcc sm_90a', () => {
    const nvcc = findNvcc();
    const missing = needs('nvcc', !!nvcc);
    let tmp: ReturnType<typeof makeTempDir>;
    let r: Awaited<ReturnType<typeof compileCudaBundle>>;
    const cases = emitted('cuda');
    beforeAll(async () => {
      if (missing) return;
      tmp = makeTempDir('byitem-nvcc');
      const units = cases.map((c) => ({ file: `${c.file}.cu`, entry: c.entry, source: c.source }));
      r = await compileCudaBundle(must('nvcc', nvcc), tmp.dir, units);
    }, 300_000);
    afterAll(() => tmp?.remove());
    it.each(cases.map((c) => [c.file, c] as const))('%s compiles without spills', (_, c) => {
      expect(errorsOf(r.diagnostics.get(`${c.file}.cu`))).toEqual([]);
      const k = r.kernels.get(bundledName(`${c.file}.cu`));
      expect(k, r.output.slice(-3000)).toBeDefined();
      expect(k!.spillStores + k!.spillLoads).toBe(0);
    });
  });

  describe('WGSL: Dawn validation and bindings', () => {
    afterAll(() => closeWebgpu());
    it.each(emitted('wgsl').map((c) => [c.file, c] as const))('%s', async (_, c) => {
      expect((await validateWgsl(c.source)).filter((m) => m.type === 'error')).toEqual([]);
      expect(wgslBindingMismatches(c.source, c.parameters)).toEqual([]);
    });
  });

  describe('Triton: python3 py_compile', () => {
    const python = findPython();
    needs('python3', !!python);
    it('every kernel byte-compiles', async () => {
      const tmp = makeTempDir('byitem-py');
      try {
        const cases = emitted('triton');
        const paths = writeFiles(tmp.dir, new Map(cases.map((c) => [`${c.file}.py`, c.source])));
        const { errors } = await pyCompileAll(must('python3', python), paths);
        expect([...errors]).toEqual([]);
        expect(paths.length).toBe(cases.length);
      } finally {
        tmp.remove();
      }
    });
  });
});

describe('dC by item on WebGPU (Dawn; lavapipe in CI)', () => {
  let ctx: WebgpuContext | null = null;
  beforeAll(async () => {
    ctx = await testWebgpu();
  });
  afterAll(() => ctx && releaseWebgpu(ctx));
  const wg: Case[] = [
    { N: 37, D: 13, V: 50, K: 9, dtype: 'f16', reduction: 'sum', pairBytes: 8 * 9 * 5 },
    { N: 37, D: 13, V: 50, K: 9, dtype: 'f16', reduction: 'sum', pairBytes: 8 * 9 * 5, pack: false },
    { N: 70, D: 9, V: 300, K: 11, dtype: 'f32', reduction: 'mean', pairBytes: 8 * 11 * 16, pack: 28 },
    { N: 70, D: 64, V: 5031, K: 40, dtype: 'bf16', reduction: 'mean', philox: true, popularity: true, pairBytes: 8 * 40 * 30 },
    { N: 203, D: 17, V: 3, K: 50, dtype: 'f32', reduction: 'sum', reduce: { samplesPerStep: 1 } },
  ];
  for (const c of wg)
    it(name(c), async (t) => {
      if (skipTest(t, WEBGPU_ADAPTER, !!ctx) || !ctx) return;
      const p: CceProblem = caseProblem(c, { collisionRate: 0.1 });
      const ref = referenceCce(p, { gradOutput: 1.5 });
      const reduceSchedule = c.reduce ? fitD({ rows: 4, lanes: 32, vec: 1, dChunks: 1, samplesPerStep: 2, stages: 1, ...c.reduce }, c.D) : undefined;
      const got = await runCceWebgpu(ctx, p, { gradOutput: 1.5, byItem: true, pairBytes: c.pairBytes, packPairs: c.pack, reduceSchedule });
      const tol = c.dtype === 'f32' ? 1e-4 : 1e-3;
      expect(relErr(got.rowLoss, ref.rowLoss)).toBeLessThan(tol);
      expect(relErr(got.dE, ref.dE)).toBeLessThan(tol);
      expect(relErr(got.dC, ref.dC)).toBeLessThan(tol);
    });
});
