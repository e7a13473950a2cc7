// Target records: the lowering and the schedule fits ask a target's traits and limits, never its name. A
// Metal-like record (another name, 32-lane SIMD shuffles) lowers exactly as CUDA does where its traits and limits
// match, and as its own traits say where they differ; caps without traits (as the runtimes probe them) lower as
// their record's caps do.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type LoweredKernel, lower } from '../codegen/lower.js';
import {
  type DeviceCaps, type TargetRecord, type TargetTraits, sharedBytes, simtTraits,
} from '../codegen/target.js';
import { KernelBuilder } from '../dsl/builder.js';
import { type CceOptions, cceBackward, cceForward, cceFused } from '../dsl/cce.js';
import { DEFAULT_SCHEDULE, type Schedule, fitProblem, fitShare } from '../codegen/schedule.js';
import { i32 } from '../dsl/values.js';
import { cudaTarget } from '../targets/cuda/emit.js';
import { cpuTarget } from '../targets/js/emit.js';
import { CAPS, EXT, SOURCE_TARGETS, TARGETS, compileKernel, targetRecord } from '../targets/registry.js';
import { tritonTarget } from '../targets/triton/emit.js';
import { wgslTarget } from '../targets/wgsl/emit.js';

const SIMT: TargetTraits = {
  tiles: false,
  laneReduce: 'shuffle',
  rowSharedAtomics: true,
  countersNeedOneLane: true,
  shareStep: { min: 1, max: 2 },
};
/** A Metal-like target: an Apple GPU's limits, SIMD-group shuffles of 32. Its printer is CUDA's stand-in. */
const msl = (traits: Partial<TargetTraits> = {}, caps: Partial<DeviceCaps> = {}): TargetRecord<'msl'> => {
  const t = { ...SIMT, ...traits };
  const limits = { maxInvocations: 1024, maxSharedBytes: 32768, warpSize: 32, maxGridX: 2 ** 31 - 1, shaderF16: true };
  return {
    name: 'msl',
    ext: 'metal',
    caps: { target: 'msl', name: 'apple-gpu', ...limits, ...caps, traits: t },
    traits: t,
    emit: cudaTarget.emit,
  };
};

/** What a printer reads of a lowered kernel, without the caps it was lowered for. */
const shape = (lk: LoweredKernel) => ({
  kernel: lk.kernel,
  body: lk.body,
  symbols: [...lk.symbols],
  maxReduceBatch: lk.maxReduceBatch,
  rowSharedSlots: lk.rowSharedSlots,
  blockD: lk.blockD,
  invocations: lk.invocations,
});

const SHARED: CceOptions = { mode: 'sampled', dtype: 'f16', sampling: 'uniform', grad: 'scalar', share: 64 };
const PHILOX: CceOptions = { ...SHARED, negatives: 'philox' };
const FULL: CceOptions = { mode: 'full', dtype: 'bf16', sampling: 'uniform', grad: 'perRow' };
const GIVEN: CceOptions = { mode: 'sampled', dtype: 'f32', sampling: 'given', grad: 'scalar' };
const SCHEDULES: Schedule[] = [
  DEFAULT_SCHEDULE,
  { rows: 2, lanes: 64, vec: 2, dChunks: 1, samplesPerStep: 2, stages: 1 },
  { rows: 8, lanes: 16, vec: 4, dChunks: 2, samplesPerStep: 1, stages: 1 },
];

const counterKernel = () => {
  const kb = new KernelBuilder({ name: 'k', doc: '', rowDim: 'N', vecDim: 'D' });
  const c = kb.counter('cnt', ['V'] as const);
  kb.atomicAdd(c, kb.row, i32(1), kb.rowValid);
  return kb.build();
};

