// The DSL's type-level guarantees (checked by `tsc` in `npm test`: an unused @ts-expect-error fails the
// type-check) and the verifier's run-time errors, which name the kernel, the op and the reason.
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { Kernel } from '../codegen/ir.js';
import { CAPS, compileKernel } from '../targets/registry.js';
import { lower } from '../codegen/lower.js';
import { VerifyError, verifyKernel } from '../codegen/verify.js';
import { KernelBuilder, OnlineSoftmax } from '../dsl/builder.js';
import { cceBackward, cceForward } from '../dsl/cce.js';
import { DEFAULT_SCHEDULE, type Schedule, ScheduleError, checkScheduleShape } from '../codegen/schedule.js';
import { DslError, type Val, dot, f32, i32 } from '../dsl/values.js';

function tiny() {
  const kb = new KernelBuilder({ name: 'tiny', doc: 'test kernel', rowDim: 'N', vecDim: 'D' });
  const E = kb.input('E', 'f16', ['N', 'D'] as const);
  const C = kb.input('C', 'bf16', ['V', 'D'] as const);
  const W = kb.input('W', 'f32', ['D', 'V'] as const);
  const T = kb.input('targets', 'i32', ['N'] as const);
  const out = kb.output('out', 'f32', ['N'] as const);
  const idx = kb.output('idx', 'i32', ['N'] as const);
  const acc = kb.accumulator('acc', ['V', 'D'] as const);
  return { kb, E, C, W, T, out, idx, acc };
}

describe('DSL types', () => {
  it('loads widen 16-bit storage to f32 registers; index tensors load i32', () => {
    const { kb, E, C, T } = tiny();
    expectTypeOf(kb.load(E, kb.row)).toEqualTypeOf<Val<'f32'>>();
    expectTypeOf(kb.loadRow(C, kb.row)).toEqualTypeOf<Val<'f32'>>();
    expectTypeOf(kb.load(T, kb.row)).toEqualTypeOf<Val<'i32'>>();
    expectTypeOf(dot(kb.loadRow(E, kb.row), kb.loadRow(C, kb.row))).toEqualTypeOf<Val<'f32'>>();
  });

  it('dtype and shape mistakes are type errors', () => {
    const { kb, E, W, T, out, idx, acc } = tiny();
    const t = kb.load(T, kb.row);
    const x = kb.load(E, kb.row);
    // @ts-expect-error adding an i32 to an f32
    expect(() => x.add(t)).toThrow(DslError);
    // @ts-expect-error storing a float into an index tensor
    expect(() => kb.store(idx, kb.row, x)).not.toThrow();
    // @ts-expect-error gathering rows with a float index
    expect(() => kb.loadRow(E, x)).toThrow(/operand types differ/);
    // @ts-expect-error W is [D, V]: its rows do not run along the vector dimension D
    kb.loadRow(W, t);
    // @ts-expect-error exp of an integer
    t.exp();
    // @ts-expect-error atomics are fp32 only
    kb.atomicAdd(acc, t, t);
    kb.store(out, kb.row, x);
  });

  it('schedule fields are literal types', () => {
    // @ts-expect-error lanes must be a power of two
    const bad: Schedule = { ...DEFAULT_SCHEDULE, lanes: 3 };
    expect(() => checkScheduleShape(bad)).toThrow(ScheduleError);
    // @ts-expect-error vector width 16 is not offered
    const bad2: Schedule = { ...DEFAULT_SCHEDULE, vec: 16 };
    expect(() => checkScheduleShape(bad2)).toThrow(/schedule\.vec = 16/);
  });

  it('builder misuse is reported at build time', () => {
    const { kb, E, out } = tiny();
    expect(() => kb.input('E', 'f32', ['N'] as const)).toThrow(/declared twice/);
    expect(() => kb.store(E as never, kb.row, f32(1))).toThrow(/not an output/);
    const v = kb.var('v', f32(0), 'row');
    expect(() => v.set(kb.loadRow(E, kb.row))).toThrow(/vec value does not fit a row variable/);
    expect(() => kb.atomicAdd(out as never, kb.row, f32(1))).toThrow(/not an accumulator/);
  });
});

