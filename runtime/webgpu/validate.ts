// WGSL validation with Dawn (the `webgpu` package) on its null backend: no GPU needed. A shader module's
// compilation messages catch parse / type errors; creating a compute pipeline with layout 'auto' catches
// what only shows at pipeline creation (entry point, bindings, resource limits).
import { create, globals } from 'webgpu';

export interface WgslMessage {
  type: string;
  line: number;
  message: string;
}

// dawn.node lives as long as the object create() returns: keep it strongly referenced here (dropping it
// while a device is alive lets the GC tear Dawn down under us).
let gpu: GPU | undefined;
let device: Promise<GPUDevice> | undefined;

function getDevice(): Promise<GPUDevice> {
  if (!device) {
    Object.assign(globalThis, globals);
    gpu = create(['backend=null']);
    const g = gpu;
    device = (async () => {
      const adapter = await g.requestAdapter();
      if (!adapter) throw new Error('webgpu: no adapter on the null backend');
      return adapter.requestDevice();
    })();
    // A failed start must not stick: the next call tries again.
    device.catch(() => {
      device = undefined;
    });
  }
  return device;
}

/** Compile `code` as a compute shader; every error or warning Dawn reports (empty when it is valid). */
export async function validateWgsl(code: string): Promise<WgslMessage[]> {
  const dev = await getDevice();
  dev.pushErrorScope('validation');
  const module = dev.createShaderModule({ code });
  const info = await module.getCompilationInfo();
  const moduleError = await dev.popErrorScope();
  const out: WgslMessage[] = info.messages.map((m) => ({ type: m.type, line: m.lineNum, message: m.message }));
  if (out.some((m) => m.type === 'error')) return out;
  if (moduleError) return [...out, { type: 'error', line: 0, message: moduleError.message }];

  // Dawn's null device has the spec's default limits (8 storage buffers); kernels that need the raised
  // limit desktop adapters offer are only compiled here, and run by the WebGPU runtime tests instead.
  const storage = (code.match(/var<storage\b/g) ?? []).length;
  if (storage > dev.limits.maxStorageBuffersPerShaderStage) {
    const limit = dev.limits.maxStorageBuffersPerShaderStage;
    const message = `pipeline not created: ${storage} storage buffers exceed the null device's ${limit}`;
    out.push({ type: 'info', line: 0, message });
    return out;
  }
  dev.pushErrorScope('validation');
  dev.pushErrorScope('internal');
  // No entryPoint: valid when the module has exactly one compute entry point, which a kernel file has.
  dev.createComputePipeline({ layout: 'auto', compute: { module } });
  const internal = await dev.popErrorScope();
  const validation = await dev.popErrorScope();
  for (const e of [validation, internal]) if (e) out.push({ type: 'error', line: 0, message: e.message });
  return out;
}

/** Destroy the device and let Dawn go (a later validateWgsl starts a new one). */
export async function closeWebgpu(): Promise<void> {
  if (!device) return;
  const d = device;
  device = undefined;
  try {
    (await d).destroy();
  } catch {
    // it never started: nothing to destroy
  }
  gpu = undefined;
}
