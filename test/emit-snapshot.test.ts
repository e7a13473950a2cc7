// The emitted source of one variant per target (sampled, uniform q, f16, scalar upstream gradient, default
// schedule; forward and backward), kept as snapshots so that every change to generated code shows up in
// review. After an intended change: `npx vitest run test/emit-snapshot.test.ts -u`, then read the diff.
import { describe, expect, it } from 'vitest';
import { emitVariants } from '../targets/variants.js';
import type { CceOptions } from '../dsl/cce.js';
import { DEFAULT_SCHEDULE } from '../codegen/schedule.js';
import type { TargetName } from '../targets/registry.js';

const VARIANT: CceOptions = { mode: 'sampled', sampling: 'uniform', dtype: 'f16', grad: 'scalar' };
const TARGETS: readonly TargetName[] = ['cuda', 'triton', 'wgsl'];

describe.each(TARGETS)('%s', (target) => {
  const { files, manifest } = emitVariants(target, [VARIANT], DEFAULT_SCHEDULE);

  it('emits a forward, a backward, a fused kernel and a forward + dE kernel (scalar upstream gradient)', () => {
    expect(manifest.kernels.map((k) => k.pass)).toEqual(['forward', 'backward', 'fused', 'fused_de']);
  });

  it.each(manifest.kernels.map((k) => [k.pass, k.file] as const))('%s: %s', (_, file) => {
    expect(files.get(file)).toMatchSnapshot();
  });
});
