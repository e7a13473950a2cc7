// The emitted PyTorch package (`ccekit emit --target torch`): its sources compile, the emitted package imports
// and installs with pip, and its CPU path and the CUDA path's host code (launches replaced by the PyTorch path)
// match ccekit's float64 reference on fixtures written here (its argument errors: bad-input-torch.test.ts).
// Needs Debian's python3-torch and python3-pip (CI installs them: .ci/setup-system).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { referenceCce } from '../runtime/cpu/reference.js';
import { decode } from '../runtime/numeric.js';
import type { Reduction } from '../runtime/problem.js';
import { randomProblem } from '../runtime/random.js';
import { philoxNegatives } from '../runtime/philox.js';
import { findTorchPython, skipTest } from './support/toolchains.js';
import { TORCH_PYTHON, TORCH_SOURCES, emitTorchPackageDir, torchSourceFiles } from './support/torch_package.js';

// One emitted package for the tests of this file (emitting it takes seconds).
let emitted: string | undefined;
const packageDir = () => (emitted ??= emitTorchPackageDir());

// Imports the emitted package from its folder and checks what it carries against its manifest.
const IMPORT_CHECK = `
import json, os, sys
sys.path.insert(0, sys.argv[1])
import ccekit_torch
from ccekit_torch import _byitem, _checks, _cuda, _driver, _reference, _tile, loss
here = os.path.dirname(ccekit_torch.__file__)
assert os.path.realpath(here) == os.path.realpath(os.path.join(sys.argv[1], "ccekit_torch")), here
m = json.load(open(os.path.join(here, "manifest.json")))
assert ccekit_torch.__version__ == m["version"], ccekit_torch.__version__
missing = [k["file"] for k in m["kernels"] if not os.path.exists(os.path.join(here, "kernels", k["file"]))]
missing += [t["file"] for t in m["tiles"] if not os.path.exists(os.path.join(here, "triton", t["file"]))]
assert not missing, missing
passes = {k["pass"] for k in m["kernels"]}
assert all(p in passes for s in m["steps"] for p in s["forward"] + s["backward"]), passes
print("imported", ccekit_torch.__version__, len(m["kernels"]), "kernels", len(m["steps"]), "steps")
`;

