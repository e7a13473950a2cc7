// The WebGPU backend (Dawn in Node): pipelines cached by the one kernel key (runtime/kernels.ts; shapes travel in
// the uniform block, never in keys); bind-group layouts derived from the emitted WGSL with wgsl_reflect and
// checked against the manifest. Launches are recorded and encoded at the next synchronisation, so marks can
// become timestamp writes of the passes next to them. No step logic here (runtime/step.ts).
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import { CODEGEN_VERSION } from '../../codegen/version.js';
import { checkKernelForD, lower } from '../../codegen/lower.js';
import type { Schedule } from '../../codegen/schedule.js';
import type { ParamDoc } from '../../codegen/target.js';
import { emitWgsl } from '../../targets/wgsl/emit.js';
import {
  type Backend, type BufferDType, type CompiledKernel, DTYPE_BYTES, type DeviceBuffer, type ReadData, driveAsync,
  fillWord, readDataOf, storageOf,
} from '../backend.js';
import { WEBGPU_SCHEDULE } from '../defaults.js';
import { runOn } from '../devices.js';
import { type KernelSpec, KernelCache, buildKernel } from '../kernels.js';
import type { CceProblem } from '../problem.js';
import { type KernelTiming, type RunOptions, type StepResult, samplesStep } from '../step.js';
import { WebgpuError, type WebgpuContext } from './device.js';

export { WEBGPU_BWD_SCHEDULE, WEBGPU_SCHEDULE, webgpuReduceSchedule, webgpuSchedules } from '../defaults.js';
export type { KernelTiming };

interface WgpuKernel extends CompiledKernel {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  params: ParamDoc[];
  source: string;
}
interface WgpuBuffer extends DeviceBuffer {
  gpu: GPUBuffer;
  id: number;
}

/** Bindings wgsl_reflect finds in the source must equal the manifest's, name for name. */
export function checkBindings(kernelName: string, source: string, params: ParamDoc[]): GPUBindGroupLayoutEntry[] {
  const r = new WgslReflect(source);
  type Found = { name: string; group: number; binding: number; type: string };
  const found: Found[] = [
    ...r.storage.map((s: { name: string; group: number; binding: number; access: string }) =>
      ({ ...s, type: s.access === 'read' ? 'read-only-storage' : 'storage' })),
    ...r.uniforms.map((s: { name: string; group: number; binding: number }) => ({ ...s, type: 'uniform' })),
  ].map(({ name, group, binding, type }) => ({ name, group, binding, type })).sort((a, b) => a.binding - b.binding);
  const want = params.filter((p) => p.binding !== undefined).sort((a, b) => a.binding! - b.binding!);
  const fmt = (xs: { name: string; binding?: number }[]) => xs.map((x) => `${x.binding}:${x.name}`).join(' ');
  if (found.some((f) => f.group !== 0) || fmt(found) !== fmt(want))
    throw new WebgpuError(`${kernelName}: WGSL bindings [${fmt(found)}] do not match the manifest [${fmt(want)}]`);
  for (const f of found) {
    const p = want.find((w) => w.name === f.name)!;
    const wantType = p.kind !== 'tensor' ? 'uniform' : p.access === 'read' ? 'read-only-storage' : 'storage';
    if (wantType !== f.type) {
      throw new WebgpuError(`${kernelName}: binding ${f.name} is ${f.type} in WGSL, ${wantType} in the manifest`);
    }
  }
  const buffer = (f: Found) => ({ type: f.type as GPUBufferBindingType });
  return found.map((f) => ({ binding: f.binding, visibility: GPUShaderStage.COMPUTE, buffer: buffer(f) }));
}

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;

type Op =
  | { k: 'pass'; kernel: WgpuKernel; group: GPUBindGroup; grid: [number, number] }
  | { k: 'clear'; buffer: GPUBuffer; bytes: number }
  | { k: 'mark' };

const caches = new WeakMap<GPUDevice, KernelCache<Promise<WgpuKernel>>>();

export class WebgpuBackend implements Backend<WgpuBuffer, WgpuKernel> {
  readonly kind = 'webgpu' as const;
  readonly timing: 'timestamp-query' | 'wall-clock';
  private ops: Op[] = [];
  private nextId = 0;
  private groups = new Map<string, { group: GPUBindGroup; uniform: GPUBuffer; ids: number[] }>();
  private pendingMs: number[] = [];

