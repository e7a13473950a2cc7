// examples/sasrec/synthetic.py: the seeded large-catalog generator (test/support/synthetic_check.py): reproducible
// per seed, the data sets' format, Zipf-like popularity, and next items predictable beyond popularity.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findTorchPython, skipTest } from './support/toolchains.js';
import { TORCH_PYTHON } from './support/torch_package.js';

describe('synthetic sequences for large catalogs', () => {
  it('are reproducible, well formed, popularity-skewed and learnable beyond popularity', (t) => {
    const py = findTorchPython();
    if (skipTest(t, TORCH_PYTHON, !!py)) return;
    const r = spawnSync(py!, [join(__dirname, 'support', 'synthetic_check.py')], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout).not.toContain('FAIL');
    expect((r.stdout.match(/^ok {3}/gm) ?? []).length).toBe(4);
  }, 70_000);
});