describe('a target the lowering has never heard of', () => {
  it('with CUDA traits and limits, lowers every kernel exactly as CUDA does', () => {
    const cudaLike = msl({}, { maxSharedBytes: CAPS.cuda.maxSharedBytes, maxRegisters: 255 });
    for (const s of SCHEDULES)
      for (const o of [SHARED, PHILOX, FULL, GIVEN])
        for (const f of [cceForward, cceBackward, cceFused]) {
          const sched = o.share ? fitShare(s, o.share, cudaLike.caps) : s;
          expect(fitShare(s, o.share ?? 64, cudaLike.caps)).toEqual(fitShare(s, o.share ?? 64, CAPS.cuda));
          expect(shape(lower(f(o), sched, cudaLike.caps))).toEqual(shape(lower(f(o), sched, CAPS.cuda)));
        }
  });

  it('prints through its own record; errors name it', () => {
    const rec = msl();
    const out = compileKernel(cceForward(GIVEN), DEFAULT_SCHEDULE, rec);
    expect(out.entry).toBe('cce_minus_fwd');
    expect(out.lowered.caps?.target).toBe('msl');
    const big: Schedule = { ...DEFAULT_SCHEDULE, rows: 64, lanes: 32 };
    expect(() => lower(cceForward(GIVEN), big, rec.caps)).toThrow(
      /2048 invocations exceed the device limit 1024 \(target msl, apple-gpu\)/,
    );
  });

  it('follows its traits: row-shared atomics, tiles, counters, lane scratch', () => {
    const s: Schedule = { rows: 8, lanes: 64, vec: 1, dChunks: 1, samplesPerStep: 2, stages: 1 };
    const k = cceFused(SHARED);
    const simt = lower(k, s, msl().caps);
    // One row of slots per program row for each shared-row atomic add of a region.
    expect(simt.rowSharedSlots).toBeGreaterThan(0);
    expect(simt.rowSharedSlots % (s.rows * simt.blockD)).toBe(0);
    expect(lower(k, s, msl({ rowSharedAtomics: false }).caps).rowSharedSlots).toBe(0);
    // Untiled for SIMT printers (no candidate scopes left); kept as tiles where the printer takes them.
    const scopes = (lk: LoweredKernel) => new Set([...lk.symbols.values()].map((v) => v.s));
    expect(scopes(simt).has('tile')).toBe(false);
    const tiled = msl({ tiles: true, laneReduce: 'none', rowSharedAtomics: false });
    expect(scopes(lower(k, s, tiled.caps)).has('tile')).toBe(true);
    // Scratch of the lane reductions: 64 lanes are 2 warps of 32 (one slot per warp), a workgroup tree one slot
    // per thread, none where no lanes combine.
    const batch = simt.maxReduceBatch;
    const rows = simt.rowSharedSlots * 4;
    expect(sharedBytes(simt, msl().caps)).toBe(batch * (simt.invocations / 32) * 4 + rows);
    expect(sharedBytes(simt, msl({ laneReduce: 'workgroup' }).caps)).toBe(batch * simt.invocations * 4 + rows);
    expect(sharedBytes(simt, msl({ laneReduce: 'none' }).caps)).toBe(rows);
    const c: Schedule = { rows: 4, lanes: 8, vec: 1, dChunks: 1, samplesPerStep: 1, stages: 1 };
    expect(() => lower(counterKernel(), c, msl().caps)).toThrow(/i32 counters need lanes = 1 .*target msl/);
    expect(() => lower(counterKernel(), c, msl({ countersNeedOneLane: false }).caps)).not.toThrow();
  });

  it('fits schedules as the target with the same traits does', () => {
    const tile = msl({ ...tritonTarget.traits }, { maxInvocations: 1024 });
    const loop = msl({ ...cpuTarget.traits }, { maxInvocations: CAPS.cpu.maxInvocations, warpSize: undefined });
    for (const share of [16, 32, 64, 128])
      for (const s of SCHEDULES)
        for (const D of [1, 33, 128, 1000, 4096]) {
          expect(fitProblem(s, D, tile.caps, share)).toEqual(fitProblem(s, D, CAPS.triton, share));
          expect(fitProblem(s, D, loop.caps, share)).toEqual(fitProblem(s, D, CAPS.cpu, share));
          expect(fitProblem(s, D, msl().caps, share)).toEqual(fitProblem(s, D, CAPS.cuda, share));
        }
  });
});

describe('caps without traits (probed by a runtime)', () => {
  it('are a SIMT GPU target: the traits of the WGSL and CUDA records', () => {
    expect(simtTraits(CAPS.wgsl)).toEqual(wgslTarget.traits);
    expect(simtTraits(CAPS.cuda)).toEqual(cudaTarget.traits);
  });

  it('lower and print as the record caps do', () => {
    const probed = { ...CAPS.wgsl, traits: undefined, subgroupSize: 32 };
    for (const [rec, caps] of [
      [wgslTarget, { ...CAPS.wgsl, traits: undefined }],
      [wgslTarget, probed],
      [cudaTarget, { ...CAPS.cuda, traits: undefined }],
    ] as const)
      for (const o of [SHARED, FULL]) {
        const s = o.share ? fitShare(DEFAULT_SCHEDULE, o.share, caps) : DEFAULT_SCHEDULE;
        const a = compileKernel(cceFused(o), s, rec, caps);
        const b = compileKernel(cceFused(o), s, rec, { ...caps, traits: rec.traits });
        expect(a.source).toBe(b.source);
      }
  });
});

describe('the registry', () => {
  it('holds one record per target; caps carry their traits', () => {
    expect(TARGETS.map((t) => t.name)).toEqual(['wgsl', 'cuda', 'triton', 'cpu']);
    for (const t of TARGETS) {
      expect(t.caps.target).toBe(t.name);
      expect(t.caps.traits).toBe(t.traits);
      expect(CAPS[t.name]).toBe(t.caps);
      expect(targetRecord(t.name)).toBe(t);
    }
    expect(SOURCE_TARGETS.map((t) => EXT[t.name])).toEqual(['wgsl', 'cu', 'py']);
    expect(() => targetRecord('metal')).toThrow(/target = "metal": not one of wgsl, cuda, triton, cpu/);
  });

  it('every target prints the same lowered kernel under its own entry', () => {
    const s = DEFAULT_SCHEDULE;
    for (const t of TARGETS) {
      const out = compileKernel(cceBackward(GIVEN), s, t.name);
      expect(out.entry).toBe('cce_minus_bwd');
      expect(out.source).toContain(t.name === 'cpu' ? 'JavaScript' : 'Generated by ccekit');
      expect(out.parameters.map((p) => p.name)).toContain('dC');
    }
  });
});

describe('no target names below targets/', () => {
  it('the lowering, its passes and the schedule fits compare no target name', () => {
    const names = TARGETS.map((t) => t.name).join('|');
    const literal = new RegExp(`['"\`](${names})['"\`]`);
    for (const file of ['codegen/lower.ts', 'codegen/regions.ts', 'codegen/target.ts', 'codegen/schedule.ts',
      'codegen/candidates.ts', 'codegen/untile.ts']) {
      const code = readFileSync(new URL(`../${file}`, import.meta.url), 'utf8')
        .split('\n')
        .filter((l) => !/^\s*(\/\/|\/?\*)/.test(l))
        .map((l) => l.replace(/\/\/.*$/, ''));
      expect(code.filter((l) => literal.test(l)), file).toEqual([]);
    }
  });
});
