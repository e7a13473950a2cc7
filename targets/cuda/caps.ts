// The CUDA target's default device and traits, apart from its printer (emit.ts holds the record).
import type { DeviceCaps, TargetTraits } from '../../codegen/target.js';

export const CUDA_TRAITS: TargetTraits = {
  tiles: false,
  laneReduce: 'shuffle',
  rowSharedAtomics: true,
  countersNeedOneLane: true,
  shareStep: { min: 1, max: 2 },
};

/**
 * The CUDA target. Default caps: Hopper (sm_90): 1024 threads, 227 KiB shared memory per block after opt-in
 * (48 KiB static, what the emitted kernels use).
 */
export const CUDA_CAPS: DeviceCaps = {
  target: 'cuda',
  name: 'sm_90a',
  arch: 'sm_90a',
  maxInvocations: 1024,
  maxSharedBytes: 48 * 1024,
  maxRegisters: 255,
  warpSize: 32,
  maxGridX: 2 ** 31 - 1,
  shaderF16: true,
  traits: CUDA_TRAITS,
};
