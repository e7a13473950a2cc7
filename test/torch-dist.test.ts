// The emitted PyTorch package under torch.distributed (gloo, ranks spawned with torch.multiprocessing on this CPU):
// vocabulary-parallel CCE- (process_group=) with 2 and 3 ranks against the single-process float64 loss on the whole
// table (index-tensor, item_probs and Philox negatives; mean / sum / none; ignored rows, collisions, unequal shards);
// DDP gradients against one process on the whole batch, and in-kernel draws distinct per rank unless asked; a rank
// that dies or stalls mid-step ends in an error naming the rank, never a hang. test/support/torch_dist_check.py. And
// bench/vocab_parallel.py's CPU smoke run (shards a rank, the plain step at a shard's catalog, Adam on the shards).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

  it('bench/vocab_parallel.py on the CPU: each rank its shard, the plain step at a shard\'s catalog, Adam', (t) => {
    if (skipTest(t, TORCH_PYTHON, !!findTorchPython())) return;
    const out = mkdtempSync(join(tmpdir(), 'ccekit-vp-'));
    const r = spawnSync(findTorchPython()!, ['bench/vocab_parallel.py', '--package', emitTorchPackageDir(), '--sizes',
      '64,101,7,8', '--device', 'cpu', '--world', '3', '--repeats', '2', '--warmup', '1', '--dtype', 'f32', '--plain',
      'shard', '--adam', '--out', out], { encoding: 'utf8', timeout: 120_000, env: { ...process.env,
      OMP_NUM_THREADS: '1' } });
    expect(r.status, r.stderr).toBe(0);
    const rep = JSON.parse(readFileSync(join(out, 'vocab_parallel.json'), 'utf8'));
    const row = rep.results.custom;
    expect(rep.backend).toBe('gloo');
    // Shards [V r / P, V (r + 1) / P): 33, 34, 34 rows; the plain step ran on rank 0's 33.
    expect(row.ranks.map((x: { rank: number; rows: number }) => [x.rank, x.rows])).toEqual([[0, 33], [1, 34], [2, 34]]);
    expect([row.plain_catalog, row.adam]).toEqual([33, true]);
    for (const k of ['plain_ms', 'stats_ms', 'merge_ms', 'backward_ms', 'dE_allreduce_ms', 'step_ms'])
      expect(row[k], k).toBeGreaterThan(0);
    expect(readFileSync(join(out, 'vocab_parallel.md'), 'utf8')).toMatch(/3 ranks on one cpu over gloo[\s\S]*\| custom/);
  }, 130_000);
});