describe('IR verifier', () => {
  const base = (): Kernel => {
    const { kb, E, out } = tiny();
    const sm = new OnlineSoftmax(kb, 'x');
    sm.update([dot(kb.loadRow(E, kb.row), kb.loadRow(E, kb.row))], [kb.rowValid]);
    kb.store(out, kb.row, sm.lse(), kb.rowValid);
    return kb.build();
  };

  it('accepts the CCE- kernels', () => {
    for (const mode of ['sampled', 'full'] as const)
      for (const sampling of ['uniform', 'given'] as const) {
        const o = { mode, sampling, dtype: 'bf16', grad: 'perRow' } as const;
        expect(() => verifyKernel(cceForward(o))).not.toThrow();
        expect(() => verifyKernel(cceBackward(o))).not.toThrow();
      }
    expect(() => verifyKernel(base())).not.toThrow();
  });

  const broken: [string, (k: Kernel) => void, RegExp][] = [
    ['undeclared name', (k) => k.body.push({ k: 'assign', name: 'nope', value: { op: 'const', t: 'f32', s: 'uniform', v: 1 } }), /assign nope: assignment to an undeclared variable/],
    ['type mismatch', (k) => k.body.push({ k: 'let', name: 'bad', value: { op: 'bin', fn: 'add', t: 'f32', s: 'uniform', a: { op: 'const', t: 'f32', s: 'uniform', v: 1 }, b: { op: 'const', t: 'i32', s: 'uniform', v: 1 } } }), /let bad .*add: operand types differ \(f32 vs i32\)/],
    ['store dtype', (k) => k.body.push({ k: 'store', tensor: 'idx', index: { op: 'row', t: 'i32', s: 'row' }, value: { op: 'const', t: 'f32', s: 'uniform', v: 1 } }), /store idx: f32 value into i32 tensor 'idx'/],
    ['load from output', (k) => k.body.push({ k: 'let', name: 'r', value: { op: 'load', tensor: 'out', t: 'f32', s: 'row', index: { op: 'row', t: 'i32', s: 'row' } } }), /load from 'out', which is an output/],
    ['non-uniform loop', (k) => k.body.push({ k: 'for', v: 'q', start: { op: 'const', t: 'i32', s: 'uniform', v: 0 }, end: { op: 'row', t: 'i32', s: 'row' }, step: 1, unroll: false, body: [] }), /for q: loop bounds must be uniform/],
    ['float index', (k) => k.body.push({ k: 'let', name: 'r', value: { op: 'load', tensor: 'E', t: 'f32', s: 'row', index: { op: 'const', t: 'f32', s: 'uniform', v: 0 } } }), /index into 'E' is f32, not i32/],
    ['16-bit store', (k) => ((k.params as unknown as { dtype: string }[]).find((p) => (p as { name?: string }).name === 'out')!.dtype = 'f16', k.body.push({ k: 'store', tensor: 'out', index: { op: 'row', t: 'i32', s: 'row' }, value: { op: 'const', t: 'f32', s: 'uniform', v: 1 } })), /packed 16-bit stores race/],
  ];
  for (const [what, breakIt, msg] of broken)
    it(`reports ${what}, naming the kernel`, () => {
      const k = base();
      breakIt(k);
      let err: unknown;
      try {
        verifyKernel(k);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(VerifyError);
      expect((err as VerifyError).kernel).toBe('tiny');
      expect((err as Error).message).toMatch(/^tiny: /);
      expect((err as Error).message).toMatch(msg);
    });

  it('schedules are checked against the device capability record', () => {
    const k = cceForward({ mode: 'sampled', sampling: 'uniform', dtype: 'f32', grad: 'scalar' });
    const s16: Schedule = { ...DEFAULT_SCHEDULE, rows: 16, lanes: 32, samplesPerStep: 16 };
    expect(() => lower(k, s16, CAPS.wgsl)).toThrow(/cce_minus_fwd: schedule: rows·lanes = 512 invocations exceed the device limit 256/);
    expect(() => lower(k, { ...s16, rows: 8 }, CAPS.wgsl)).not.toThrow(); // 16 · 256 · 4 bytes = exactly 16 KiB
    expect(() => lower(k, { ...s16, rows: 4 }, { ...CAPS.wgsl, maxSharedBytes: 4096 })).toThrow(/cce_minus_fwd: laneReduce: needs 8192 bytes of workgroup memory, the device offers 4096/);
    expect(() => lower(k, { ...DEFAULT_SCHEDULE, rows: 1, lanes: 8 }, CAPS.cuda)).toThrow(/rows·lanes = 8 is not a multiple of the warp size 32/);
    expect(() => lower(k, { ...DEFAULT_SCHEDULE, rows: 64, lanes: 32 }, CAPS.cuda)).toThrow(/2048 invocations exceed the device limit 1024/);
    expect(() => lower(k, { ...DEFAULT_SCHEDULE, dChunks: 256 }, CAPS.cuda)).toThrow(/registers per thread/);
    expect(() => lower(k, DEFAULT_SCHEDULE, CAPS.cuda)).not.toThrow();
  });

  it('integer constants stay integers', () => {
    expect(() => i32(1.5)).toThrow(DslError);
  });
});

describe('tile matmul with candidates shared by the rows of a program', () => {
  it('computes A·Bᵀ for [R, D] rows and [S, D] shared candidate rows (CPU executor vs direct float64)', async () => {
    const { matmul } = await import('../dsl/values.js');
    const { compileJs } = await import('../targets/js/emit.js');
    const { Rng } = await import('../runtime/random.js');
    const S = 3;
    const kb = new KernelBuilder({ name: 'tile_mm', doc: 'rows times shared candidates', rowDim: 'N', vecDim: 'D' });
    const A = kb.input('A', 'f32', ['N', 'D'] as const);
    const B = kb.input('B', 'f32', ['M', 'D'] as const);
    const idx = kb.input('shared', 'i32', ['S'] as const);
    const out = kb.output('out', 'f32', ['N', 'S'] as const);
    const a = kb.let('a', kb.loadRow(A, kb.row, kb.rowValid));
    // Candidate items shared by every row of the program: uniform-index gathers.
    const cands = Array.from({ length: S }, (_, j) => kb.let(`b_${j}`, kb.loadRow(B, kb.load(idx, i32(j)))));
    expectTypeOf(matmul(a, cands)).toEqualTypeOf<Val<'f32'>[]>();
    matmul(a, cands).forEach((v, j) => kb.store(out, kb.row.mul(S).add(j), v, kb.rowValid));
    const s: Schedule = { ...DEFAULT_SCHEDULE, rows: 4, lanes: 4, dChunks: 4 };
    const fn = compileJs(lower(kb.build(), s, CAPS.cpu));
    const r = new Rng(11);
    const [N, M, D] = [9, 17, 13];
    const Av = Float64Array.from({ length: N * D }, () => r.normal());
    const Bv = Float64Array.from({ length: M * D }, () => r.normal());
    const shared = Int32Array.from([5, 0, 16]);
    const res = new Float64Array(N * S).fill(NaN);
    fn({ A: Av, B: Bv, shared, out: res }, { N, M, D, S }, Math.ceil(N / 4));
    for (let i = 0; i < N; i++)
      for (let j = 0; j < S; j++) {
        let d0 = 0;
        for (let d = 0; d < D; d++) d0 += Av[i * D + d]! * Bv[shared[j]! * D + d]!;
        expect(res[i * S + j]).toBeCloseTo(d0, 12);
      }
    // The same kernel emits for every target (compile checks of emitted code: test/emit-compile.test.ts).
    const { compileKernel } = await import('../targets/registry.js');
    for (const t of ['cuda', 'wgsl', 'triton'] as const) expect(compileKernel(kb.build(), { ...DEFAULT_SCHEDULE, rows: 4, lanes: 32, dChunks: 1 }, t).source).toMatch(/tile_mm/);
    expect(() => matmul(kb.load(A, kb.row), cands)).toThrow(/matmul: operands must be vec values/);
  });
});

describe('kernels for an exact vector length (D = BLOCK_D)', () => {
  // Every element a lane owns is inside the row, so the element guards d < D and the masks of row reductions
  // go. The numerics of such kernels are checked against the float64 reference wherever D equals the
  // schedule's BLOCK_D (the CPU and WebGPU runtimes lower with exactD then, CUDA compiles with CCEKIT_EXACT_D).
  const o = { mode: 'sampled', dtype: 'f16', sampling: 'uniform', grad: 'scalar' } as const;
  const s: Schedule = { rows: 4, lanes: 32, vec: 4, dChunks: 2, samplesPerStep: 2, stages: 1 };
  const body = (src: string) => src.slice(src.indexOf('cce_minus_fwd('));
  it('wgsl: guards without exactD, none with it', () => {
    const guards = (src: string) => (body(src).match(/\bd0? < params\.D\b/g) ?? []).length;
    expect(guards(compileKernel(cceForward(o), s, 'wgsl', CAPS.wgsl).source)).toBeGreaterThan(0);
    expect(guards(compileKernel(cceForward(o), s, 'wgsl', CAPS.wgsl, { exactD: true }).source)).toBe(0);
  });
  it('cuda: one source for both, guards as CCEKIT_IN_D (true under CCEKIT_EXACT_D); exactD lowering prints none', () => {
    const src = compileKernel(cceForward(o), s, 'cuda', CAPS.cuda).source;
    expect(body(src)).not.toMatch(/\bd0? < D\b/);
    expect((body(src).match(/CCEKIT_IN_D\(d0?\)/g) ?? []).length).toBeGreaterThan(2);
    expect(src).toMatch(/#ifdef CCEKIT_EXACT_D\n#define CCEKIT_IN_D\(d\) true\n#else\n#define CCEKIT_IN_D\(d\) \(\(d\) < D\)/);
    expect(body(compileKernel(cceForward(o), s, 'cuda', CAPS.cuda, { exactD: true }).source)).not.toMatch(/CCEKIT_IN_D|\bd0? < D\b/);
  });
});
