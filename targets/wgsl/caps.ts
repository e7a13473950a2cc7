// The WGSL target's default device and traits, apart from its printer (emit.ts holds the record).
import type { DeviceCaps, TargetTraits } from '../../codegen/target.js';

export const WGSL_TRAITS: TargetTraits = {
  tiles: false,
  laneReduce: 'subgroup',
  rowSharedAtomics: true,
  countersNeedOneLane: true,
  shareStep: { min: 1, max: 2 },
};

/**
 * The WGSL target. Default caps: WebGPU's (gpuweb spec), except storage buffers: the spec's default is 8, but the
 * backward kernels with a given q or a per-row upstream gradient bind 9–10, which desktop adapters offer
 * (lavapipe 16, Vulkan / Metal / D3D12 drivers ≥ 10); the runtime requests the adapter's limits and checks them.
 */
export const WGSL_CAPS: DeviceCaps = {
  target: 'wgsl',
  name: 'webgpu-default',
  maxInvocations: 256,
  maxSharedBytes: 16384,
  maxGridX: 65535,
  maxStorageBindingBytes: 134217728,
  maxStorageBuffers: 10,
  shaderF16: false,
  traits: WGSL_TRAITS,
};