describe('emitted PyTorch package', () => {
  it('its sources byte-compile (py_compile) and are copied as they are; the emitted package imports', (t) => {
    const py = findTorchPython();
    if (skipTest(t, TORCH_PYTHON, !!py)) return;
    const files = torchSourceFiles();
    expect(files).toContain('ccekit_torch/__init__.py');
    // Byte code goes to a temporary folder, not next to the sources.
    const env = { ...process.env, PYTHONPYCACHEPREFIX: mkdtempSync(join(tmpdir(), 'ccekit-pyc-')) };
    const compiled = spawnSync(py!, ['-m', 'py_compile', ...files.map((f) => join(TORCH_SOURCES, f))],
      { encoding: 'utf8', env, timeout: 60_000 });
    expect(compiled.stderr).toBe('');
    expect(compiled.status).toBe(0);
    const dir = packageDir();
    for (const f of files)
      expect(readFileSync(join(dir, f), 'utf8'), f).toBe(readFileSync(join(TORCH_SOURCES, f), 'utf8'));
    const r = spawnSync(py!, ['-c', IMPORT_CHECK, dir], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^imported \S+ \d+ kernels 4 steps/);
  });

  it('CPU path and the CUDA host code match the float64 reference (loss, dE, dC); the kernels\' sampler', (t) => {
    const py = findTorchPython();
    if (skipTest(t, TORCH_PYTHON, !!py)) return;
    const dir = packageDir();
    const fixtures = ([
      ['uniform mean, collisions, ignored rows', 7, 3, 61, 5, 'mean', false, 0],
      ['popularity q, sum', 33, 8, 97, 13, 'sum', true, 0],
      ['none, K=1', 5, 64, 11, 1, 'none', false, 0],
      ['every negative collides', 4, 2, 5, 3, 'mean', false, 0],
      ['negatives shared by 16 rows, none', 37, 6, 83, 11, 'none', false, 16],
      ['negatives shared by 32 rows, popularity q, mean', 70, 5, 97, 9, 'mean', true, 32],
      ['negatives shared by 64 rows, popularity q, sum', 150, 12, 89, 6, 'sum', true, 64],
      ['negatives shared by 64 rows, mean', 129, 8, 71, 5, 'mean', false, 64],
    ] as const).map(([label, N, D, V, K, reduction, popularity, share], i) => {
      const gen = {
        N, D, V, K, dtype: 'f32' as const, seed: Date.now() % 10000 + i, collisionRate: i === 3 ? 1 : 0.15,
        ignoreFraction: N > 4 ? 0.2 : 0, popularity, shareRows: share || undefined,
      };
      const p = { ...randomProblem(gen), reduction: reduction as Reduction };
      const gradOutput = reduction === 'none' ? Float64Array.from({ length: N }, (_, r) => 1 + r * 0.5) : 0.75;
      const ref = referenceCce(p, { gradOutput });
      return {
        label, N, D, V, K, reduction, shareRows: share || null,
        E: Array.from(decode('f32', p.E)), C: Array.from(decode('f32', p.C)),
        targets: Array.from(p.targets), negatives: Array.from(p.negatives!),
        itemProbs: p.itemProbs ? Array.from(p.itemProbs) : null,
        gradOutput: typeof gradOutput === 'number' ? gradOutput : Array.from(gradOutput),
        loss: typeof ref.loss === 'number' ? ref.loss : Array.from(ref.loss),
        dE: Array.from(ref.dE), dC: Array.from(ref.dC),
      };
    });
    const fx = join(dir, 'fixtures.json');
    writeFileSync(fx, JSON.stringify(fixtures));
    // The package's CPU twin of the in-kernel sampler must draw what the kernels draw (runtime/philox.ts).
    const seed = 2 ** 40 + 777;
    const philox = {
      N: 6, K: 9, V: 1013, seed, expected: Array.from(philoxNegatives(6, 9, 1013, seed)),
      shared: Array.from(philoxNegatives(6, 9, 1013, seed, undefined, 1)),
    };
    writeFileSync(join(dir, 'philox.json'), JSON.stringify(philox));
    const script = join(__dirname, 'support', 'check_torch_package.py');
    const r = spawnSync(py!, [script, dir, fx], { encoding: 'utf8', timeout: 50_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/\d+ passed, 0 failed/);
    expect(r.stdout).toMatch(/ok {3}CUDA host code: .*dC by item/);
    expect(r.status).toBe(0);
  });

  it('pip installs it (offline, --target a temporary folder) and it imports from there', (t) => {
    const py = findTorchPython();
    if (skipTest(t, TORCH_PYTHON, !!py)) return;
    const pip = !!py && spawnSync(py, ['-m', 'pip', '--version'], { stdio: 'ignore' }).status === 0;
    if (skipTest(t, 'pip for python3 (Debian python3-pip)', pip)) return;
    const target = mkdtempSync(join(tmpdir(), 'ccekit-torch-site-'));
    const args = ['-m', 'pip', 'install', '--no-deps', '--no-build-isolation', '--no-index', '--quiet',
      '--disable-pip-version-check', '--root-user-action=ignore', '--target', target, packageDir()];
    const install = spawnSync(py!, args, { encoding: 'utf8', timeout: 100_000, cwd: tmpdir() });
    expect(install.status, install.stderr).toBe(0);
    const r = spawnSync(py!, ['-c', IMPORT_CHECK, target], { encoding: 'utf8', timeout: 60_000, cwd: tmpdir() });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^imported \S+ \d+ kernels 4 steps/);
  });
});