  constructor(readonly ctx: WebgpuContext) {
    this.timing = ctx.timestamps ? 'timestamp-query' : 'wall-clock';
  }
  get device(): string {
    return this.ctx.name;
  }
  get caps() {
    return this.ctx.caps;
  }
  get identity() {
    const i = this.ctx.info;
    return { name: this.ctx.name, arch: `webgpu:${i.vendor ?? ''}/${i.architecture ?? ''}`, driver: i.device ?? '' };
  }

  compile(spec: KernelSpec): Promise<WgpuKernel> {
    let cache = caches.get(this.ctx.device);
    if (!cache) caches.set(this.ctx.device, (cache = new KernelCache()));
    const c = cache;
    return c.get(spec, () => this.build(spec).catch((e: unknown) => {
      c.delete(spec);
      throw e;
    }));
  }

  private async build(spec: KernelSpec): Promise<WgpuKernel> {
    const kernel = buildKernel(spec);
    const lowered = lower(kernel, spec.schedule, this.ctx.caps, { exactD: spec.exactD });
    checkKernelForD(lowered, spec.D);
    const { source, parameters } = emitWgsl(lowered, CODEGEN_VERSION);
    const device = this.ctx.device;
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code: source, label: kernel.name });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    await device.popErrorScope();
    if (errors.length) {
      const text = errors.map((m) => `line ${m.lineNum}: ${m.message}`).join('; ');
      throw new WebgpuError(`${kernel.name}: WGSL compilation failed: ${text}`);
    }
    const entries = checkBindings(kernel.name, source, parameters);
    const layout = device.createBindGroupLayout({ entries, label: kernel.name });
    device.pushErrorScope('validation');
    const pipeline = device.createComputePipeline({
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: kernel.name },
      label: kernel.name,
    });
    const err = await device.popErrorScope();
    if (err) throw new WebgpuError(`${kernel.name}: pipeline creation failed: ${err.message}`);
    return { spec, kernel, lowered, pipeline, layout, params: parameters, source };
  }

  alloc(name: string, dtype: BufferDType, length: number): WgpuBuffer {
    const bytes = length * DTYPE_BYTES[dtype];
    const limit = this.ctx.caps.maxStorageBindingBytes ?? Infinity;
    if (bytes > limit) {
      throw new WebgpuError(
        `${name}: ${bytes} bytes exceed the adapter's maxStorageBufferBindingSize (${limit}); splitting a tensor ` +
        'across bindings is not supported yet — use a smaller problem or a device with larger bindings');
    }
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
    const gpu = this.ctx.device.createBuffer({ size: Math.max(16, roundUp(bytes, 4)), usage, label: name });
    return { name, dtype, length, gpu, id: this.nextId++ };
  }

  upload(b: WgpuBuffer, data: ArrayLike<number> | ArrayLike<bigint>): void {
    this.encode();
    this.write(b, storageOf(b.dtype, data));
  }

  private write(b: WgpuBuffer, view: ArrayBufferView): void {
    const raw = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
    let padded = raw;
    if (raw.byteLength % 4 !== 0) (padded = new Uint8Array(roundUp(raw.byteLength, 4))).set(raw);
    this.ctx.device.queue.writeBuffer(b.gpu, 0, padded);
  }

  fill(b: WgpuBuffer, value: number, count = b.length): void {
    const bytes = roundUp(count * DTYPE_BYTES[b.dtype], 4);
    const word = fillWord(b.dtype, value);
    if (word === 0) {
      if (bytes) this.ops.push({ k: 'clear', buffer: b.gpu, bytes });
      return;
    }
    this.encode();
    this.write(b, new Uint32Array(bytes / 4).fill(word));
  }

  launch(k: WgpuKernel, rows: number, buffers: Record<string, WgpuBuffer>, scalars: Record<string, number>): void {
    const programs = Math.ceil(rows / k.lowered.schedule.rows);
    const maxX = this.ctx.caps.maxGridX;
    const gx = Math.min(Math.max(1, programs), maxX);
    const gy = Math.ceil(programs / gx);
    if (gy > maxX) {
      const slots = `${maxX}² dispatch slots`;
      throw new WebgpuError(`${rows} rows: ${programs} workgroups exceed ${slots}; raise schedule.rows`);
    }
    checkKernelForD(k.lowered, scalars[k.kernel.vecDim]);
    this.ops.push({ k: 'pass', kernel: k, group: this.bind(k, buffers, scalars), grid: [gx, gy] });
  }

  /** The uniform block (scalars, then dims, 4 bytes each, in the emitter's order) and the bind group, cached. */
  private bind(k: WgpuKernel, bufs: Record<string, WgpuBuffer>, scalars: Record<string, number>): GPUBindGroup {
    const bound = k.params.filter((q) => q.binding !== undefined);
    const ids = bound.map((q) => bufs[q.name]?.id ?? -1);
    const key = `${k.spec.key}|${ids.join(',')}|${JSON.stringify(scalars)}`;
    const hit = this.groups.get(key);
    if (hit) return hit.group;
    const kernel = k.kernel;
    const fields = [
      ...kernel.params.filter((q) => q.kind === 'scalar'),
      ...kernel.dims.map((d) => ({ kind: 'scalar' as const, name: d, type: 'i32' as const })),
    ];
    const u = new DataView(new ArrayBuffer(roundUp(Math.max(4, fields.length * 4), 16)));
    fields.forEach((f, i) => {
      const v = scalars[f.name];
      if (v === undefined) throw new WebgpuError(`${kernel.name}: no value for uniform ${f.name}`);
      if (f.type === 'f32') u.setFloat32(i * 4, v, true);
      else if (f.type === 'u32') u.setUint32(i * 4, v, true);
      else u.setInt32(i * 4, v, true);
    });
    const usage = GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST;
    const uniform = this.ctx.device.createBuffer({ size: u.byteLength, usage, label: `${kernel.name}.params` });
    this.ctx.device.queue.writeBuffer(uniform, 0, u.buffer);
    const entries = bound.map((q) => {
      const buffer = q.name === 'params' ? uniform : bufs[q.name]?.gpu;
      if (!buffer) throw new WebgpuError(`${kernel.name}: no buffer for binding ${q.name}`);
      return { binding: q.binding!, resource: { buffer } };
    });
    const group = this.ctx.device.createBindGroup({ layout: k.layout, entries, label: kernel.name });
    this.groups.set(key, { group, uniform, ids });
    return group;
  }

  mark(): void {
    this.ops.push({ k: 'mark' });
  }

  /**
   * Encode and submit the recorded ops. With `timed`, marks become timestamp writes (a pass's beginning, or the
   * previous pass's end where no pass follows) and the ms between them are kept for elapsed().
   */
  private encode(timed = false): Promise<void> | undefined {
    const ops = this.ops;
    this.ops = [];
    if (!ops.length) return undefined;
    const device = this.ctx.device;
    const marks = ops.filter((op) => op.k === 'mark').length;
    const qs = timed && marks && this.ctx.timestamps ? device.createQuerySet({ type: 'timestamp', count: 2 * marks })
      : undefined;
    // Each mark takes the slot of the pass next to it: begin (2·i) of the following pass, else end of the last.
    const begin = new Map<number, number>();
    const end = new Map<number, number>();
    const slotOfMark: number[] = [];
    let lastPass = -1;
    ops.forEach((op, i) => {
      if (op.k === 'pass') lastPass = i;
      if (op.k !== 'mark') return;
      const next = ops.findIndex((x, j) => j > i && x.k !== 'clear');
      const m = slotOfMark.length;
      if (next >= 0 && ops[next]!.k === 'pass') {
        if (!begin.has(next)) begin.set(next, 2 * m);
        slotOfMark.push(begin.get(next)!);
      } else if (lastPass >= 0) {
        if (!end.has(lastPass)) end.set(lastPass, 2 * m + 1);
        slotOfMark.push(end.get(lastPass)!);
      } else slotOfMark.push(-1);
    });
    const enc = device.createCommandEncoder();
    ops.forEach((op, i) => {
      if (op.k === 'clear') enc.clearBuffer(op.buffer, 0, op.bytes);
      if (op.k !== 'pass') return;
      const ts = qs && (begin.has(i) || end.has(i)) ? {
        querySet: qs,
        ...(begin.has(i) ? { beginningOfPassWriteIndex: begin.get(i)! } : {}),
        ...(end.has(i) ? { endOfPassWriteIndex: end.get(i)! } : {}),
      } : undefined;
      const pass = enc.beginComputePass(ts ? { timestampWrites: ts } : {});
      pass.setPipeline(op.kernel.pipeline);
      pass.setBindGroup(0, op.group);
      pass.dispatchWorkgroups(...op.grid);
      pass.end();
    });
    if (!qs) {
      device.queue.submit([enc.finish()]);
      return undefined;
    }
    const bytes = 16 * marks;
    const resolve = device.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const readback = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    enc.resolveQuerySet(qs, 0, 2 * marks, resolve, 0);
    enc.copyBufferToBuffer(resolve, 0, readback, 0, bytes);
    device.queue.submit([enc.finish()]);
    return readback.mapAsync(GPUMapMode.READ).then(() => {
      const t = new BigInt64Array(readback.getMappedRange().slice(0));
      readback.unmap();
      const at = slotOfMark.map((s) => (s < 0 ? NaN : Number(t[s]!) / 1e6));
      this.pendingMs.push(...at.slice(1).map((x, i) => x - at[i]!));
      for (const x of [qs, resolve, readback]) x.destroy();
    });
  }

  async elapsed(): Promise<number[]> {
    if (this.ctx.timestamps) await this.encode(true);
    else {
      // Wall clock: each segment between marks submitted and awaited on its own.
      const ops = this.ops;
      this.ops = [];
      let t0: number | undefined;
      for (const op of ops) {
        if (op.k !== 'mark') {
          this.ops.push(op);
          continue;
        }
        this.encode();
        await this.ctx.device.queue.onSubmittedWorkDone();
        const now = performance.now();
        if (t0 !== undefined) this.pendingMs.push(now - t0);
        t0 = now;
      }
    }
    const out = this.pendingMs;
    this.pendingMs = [];
    return out;
  }

  async sync(): Promise<void> {
    if (this.ctx.lost) throw new WebgpuError('WebGPU: the device was lost');
    this.encode();
    await this.ctx.device.queue.onSubmittedWorkDone();
  }

  async read(b: WgpuBuffer, count = b.length): Promise<ReadData> {
    this.encode();
    const bytes = count * DTYPE_BYTES[b.dtype];
    const usage = GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST;
    const staging = this.ctx.device.createBuffer({ size: Math.max(16, roundUp(bytes, 4)), usage });
    const enc = this.ctx.device.createCommandEncoder();
    enc.copyBufferToBuffer(b.gpu, 0, staging, 0, staging.size);
    this.ctx.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const copy = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    return readDataOf(b.dtype, copy);
  }

  free(b: WgpuBuffer): void {
    b.gpu.destroy();
    // Bind groups name buffers by id: a freed buffer's groups (and their uniform blocks) go with it.
    for (const [key, g] of this.groups) {
      if (!g.ids.includes(b.id)) continue;
      g.uniform.destroy();
      this.groups.delete(key);
    }
  }
}

/** The backend of a context (one a context, so kernels and bind groups are shared by its steps). */
const backends = new WeakMap<WebgpuContext, WebgpuBackend>();
export function webgpuBackend(ctx: WebgpuContext): WebgpuBackend {
  let b = backends.get(ctx);
  if (!b) backends.set(ctx, (b = new WebgpuBackend(ctx)));
  return b;
}

export type WebgpuRunOptions = RunOptions;
export type WebgpuResult = StepResult;

export async function runCceWebgpu(ctx: WebgpuContext, p: CceProblem, o: WebgpuRunOptions = {}): Promise<WebgpuResult> {
  if (ctx.lost) throw new WebgpuError('WebGPU: the device was lost');
  return runOn({ kind: 'webgpu', backend: webgpuBackend(ctx) }, p, o);
}

/** The negatives the in-kernel sampler draws for a problem with philoxSeed, as this device computes them. */
export function samplesWebgpu(ctx: WebgpuContext, p: CceProblem): Promise<Int32Array> {
  const s = { ...WEBGPU_SCHEDULE, lanes: 1, rows: 64, dChunks: 1, vec: 1 } as Schedule;
  return driveAsync(samplesStep(webgpuBackend(ctx), p, s));
}
