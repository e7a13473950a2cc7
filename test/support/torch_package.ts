// The emitted PyTorch package for the tests that drive it with a python3 that imports torch (Debian's
// /usr/bin/python3 with python3-torch): the package written into a fresh temporary folder.
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type TorchPackageOptions, emitTorchPackage } from '../../packages/torch/package.js';
import { writeFiles } from './toolchains.js';

/** What the package's tests need, in the skip line. */
export const TORCH_PYTHON = 'python3 with torch (Debian python3-torch)';

/** The package (f32 kernels for D = 64 unless told otherwise) in a new temporary folder; returns the folder. */
export function emitTorchPackageDir(o: TorchPackageOptions = { dValues: [64], dtypes: ['f32'] }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ccekit-torch-'));
  writeFiles(dir, emitTorchPackage(o));
  return dir;
}

/** The package's Python sources in the repository (packages/torch), which the emitted package copies. */
export const TORCH_SOURCES = fileURLToPath(new URL('../../packages/torch', import.meta.url));

/** Every .py file of the package's sources: ccekit_torch/*.py and setup.py, relative to TORCH_SOURCES. */
export function torchSourceFiles(): string[] {
  const mods = readdirSync(join(TORCH_SOURCES, 'ccekit_torch')).filter((f) => f.endsWith('.py'));
  return [...mods.sort().map((f) => `ccekit_torch/${f}`), 'setup.py'];
}
