// The Triton target's default device and traits, apart from its printer (emit.ts holds the record).
import type { DeviceCaps, TargetTraits } from '../../codegen/target.js';

export const TRITON_TRAITS: TargetTraits = {
  tiles: true,
  laneReduce: 'none',
  rowSharedAtomics: false,
  countersNeedOneLane: false,
  shareStep: { min: 16, max: 64 },
};

/** The Triton target: one program per row tile; its caps are those of the CUDA GPUs Triton runs on (Hopper). */
export const TRITON_CAPS: DeviceCaps = {
  target: 'triton',
  name: 'triton',
  maxInvocations: 1024,
  maxSharedBytes: 227 * 1024,
  maxGridX: 2 ** 31 - 1,
  shaderF16: true,
  traits: TRITON_TRAITS,
};
