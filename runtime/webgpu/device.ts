// WebGPU device acquisition through Dawn (the `webgpu` package) in Node: adapter info and limits become
// the capability record the schedule validator uses; limits are raised as far as the adapter allows.
import { createRequire } from 'node:module';
import { WGSL_CAPS } from '../../targets/wgsl/caps.js';
import type { DeviceCaps } from '../../codegen/target.js';

export class WebgpuError extends Error {}

export interface WebgpuContext {
  /** The Dawn instance: keep it referenced for the device's lifetime (Node segfaults on GC otherwise). */
  gpu: GPU;
  adapter: GPUAdapter;
  device: GPUDevice;
  caps: DeviceCaps;
  /** Adapter description, e.g. "NVIDIA H100 80GB HBM3" or "llvmpipe (LLVM 15.0.6, 256 bits)". */
  name: string;
  /** The adapter's info fields as Dawn reports them. */
  info: Record<string, string>;
  timestamps: boolean;
  subgroups: boolean;
  /** A software adapter (Mesa lavapipe, SwiftShader): the WGSL runs on the CPU, slower than the CPU executor. */
  software: boolean;
  lost: boolean;
}

type DawnModule = { create(flags: string[]): GPU; globals: Record<string, unknown> };
let dawn: DawnModule | undefined;
function loadDawn(): DawnModule {
  if (!dawn) {
    const require = createRequire(import.meta.url);
    try {
      dawn = require('webgpu') as DawnModule;
    } catch (e) {
      throw new WebgpuError(
        `WebGPU: the 'webgpu' package (Dawn for Node) could not be loaded: ${(e as Error).message}`,
      );
    }
    Object.assign(globalThis, dawn.globals);
  }
  return dawn;
}

const contexts = new Set<WebgpuContext>();

export interface AcquireOptions {
  /** Dawn backend: 'vulkan' (default on Linux), 'null' (validation only), ... */
  backend?: string;
  powerPreference?: GPUPowerPreference;
}

const RAISE: (keyof GPUSupportedLimits)[] = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupsPerDimension',
];

/** The best adapter, or null when there is none. Errors other than "no adapter" throw. */
export async function acquireWebgpu(o: AcquireOptions = {}): Promise<WebgpuContext | null> {
  const { create } = loadDawn();
  const flags = ['disable-dawn-features=timestamp_quantization'];
  if (o.backend) flags.push(`backend=${o.backend}`);
  const gpu = create(flags);
  const adapter = await gpu.requestAdapter({ powerPreference: o.powerPreference ?? 'high-performance' });
  if (!adapter) return null;
  const requiredLimits: Record<string, number> = {};
  for (const k of RAISE) requiredLimits[k] = adapter.limits[k] as number;
  const want: GPUFeatureName[] = ['timestamp-query', 'subgroups'];
  const requiredFeatures = want.filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const info = adapter.info;
  const vendor = info.vendor && !info.description?.includes(info.vendor) ? `(${info.vendor})` : '';
  const name = [info.description || info.device || info.architecture, vendor].filter(Boolean).join(' ');
  const l = device.limits;
  const caps: DeviceCaps = {
    ...WGSL_CAPS,
    name: name || 'webgpu',
    maxInvocations: Math.min(l.maxComputeInvocationsPerWorkgroup, l.maxComputeWorkgroupSizeX),
    maxSharedBytes: l.maxComputeWorkgroupStorageSize,
    maxGridX: l.maxComputeWorkgroupsPerDimension,
    maxStorageBindingBytes: l.maxStorageBufferBindingSize,
    maxStorageBuffers: l.maxStorageBuffersPerShaderStage,
    shaderF16: device.features.has('shader-f16'),
  };
  const infoFields: Record<string, string> = {
    vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description,
  };
  if (device.features.has('subgroups')) caps.subgroupSize = await probeSubgroups(device);
  const software =
    (info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter === true ||
    info.architecture === 'software' ||
    /llvmpipe|lavapipe|swiftshader/i.test(`${info.device} ${info.description}`);
  const ctx: WebgpuContext = {
    gpu,
    adapter,
    device,
    caps,
    name: caps.name,
    info: infoFields,
    timestamps: device.features.has('timestamp-query'),
    subgroups: device.features.has('subgroups'),
    software,
    lost: false,
  };
  contexts.add(ctx);
  void device.lost.then(() => (ctx.lost = true));
  return ctx;
}

/** Release the device (and the Dawn instance, so Node can exit). */
export function releaseWebgpu(ctx: WebgpuContext): void {
  ctx.device.destroy();
  contexts.delete(ctx);
}

/** Acquire or fail with a clear message (CI=true must not silently skip WebGPU). */
export async function requireWebgpu(o: AcquireOptions = {}): Promise<WebgpuContext> {
  const ctx = await acquireWebgpu(o);
  if (!ctx)
    throw new WebgpuError(
      'WebGPU: no adapter found. On Linux Dawn needs a Vulkan driver: install Mesa lavapipe ' +
        '(mesa-vulkan-drivers from bookworm-backports) or a GPU driver.',
    );
  return ctx;
}

/**
 * The subgroup size if it is the same for every invocation and subgroups are runs of consecutive
 * local_invocation_index values (what the WGSL emitter's subgroup reductions assume), else undefined.
 */
async function probeSubgroups(device: GPUDevice): Promise<number | undefined> {
  try {
    const sizes = new Set<number>();
    for (const wg of [64, 128, 256]) {
      const module = device.createShaderModule({
        code: `enable subgroups;
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(${wg})
fn main(
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) sid: u32,
  @builtin(subgroup_size) ssz: u32
) {
  out[lid] = sid + ssz * 65536u;
}`,
      });
      const buf = device.createBuffer({ size: wg * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
      const read = device.createBuffer({ size: wg * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(pipeline);
      const entries = [{ binding: 0, resource: { buffer: buf } }];
      pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }));
      pass.dispatchWorkgroups(1);
      pass.end();
      enc.copyBufferToBuffer(buf, 0, read, 0, wg * 4);
      device.queue.submit([enc.finish()]);
      await read.mapAsync(GPUMapMode.READ);
      const v = new Uint32Array(read.getMappedRange().slice(0));
      read.unmap();
      buf.destroy();
      read.destroy();
      for (let i = 0; i < wg; i++) {
        const size = v[i]! >>> 16;
        if ((v[i]! & 0xffff) !== i % size) return undefined;
        sizes.add(size);
      }
    }
    return sizes.size === 1 ? [...sizes][0] : undefined;
  } catch {
    return undefined;
  }
}
