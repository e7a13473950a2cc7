// CCE- forward + backward on WebGPU with the CPU runtime's API. Pipelines are cached by kernel + schedule
// + options (never shapes: sizes travel in the uniform block); bind-group layouts are derived from the
// emitted WGSL with wgsl_reflect and checked against the manifest; outputs are poisoned before each run.
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import { CODEGEN_VERSION } from '../../codegen/compile.js';
import type { Kernel } from '../../codegen/ir.js';
import { type LoweredKernel, checkKernelForD, lower } from '../../codegen/lower.js';
import { type CceOptions, cceBackward, cceForward, cceFusedDE, cceSamples, optionsKey } from '../../dsl/cce.js';
import { type Schedule, exactD, fitD } from '../../dsl/schedule.js';
import { emitWgsl } from '../../targets/wgsl/emit.js';
import type { ParamDoc } from '../../targets/common.js';
import { logQ, type CceProblem, validateProblem } from '../problem.js';
import { samplerInputs } from '../philox.js';
import { fixedToFloat, runDCScale } from '../fixed.js';
import { type ByItemKernel, byItemKernel, byItemPlan, reduceScheduleFor, runByItemChunks } from '../byitem.js';
import { type CceResult, type RunOptions, byItemUnsupported, optionsFor, problemDims, reduceLoss, scheduleForProblem, upstreamGradient } from '../cpu/run.js';
import { WebgpuError, type WebgpuContext } from './device.js';

/** Default WebGPU schedule: 32 lanes a row (one subgroup on NVIDIA), 4-element row accesses, 4 rows per workgroup. */
export const WEBGPU_SCHEDULE: Schedule = { rows: 4, lanes: 32, vec: 4, dChunks: 2, samplesPerStep: 2, stages: 1 };
/**
 * Default for the backward: WGSL has no vector atomics, and its compare-exchange scatter-add coalesces when
 * consecutive lanes own consecutive elements (vec = 1); on an H100 this helped ml20m, zvuk and small-d and not
 * beauty or megamarket (bench/results/webgpu-h100.md: noisy runs).
 */
export const WEBGPU_BWD_SCHEDULE: Schedule = { rows: 4, lanes: 32, vec: 1, dChunks: 8, samplesPerStep: 4, stages: 1 };
/**
 * Default schedules of the two passes, from H100 runs (bench/results/h100-deterministic-webgpu.md):
 * - shared negatives: 256 threads, lanes ≈ D/8 (vec 4, 2 chunks), the rest rows — 8 rows at D = 256, 32 at
 *   D = 64 — whose partial rows are summed in workgroup memory (8 KiB) before each candidate's atomic
 *   update, one candidate a step; the same schedule for both passes;
 * - per-row negatives at D ≤ 64: 8 rows of 32 lanes, one element a lane, 4 candidates a step, both passes;
 * - per-row negatives above: WEBGPU_SCHEDULE forward, WEBGPU_BWD_SCHEDULE backward.
 */
export function webgpuSchedules(D: number, shared: boolean): { fwd: Schedule; bwd: Schedule } {
  const d = 2 ** Math.ceil(Math.log2(Math.max(1, D)));
  if (shared) {
    const lanes = Math.min(32, Math.max(4, d / 8));
    const dChunks = Math.max(2, d / (lanes * 4));
    const rows = Math.min(256 / lanes, Math.max(1, 2048 / (lanes * 4 * dChunks)));
    const s = { rows, lanes, vec: 4, dChunks, samplesPerStep: 1, stages: 1 } as Schedule;
    return { fwd: s, bwd: s };
  }
  if (d <= 64) {
    const s: Schedule = { rows: 8, lanes: 32, vec: 1, dChunks: 2, samplesPerStep: 4, stages: 1 };
    return { fwd: s, bwd: s };
  }
  return { fwd: WEBGPU_SCHEDULE, bwd: WEBGPU_BWD_SCHEDULE };
}

