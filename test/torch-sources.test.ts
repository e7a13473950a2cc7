// The candidate sources of the emitted PyTorch package's cce_minus_loss on its PyTorch (CPU) path: in-batch
// (negatives="in-batch" / "in-batch-group"), mixed (in-batch plus num_negatives drawn), positions=, against float64
// loops written in test/support/torch_sources_check.py on fresh random inputs (loss, dE, dC; mean / sum / none;
// ignored rows; duplicates of the target among the in-batch candidates), their argument errors, and a statistical
// check of the mixed estimator; plus a --help smoke run of bench/in_batch.py. Needs /usr/bin/python3 with torch.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { findTorchPython, skipTest } from './support/toolchains.js';
import { TORCH_PYTHON, emitTorchPackageDir } from './support/torch_package.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

describe('PyTorch package: candidate sources (in-batch, mixed, positions)', () => {
  it('match a float64 loop (loss, dE, dC), name bad arguments, and the mixed estimator is unbiased', (t) => {
    const py = findTorchPython();
    if (skipTest(t, TORCH_PYTHON, !!py)) return;
    const dir = emitTorchPackageDir();
    const script = join(__dirname, 'support', 'torch_sources_check.py');
    const r = spawnSync(py!, [script, dir], {
      encoding: 'utf8', timeout: 55_000, env: { ...process.env, OMP_NUM_THREADS: '1' },
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).not.toContain('FAIL');
    expect(r.stdout).toMatch(/^ok {3}in-batch-group /m);
    expect(r.stdout).toMatch(/^ok {3}mixed: in-batch \+ drawn from item_probs/m);
    expect(r.stdout).toMatch(/^ok {3}positions: /m);
    expect(r.stdout).toMatch(/^ok {3}bad input: /m);
    expect(r.stdout).toMatch(/^ok {3}statistics: /m);
    expect(r.stdout).toMatch(/^9 passed, 0 failed$/m);
    expect(r.status).toBe(0);
  }, 60_000);

  it('bench/in_batch.py imports and prints its flags (--help)', (t) => {
    const py = findTorchPython();
    if (skipTest(t, TORCH_PYTHON, !!py)) return;
    const r = spawnSync(py!, [join(ROOT, 'bench', 'in_batch.py'), '--help'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    for (const flag of ['--n', '--d', '--v', '--dtype', '--drawn', '--package', '--out'])
      expect(r.stdout).toContain(flag);
  });
});
