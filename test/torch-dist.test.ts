// The emitted PyTorch package under torch.distributed (gloo, ranks spawned with torch.multiprocessing on this CPU):
// vocabulary-parallel CCE- (process_group=) with 2 and 3 ranks against the single-process float64 loss on the whole
// table (index-tensor, item_probs and Philox negatives; mean / sum / none; ignored rows, collisions, unequal shards);
// DDP gradients against one process on the whole batch, and in-kernel draws distinct per rank unless asked; a rank
// that dies or stalls mid-step ends in an error naming the rank, never a hang. test/support/torch_dist_check.py.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findTorchPython, skipTest } from './support/toolchains.js';
import { TORCH_PYTHON, emitTorchPackageDir } from './support/torch_package.js';

const script = join(__dirname, 'support', 'torch_dist_check.py');
function check(args: string[], timeout = 150_000) {
  const r = spawnSync(findTorchPython()!, [script, emitTorchPackageDir(), ...args], {
    encoding: 'utf8', timeout, env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  return { out: r.stdout ?? '', err: r.stderr ?? '', status: r.status };
}

describe('PyTorch package under torch.distributed (gloo on the CPU)', () => {
  for (const world of [2, 3])
    it(`vocabulary-parallel CCE- over ${world} ranks equals one process on the whole table`, (t) => {
      if (skipTest(t, TORCH_PYTHON, !!findTorchPython())) return;
      const r = check(['vocab', String(world)]);
      expect(r.out, r.err).not.toContain('FAIL');
      expect((r.out.match(/^ok {3}vocab /gm) ?? []).length).toBe(12 * world);
      expect(r.status).toBe(0);
    }, 160_000);

  it('DDP: gradients equal one process on the whole batch; draws differ per rank unless asked', (t) => {
    if (skipTest(t, TORCH_PYTHON, !!findTorchPython())) return;
    const r = check(['ddp', '2']);
    expect(r.out, r.err).not.toContain('FAIL');
    expect((r.out.match(/^ok {3}ddp /gm) ?? []).length).toBe(6);
    expect(r.status).toBe(0);
  }, 160_000);

  for (const mode of ['cpu', 'stall'])
    it(`a rank that ${mode === 'stall' ? 'stalls' : 'dies'} mid-step: an error naming the rank, no hang`, (t) => {
      if (skipTest(t, TORCH_PYTHON, !!findTorchPython())) return;
      const r = check(['dead', '2', mode], 90_000);
      const named = /^ok {3}(dead|stalled) rank: RuntimeError after [\d.]+ s: ccekit vocab-parallel CCE-: rank 0 of 2/m;
      expect(r.out, r.err).toMatch(named);
    }, 100_000);
});