/**
 * The by-item reduction on WebGPU: a row's lanes are one subgroup (a lane reduction through workgroup memory
 * would cost two barriers per pair), 2-element accesses where D allows, two pairs a step, 256 invocations. On an
 * H100 (Dawn over Vulkan) 2-element accesses beat 4: beauty 11.7 → 9.8 ms, megamarket 18.8 → 12.4, ml20m 50.6 →
 * 45.4; 8 rows of 32 lanes beat 4: ml20m 45.2 → 39.9, small-d 8.7 → 8.0 (bench/results/h100-by-item.md).
 */
export function webgpuReduceSchedule(D: number, subgroupSize?: number): Schedule {
  const lanes = (subgroupSize && subgroupSize <= 32 ? subgroupSize : 32) as Schedule['lanes'];
  return fitD({ rows: Math.max(1, 256 / lanes) as Schedule['rows'], lanes, vec: D % 2 === 0 ? 2 : 1, dChunks: 1, samplesPerStep: 2, stages: 1 }, D);
}

interface Pipeline {
  kernel: Kernel;
  lowered: LoweredKernel;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  params: ParamDoc[];
  source: string;
}

const pipelines = new WeakMap<GPUDevice, Map<string, Pipeline>>();

/** Bindings wgsl_reflect finds in the source must equal the manifest's, name for name. */
export function checkBindings(kernelName: string, source: string, params: ParamDoc[]): GPUBindGroupLayoutEntry[] {
  const r = new WgslReflect(source);
  const found = [
    ...r.storage.map((s: { name: string; group: number; binding: number; access: string }) => ({ name: s.name, group: s.group, binding: s.binding, type: s.access === 'read' ? 'read-only-storage' : 'storage' })),
    ...r.uniforms.map((s: { name: string; group: number; binding: number }) => ({ name: s.name, group: s.group, binding: s.binding, type: 'uniform' })),
  ].sort((a, b) => a.binding - b.binding);
  const want = params.filter((p) => p.binding !== undefined).sort((a, b) => a.binding! - b.binding!);
  const fmt = (xs: { name: string; binding?: number }[]) => xs.map((x) => `${x.binding}:${x.name}`).join(' ');
  if (found.some((f) => f.group !== 0) || fmt(found) !== fmt(want))
    throw new WebgpuError(`${kernelName}: WGSL bindings [${fmt(found)}] do not match the manifest [${fmt(want)}]`);
  for (const f of found) {
    const p = want.find((w) => w.name === f.name)!;
    const wantType = p.kind !== 'tensor' ? 'uniform' : p.access === 'read' ? 'read-only-storage' : 'storage';
    if (wantType !== f.type) throw new WebgpuError(`${kernelName}: binding ${f.name} is ${f.type} in WGSL, ${wantType} in the manifest`);
  }
  return found.map((f) => ({ binding: f.binding, visibility: GPUShaderStage.COMPUTE, buffer: { type: f.type as GPUBufferBindingType } }));
}

/** A pipeline for schedule `s`; `D`, where given, specializes it when it equals the schedule's BLOCK_D (no element guards). */
async function getPipeline(ctx: WebgpuContext, which: 'fwd' | 'bwd' | 'samples' | 'fusedDEByItem', o: CceOptions, s: Schedule, D?: number): Promise<Pipeline> {
  return compiledPipeline(ctx, `${which}|${JSON.stringify(s)}|${optionsKey(o)}`, D, () => ({
    kernel: which === 'fwd' ? cceForward(o, s) : which === 'bwd' ? cceBackward(o, s) : which === 'samples' ? cceSamples(o, s) : cceFusedDE(o, s, true),
    schedule: s,
  }));
}

