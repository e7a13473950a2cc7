// The emitted PyTorch package (`ccekit emit --target torch`): its CPU path against ccekit's float64 reference
// on fixtures written here (its argument errors: bad-input-torch.test.ts). Needs Debian's python3-torch (CI
// installs it).
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { referenceCce } from '../runtime/cpu/reference.js';
import { decode } from '../runtime/numeric.js';
import type { Reduction } from '../runtime/problem.js';
import { randomProblem } from '../runtime/random.js';
import { philoxNegatives } from '../runtime/philox.js';
import { findTorchPython, skipTest } from './support/toolchains.js';
import { TORCH_PYTHON, emitTorchPackageDir } from './support/torch_package.js';

describe('emitted PyTorch package', () => {
  it('CPU path matches the float64 reference (loss, dE, dC) and the kernels\' sampler', (t) => {
    const py = findTorchPython();
    if (skipTest(t, TORCH_PYTHON, !!py)) return;
    const dir = emitTorchPackageDir();
    const fixtures = ([
      ['uniform mean, collisions, ignored rows', 7, 3, 61, 5, 'mean', false, 0],
      ['popularity q, sum', 33, 8, 97, 13, 'sum', true, 0],
      ['none, K=1', 5, 64, 11, 1, 'none', false, 0],
      ['every negative collides', 4, 2, 5, 3, 'mean', false, 0],
      ['negatives shared by 16 rows, none', 37, 6, 83, 11, 'none', false, 16],
      ['negatives shared by 32 rows, popularity q, mean', 70, 5, 97, 9, 'mean', true, 32],
    ] as const).map(([label, N, D, V, K, reduction, popularity, share], i) => {
      const p = { ...randomProblem({ N, D, V, K, dtype: 'f32', seed: Date.now() % 10000 + i, collisionRate: i === 3 ? 1 : 0.15, ignoreFraction: N > 4 ? 0.2 : 0, popularity, shareRows: share || undefined }), reduction: reduction as Reduction };
      const gradOutput = reduction === 'none' ? Float64Array.from({ length: N }, (_, r) => 1 + r * 0.5) : 0.75;
      const ref = referenceCce(p, { gradOutput });
      return {
        label, N, D, V, K, reduction, shareRows: share || null,
        E: Array.from(decode('f32', p.E)), C: Array.from(decode('f32', p.C)),
        targets: Array.from(p.targets), negatives: Array.from(p.negatives!), itemProbs: p.itemProbs ? Array.from(p.itemProbs) : null,
        gradOutput: typeof gradOutput === 'number' ? gradOutput : Array.from(gradOutput),
        loss: typeof ref.loss === 'number' ? ref.loss : Array.from(ref.loss), dE: Array.from(ref.dE), dC: Array.from(ref.dC),
      };
    });
    const fx = join(dir, 'fixtures.json');
    writeFileSync(fx, JSON.stringify(fixtures));
    // The package's CPU twin of the in-kernel sampler must draw what the kernels draw (runtime/philox.ts).
    const seed = 2 ** 40 + 777;
    writeFileSync(join(dir, 'philox.json'), JSON.stringify({ N: 6, K: 9, V: 1013, seed, expected: Array.from(philoxNegatives(6, 9, 1013, seed)), shared: Array.from(philoxNegatives(6, 9, 1013, seed, undefined, 1)) }));
    const script = join(__dirname, 'support', 'check_torch_package.py');
    const r = spawnSync(py!, [script, dir, fx], { encoding: 'utf8', timeout: 50_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/\d+ passed, 0 failed/);
    expect(r.status).toBe(0);
  });
});
