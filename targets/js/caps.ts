// The CPU target's default device and traits, apart from its printer (the JS printer; emit.ts holds the record).
import type { DeviceCaps, TargetTraits } from '../../codegen/target.js';

export const CPU_TRAITS: TargetTraits = {
  tiles: false,
  laneReduce: 'none',
  rowSharedAtomics: false,
  countersNeedOneLane: false,
  shareStep: { min: 1, max: 64 },
};

/**
 * The CPU target: the JS printer run in this process, float64 arithmetic. Row slots run one after another and a
 * vec region is one loop over BLOCK_D, so lanes never need combining and every schedule fits.
 */
export const CPU_CAPS: DeviceCaps = {
  target: 'cpu',
  name: 'cpu-float64',
  maxInvocations: 1 << 16,
  maxSharedBytes: 1 << 30,
  maxGridX: 2 ** 31 - 1,
  shaderF16: true,
  traits: CPU_TRAITS,
};