async function compiledPipeline(ctx: WebgpuContext, key0: string, D: number | undefined, make: () => { kernel: Kernel; schedule: Schedule }): Promise<Pipeline> {
  let cache = pipelines.get(ctx.device);
  if (!cache) pipelines.set(ctx.device, (cache = new Map()));
  const key = `${CODEGEN_VERSION}|${key0}|${D ?? ''}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const { kernel, schedule: s } = make();
  const lowered = lower(kernel, s, ctx.caps, { exactD: exactD(s, D) });
  checkKernelForD(lowered, D);
  const { source, parameters } = emitWgsl(lowered, CODEGEN_VERSION);
  const { device } = ctx;
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code: source, label: kernel.name });
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === 'error');
  await device.popErrorScope();
  if (errors.length) throw new WebgpuError(`${kernel.name}: WGSL compilation failed: ${errors.map((m) => `line ${m.lineNum}: ${m.message}`).join('; ')}`);
  const entries = checkBindings(kernel.name, source, parameters);
  const layout = device.createBindGroupLayout({ entries, label: kernel.name });
  device.pushErrorScope('validation');
  const pipeline = device.createComputePipeline({ layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }), compute: { module, entryPoint: kernel.name }, label: kernel.name });
  const err = await device.popErrorScope();
  if (err) throw new WebgpuError(`${kernel.name}: pipeline creation failed: ${err.message}`);
  const p = { kernel, lowered, pipeline, layout, params: parameters, source };
  cache.set(key, p);
  return p;
}

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;

/**
 * The uniform block (the kernel's scalars, then its dims, 4 bytes each, in the emitter's order) and the bind group
 * of a pipeline; returns the group and the uniform buffer (the caller owns and destroys it).
 */
function bindKernel(device: GPUDevice, pl: Pipeline, bufs: Record<string, GPUBuffer>, scalars: Record<string, number>): { group: GPUBindGroup; uniform: GPUBuffer } {
  const k = pl.kernel;
  const fields = [...k.params.filter((q) => q.kind === 'scalar'), ...k.dims.map((d) => ({ kind: 'scalar' as const, name: d, type: 'i32' as const }))];
  const u = new DataView(new ArrayBuffer(roundUp(Math.max(4, fields.length * 4), 16)));
  fields.forEach((f, i) => {
    const v = scalars[f.name];
    if (v === undefined) throw new WebgpuError(`${k.name}: no value for uniform ${f.name}`);
    if (f.type === 'f32') u.setFloat32(i * 4, v, true);
    else if (f.type === 'u32') u.setUint32(i * 4, v, true);
    else u.setInt32(i * 4, v, true);
  });
  const uniform = device.createBuffer({ size: u.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label: `${k.name}.params` });
  device.queue.writeBuffer(uniform, 0, u.buffer);
  const entries = pl.params
    .filter((q) => q.binding !== undefined)
    .map((q) => {
      const buffer = q.name === 'params' ? uniform : bufs[q.name];
      if (!buffer) throw new WebgpuError(`${k.name}: no buffer for binding ${q.name}`);
      return { binding: q.binding!, resource: { buffer } };
    });
  return { group: device.createBindGroup({ layout: pl.layout, entries, label: k.name }), uniform };
}

/** Typed data → bytes as the WGSL kernel reads them (16-bit values packed two per u32 word). */
function bytesOf(data: ArrayBufferView): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export interface WebgpuRunOptions extends RunOptions {
  /** Timed repetitions of forward + backward after the checked run (0: none). */
  repeats?: number;
}

export interface KernelTiming {
  kernel: string;
  /** Median over repeats, milliseconds. */
  ms: number;
  samples: number[];
  method: 'timestamp-query' | 'wall-clock' | 'cuda-events';
}

export interface WebgpuResult extends CceResult {
  device: string;
  timings: KernelTiming[];
  schedule: Schedule;
  /** The backward's schedule (webgpuSchedules unless a schedule was given). */
  bwdSchedule: Schedule;
}

export async function runCceWebgpu(ctx: WebgpuContext, p: CceProblem, o: WebgpuRunOptions = {}): Promise<WebgpuResult> {
  validateProblem(p);
  if (ctx.lost) throw new WebgpuError('WebGPU: the device was lost');
  const opts = optionsFor(p, o);
  const def = webgpuSchedules(p.D, !!p.shareRows);
  // dC by item: its forward carries dE (and the gathered row) through the sweep. 4 candidates a step and
  // 2-element accesses: on an H100 6.43 → 2.49 ms at beauty and 19.2 → 7.9 at ml20m against 4-element ones,
  // 3.12 → 2.18 at small-d against 1-element ones (bench/results/h100-by-item.md).
  const byItemFwd = { ...def.fwd, samplesPerStep: 4, ...(p.D % 2 === 0 ? { vec: 2, dChunks: Math.max(1, (def.fwd.dChunks * def.fwd.vec) / 2) } : {}) } as Schedule;
  const s = scheduleForProblem(o.schedule ?? (o.byItem ? byItemFwd : def.fwd), p, ctx.caps);
  if (o.byItem) {
    const why = byItemUnsupported(p, o);
    if (why) throw new WebgpuError(`byItem: ${why}`);
  }
  // Every schedule fitted and checked against D before anything is compiled.
  const bwdS = o.byItem ? undefined : o.schedule ? s : scheduleForProblem(def.bwd, p, ctx.caps);
  const reduce0 = o.reduceSchedule ?? webgpuReduceSchedule(p.D, ctx.caps.subgroupSize);
  const reduceS = o.byItem ? reduceScheduleFor(reduce0, p.D) : undefined;
  if (bwdS && bwdS.rows !== s.rows)
    throw new WebgpuError('forward and backward schedules must have the same rows per program');
  // dC by item: the forward with dE in one sweep; the backward is the by-item sequence (`chain` below).
  const fwd = await getPipeline(ctx, o.byItem ? 'fusedDEByItem' : 'fwd', opts, s, p.D);
  const bwd = bwdS ? await getPipeline(ctx, 'bwd', opts, bwdS, p.D) : undefined;
  const { device } = ctx;
  const limit = ctx.caps.maxStorageBindingBytes ?? Infinity;
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
  const owned: GPUBuffer[] = [];
  const buffer = (name: string, bytes: number, data?: ArrayBufferView): GPUBuffer => {
    if (bytes > limit)
      throw new WebgpuError(`${name}: ${bytes} bytes exceed the adapter's maxStorageBufferBindingSize (${limit}); splitting a tensor across bindings is not supported yet — use a smaller problem or a device with larger bindings`);
    const b = device.createBuffer({ size: Math.max(16, roundUp(bytes, 4)), usage, label: name });
    owned.push(b);
    if (data) {
      const raw = bytesOf(data);
      let padded = raw;
      if (raw.byteLength % 4 !== 0) (padded = new Uint8Array(roundUp(raw.byteLength, 4))).set(raw);
      device.queue.writeBuffer(b, 0, padded);
    }
    return b;
  };
  try {
    const N = p.N;
    const lq = new Float32Array(logQ(p));
    const smp = samplerInputs(p);
    const nanRow = new Float32Array(N).fill(NaN);
    const bufs: Record<string, GPUBuffer> = {
      E: buffer('E', p.E.byteLength, p.E),
      C: buffer('C', p.C.byteLength, p.C),
      targets: buffer('targets', N * 4, p.targets),
      negatives: buffer('negatives', (p.negatives?.length ?? 0) * 4, p.negatives),
      logq: buffer('logq', lq.byteLength, lq),
      loss: buffer('loss', N * 4),
      lse: buffer('lse', N * 4),
      kacc: buffer('kacc', N * 4),
      lse_k: buffer('lse_k', N * 4),
      dE: buffer('dE', N * p.D * 4),
      dC: buffer('dC', p.V * p.D * (o.deterministic ? 8 : 4)),
      alias_table: buffer('alias_table', smp.alias ? p.V * 8 : 0, smp.alias),
    };
    const up = upstreamGradient(p, o.gradOutput);
    const { nValid, gradScale } = up;
    const dloss = new Float32Array(up.dloss);
    bufs.dloss = buffer('dloss', dloss.byteLength, dloss);
    const dCScale = runDCScale(p, o, gradScale, up.dloss);
    const scalars: Record<string, number> = { ...problemDims(p), ignore_index: p.ignoreIndex, logq_uniform: -Math.log(p.V - 1), grad_scale: gradScale, dC_scale: dCScale, seed_lo: smp.seed_lo, seed_hi: smp.seed_hi, V2: smp.V2 };

    const bind = (pl: Pipeline): GPUBindGroup => {
      const { group, uniform } = bindKernel(device, pl, bufs, scalars);
      owned.push(uniform);
      return group;
    };
    const grid = (rows: number, perProgram: number): [number, number] => {
      const programs = Math.ceil(rows / perProgram);
      const gx = Math.min(Math.max(1, programs), ctx.caps.maxGridX);
      const gy = Math.ceil(programs / gx);
      if (gy > ctx.caps.maxGridX) throw new WebgpuError(`${rows} rows: ${programs} workgroups exceed ${ctx.caps.maxGridX}² dispatch slots; raise schedule.rows`);
      return [gx, gy];
    };
    // The passes after the forward, in order, with buffer clears between them.
    type Op = { pl: Pipeline; group: GPUBindGroup; grid: [number, number] } | { clear: GPUBuffer; bytes: number };
    const chain: Op[] = [];
    if (bwd) chain.push({ pl: bwd, group: bind(bwd), grid: grid(N, s.rows) });
    else {
      const plan = byItemPlan(p, o.pairBytes, o.packPairs);
      const rs = reduceS!;
      const kernels = new Map<ByItemKernel, Pipeline>();
      for (const k of ['count', 'scan', 'scanAdd', 'fill', 'reduce'] as const)
        kernels.set(k, await compiledPipeline(ctx, `byItem|${k}|${plan.packed}|${JSON.stringify(rs)}|${optionsKey(opts)}`, p.D, () => byItemKernel(k, opts, rs, plan.packed)));
      const bi = {
        counts: buffer('counts', p.V * 4),
        local: plan.levels.map((l, i) => buffer(`scan_local${i}`, l.n * 4)),
        totals: plan.levels.map((l, i) => buffer(`scan_totals${i}`, l.blocks * 4)),
        rows: buffer('pair_rows', plan.capacity * 4),
        items: buffer('pair_items', plan.packed ? 0 : plan.capacity * 4),
      };
      runByItemChunks(
        {
          launch: (k, rows, b, sc) => {
            const pl = kernels.get(k)!;
            const { group, uniform } = bindKernel(device, pl, b, sc);
            owned.push(uniform);
            chain.push({ pl, group, grid: grid(rows, pl.lowered.schedule.rows) });
          },
          clear: (b, words) => chain.push({ clear: b, bytes: words * 4 }),
        },
        p,
        plan,
        { ...bi, inputs: bufs },
        scalars,
      );
    }
    const fwdGroup = bind(fwd);
    const fwdGrid = grid(N, s.rows);

    const querySet = ctx.timestamps ? device.createQuerySet({ type: 'timestamp', count: 4 }) : undefined;
    const qbuf = querySet ? device.createBuffer({ size: 32, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }) : undefined;
    const readTs = querySet ? device.createBuffer({ size: 32, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }) : undefined;

    /** One step: clear dC, forward, backward; returns per-kernel ms (timestamps or wall clock). */
    const step = async (timed: boolean): Promise<[number, number]> => {
      if (!timed || querySet) {
        const enc = device.createCommandEncoder();
        enc.clearBuffer(bufs.dC);
        encode(enc, querySet);
        if (querySet) {
          enc.resolveQuerySet(querySet, 0, 4, qbuf!, 0);
          enc.copyBufferToBuffer(qbuf!, 0, readTs!, 0, 32);
        }
        device.queue.submit([enc.finish()]);
        if (!querySet) {
          await device.queue.onSubmittedWorkDone();
          return [NaN, NaN];
        }
        await readTs!.mapAsync(GPUMapMode.READ);
        const t = new BigInt64Array(readTs!.getMappedRange().slice(0));
        readTs!.unmap();
        return [Number(t[1] - t[0]) / 1e6, Number(t[3] - t[2]) / 1e6];
      }
      // Wall clock around each submission.
      const out: number[] = [];
      const clr = device.createCommandEncoder();
      clr.clearBuffer(bufs.dC);
      device.queue.submit([clr.finish()]);
      await device.queue.onSubmittedWorkDone();
      for (const part of [0, 1] as const) {
        const enc = device.createCommandEncoder();
        encode(enc, undefined, part);
        const t0 = performance.now();
        device.queue.submit([enc.finish()]);
        await device.queue.onSubmittedWorkDone();
        out.push(performance.now() - t0);
      }
      return [out[0], out[1]];
    };

    /**
     * The forward (part 0) and the chain after it (part 1), or both; with a query set, timestamps 0–1 bracket
     * the forward and 2–3 the chain (its first pass's start, its last pass's end).
     */
    function encode(enc: GPUCommandEncoder, qs: GPUQuerySet | undefined, part?: 0 | 1): void {
      const dispatch = (pl: Pipeline, group: GPUBindGroup, [x, y]: [number, number], ts?: GPUComputePassTimestampWrites) => {
        const pass = enc.beginComputePass(ts ? { timestampWrites: ts } : {});
        pass.setPipeline(pl.pipeline);
        pass.setBindGroup(0, group);
        pass.dispatchWorkgroups(x, y);
        pass.end();
      };
      if (part !== 1) dispatch(fwd, fwdGroup, fwdGrid, qs && { querySet: qs, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 });
      if (part === 0) return;
      const passes = chain.filter((op): op is Extract<Op, { pl: Pipeline }> => 'pl' in op);
      for (const op of chain) {
        if ('clear' in op) {
          enc.clearBuffer(op.clear, 0, op.bytes);
          continue;
        }
        const first = op === passes[0], last = op === passes[passes.length - 1];
        const ts = qs && (first || last) ? { querySet: qs, ...(first ? { beginningOfPassWriteIndex: 2 } : {}), ...(last ? { endOfPassWriteIndex: 3 } : {}) } : undefined;
        dispatch(op.pl, op.group, op.grid, ts);
      }
    }

    const samples: [number, number][] = [];
    // Timed runs after 2 s of untimed ones: on the H100 the first seconds of a run were up to 5× slower
    // (clocks ramping up from idle; bench/results/webgpu-shared-schedules-h100.json shows the drift).
    const warmEnd = performance.now() + 2000;
    if (o.repeats) for (let r = 0; r < 2 || performance.now() < warmEnd; r++) await step(true);
    for (let r = 0; r < (o.repeats ?? 0); r++) samples.push(await step(true));

    // The checked run: poison every output first.
    device.queue.writeBuffer(bufs.loss, 0, nanRow);
    device.queue.writeBuffer(bufs.lse, 0, nanRow);
    device.queue.writeBuffer(bufs.kacc, 0, new Int32Array(N).fill(-1));
    const poisonDE = new Float32Array(N * p.D).fill(NaN);
    device.queue.writeBuffer(bufs.dE, 0, poisonDE);
    await step(false);

    const read = async (b: GPUBuffer, bytes: number): Promise<ArrayBuffer> => {
      const staging = device.createBuffer({ size: Math.max(16, roundUp(bytes, 4)), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      owned.push(staging);
      const enc = device.createCommandEncoder();
      enc.copyBufferToBuffer(b, 0, staging, 0, staging.size);
      device.queue.submit([enc.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      const copy = staging.getMappedRange().slice(0, bytes);
      staging.unmap();
      return copy;
    };
    const f64 = (ab: ArrayBuffer) => Float64Array.from(new Float32Array(ab));
    const rowLoss = f64(await read(bufs.loss, N * 4));
    // dC by item keeps lse + log k, not lse and the accepted counts: none are returned (as from a fused run).
    const lse = o.byItem ? new Float64Array(0) : f64(await read(bufs.lse, N * 4));
    const kAccepted = o.byItem ? new Int32Array(0) : p.mode === 'sampled' ? new Int32Array(await read(bufs.kacc, N * 4)) : new Int32Array(N);
    const dE = f64(await read(bufs.dE, N * p.D * 4));
    const dC = o.deterministic ? fixedToFloat(new BigInt64Array(await read(bufs.dC, p.V * p.D * 8)), dCScale) : f64(await read(bufs.dC, p.V * p.D * 4));
    const loss = reduceLoss(p, rowLoss, nValid);
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
    const method = querySet ? 'timestamp-query' : 'wall-clock';
    const timings: KernelTiming[] = samples.length
      ? [0, 1].map((i) => ({ kernel: i ? bwd?.kernel.name ?? 'dC by item' : fwd.kernel.name, ms: median(samples.map((x) => x[i])), samples: samples.map((x) => x[i]), method }))
      : [];
    querySet?.destroy();
    qbuf?.destroy();
    readTs?.destroy();
    return { loss, rowLoss, lse, kAccepted, nValid, dE, dC, device: ctx.name, timings, schedule: s, bwdSchedule: bwd?.lowered.schedule ?? reduceS! };
  } finally {
    for (const b of owned) b.destroy();
  }
}

/** The WGSL source the runtime would run for a problem (for `ccekit emit` parity and debugging). */
export function webgpuSources(o: CceOptions, s: Schedule): { forward: string; backward: string } {
  return { forward: emitWgsl(lower(cceForward(o, s), s), CODEGEN_VERSION).source, backward: emitWgsl(lower(cceBackward(o, s), s), CODEGEN_VERSION).source };
}

/** The negatives the in-kernel sampler draws for a problem with philoxSeed, as this device computes them. */
export async function samplesWebgpu(ctx: WebgpuContext, p: CceProblem): Promise<Int32Array> {
  const s = { ...WEBGPU_SCHEDULE, lanes: 1, rows: 64, dChunks: 1, vec: 1 } as Schedule;
  const pl = await getPipeline(ctx, 'samples', optionsFor(p), s);
  const smp = samplerInputs(p);
  const { device } = ctx;
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
  const mk = (bytes: number, data?: ArrayBufferView) => {
    const b = device.createBuffer({ size: Math.max(16, roundUp(bytes, 4)), usage });
    if (data) device.queue.writeBuffer(b, 0, bytesOf(data));
    return b;
  };
  const bufs: Record<string, GPUBuffer> = {
    samples: mk(p.N * p.K * 4),
    alias_table: mk(smp.alias ? p.V * 8 : 0, smp.alias),
  };
  const scalars: Record<string, number> = { N: p.N, D: p.D, V: p.V, K: p.K, V2: smp.V2, seed_lo: smp.seed_lo, seed_hi: smp.seed_hi };
  const { group, uniform: ub } = bindKernel(device, pl, bufs, scalars);
  const programs = Math.ceil(p.N / s.rows);
  const gx = Math.min(programs, ctx.caps.maxGridX);
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pl.pipeline);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(gx, Math.ceil(programs / gx));
  pass.end();
  const read = device.createBuffer({ size: bufs.samples!.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  enc.copyBufferToBuffer(bufs.samples!, 0, read, 0, read.size);
  device.queue.submit([enc.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const out = new Int32Array(read.getMappedRange().slice(0, p.N * p.K * 4));
  read.unmap();
  for (const b of [...Object.values(bufs), ub, read]) b.destroy();
  return out;
}
